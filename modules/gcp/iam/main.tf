locals {
  account_id = "${var.name}-${var.role}"
  member     = "serviceAccount:${google_service_account.this.email}"
  # Custom role IDs allow letters, digits, "_" and "." only.
  rendezvous_role_id = "gpufleet_${replace(var.name, "-", "_")}_${var.role}_rendezvous"
}

# One service account per fleet. Its VMs use it through the metadata server; no key is ever made.
resource "google_service_account" "this" {
  account_id   = local.account_id
  project      = var.project
  display_name = "gpufleet ${var.name} ${var.role}"
  description  = "gpufleet ${var.name}: ${var.role} VMs (artifacts bucket${var.write_metrics ? ", scaling metric" : ""}${var.read_group_instances ? ", peers in their group" : ""})"
}

# --- Artifacts: data, checkpoints, models, the runtime bundle -------------------------------
# Granted on the bucket itself, never the project: the fleet sees no other bucket.
resource "google_storage_bucket_iam_member" "artifacts" {
  bucket = var.bucket
  role   = var.bucket_role
  member = local.member
}

# --- Metrics: the agent's custom metric (custom.googleapis.com/gpufleet/...) ------------------
# metricWriter can only write time series; Cloud Monitoring has no narrower grant than the project.
resource "google_project_iam_member" "metric_writer" {
  count = var.write_metrics ? 1 : 0

  project = var.project
  role    = "roles/monitoring.metricWriter"
  member  = local.member
}

# --- Rendezvous: which VMs are in my group --------------------------------------------------
# Four read permissions instead of roles/compute.viewer, which reads every Compute resource
# of the project (disks, images, firewalls, ...). Listing cannot be narrowed below the project.
resource "google_project_iam_custom_role" "rendezvous" {
  count = var.read_group_instances ? 1 : 0

  project     = var.project
  role_id     = local.rendezvous_role_id
  title       = "gpufleet ${var.name} ${var.role}: read group instances"
  description = "List and read VMs and managed instance groups, for training ranks to find their peers."
  permissions = [
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.list",
    "compute.instances.get",
    "compute.instances.list",
  ]
}

resource "google_project_iam_member" "rendezvous" {
  count = var.read_group_instances ? 1 : 0

  project = var.project
  role    = google_project_iam_custom_role.rendezvous[0].id
  member  = local.member
}
