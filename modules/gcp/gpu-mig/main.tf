locals {
  labels = merge(var.labels, { "gpufleet-role" = var.role })

  source_image = var.image.family != "" ? "projects/${var.image.project}/global/images/family/${var.image.family}" : "projects/${var.image.project}/global/images/${var.image.name}"

  # A regional group surges or takes down VMs per zone: 0 or at least one per zone.
  zones_count = length(var.zones)

  autoscaled    = var.scaling.enabled && var.max_size > var.min_size
  custom_metric = contains(["inflight_requests", "gpu_utilization"], var.scaling.metric)
}

# One template per version of the fleet's VMs: a change makes a new template (name_prefix,
# create_before_destroy) and the group rolls it out by its update policy.
resource "google_compute_instance_template" "this" {
  name_prefix    = "${substr(var.name, 0, 36)}-"
  project        = var.project
  description    = "gpufleet ${var.role} fleet ${var.name}"
  machine_type   = var.machine_type
  can_ip_forward = false
  labels         = local.labels

  # OS Login instead of SSH keys in metadata; no serial console. The startup script reads the
  # bucket's name from gpufleet-bucket.
  metadata = {
    "startup-script"         = var.startup_script
    "gpufleet-bucket"        = var.bucket
    "block-project-ssh-keys" = "true"
    "enable-oslogin"         = "TRUE"
    "serial-port-enable"     = "false"
    "install-nvidia-driver"  = var.install_gpu_driver ? "True" : "False"
  }

  disk {
    source_image = local.source_image
    boot         = true
    auto_delete  = true
    disk_size_gb = var.disk_gb
    disk_type    = var.disk_type
    labels       = local.labels
  }

  # No access_config: the VMs get no external IP. Egress goes through Cloud NAT, Google APIs
  # through Private Google Access, and requests come in through the load balancer only.
  network_interface {
    subnetwork = var.subnetwork
  }

  dynamic "guest_accelerator" {
    for_each = var.accelerator == null ? [] : [var.accelerator]

    content {
      type  = guest_accelerator.value.type
      count = guest_accelerator.value.count
    }
  }

  # VMs with GPUs cannot live-migrate: they stop for host maintenance (on-demand ones restart
  # afterwards). Spot VMs are preempted instead, never restarted, and deleted or stopped.
  scheduling {
    on_host_maintenance         = "TERMINATE"
    automatic_restart           = !var.spot
    preemptible                 = var.spot
    provisioning_model          = var.spot ? "SPOT" : "STANDARD"
    instance_termination_action = var.spot ? var.spot_termination_action : null
  }

  shielded_instance_config {
    enable_secure_boot          = var.secure_boot
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  service_account {
    email  = var.service_account_email
    scopes = ["cloud-platform"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

# Auto-healing: the group recreates a VM whose runtime stops answering (serving fleets).
resource "google_compute_health_check" "autohealing" {
  count = var.health_check == null ? 0 : 1

  name                = "${var.name}-autohealing"
  project             = var.project
  description         = "gpufleet ${var.name}: recreate VMs whose runtime stops answering"
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

resource "google_compute_region_instance_group_manager" "this" {
  name               = var.name
  project            = var.project
  region             = var.region
  description        = "gpufleet ${var.role} fleet ${var.name}"
  base_instance_name = var.name
  target_size        = var.desired_size
  wait_for_instances = false

  distribution_policy_zones        = var.zones
  distribution_policy_target_shape = var.target_shape

  version {
    name              = "primary"
    instance_template = google_compute_instance_template.this.self_link_unique
  }

  dynamic "named_port" {
    for_each = var.named_ports

    content {
      name = named_port.key
      port = named_port.value
    }
  }

  dynamic "auto_healing_policies" {
    for_each = google_compute_health_check.autohealing

    content {
      health_check      = auto_healing_policies.value.id
      initial_delay_sec = var.health_check.initial_delay_s
    }
  }

  update_policy {
    type                         = var.update_type
    minimal_action               = "REPLACE"
    instance_redistribution_type = var.target_shape == "EVEN" ? "PROACTIVE" : "NONE"
    max_surge_fixed              = var.update_type == "PROACTIVE" ? local.zones_count : 0
    max_unavailable_fixed        = var.update_type == "PROACTIVE" ? 0 : local.zones_count
  }

  lifecycle {
    # The autoscaler (and gpufleet's own scale commands) own the size after creation.
    ignore_changes = [target_size]

    precondition {
      condition     = var.min_size <= var.desired_size && var.desired_size <= var.max_size
      error_message = "The fleet sizes must satisfy min_size <= desired_size <= max_size (got ${var.min_size} <= ${var.desired_size} <= ${var.max_size})."
    }
  }
}

resource "google_compute_region_autoscaler" "this" {
  count = local.autoscaled ? 1 : 0

  name    = var.name
  project = var.project
  region  = var.region
  target  = google_compute_region_instance_group_manager.this.id

  autoscaling_policy {
    min_replicas    = var.min_size
    max_replicas    = var.max_size
    cooldown_period = var.scaling.initialization_s
    mode            = "ON"

    scale_in_control {
      time_window_sec = var.scaling.scale_in_window_s

      max_scaled_in_replicas {
        fixed = var.scaling.scale_in_max_replicas
      }
    }

    dynamic "cpu_utilization" {
      for_each = var.scaling.metric == "cpu_utilization" ? [var.scaling.target / 100] : []

      content {
        target = cpu_utilization.value
      }
    }

    dynamic "load_balancing_utilization" {
      for_each = var.scaling.metric == "requests_per_target" ? [var.scaling.target] : []

      content {
        target = load_balancing_utilization.value
      }
    }

    # A per-instance metric: each VM's agent writes its own time series (resource gce_instance);
    # the autoscaler holds their average at `target`.
    dynamic "metric" {
      for_each = local.custom_metric ? [var.scaling.metric_type] : []

      content {
        name   = metric.value
        target = var.scaling.target
        type   = "GAUGE"
        filter = "resource.type = \"gce_instance\""
      }
    }
  }
}
