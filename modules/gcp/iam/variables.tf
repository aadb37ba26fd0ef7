variable "name" {
  description = "Stack name; the service account is \"<name>-<role>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "The name must be 3-20 characters of lowercase letters, digits and hyphens, starting with a letter (a service account ID is at most 30 characters)."
  }
}

variable "role" {
  description = "What the fleet does: \"train\" or \"serve\"."
  type        = string

  validation {
    condition     = contains(["train", "serve"], var.role)
    error_message = "The role must be \"train\" or \"serve\"."
  }
}

variable "project" {
  description = "Project ID the service account lives in and the project-level grants apply to."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "bucket" {
  description = "Name of the stack's artifacts bucket: the only bucket the fleet's VMs can use."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "The bucket must be a Cloud Storage bucket name."
  }
}

variable "bucket_role" {
  description = "Role on the bucket: roles/storage.objectViewer (read) or roles/storage.objectUser (read, write, delete objects). Never a role that can change the bucket or its IAM policy."
  type        = string

  validation {
    condition     = contains(["roles/storage.objectViewer", "roles/storage.objectUser"], var.bucket_role)
    error_message = "The bucket_role must be roles/storage.objectViewer or roles/storage.objectUser."
  }
}

variable "write_metrics" {
  description = "Grant roles/monitoring.metricWriter (the agent writes its custom scaling metric per instance)."
  type        = bool
  default     = false
}

variable "read_group_instances" {
  description = "Grant a custom role that lists and reads VMs and managed instance groups (training ranks find their peers in their group)."
  type        = bool
  default     = false
}
