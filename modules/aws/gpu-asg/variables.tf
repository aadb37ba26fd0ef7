variable "name" {
  description = "Name of the Auto Scaling group (the fleet); also names its launch template and lifecycle hook."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9._-]{0,118}$", var.name))
    error_message = "The name must be 1-119 characters of letters, digits, dots, underscores and hyphens, starting with a letter or digit."
  }
}

variable "role" {
  description = "What the fleet does: \"train\" or \"serve\" (tagged as gpufleet:role)."
  type        = string

  validation {
    condition     = contains(["train", "serve"], var.role)
    error_message = "The role must be \"train\" or \"serve\"."
  }
}

variable "instance_types" {
  description = "Instance types the fleet may use, in order of preference; the first is the launch template's default."
  type        = list(string)

  validation {
    condition     = length(var.instance_types) >= 1 && length(var.instance_types) <= 40 && alltrue([for t in var.instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "The instance_types must be 1-40 instance type names such as g5.xlarge or p4d.24xlarge."
  }
}

variable "image" {
  description = "Machine image: a fixed AMI `id`, or (with id = \"\") the newest AMI of `owner` whose name matches `name_pattern`."
  type = object({
    id           = string
    owner        = string
    name_pattern = string
  })

  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.image.id)) || (var.image.id == "" && var.image.owner != "" && var.image.name_pattern != "")
    error_message = "The image must have an id like ami-0123456789abcdef0, or id = \"\" with both owner and name_pattern set."
  }
}

variable "root_device_name" {
  description = "Root device of the image, used only when image.id is given (a looked-up image reports its own)."
  type        = string
  default     = "/dev/sda1"

  validation {
    condition     = can(regex("^/dev/(sd|xvd|nvme)[a-z0-9]+$", var.root_device_name))
    error_message = "The root_device_name must be a device path such as /dev/sda1 or /dev/xvda."
  }
}

variable "disk_gb" {
  description = "Size of the encrypted gp3 root volume in GiB."
  type        = number

  validation {
    condition     = var.disk_gb >= 8 && var.disk_gb <= 16384 && floor(var.disk_gb) == var.disk_gb
    error_message = "The disk_gb must be a whole number between 8 and 16384."
  }
}

variable "user_data" {
  description = "Boot script (plain text, at most 16 KiB); the module base64-encodes it."
  type        = string

  validation {
    condition     = length(var.user_data) <= 16384
    error_message = "The user_data must be at most 16384 characters (EC2 limit)."
  }
}

variable "instance_profile_name" {
  description = "Instance profile of the fleet's instances."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9+=,.@_-]{1,128}$", var.instance_profile_name))
    error_message = "The instance_profile_name must be an IAM instance profile name."
  }
}

variable "security_group_ids" {
  description = "Security groups of the instances."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) >= 1 && alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "The security_group_ids must be a non-empty list of security group IDs (sg-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets the instances are launched in."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "The subnet_ids must be a non-empty list of subnet IDs (subnet-...)."
  }
}

variable "min_size" {
  description = "Fewest instances in the fleet."
  type        = number

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "The min_size must be a whole number, 0 or more."
  }
}

variable "max_size" {
  description = "Most instances in the fleet."
  type        = number

  validation {
    condition     = var.max_size >= 0 && floor(var.max_size) == var.max_size
    error_message = "The max_size must be a whole number, 0 or more."
  }
}

variable "desired_capacity" {
  description = "Instances at creation; later changes are ignored so that autoscaling is not undone by a re-apply."
  type        = number

  validation {
    condition     = var.desired_capacity >= 0 && floor(var.desired_capacity) == var.desired_capacity
    error_message = "The desired_capacity must be a whole number, 0 or more."
  }
}

variable "capacity" {
  description = "On-demand/spot mix: on-demand instances always kept (on_demand_base), percent on-demand above that base (0-100), and the spot allocation strategy."
  type = object({
    on_demand_base                  = number
    on_demand_percentage_above_base = number
    spot_allocation_strategy        = string
  })

  validation {
    condition     = var.capacity.on_demand_base >= 0 && var.capacity.on_demand_percentage_above_base >= 0 && var.capacity.on_demand_percentage_above_base <= 100
    error_message = "The capacity.on_demand_base must be 0 or more and capacity.on_demand_percentage_above_base between 0 and 100."
  }

  validation {
    condition     = contains(["lowest-price", "capacity-optimized", "capacity-optimized-prioritized", "price-capacity-optimized"], var.capacity.spot_allocation_strategy)
    error_message = "The capacity.spot_allocation_strategy must be lowest-price, capacity-optimized, capacity-optimized-prioritized or price-capacity-optimized."
  }
}

variable "health_check_type" {
  description = "\"EC2\" (instance status) or \"ELB\" (also replace instances the load balancer finds unhealthy)."
  type        = string

  validation {
    condition     = contains(["EC2", "ELB"], var.health_check_type)
    error_message = "The health_check_type must be \"EC2\" or \"ELB\"."
  }
}

variable "health_check_grace_period_s" {
  description = "Seconds after launch before health checks count (model download and load time)."
  type        = number

  validation {
    condition     = var.health_check_grace_period_s >= 0 && floor(var.health_check_grace_period_s) == var.health_check_grace_period_s
    error_message = "The health_check_grace_period_s must be a whole number, 0 or more."
  }
}

variable "target_group_arns" {
  description = "Target groups the instances register in (serving fleets)."
  type        = list(string)
  default     = []
}

