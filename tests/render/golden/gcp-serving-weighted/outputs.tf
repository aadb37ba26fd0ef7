output "artifacts_bucket" {
  description = "Cloud Storage bucket for data, checkpoints, models and the runtime bundle."
  value       = module.storage.bucket
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
    "l4" = [module.serving_l4.group_name]
    "t4" = [module.serving_t4.group_name]
  }
}

output "backend_services" {
  description = "Backend service of each serving pool."
  value       = module.lb.backend_services
}
