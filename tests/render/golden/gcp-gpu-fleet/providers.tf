terraform {
  required_version = ">= 1.3"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}

# Credentials: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, or
# `gcloud auth application-default login`).
provider "google" {
  project = var.project
  region  = var.region
}
