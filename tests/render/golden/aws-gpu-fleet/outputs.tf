output "artifacts_bucket" {
  description = "S3 bucket for data, checkpoints, models and the runtime bundle."
  value       = module.storage.bucket
}

output "training_group_name" {
  description = "Auto Scaling group of the training fleet."
  value       = module.training.group_name
}

output "load_balancer_dns_name" {
  description = "Where clients send requests."
  value       = module.alb.lb_dns_name
}

output "serving_group_names" {
  description = "Auto Scaling group of each serving pool."
  value = {
    "main" = module.serving_main.group_name
  }
}

output "target_group_arns" {
  description = "Target group of each serving pool."
  value       = module.alb.target_group_arns
}
