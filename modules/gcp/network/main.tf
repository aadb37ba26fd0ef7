# A custom-mode VPC: no automatic subnets in every region, only the one this stack uses.
resource "google_compute_network" "this" {
  name                    = var.name
  project                 = var.project
  description             = "gpufleet ${var.name}: the stack's network"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

# VMs have internal addresses only. Private Google Access lets them reach Cloud Storage,
# Cloud Monitoring and the Compute API without an external IP or the NAT.
resource "google_compute_subnetwork" "this" {
  name                     = "${var.name}-${var.region}"
  project                  = var.project
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = var.flow_log_sampling
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  name    = "${var.name}-${var.region}"
  project = var.project
  region  = var.region
  network = google_compute_network.this.id
}

# Egress to the internet (package indexes) for VMs without external IPs. Nothing can connect in.
resource "google_compute_router_nat" "this" {
  name                               = "${var.name}-${var.region}"
  project                            = var.project
  region                             = var.region
  router                             = google_compute_router.this.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.this.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# The VPC denies all ingress unless a rule allows it. Two rules do, each to VMs chosen by
# service account (a network tag can be set by anyone who can edit a VM; a service account
# cannot be borrowed without iam.serviceAccountUser on it).

# Google's health checkers and the load balancer's proxies reach the serving port, and only it.
resource "google_compute_firewall" "serving_from_lb" {
  count = var.serving_port == null ? 0 : 1

  name        = "${var.name}-serving-from-lb"
  project     = var.project
  network     = google_compute_network.this.id
  description = "gpufleet ${var.name}: health checks and load balancer proxies to the serving port"
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = var.health_check_ranges
  target_service_accounts = var.serving_service_accounts

  allow {
    protocol = "tcp"
    ports    = [tostring(var.serving_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }

  lifecycle {
    precondition {
      condition     = length(var.serving_service_accounts) > 0
      error_message = "A serving_port needs the serving VMs' service accounts (serving_service_accounts)."
    }
  }
}

# Training VMs talk to each other on every TCP port: c10d rendezvous, NCCL, gloo.
resource "google_compute_firewall" "training_peers" {
  count = length(var.training_service_accounts) > 0 ? 1 : 0

  name        = "${var.name}-training-peers"
  project     = var.project
  network     = google_compute_network.this.id
  description = "gpufleet ${var.name}: training VMs to each other"
  direction   = "INGRESS"
  priority    = 1000

  source_service_accounts = var.training_service_accounts
  target_service_accounts = var.training_service_accounts

  allow {
    protocol = "tcp"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
