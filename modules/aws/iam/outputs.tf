output "instance_profile_name" {
  description = "Name of the instance profile to put in the launch template."
  value       = aws_iam_instance_profile.this.name
}

output "instance_profile_arn" {
  description = "ARN of the instance profile."
  value       = aws_iam_instance_profile.this.arn
}

output "role_name" {
  description = "Name of the instance role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the instance role."
  value       = aws_iam_role.this.arn
}

output "policy_arns" {
  description = "ARNs of the policies attached to the role, by purpose (artifacts, metrics, fleet)."
  value = {
    artifacts = aws_iam_policy.artifacts.arn
    metrics   = aws_iam_policy.metrics.arn
    fleet     = aws_iam_policy.fleet.arn
  }
}
