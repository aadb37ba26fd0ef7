locals {
  bucket = var.bucket != "" ? var.bucket : "${var.project}-${var.name}-artifacts"
}

# Private by construction: uniform bucket-level access (IAM only, no object ACLs) and public
# access prevention enforced, so no grant can ever make an object public.
resource "google_storage_bucket" "this" {
  name                        = local.bucket
  project                     = var.project
  location                    = upper(var.location)
  storage_class               = "STANDARD"
  force_destroy               = var.force_destroy
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_expiration_days
      with_state                 = "ARCHIVED"
    }

    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 7
    }

    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == "" ? [] : [var.kms_key_name]

    content {
      default_kms_key_name = encryption.value
    }
  }

  #checkov:skip=CKV_GCP_62:Access logs need a second, dedicated log bucket; Cloud Audit Logs (data access) are the project-wide alternative, left to the user's logging setup.
}

# The provider compares each file's MD5 with the uploaded object's and uploads again when
# the file changed.
resource "google_storage_bucket_object" "this" {
  for_each = var.objects

  bucket = google_storage_bucket.this.name
  name   = each.key
  source = each.value
}
