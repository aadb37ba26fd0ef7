variable "name" {
  description = "Stack name; with an empty `bucket` the bucket is named \"<name>-artifacts-<random suffix>\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,25}$", var.name))
    error_message = "The name must be 1-26 characters of lowercase letters, digits and hyphens, starting with a letter or digit (S3 bucket naming rules)."
  }
}

variable "bucket" {
  description = "Exact bucket name, or \"\" to let AWS make a unique one from the name."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "The bucket must be empty or a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
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
  description = "Files to upload: object key -> local file path (e.g. {\"code/train.py\" = \"./train.py\"})."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.objects) : length(k) > 0 && length(k) <= 1024 && substr(k, 0, 1) != "/"])
    error_message = "Every object key must be 1-1024 characters and must not start with \"/\"."
  }
}

variable "enforce_tls" {
  description = "Attach the bucket policy that denies any request not made over TLS. Keep true on AWS; set false only for an emulator such as moto, which ignores the policy's aws:SecureTransport condition and would deny every upload."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "ARN of a customer managed KMS key for bucket and object encryption, or \"\" for the AWS managed aws/s3 key. With a customer key, instance roles also need kms:Decrypt and kms:GenerateDataKey on it."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "The kms_key_arn must be empty or a KMS key ARN (arn:aws:kms:...)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
