variable "name" {
  description = "Name of the regional managed instance group (the fleet); also its VMs' base name, its autoscaler's and its health check's."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,46}[a-z0-9])?$", var.name))
    error_message = "The name must be 1-48 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "role" {
  description = "What the fleet does: \"train\" or \"serve\" (the gpufleet-role label)."
  type        = string

  validation {
    condition     = contains(["train", "serve"], var.role)
    error_message = "The role must be \"train\" or \"serve\"."
  }
}

variable "project" {
  description = "Project ID of the group and its instance template."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "The project must be a project ID: 6-30 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the group (e.g. us-central1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]{1,2}$", var.region))
    error_message = "The region must be a GCP region name such as us-central1."
  }
}

variable "zones" {
  description = "Zones of the region the group may place VMs in, listed explicitly: each must offer the machine type's GPUs."
  type        = list(string)

  validation {
    condition     = length(var.zones) >= 1 && alltrue([for z in var.zones : can(regex("^[a-z]+-[a-z]+[0-9]{1,2}-[a-z]$", z))])
    error_message = "The zones must be a non-empty list of zone names such as us-central1-a."
  }
}

variable "target_shape" {
  description = "How the group spreads VMs over its zones: EVEN, BALANCED (even where capacity allows; GPUs are often short in a zone), ANY, or ANY_SINGLE_ZONE (all VMs in one zone: training ranks talk to each other)."
  type        = string
  default     = "BALANCED"

  validation {
    condition     = contains(["EVEN", "BALANCED", "ANY", "ANY_SINGLE_ZONE"], var.target_shape)
    error_message = "The target_shape must be EVEN, BALANCED, ANY or ANY_SINGLE_ZONE."
  }
}

variable "machine_type" {
  description = "Machine type: an accelerator-optimized type with built-in GPUs (a2-highgpu-1g, g2-standard-8, ...) or an N1 type with `accelerator` attached."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9]+(-[a-z0-9]+)?$", var.machine_type))
    error_message = "The machine_type must be a machine type name such as a2-highgpu-1g or n1-standard-8."
  }
}

variable "accelerator" {
  description = "GPUs attached to an N1 machine type ({type = \"nvidia-tesla-t4\", count = 1}); null for a2, a3 and g2 types, whose GPUs are built in."
  type = object({
    type  = string
    count = number
  })
  default = null

  validation {
    condition     = var.accelerator == null ? true : (can(regex("^nvidia-[a-z0-9-]+$", var.accelerator.type)) && contains([1, 2, 4, 8], var.accelerator.count))
    error_message = "The accelerator must be null or {type = \"nvidia-...\", count = 1, 2, 4 or 8}."
  }
}

variable "spot" {
  description = "Spot VMs (provisioning model SPOT: cheaper, preemptible at any time) instead of on-demand ones. A group holds one kind only."
  type        = bool
  default     = false
}

variable "spot_termination_action" {
  description = "What happens to a preempted spot VM: DELETE (the group creates a fresh one when capacity returns) or STOP."
  type        = string
  default     = "DELETE"

  validation {
    condition     = contains(["DELETE", "STOP"], var.spot_termination_action)
    error_message = "The spot_termination_action must be DELETE or STOP."
  }
}

variable "image" {
  description = "Boot image: `project` with an image `family` (its newest image) or a fixed image `name` (the other \"\")."
  type = object({
    project = string
    family  = string
    name    = string
  })

  validation {
    condition     = var.image.project != "" && ((var.image.family != "") != (var.image.name != ""))
    error_message = "The image must name a project and exactly one of family or name."
  }
}

variable "disk_gb" {
  description = "Size of the boot disk in GiB."
  type        = number

  validation {
    condition     = var.disk_gb >= 10 && var.disk_gb <= 65536 && floor(var.disk_gb) == var.disk_gb
    error_message = "The disk_gb must be a whole number between 10 and 65536."
  }
}

variable "disk_type" {
  description = "Boot disk type (pd-balanced, pd-ssd, hyperdisk-balanced: check what the machine series supports)."
  type        = string
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.disk_type)
    error_message = "The disk_type must be pd-standard, pd-balanced, pd-ssd or hyperdisk-balanced."
  }
}

variable "startup_script" {
  description = "The VM's startup script (the `startup-script` metadata value): gpufleet's bootstrap, which installs and starts the runtime."
  type        = string

  validation {
    condition     = length(var.startup_script) > 0 && length(var.startup_script) <= 262144
    error_message = "The startup_script must be 1 to 262144 characters (a metadata value's limit)."
  }
}

variable "bucket" {
  description = "The stack's artifacts bucket, given to the VMs as the metadata attribute gpufleet-bucket (the startup script exports it as GPUFLEET_BUCKET)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "The bucket must be a Cloud Storage bucket name."
  }
}

variable "install_gpu_driver" {
  description = "Ask the image to install the NVIDIA driver on first boot (`install-nvidia-driver` metadata, which Deep Learning VM images honour)."
  type        = bool
  default     = true
}

variable "service_account_email" {
  description = "The fleet's service account: the VMs' only identity (scope cloud-platform; IAM decides what it may do)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.service_account_email))
    error_message = "The service_account_email must be a user-managed service account (NAME@PROJECT.iam.gserviceaccount.com), never the Compute Engine default one."
  }
}

