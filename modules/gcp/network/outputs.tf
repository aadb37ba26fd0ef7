output "network_id" {
  description = "ID of the VPC network (projects/P/global/networks/NAME)."
  value       = google_compute_network.this.id
}

output "network_self_link" {
  description = "Self link of the VPC network."
  value       = google_compute_network.this.self_link
}

output "subnetwork_id" {
  description = "ID of the region's subnet."
  value       = google_compute_subnetwork.this.id
}

output "subnetwork_self_link" {
  description = "Self link of the region's subnet (what instance templates take)."
  value       = google_compute_subnetwork.this.self_link
}

output "router_name" {
  description = "Name of the Cloud Router that carries Cloud NAT."
  value       = google_compute_router.this.name
}

output "nat_name" {
  description = "Name of the Cloud NAT gateway."
  value       = google_compute_router_nat.this.name
}
