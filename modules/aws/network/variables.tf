variable "name" {
  description = "Name prefix for every resource of the network (usually the stack name)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{0,47}$", var.name))
    error_message = "The name must be 1-48 characters of letters, digits and hyphens, starting with a letter or digit."
  }
}

variable "cidr" {
  description = "IPv4 CIDR block of the VPC, a /16 to /22. It is carved into 16 equal subnets: private ones first, public ones from the ninth on."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr, 0)) && can(regex("^[0-9.]+/(1[6-9]|2[0-2])$", var.cidr))
    error_message = "The cidr must be an IPv4 CIDR block with a prefix length between /16 and /22 (e.g. 10.42.0.0/16)."
  }
}

variable "zones" {
  description = "Number of availability zones to spread over (one public and one private subnet in each). An ALB needs at least 2."
  type        = number

  validation {
    condition     = var.zones >= 1 && var.zones <= 6 && floor(var.zones) == var.zones
    error_message = "The zones must be a whole number between 1 and 6."
  }
}

variable "availability_zones" {
  description = "Zones to use, pinned by name (e.g. [\"us-east-1a\", \"us-east-1b\"]); its length must equal `zones`. Empty: the first `zones` available zones of the region in name order."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for z in var.availability_zones : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", z))])
    error_message = "Every availability zone must be a zone name such as us-east-1a."
  }
}

variable "serving_port" {
  description = "TCP port the serving replicas listen on; the only port the load balancer may reach them on."
  type        = number
  default     = 8080

  validation {
    condition     = var.serving_port >= 1 && var.serving_port <= 65535 && floor(var.serving_port) == var.serving_port
    error_message = "The serving_port must be a whole number between 1 and 65535."
  }
}

variable "listener_ports" {
  description = "Public ports of the load balancer, open to 0.0.0.0/0 (e.g. [80] or [80, 443])."
  type        = list(number)

  validation {
    condition     = alltrue([for p in var.listener_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "Every listener port must be a whole number between 1 and 65535."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
