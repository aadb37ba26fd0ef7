variable "name" {
  description = "Name of the load balancer (at most 20 characters, so that \"<name>-<pool>\" target group names fit in 32)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]{0,18}[a-zA-Z0-9])?$", var.name)) && substr(lower(var.name), 0, 9) != "internal-"
    error_message = "The name must be 1-20 letters, digits and hyphens, neither starting nor ending with a hyphen (ALB naming rules)."
  }
}

variable "vpc_id" {
  description = "VPC of the target groups."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "The vpc_id must be a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Public subnets of the load balancer, in at least two availability zones on AWS."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "The subnet_ids must be a non-empty list of subnet IDs (subnet-...)."
  }
}

variable "security_group_ids" {
  description = "Security groups of the load balancer."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) >= 1 && alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "The security_group_ids must be a non-empty list of security group IDs (sg-...)."
  }
}

variable "target_port" {
  description = "Port the serving replicas listen on."
  type        = number

  validation {
    condition     = var.target_port >= 1 && var.target_port <= 65535 && floor(var.target_port) == var.target_port
    error_message = "The target_port must be a whole number between 1 and 65535."
  }
}

variable "algorithm" {
  description = "How each target group picks a replica: \"round_robin\" or \"least_outstanding_requests\"."
  type        = string

  validation {
    condition     = contains(["round_robin", "least_outstanding_requests"], var.algorithm)
    error_message = "The algorithm must be \"round_robin\" or \"least_outstanding_requests\"."
  }
}

variable "pools" {
  description = "Replica pools, one target group each: pool key (at most 8 characters) -> weight of the pool in the listener's forward action (0-999)."
  type = map(object({
    weight = number
  }))

  validation {
    condition     = length(var.pools) >= 1 && length(var.pools) <= 5
    error_message = "There must be between 1 and 5 pools (an ALB forward action takes at most 5 target groups)."
  }

  validation {
    condition     = alltrue([for k in keys(var.pools) : can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?$", k))])
    error_message = "Every pool key must be 1-8 letters, digits and hyphens, neither starting nor ending with a hyphen."
  }

  validation {
    condition     = alltrue([for p in values(var.pools) : p.weight >= 0 && p.weight <= 999 && floor(p.weight) == p.weight])
    error_message = "Every pool weight must be a whole number between 0 and 999."
  }
}

variable "health_check" {
  description = "Target group health check: HTTP path, interval and timeout in seconds, healthy/unhealthy thresholds, and the matcher of healthy status codes (e.g. \"200\" or \"200-299\")."
  type = object({
    path                = string
    interval_s          = number
    timeout_s           = number
    healthy_threshold   = number
    unhealthy_threshold = number
    matcher             = string
  })

  validation {
    condition     = substr(var.health_check.path, 0, 1) == "/" && length(var.health_check.path) <= 1024
    error_message = "The health_check.path must start with \"/\" and be at most 1024 characters."
  }

  validation {
    condition     = var.health_check.interval_s >= 5 && var.health_check.interval_s <= 300 && var.health_check.timeout_s >= 2 && var.health_check.timeout_s <= 120 && var.health_check.timeout_s < var.health_check.interval_s
    error_message = "The health_check.interval_s must be 5-300, timeout_s 2-120, and timeout_s less than interval_s."
  }

  validation {
    condition     = var.health_check.healthy_threshold >= 2 && var.health_check.healthy_threshold <= 10 && var.health_check.unhealthy_threshold >= 2 && var.health_check.unhealthy_threshold <= 10
    error_message = "The health_check healthy_threshold and unhealthy_threshold must each be between 2 and 10."
  }

  validation {
    condition     = can(regex("^[0-9]{3}([-,][0-9]{3})*$", var.health_check.matcher))
    error_message = "The health_check.matcher must be HTTP codes such as \"200\", \"200,204\" or \"200-299\"."
  }
}

variable "deregistration_delay_s" {
  description = "Seconds a deregistering replica keeps receiving in-flight requests before it is dropped (0-3600)."
  type        = number

  validation {
    condition     = var.deregistration_delay_s >= 0 && var.deregistration_delay_s <= 3600 && floor(var.deregistration_delay_s) == var.deregistration_delay_s
    error_message = "The deregistration_delay_s must be a whole number between 0 and 3600."
  }
}

variable "slow_start_s" {
  description = "Seconds over which a new replica's share of requests ramps up: 0 (off) or 30-900. Not allowed with least_outstanding_requests."
  type        = number

  validation {
    condition     = var.slow_start_s == 0 || (var.slow_start_s >= 30 && var.slow_start_s <= 900 && floor(var.slow_start_s) == var.slow_start_s)
    error_message = "The slow_start_s must be 0 or a whole number between 30 and 900."
  }
}

variable "listener_port" {
  description = "Public port of the forwarding listener (HTTP, or HTTPS when a certificate is given)."
  type        = number

  validation {
    condition     = var.listener_port >= 1 && var.listener_port <= 65535 && floor(var.listener_port) == var.listener_port
    error_message = "The listener_port must be a whole number between 1 and 65535."
  }
}

variable "certificate_arn" {
  description = "ACM certificate ARN. Empty: plain HTTP on listener_port. Set: HTTPS on listener_port, and HTTP :80 redirecting to it."
  type        = string
  default     = ""

  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:(acm|iam):", var.certificate_arn))
    error_message = "The certificate_arn must be empty or an ACM (or IAM server) certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS negotiation policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("^ELBSecurityPolicy-", var.ssl_policy))
    error_message = "The ssl_policy must be an ELB security policy name (ELBSecurityPolicy-...)."
  }
}

variable "idle_timeout_s" {
  description = "Seconds a connection may stay idle; raise it for long generations that stream nothing."
  type        = number
  default     = 60

  validation {
    condition     = var.idle_timeout_s >= 1 && var.idle_timeout_s <= 4000
    error_message = "The idle_timeout_s must be between 1 and 4000."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer (a destroy then fails until this is turned off)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
