# Values that depend on where the stack is deployed, not on the spec; set in terraform.tfvars.json.

variable "region" {
  type        = string
  description = "AWS region of every resource in the stack."
}

variable "force_destroy_artifacts" {
  type        = bool
  description = "Let destroy delete the artifacts bucket while it still holds objects."
  default     = false
}

# The emulator (moto) lacks a few things real AWS has; the emulator target turns these off.
variable "enforce_tls_on_artifacts" {
  type        = bool
  description = "Deny non-TLS access to the artifacts bucket (the emulator speaks plain HTTP, so it sets false)."
  default     = true
}

variable "instance_refresh" {
  type        = bool
  description = "Roll instances when the launch template changes (the emulator has no instance refresh, so it sets false)."
  default     = true
}

variable "wait_for_capacity_timeout" {
  type        = string
  description = "How long apply waits for each group's instances to be in service (the emulator sets \"0\": it rounds a fractional spot/on-demand split down and never reaches the desired count)."
  default     = "10m"
}
