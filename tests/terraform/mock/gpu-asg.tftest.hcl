# Plan-level assertions on the gpu-asg module with a mocked AWS provider (no server).
mock_provider "aws" {
  mock_resource "aws_launch_template" {
    defaults = {
      id             = "lt-0123456789abcdef0"
      arn            = "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-0123456789abcdef0"
      latest_version = 1
    }
  }
  mock_resource "aws_autoscaling_group" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:11111111-2222-3333-4444-555555555555:autoScalingGroupName/t-serve-main"
    }
  }
}

variables {
  name                        = "t-serve-main"
  role                        = "serve"
  instance_types              = ["g5.xlarge"]
  image                       = { id = "ami-0123456789abcdef0", owner = "", name_pattern = "" }
  disk_gb                     = 200
  user_data                   = "#!/bin/bash\necho hi\n"
  instance_profile_name       = "t-serve"
  security_group_ids          = ["sg-0123456789abcdef0"]
  subnet_ids                  = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  min_size                    = 1
  desired_capacity            = 2
  max_size                    = 4
  capacity                    = { on_demand_base = 1, on_demand_percentage_above_base = 50, spot_allocation_strategy = "capacity-optimized" }
  health_check_type           = "ELB"
  health_check_grace_period_s = 120
  target_group_arns           = ["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t-main/0123456789abcdef"]
  termination_hook            = { heartbeat_timeout_s = 120, default_result = "CONTINUE" }
  scaling = {
    enabled        = true
    metric         = "inflight_requests"
    target         = 16
    warmup_s       = 180
    resource_label = ""
    namespace      = "GPUFleet"
    metric_name    = "InflightRequests"
  }
}

run "instances_are_hardened" {
  command = plan

  assert {
    condition     = aws_launch_template.this.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required"
  }
  assert {
    condition     = alltrue([for b in aws_launch_template.this.block_device_mappings : tostring(b.ebs[0].encrypted) == "true"])
    error_message = "root volumes must be encrypted"
  }
  assert {
    condition     = alltrue([for n in aws_launch_template.this.network_interfaces : tostring(n.associate_public_ip_address) == "false"])
    error_message = "instances must not get public addresses"
  }
  assert {
    condition     = aws_autoscaling_group.this.health_check_type == "ELB" && aws_autoscaling_group.this.capacity_rebalance
    error_message = "serving groups use ELB health checks and capacity rebalance"
  }
  assert {
    condition     = aws_autoscaling_group.this.mixed_instances_policy[0].instances_distribution[0].on_demand_percentage_above_base_capacity == 50
    error_message = "spot/on-demand split"
  }
  assert {
    condition     = aws_autoscaling_lifecycle_hook.drain.lifecycle_transition == "autoscaling:EC2_INSTANCE_TERMINATING"
    error_message = "a termination hook lets the runtime drain"
  }
}

run "custom_metric_policy" {
  command = plan

  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].target_tracking_configuration[0].customized_metric_specification[0].metric_name == "InflightRequests"
    error_message = "in-flight requests scale on the runtime agent's custom metric"
  }
  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].target_tracking_configuration[0].customized_metric_specification[0].namespace == "GPUFleet"
    error_message = "metric namespace"
  }
  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].target_tracking_configuration[0].target_value == 16
    error_message = "target value"
  }
  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].estimated_instance_warmup == 180
    error_message = "warm-up"
  }
}

run "cpu_policy" {
  command = plan

  variables {
    scaling = { enabled = true, metric = "cpu_utilization", target = 60, warmup_s = 60, resource_label = "", namespace = "GPUFleet", metric_name = "" }
  }

  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].target_tracking_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ASGAverageCPUUtilization"
    error_message = "cpu_utilization maps to ASGAverageCPUUtilization"
  }
}

run "requests_per_target_policy" {
  command = plan

  variables {
    scaling = { enabled = true, metric = "requests_per_target", target = 200, warmup_s = 60, resource_label = "app/t/0123456789abcdef/targetgroup/t-main/0123456789abcdef", namespace = "GPUFleet", metric_name = "" }
  }

  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].target_tracking_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ALBRequestCountPerTarget"
    error_message = "requests_per_target maps to ALBRequestCountPerTarget"
  }
  assert {
    condition     = aws_autoscaling_policy.target_tracking[0].target_tracking_configuration[0].predefined_metric_specification[0].resource_label == "app/t/0123456789abcdef/targetgroup/t-main/0123456789abcdef"
    error_message = "the resource label names the pool's target group"
  }
}

run "no_scaling" {
  command = plan

  variables {
    scaling = { enabled = false, metric = "cpu_utilization", target = 1, warmup_s = 0, resource_label = "", namespace = "GPUFleet", metric_name = "" }
  }

  assert {
    condition     = length(aws_autoscaling_policy.target_tracking) == 0
    error_message = "no policy without autoscaling"
  }
}

run "no_warm_pool_by_default" {
  command = plan

  assert {
    condition     = length(aws_autoscaling_group.this.warm_pool) == 0 && length(aws_autoscaling_group.this.initial_lifecycle_hook) == 0
    error_message = "without var.warm_pool there is no warm pool and no launch hook"
  }
  assert {
    condition     = length(aws_autoscaling_group.this.mixed_instances_policy) == 1 && length(aws_autoscaling_group.this.launch_template) == 0
    error_message = "without a warm pool the group buys through its mixed instances policy"
  }
}

run "warm_pool_launches_from_the_template_behind_a_launch_hook" {
  command = plan

  variables {
    capacity  = { on_demand_base = 0, on_demand_percentage_above_base = 100, spot_allocation_strategy = "capacity-optimized" }
    warm_pool = { min_size = 2, state = "Stopped", launch_hook_suffix = "-launch", launch_hook_timeout_s = 1200 }
  }

  assert {
    condition     = aws_autoscaling_group.this.warm_pool[0].pool_state == "Stopped" && aws_autoscaling_group.this.warm_pool[0].min_size == 2
    error_message = "the warm pool keeps min_size instances stopped"
  }
  assert {
    condition     = length(aws_autoscaling_group.this.mixed_instances_policy) == 0 && length(aws_autoscaling_group.this.launch_template) == 1
    error_message = "AWS refuses a warm pool beside a mixed instances policy: the group launches from its template"
  }
  assert {
    condition = alltrue([for h in aws_autoscaling_group.this.initial_lifecycle_hook :
    h.name == "t-serve-main-launch" && h.lifecycle_transition == "autoscaling:EC2_INSTANCE_LAUNCHING" && h.default_result == "ABANDON" && h.heartbeat_timeout == 1200])
    error_message = "the launch hook is created with the group, and abandons an instance that never gets ready"
  }
  assert {
    condition     = length(aws_autoscaling_group.this.initial_lifecycle_hook) == 1
    error_message = "one launch hook"
  }
}

run "warm_pool_state_is_checked" {
  command = plan

  variables {
    warm_pool = { min_size = 1, state = "Hibernated", launch_hook_suffix = "-launch", launch_hook_timeout_s = 1200 }
  }

  expect_failures = [var.warm_pool]
}
