locals {
  https = var.domain != ""
  # Without weights the single pool's backend service is the URL map's default.
  default_pool = keys(var.pools)[0]
}

resource "google_compute_global_address" "this" {
  name         = "${var.name}-lb"
  project      = var.project
  description  = "gpufleet ${var.name}: the load balancer's address"
  address_type = "EXTERNAL"
  ip_version   = "IPV4"
}

resource "google_compute_health_check" "this" {
  name                = "${var.name}-lb"
  project             = var.project
  description         = "gpufleet ${var.name}: readiness of serving VMs"
  check_interval_sec  = var.health_check.interval_s
  timeout_sec         = var.health_check.timeout_s
  healthy_threshold   = var.health_check.healthy_threshold
  unhealthy_threshold = var.health_check.unhealthy_threshold

  http_health_check {
    port         = var.health_check.port
    request_path = var.health_check.path
  }

  log_config {
    enable = true
  }
}

# One backend service per pool; its groups (on-demand and spot VMs of one pool) are its backends.
resource "google_compute_backend_service" "pool" {
  for_each = var.pools

  name                            = "${var.name}-${each.key}"
  project                         = var.project
  description                     = "gpufleet ${var.name}: serving pool ${each.key}"
  load_balancing_scheme           = "EXTERNAL_MANAGED"
  protocol                        = "HTTP"
  port_name                       = var.port_name
  timeout_sec                     = var.timeout_s
  health_checks                   = [google_compute_health_check.this.id]
  locality_lb_policy              = var.locality_lb_policy
  connection_draining_timeout_sec = var.connection_draining_s
  security_policy                 = var.security_policy == "" ? null : var.security_policy

  dynamic "backend" {
    for_each = each.value.groups

    content {
      group                 = backend.value
      balancing_mode        = var.balancing.mode
      max_utilization       = var.balancing.mode == "UTILIZATION" ? var.balancing.max_utilization : null
      max_rate_per_instance = var.balancing.mode == "RATE" ? var.balancing.max_rate_per_instance : null
      capacity_scaler       = 1
    }
  }

  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_url_map" "this" {
  name            = var.name
  project         = var.project
  description     = "gpufleet ${var.name}: ${var.weighted ? "traffic split across pools by weight" : "every request to pool ${local.default_pool}"}"
  default_service = var.weighted ? null : google_compute_backend_service.pool[local.default_pool].id

  dynamic "default_route_action" {
    for_each = var.weighted ? [1] : []

    content {
      dynamic "weighted_backend_services" {
        for_each = var.pools

        content {
          backend_service = google_compute_backend_service.pool[weighted_backend_services.key].id
          weight          = weighted_backend_services.value.weight
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.weighted || length(var.pools) == 1
      error_message = "Several pools split traffic by weight: set weighted = true (got ${length(var.pools)} pools and weighted = false)."
    }
  }
}

# --- HTTP ------------------------------------------------------------------------------------
resource "google_compute_target_http_proxy" "this" {
  count = local.https ? 0 : 1

  name    = "${var.name}-http"
  project = var.project
  url_map = google_compute_url_map.this.id
}

# --- HTTPS with a Google-managed certificate; port 80 redirects ------------------------------
resource "google_compute_managed_ssl_certificate" "this" {
  count = local.https ? 1 : 0

  name    = "${var.name}-cert"
  project = var.project

  managed {
    domains = [var.domain]
  }
}

resource "google_compute_ssl_policy" "this" {
  count = local.https ? 1 : 0

  name            = "${var.name}-tls"
  project         = var.project
  description     = "gpufleet ${var.name}: TLS 1.2 or newer, modern ciphers"
  min_tls_version = "TLS_1_2"
  profile         = "RESTRICTED"
}

resource "google_compute_target_https_proxy" "this" {
  count = local.https ? 1 : 0

  name             = "${var.name}-https"
  project          = var.project
  url_map          = google_compute_url_map.this.id
  ssl_certificates = [google_compute_managed_ssl_certificate.this[0].id]
  ssl_policy       = google_compute_ssl_policy.this[0].id
}

resource "google_compute_url_map" "redirect" {
  count = local.https ? 1 : 0

  name        = "${var.name}-redirect"
  project     = var.project
  description = "gpufleet ${var.name}: HTTP to HTTPS"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  count = local.https ? 1 : 0

  name    = "${var.name}-redirect"
  project = var.project
  url_map = google_compute_url_map.redirect[0].id
}

resource "google_compute_global_forwarding_rule" "this" {
  name                  = var.name
  project               = var.project
  description           = "gpufleet ${var.name}: ${local.https ? "HTTPS" : "HTTP"} on port ${var.listener_port}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  ip_address            = google_compute_global_address.this.id
  port_range            = tostring(var.listener_port)
  target                = local.https ? google_compute_target_https_proxy.this[0].id : google_compute_target_http_proxy.this[0].id
  labels                = var.labels

  lifecycle {
    precondition {
      condition     = local.https ? var.listener_port == 443 : var.listener_port != 443
      error_message = "HTTPS (a domain) listens on 443; plain HTTP on 80 or 8080."
    }
  }
}

resource "google_compute_global_forwarding_rule" "redirect" {
  count = local.https ? 1 : 0

  name                  = "${var.name}-redirect"
  project               = var.project
  description           = "gpufleet ${var.name}: HTTP on port 80, redirected to HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  ip_address            = google_compute_global_address.this.id
  port_range            = "80"
  target                = google_compute_target_http_proxy.redirect[0].id
  labels                = var.labels
}
