# AWS provider 4.9 to 6.x. Each of the bucket's settings is a resource of its own (the inline
# blocks of aws_s3_bucket are deprecated), and objects are aws_s3_object. provider-v3/ is this
# module for provider 3.x, which has neither: same inputs, outputs and resulting bucket.
locals {
  kms_key_id  = var.kms_key_arn == "" ? null : var.kms_key_arn
  object_keys = sort([for o in aws_s3_object.this : o.key])
}

resource "aws_s3_bucket" "this" {
  bucket        = var.bucket == "" ? null : var.bucket
  bucket_prefix = var.bucket == "" ? "${var.name}-artifacts-" : null
  force_destroy = var.force_destroy

  tags = merge(var.tags, { Name = var.bucket == "" ? "${var.name}-artifacts" : var.bucket })

  #checkov:skip=CKV_AWS_18:Server access logs need a second, dedicated log bucket; left to the user's account-wide logging setup.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost; artifacts can be rebuilt from the stack, checkpoints are versioned.
  #checkov:skip=CKV2_AWS_62:No consumer of object events exists; event notifications would have nowhere to go.
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_id
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    # every object in the bucket
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  # a rule on noncurrent versions presumes versioning
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# Optional only for emulators: moto ignores policy conditions, so this Deny would refuse
# every PutObject there. Keep it on for AWS.
resource "aws_s3_bucket_policy" "this" {
  count = var.enforce_tls ? 1 : 0

  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.tls_only.json

  # S3 rejects concurrent changes to a bucket's policy and its public access block.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_object" "this" {
  for_each = var.objects

  bucket                 = aws_s3_bucket.this.id
  key                    = each.key
  source                 = each.value
  server_side_encryption = "aws:kms"
  kms_key_id             = local.kms_key_id

  # Re-upload when the file changes. Not `etag`: an SSE-KMS object's ETag is not the MD5
  # of its content, so `etag = filemd5(...)` would show a change on every plan.
  metadata = {
    "source-md5" = filemd5(each.value)
  }

  tags = var.tags

  # uploaded once the bucket is versioned and (on AWS) refuses plain HTTP
  depends_on = [aws_s3_bucket_policy.this, aws_s3_bucket_versioning.this]
}
