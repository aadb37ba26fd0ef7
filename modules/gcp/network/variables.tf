variable "name" {
  description = "Name prefix for every resource of the network (usually the stack name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "The name must be 1-40 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen (GCP resource names)."
  }
}

variable "project" {
  description = "Project ID the network is created in."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the subnet, the Cloud Router and Cloud NAT (e.g. us-central1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]{1,2}$", var.region))
    error_message = "The region must be a GCP region name such as us-central1."
  }
}

variable "cidr" {
  description = "Primary IPv4 range of the region's subnet, a /16 to /22 (the VMs' internal addresses)."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr, 0)) && can(regex("^[0-9.]+/(1[6-9]|2[0-2])$", var.cidr))
    error_message = "The cidr must be an IPv4 CIDR block with a prefix length between /16 and /22 (e.g. 10.42.0.0/16)."
  }
}

variable "serving_port" {
  description = "Port the serving VMs listen on; Google's health checkers and load balancer proxies may reach it. null: no serving fleet."
  type        = number
  default     = null

  validation {
    condition     = var.serving_port == null ? true : (var.serving_port >= 1 && var.serving_port <= 65535 && floor(var.serving_port) == var.serving_port)
    error_message = "The serving_port must be null or a port number between 1 and 65535."
  }
}

variable "serving_service_accounts" {
  description = "Service account emails of the serving VMs: the firewall rule for health checks and the load balancer targets these, never a network tag."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.serving_service_accounts) <= 10
    error_message = "At most 10 serving service accounts (a firewall rule's limit)."
  }
}

variable "training_service_accounts" {
  description = "Service account emails of the training VMs: they may reach each other on every TCP port (rendezvous, NCCL, gloo), and nothing else may reach them."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.training_service_accounts) <= 10
    error_message = "At most 10 training service accounts (a firewall rule's limit)."
  }
}

variable "health_check_ranges" {
  description = "Source ranges of Google's health checkers and of the global external Application Load Balancer's proxies."
  type        = list(string)
  default     = ["130.211.0.0/22", "35.191.0.0/16"]

  validation {
    condition     = length(var.health_check_ranges) >= 1 && alltrue([for r in var.health_check_ranges : can(cidrhost(r, 0))])
    error_message = "The health_check_ranges must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "flow_log_sampling" {
  description = "Share of the subnet's flows that VPC flow logs record (0 to 1)."
  type        = number
  default     = 0.5

  validation {
    condition     = var.flow_log_sampling >= 0 && var.flow_log_sampling <= 1
    error_message = "The flow_log_sampling must be between 0 and 1."
  }
}
