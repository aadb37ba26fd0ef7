variable "name" {
  description = "Stack name; the role, instance profile and policies are named \"<name>-<role>[-<purpose>]\"."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9+=,.@_-]{1,40}$", var.name))
    error_message = "The name must be 1-40 characters of letters, digits and +=,.@_- (IAM naming rules)."
  }
}

variable "role" {
  description = "What the instances do: \"train\" or \"serve\"."
  type        = string

  validation {
    condition     = contains(["train", "serve"], var.role)
    error_message = "The role must be \"train\" or \"serve\"."
  }
}

variable "bucket_arn" {
  description = "ARN of the artifact bucket the instances read and write."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_arn))
    error_message = "The bucket_arn must be an S3 bucket ARN such as arn:aws:s3:::my-bucket."
  }
}

variable "autoscaling_group_names" {
  description = "Names of the Auto Scaling groups whose instances use this role (they may not exist yet); instances may complete lifecycle actions on these groups only."
  type        = list(string)

  validation {
    condition     = alltrue([for g in var.autoscaling_group_names : length(g) >= 1 && length(g) <= 255])
    error_message = "Every Auto Scaling group name must be 1-255 characters."
  }
}

variable "metric_namespace" {
  description = "The only CloudWatch namespace the instances may publish metrics to."
  type        = string
  default     = "GPUFleet"

  validation {
    condition     = length(var.metric_namespace) >= 1 && length(var.metric_namespace) <= 255 && !can(regex("^AWS/", var.metric_namespace))
    error_message = "The metric_namespace must be 1-255 characters and must not start with \"AWS/\" (reserved)."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key encrypting the bucket, or \"\" when the bucket uses the AWS managed aws/s3 key (which needs no extra permission)."
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
