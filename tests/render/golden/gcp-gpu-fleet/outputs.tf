output "artifacts_bucket" {
  description = "Cloud Storage bucket for data, checkpoints, models and the runtime bundle."
  value       = module.storage.bucket
}

output "training_group_name" {
  description = "Regional managed instance group of the training fleet."
  value       = module.training.group_name
}

output "load_balancer_ip" {
  description = "The load balancer's external address: where clients send requests."
  value       = module.lb.ip_address
}

output "load_balancer_url" {
  description = "The URL clients use."
  value       = module.lb.url
}

output "serving_group_names" {
  description = "Managed instance groups of each serving pool (an on-demand and a spot group where the pool mixes them)."
  value = {
    "main" = [module.serving_main_ondemand.group_name, module.serving_main_spot.group_name]
  }
}

output "backend_services" {
  description = "Backend service of each serving pool."
  value       = module.lb.backend_services
}
