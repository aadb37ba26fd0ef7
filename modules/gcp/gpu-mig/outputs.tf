output "group_name" {
  description = "Name of the regional managed instance group."
  value       = google_compute_region_instance_group_manager.this.name
}

output "group_id" {
  description = "ID of the regional managed instance group."
  value       = google_compute_region_instance_group_manager.this.id
}

output "instance_group" {
  description = "The group's instance group URL: what a backend service's backend takes."
  value       = google_compute_region_instance_group_manager.this.instance_group
}

output "instance_template" {
  description = "Self link (with its unique ID) of the instance template the group runs."
  value       = google_compute_instance_template.this.self_link_unique
}

output "autoscaler_name" {
  description = "Name of the autoscaler, or null when the group's size is fixed."
  value       = local.autoscaled ? google_compute_region_autoscaler.this[0].name : null
}

output "spot" {
  description = "Whether the group runs spot VMs."
  value       = var.spot
}