variable "subnetwork" {
  description = "Self link or ID of the subnet the VMs get their (internal only) address from."
  type        = string
}

variable "secure_boot" {
  description = "Shielded VM Secure Boot. Needs an image whose NVIDIA driver is signed (Deep Learning VM images' are); vTPM and integrity monitoring are always on."
  type        = bool
  default     = true
}

variable "min_size" {
  description = "Fewest VMs in the group (the autoscaler's minimum)."
  type        = number

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "The min_size must be a whole number, 0 or more."
  }
}

variable "desired_size" {
  description = "VMs at creation; later changes are ignored so that autoscaling is not undone by a re-apply."
  type        = number

  validation {
    condition     = var.desired_size >= 0 && floor(var.desired_size) == var.desired_size
    error_message = "The desired_size must be a whole number, 0 or more."
  }
}

variable "max_size" {
  description = "Most VMs in the group (the autoscaler's maximum)."
  type        = number

  validation {
    condition     = var.max_size >= 1 && floor(var.max_size) == var.max_size
    error_message = "The max_size must be a whole number, 1 or more."
  }
}

variable "named_ports" {
  description = "Named ports of the group (e.g. {http = 8080}): a backend service sends to the port named by its port_name."
  type        = map(number)
  default     = {}
}

variable "health_check" {
  description = "Auto-healing: an HTTP check of each VM (path, port, interval_s, timeout_s, healthy_threshold, unhealthy_threshold); the group recreates VMs that fail it after initial_delay_s. null: no auto-healing (training)."
  type = object({
    path                = string
    port                = number
    interval_s          = number
    timeout_s           = number
    healthy_threshold   = number
    unhealthy_threshold = number
    initial_delay_s     = number
  })
  default = null

  validation {
    condition     = var.health_check == null ? true : (substr(var.health_check.path, 0, 1) == "/" && var.health_check.timeout_s <= var.health_check.interval_s && var.health_check.initial_delay_s >= 0 && var.health_check.initial_delay_s <= 3600)
    error_message = "The health_check needs a path starting with /, timeout_s <= interval_s, and initial_delay_s between 0 and 3600."
  }
}

variable "update_type" {
  description = "How a new instance template rolls out: PROACTIVE (replace VMs now, surging one per zone, none unavailable) or OPPORTUNISTIC (only when VMs are recreated anyway: training jobs are not interrupted)."
  type        = string
  default     = "PROACTIVE"

  validation {
    condition     = contains(["PROACTIVE", "OPPORTUNISTIC"], var.update_type)
    error_message = "The update_type must be PROACTIVE or OPPORTUNISTIC."
  }
}

variable "scaling" {
  description = <<-EOT
    Autoscaling between min_size and max_size. metric: cpu_utilization (target in percent),
    requests_per_target (load-balancer utilization: target is the share of each backend's
    max_rate_per_instance, 0-1), inflight_requests or gpu_utilization (the Cloud Monitoring
    custom metric `metric_type`, written per instance by the agent; target per VM).
    initialization_s: seconds before a new VM's signal counts. scale_in_window_s and
    scale_in_max_replicas: at most that many VMs removed per window.
  EOT
  type = object({
    enabled               = bool
    metric                = string
    target                = number
    metric_type           = string
    initialization_s      = number
    scale_in_window_s     = number
    scale_in_max_replicas = number
  })
  default = {
    enabled               = false
    metric                = "cpu_utilization"
    target                = 60
    metric_type           = ""
    initialization_s      = 120
    scale_in_window_s     = 300
    scale_in_max_replicas = 1
  }

  validation {
    condition     = contains(["cpu_utilization", "requests_per_target", "inflight_requests", "gpu_utilization"], var.scaling.metric)
    error_message = "The scaling.metric must be cpu_utilization, requests_per_target, inflight_requests or gpu_utilization."
  }

  validation {
    condition     = !var.scaling.enabled || var.scaling.metric != "cpu_utilization" || (var.scaling.target > 0 && var.scaling.target <= 100)
    error_message = "With scaling.metric = cpu_utilization, scaling.target is a percentage above 0 and at most 100."
  }

  validation {
    condition     = !var.scaling.enabled || var.scaling.metric != "requests_per_target" || (var.scaling.target > 0 && var.scaling.target <= 1)
    error_message = "With scaling.metric = requests_per_target, scaling.target is a load-balancer utilization above 0 and at most 1."
  }

  validation {
    condition     = !var.scaling.enabled || !contains(["inflight_requests", "gpu_utilization"], var.scaling.metric) || can(regex("^custom\\.googleapis\\.com/", var.scaling.metric_type))
    error_message = "With scaling.metric = inflight_requests or gpu_utilization, scaling.metric_type must be a custom.googleapis.com/ metric."
  }

  validation {
    condition     = var.scaling.scale_in_window_s >= 60 && var.scaling.scale_in_window_s <= 3600 && var.scaling.scale_in_max_replicas >= 1
    error_message = "The scaling.scale_in_window_s must be between 60 and 3600 and scaling.scale_in_max_replicas at least 1."
  }
}

variable "labels" {
  description = "Labels on the instance template, its VMs and their disks (the module adds gpufleet-role)."
  type        = map(string)
  default     = {}
}
