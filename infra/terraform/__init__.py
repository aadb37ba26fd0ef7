"""Running Terraform: which binary, the offline provider mirror, and parsed results."""
