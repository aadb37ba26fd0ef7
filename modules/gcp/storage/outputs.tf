output "bucket" {
  description = "Name of the artifacts bucket."
  value       = google_storage_bucket.this.name
}

output "bucket_url" {
  description = "The bucket as a gs:// URL."
  value       = google_storage_bucket.this.url
}

output "object_keys" {
  description = "Names of the uploaded objects."
  value       = sort([for o in google_storage_bucket_object.this : o.name])
}
