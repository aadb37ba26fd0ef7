output "artifacts_bucket" {
  description = "S3 bucket for data, checkpoints, models and the runtime bundle."
  value       = module.storage.bucket
}

output "load_balancer_dns_name" {
  description = "Where clients send requests."
  value       = module.alb.lb_dns_name
}

output "serving_group_names" {
  description = "Auto Scaling group of each serving pool."
  value = {
    "a10g" = module.serving_a10g.group_name
    "l4"   = module.serving_l4.group_name
  }
}

output "target_group_arns" {
  description = "Target group of each serving pool."
  value       = module.alb.target_group_arns
}
