output "ip_address" {
  description = "The load balancer's external IPv4 address: where clients (and the domain's DNS record) go."
  value       = google_compute_global_address.this.address
}

output "backend_services" {
  description = "Backend service of each pool (pool -> ID)."
  value       = { for name, b in google_compute_backend_service.pool : name => b.id }
}

output "url_map" {
  description = "ID of the URL map."
  value       = google_compute_url_map.this.id
}

output "health_check" {
  description = "ID of the backends' health check."
  value       = google_compute_health_check.this.id
}

output "url" {
  description = "The URL clients use."
  value       = local.https ? "https://${var.domain}/" : "http://${google_compute_global_address.this.address}${var.listener_port == 80 ? "" : ":${var.listener_port}"}/"
}
