# Plan-level assertions on the storage module for AWS provider 3.x (modules/aws/storage/provider-v3)
# with a mocked AWS provider (no server).
mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::t-artifacts-0123"
    }
  }
}

variables {
  name = "t"
}

run "bucket_is_private_and_encrypted" {
  command = plan

  assert {
    condition     = aws_s3_bucket.this.server_side_encryption_configuration[0].rule[0].apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
    error_message = "the bucket is KMS-encrypted by default"
  }
  assert {
    condition     = aws_s3_bucket.this.versioning[0].enabled
    error_message = "versioning keeps overwritten checkpoints"
  }
  assert {
    condition     = aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy && aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets
    error_message = "public access is blocked"
  }
  assert {
    condition     = startswith(aws_s3_bucket.this.bucket_prefix, "t-artifacts-")
    error_message = "a generated bucket name"
  }
}