variable "default_cooldown_s" {
  description = "Seconds between simple scaling activities."
  type        = number
  default     = 300

  validation {
    condition     = var.default_cooldown_s >= 0 && floor(var.default_cooldown_s) == var.default_cooldown_s
    error_message = "The default_cooldown_s must be a whole number, 0 or more."
  }
}

variable "termination_hook" {
  description = "Lifecycle hook that holds terminating instances so they can drain (finish requests, checkpoint): seconds to wait for a heartbeat or completion (30-7200), and the result when none comes (CONTINUE or ABANDON)."
  type = object({
    heartbeat_timeout_s = number
    default_result      = string
  })

  validation {
    condition     = var.termination_hook.heartbeat_timeout_s >= 30 && var.termination_hook.heartbeat_timeout_s <= 7200
    error_message = "The termination_hook.heartbeat_timeout_s must be between 30 and 7200."
  }

  validation {
    condition     = contains(["CONTINUE", "ABANDON"], var.termination_hook.default_result)
    error_message = "The termination_hook.default_result must be \"CONTINUE\" or \"ABANDON\"."
  }
}

variable "warm_pool" {
  description = "A warm pool (null: none): instances kept `state` (Stopped or Running), at least `min_size` of them, after their bootstrap; and the launch lifecycle hook \"<name><launch_hook_suffix>\" their bootstrap completes (ABANDON after `launch_hook_timeout_s`). The group then launches its first instance type on demand, without a mixed instances policy."
  type = object({
    min_size              = number
    state                 = string
    launch_hook_suffix    = string
    launch_hook_timeout_s = number
  })
  default = null

  validation {
    condition     = var.warm_pool == null || (contains(["Stopped", "Running"], try(var.warm_pool.state, "")) && try(var.warm_pool.min_size >= 0, false))
    error_message = "The warm_pool.state must be \"Stopped\" or \"Running\" and warm_pool.min_size 0 or more."
  }

  validation {
    condition     = var.warm_pool == null || try(var.warm_pool.launch_hook_timeout_s >= 30 && var.warm_pool.launch_hook_timeout_s <= 7200, false)
    error_message = "The warm_pool.launch_hook_timeout_s must be between 30 and 7200."
  }
}

variable "scaling" {
  description = <<-EOT
    Target-tracking autoscaling. metric: cpu_utilization (ASG average CPU %), requests_per_target
    (ALB requests per target; resource_label = "<lb_arn_suffix>/<tg_arn_suffix>"), inflight_requests or
    gpu_utilization (custom metrics `metric_name` in `namespace`, dimension AutoScalingGroupName).
    target: the value to hold; warmup_s: seconds before a new instance's metrics count.
  EOT
  type = object({
    enabled        = bool
    metric         = string
    target         = number
    warmup_s       = number
    resource_label = string
    namespace      = string
    metric_name    = string
  })
  default = {
    enabled        = false
    metric         = "cpu_utilization"
    target         = 50
    warmup_s       = 300
    resource_label = ""
    namespace      = ""
    metric_name    = ""
  }

  validation {
    condition     = contains(["cpu_utilization", "requests_per_target", "inflight_requests", "gpu_utilization"], var.scaling.metric)
    error_message = "The scaling.metric must be cpu_utilization, requests_per_target, inflight_requests or gpu_utilization."
  }

  validation {
    condition     = !var.scaling.enabled || (var.scaling.target > 0 && var.scaling.warmup_s >= 0)
    error_message = "With scaling enabled, scaling.target must be above 0 and scaling.warmup_s 0 or more."
  }

  validation {
    condition     = !var.scaling.enabled || var.scaling.metric != "requests_per_target" || can(regex("^app/[^/]+/[0-9a-f]+/targetgroup/[^/]+/[0-9a-f]+$", var.scaling.resource_label))
    error_message = "With scaling.metric = requests_per_target, scaling.resource_label must be \"<lb_arn_suffix>/<tg_arn_suffix>\" (app/NAME/ID/targetgroup/NAME/ID)."
  }

  validation {
    condition     = !var.scaling.enabled || !contains(["inflight_requests", "gpu_utilization"], var.scaling.metric) || (var.scaling.namespace != "" && var.scaling.metric_name != "")
    error_message = "With scaling.metric = inflight_requests or gpu_utilization, scaling.namespace and scaling.metric_name must be set."
  }
}

variable "instance_refresh" {
  description = "Roll out launch template changes with an instance refresh. Set false for moto, which does not implement StartInstanceRefresh (the provider then retries until it times out)."
  type        = bool
  default     = true
}

variable "instance_refresh_min_healthy_percentage" {
  description = "Percent of the fleet kept in service while a changed launch template rolls out."
  type        = number
  default     = 90

  validation {
    condition     = var.instance_refresh_min_healthy_percentage >= 0 && var.instance_refresh_min_healthy_percentage <= 100
    error_message = "The instance_refresh_min_healthy_percentage must be between 0 and 100."
  }
}

variable "wait_for_capacity_timeout" {
  description = "How long `apply` waits for min_size healthy instances (e.g. \"10m\"); \"0\" does not wait."
  type        = string
  default     = "10m"

  validation {
    condition     = can(regex("^(0|[0-9]+(h|m|s)([0-9]+(m|s))?)$", var.wait_for_capacity_timeout))
    error_message = "The wait_for_capacity_timeout must be \"0\" or a duration such as \"10m\" or \"1h30m\"."
  }
}

variable "tags" {
  description = "Tags added to every resource and propagated to instances and volumes."
  type        = map(string)
  default     = {}
}
