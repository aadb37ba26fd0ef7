output "email" {
  description = "Email of the fleet's service account (what instance templates and firewall rules take)."
  value       = google_service_account.this.email
}

output "member" {
  description = "The service account as an IAM member (serviceAccount:EMAIL)."
  value       = local.member
}

output "service_account_id" {
  description = "Fully qualified ID of the service account."
  value       = google_service_account.this.id
}

output "rendezvous_role_id" {
  description = "ID of the custom rendezvous role (projects/P/roles/ID), or null when not granted."
  value       = var.read_group_instances ? google_project_iam_custom_role.rendezvous[0].id : null
}
