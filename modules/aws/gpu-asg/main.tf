data "aws_ami" "this" {
  count = var.image.id == "" ? 1 : 0

  most_recent = true
  owners      = [var.image.owner]

  filter {
    name   = "name"
    values = [var.image.name_pattern]
  }

  filter {
    name   = "state"
    values = ["available"]
  }
}

locals {
  image_id         = var.image.id != "" ? var.image.id : data.aws_ami.this[0].id
  root_device_name = var.image.id != "" ? var.root_device_name : data.aws_ami.this[0].root_device_name

  instance_tags = merge(var.tags, {
    Name            = var.name
    "gpufleet:role" = var.role
  })

  # Custom metrics are published per fleet, with the group name as their only dimension.
  custom_metric = contains(["inflight_requests", "gpu_utilization"], var.scaling.metric)
}

resource "aws_launch_template" "this" {
  name                   = var.name
  description            = "gpufleet ${var.role} fleet ${var.name}"
  image_id               = local.image_id
  instance_type          = var.instance_types[0]
  user_data              = base64encode(var.user_data)
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    name = var.instance_profile_name
  }

  # IMDSv2 only. Hop limit 2 lets containers on the instance (one network hop away) reach it.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  monitoring {
    enabled = true
  }

  network_interfaces {
    device_index                = 0
    associate_public_ip_address = false
    delete_on_termination       = true
    security_groups             = var.security_group_ids
  }

  block_device_mappings {
    device_name = local.root_device_name

    ebs {
      volume_size           = var.disk_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.instance_tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.instance_tags
  }

  #checkov:skip=CKV_AWS_341:Hop limit 2 lets containers on the instance (behind the Docker bridge, one hop away) reach IMDSv2 for the instance role's credentials; tokens are still required.

  # No `tags` on the template itself: moto copies them into the template data as a
  # "launch-template" tag specification, which then shows as a change on every plan.
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  vpc_zone_identifier = var.subnet_ids
  min_size            = var.min_size
  max_size            = var.max_size
  desired_capacity    = var.desired_capacity

  health_check_type         = var.health_check_type
  health_check_grace_period = var.health_check_grace_period_s
  target_group_arns         = var.target_group_arns
  default_cooldown          = var.default_cooldown_s
  capacity_rebalance        = true
  wait_for_capacity_timeout = var.wait_for_capacity_timeout

  enabled_metrics = [
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupPendingInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
  ]
  metrics_granularity = "1Minute"

  # AWS refuses a warm pool on a group with a mixed instances policy (PutWarmPool): a
  # warm-pooled group launches its one on-demand instance type from the template directly.
  dynamic "mixed_instances_policy" {
    for_each = var.warm_pool == null ? [1] : []

    content {
      instances_distribution {
        on_demand_base_capacity                  = var.capacity.on_demand_base
        on_demand_percentage_above_base_capacity = var.capacity.on_demand_percentage_above_base
        spot_allocation_strategy                 = var.capacity.spot_allocation_strategy
      }

      launch_template {
        launch_template_specification {
          launch_template_id = aws_launch_template.this.id
          version            = aws_launch_template.this.latest_version
        }

        dynamic "override" {
          for_each = var.instance_types

          content {
            instance_type = override.value
          }
        }
      }
    }
  }

  dynamic "launch_template" {
    for_each = var.warm_pool == null ? [] : [1]

    content {
      id      = aws_launch_template.this.id
      version = aws_launch_template.this.latest_version
    }
  }

  # Instances booted ahead of need: they run the bootstrap in the pool and wait there
  # (stopped or running) until a scale-out moves them in service.
  dynamic "warm_pool" {
    for_each = var.warm_pool == null ? [] : [var.warm_pool]

    content {
      pool_state                  = warm_pool.value.state
      min_size                    = warm_pool.value.min_size
      max_group_prepared_capacity = var.max_size
    }
  }

  # Created with the group, so that no instance, warm or not, launches before it exists: an
  # instance waits in Pending:Wait (Warmed:Pending:Wait in the pool) until its bootstrap
  # completes the action, after /readyz answered 200 (in service) or after the install (warm).
  dynamic "initial_lifecycle_hook" {
    for_each = var.warm_pool == null ? [] : [var.warm_pool]

    content {
      name                 = "${var.name}${initial_lifecycle_hook.value.launch_hook_suffix}"
      lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
      heartbeat_timeout    = initial_lifecycle_hook.value.launch_hook_timeout_s
      default_result       = "ABANDON"
    }
  }

  # A new launch template version replaces instances gradually.
  dynamic "instance_refresh" {
    for_each = var.instance_refresh ? [1] : []

    content {
      strategy = "Rolling"

      preferences {
        min_healthy_percentage = var.instance_refresh_min_healthy_percentage
      }
    }
  }

  dynamic "tag" {
    for_each = local.instance_tags

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # Autoscaling (and gpufleet's own scale commands) own the capacity after creation.
    ignore_changes = [desired_capacity]

    precondition {
      condition     = var.min_size <= var.desired_capacity && var.desired_capacity <= var.max_size
      error_message = "The fleet sizes must satisfy min_size <= desired_capacity <= max_size (got ${var.min_size} <= ${var.desired_capacity} <= ${var.max_size})."
    }
  }
}

# Terminating instances wait in Terminating:Wait until they complete the action (after
# draining requests or writing a checkpoint) or the heartbeat timeout passes.
resource "aws_autoscaling_lifecycle_hook" "drain" {
  name                   = "${var.name}-drain"
  autoscaling_group_name = aws_autoscaling_group.this.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = var.termination_hook.heartbeat_timeout_s
  default_result         = var.termination_hook.default_result

  lifecycle {
    # Never set here; moto reports placeholder values for both, which would otherwise
    # show as a change on every plan.
    ignore_changes = [role_arn, notification_target_arn]
  }
}

resource "aws_autoscaling_policy" "target_tracking" {
  count = var.scaling.enabled ? 1 : 0

  name                      = "${var.name}-${replace(var.scaling.metric, "_", "-")}"
  autoscaling_group_name    = aws_autoscaling_group.this.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = var.scaling.warmup_s

  target_tracking_configuration {
    target_value     = var.scaling.target
    disable_scale_in = false

    dynamic "predefined_metric_specification" {
      for_each = local.custom_metric ? [] : [var.scaling.metric]

      content {
        predefined_metric_type = predefined_metric_specification.value == "cpu_utilization" ? "ASGAverageCPUUtilization" : "ALBRequestCountPerTarget"
        resource_label         = predefined_metric_specification.value == "requests_per_target" ? var.scaling.resource_label : null
      }
    }

    dynamic "customized_metric_specification" {
      for_each = local.custom_metric ? [var.scaling.metric] : []

      content {
        metric_name = var.scaling.metric_name
        namespace   = var.scaling.namespace
        statistic   = "Average"

        metric_dimension {
          name  = "AutoScalingGroupName"
          value = aws_autoscaling_group.this.name
        }
      }
    }
  }
}
