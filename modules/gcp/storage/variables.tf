variable "name" {
  description = "Stack name; with an empty `bucket` the bucket is named \"<project>-<name>-artifacts\" (project IDs are globally unique, so that name is too)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "The name must be 3-20 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "project" {
  description = "Project ID the bucket belongs to."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Where the bucket keeps its data: the stack's region (e.g. us-central1), next to the VMs that read it."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+[0-9]{1,2})?$", var.location))
    error_message = "The location must be a region such as us-central1 (or a multi-region such as us)."
  }
}

variable "bucket" {
  description = "Exact bucket name, or \"\" for \"<project>-<name>-artifacts\"."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket == "" || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "The bucket must be empty or a valid Cloud Storage bucket name: 3-63 lowercase letters, digits, dots, underscores and hyphens, starting and ending with a letter or digit."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (all versions are lost)."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten or deleted object versions are removed."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "The noncurrent_version_expiration_days must be a whole number of at least 1."
  }
}

variable "objects" {
  description = "Files to upload: object name -> local file path (e.g. {\"bundle/requirements.txt\" = \"./bundle/requirements.txt\"})."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.objects) : length(k) > 0 && length(k) <= 1024 && substr(k, 0, 1) != "/"])
    error_message = "Every object name must be 1-1024 characters and must not start with \"/\"."
  }
}

variable "kms_key_name" {
  description = "A Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the bucket's default encryption, or \"\" for Google-managed keys. With a key, Cloud Storage's service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_name == "" || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "The kms_key_name must be empty or a Cloud KMS key name (projects/P/locations/L/keyRings/R/cryptoKeys/K)."
  }
}

variable "labels" {
  description = "Labels on the bucket."
  type        = map(string)
  default     = {}
}
