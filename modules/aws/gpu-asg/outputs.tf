output "group_name" {
  description = "Name of the Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "group_arn" {
  description = "ARN of the Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the launch template."
  value       = aws_launch_template.this.id
}

output "launch_template_latest_version" {
  description = "Latest version of the launch template (the one the group uses)."
  value       = aws_launch_template.this.latest_version
}

output "scaling_policy_arn" {
  description = "ARN of the target-tracking policy, or null when scaling is disabled."
  value       = one(aws_autoscaling_policy.target_tracking[*].arn)
}

output "lifecycle_hook_name" {
  description = "Name of the termination (drain) lifecycle hook."
  value       = aws_autoscaling_lifecycle_hook.drain.name
}

output "image_id" {
  description = "AMI the launch template uses (given or looked up)."
  value       = local.image_id
}
