# Values that depend on where the stack is deployed, not on the spec; set in terraform.tfvars.json.

variable "project" {
  type        = string
  description = "GCP project ID every resource of the stack goes into."
}

variable "region" {
  type        = string
  description = "GCP region of the stack's subnet, instance groups and bucket."
}

variable "force_destroy_artifacts" {
  type        = bool
  description = "Let destroy delete the artifacts bucket while it still holds objects."
  default     = false
}
