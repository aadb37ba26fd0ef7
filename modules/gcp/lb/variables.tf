variable "name" {
  description = "Name prefix of the load balancer's resources (usually the stack name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "The name must be 1-40 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "project" {
  description = "Project ID of the load balancer."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "pools" {
  description = "Serving pools: pool name -> its weight and the instance groups behind its backend service (an on-demand and a spot group may share one)."
  type = map(object({
    weight = number
    groups = list(string)
  }))

  validation {
    condition     = length(var.pools) >= 1 && alltrue([for name, p in var.pools : can(regex("^[a-z][a-z0-9]{0,7}$", name)) && length(p.groups) >= 1 && p.weight >= 0 && p.weight <= 1000])
    error_message = "The pools must be 1 or more, named like a gpufleet pool (a-z0-9, 1-8 characters, a letter first), each with at least one group and a weight of 0 to 1000."
  }
}

variable "weighted" {
  description = "Split traffic across the pools by weight (the URL map's weighted backend services); false: one pool, its backend service takes everything."
  type        = bool
  default     = false
}

variable "locality_lb_policy" {
  description = "How a backend service picks a VM: ROUND_ROBIN or LEAST_REQUEST (the fewest outstanding requests)."
  type        = string
  default     = "ROUND_ROBIN"

  validation {
    condition     = contains(["ROUND_ROBIN", "LEAST_REQUEST"], var.locality_lb_policy)
    error_message = "The locality_lb_policy must be ROUND_ROBIN or LEAST_REQUEST."
  }
}

variable "port_name" {
  description = "The groups' named port the backends send to."
  type        = string
  default     = "http"
}

variable "health_check" {
  description = "The backends' HTTP health check: path, port, interval_s, timeout_s, healthy_threshold, unhealthy_threshold."
  type = object({
    path                = string
    port                = number
    interval_s          = number
    timeout_s           = number
    healthy_threshold   = number
    unhealthy_threshold = number
  })

  validation {
    condition     = substr(var.health_check.path, 0, 1) == "/" && var.health_check.timeout_s <= var.health_check.interval_s
    error_message = "The health_check needs a path starting with / and timeout_s <= interval_s."
  }
}

variable "balancing" {
  description = "How full a VM may get: mode UTILIZATION (max_utilization of its CPU, 0-1) or RATE (max_rate_per_instance requests per second; the autoscaler's load-balancer utilization is measured against it)."
  type = object({
    mode                  = string
    max_utilization       = number
    max_rate_per_instance = number
  })
  default = {
    mode                  = "UTILIZATION"
    max_utilization       = 0.8
    max_rate_per_instance = 0
  }

  validation {
    condition     = (var.balancing.mode == "UTILIZATION" && var.balancing.max_utilization > 0 && var.balancing.max_utilization <= 1) || (var.balancing.mode == "RATE" && var.balancing.max_rate_per_instance > 0)
    error_message = "The balancing must be mode UTILIZATION with max_utilization in (0, 1], or mode RATE with max_rate_per_instance above 0."
  }
}

variable "connection_draining_s" {
  description = "Seconds a VM leaving a backend keeps its open requests (deregistration delay)."
  type        = number
  default     = 30

  validation {
    condition     = var.connection_draining_s >= 0 && var.connection_draining_s <= 3600
    error_message = "The connection_draining_s must be between 0 and 3600."
  }
}

variable "timeout_s" {
  description = "Seconds the load balancer waits for a backend's response."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 86400
    error_message = "The timeout_s must be between 1 and 86400."
  }
}

variable "listener_port" {
  description = "Port clients connect to: 80 or 8080 (HTTP), or 443 with a domain (HTTPS; port 80 then redirects to it)."
  type        = number
  default     = 80

  validation {
    condition     = contains([80, 8080, 443], var.listener_port)
    error_message = "The listener_port must be 80, 8080 or 443."
  }
}

variable "domain" {
  description = "Serve HTTPS for this domain with a Google-managed certificate (its DNS must point at the load balancer's address); \"\" for HTTP."
  type        = string
  default     = ""

  validation {
    condition     = var.domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain))
    error_message = "The domain must be empty or a lowercase DNS name such as api.example.com."
  }
}

variable "security_policy" {
  description = "A Cloud Armor security policy (ID or self link) for every backend service, or \"\" for none."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Labels on the forwarding rules."
  type        = map(string)
  default     = {}
}
