data "aws_partition" "current" {}

# `.id` is the region name in every provider major (6.x deprecates `.name`; 3.x and 5.x have no `.region`).
data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  full_name = "${var.name}-${var.role}"

  group_arns = [
    for g in var.autoscaling_group_names :
    "arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${g}"
  ]
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "EC2AssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.full_name
  description          = "gpufleet ${var.name}: ${var.role} instances"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_instance_profile" "this" {
  name = local.full_name
  role = aws_iam_role.this.name

  tags = var.tags
}

# --- Artifacts: code, data partitions, checkpoints, model weights -------------------------

data "aws_iam_policy_document" "artifacts" {
  statement {
    sid       = "ListArtifactBucket"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.bucket_arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == "" ? [] : [var.kms_key_arn]

    content {
      sid       = "UseArtifactKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "artifacts" {
  name        = "${local.full_name}-artifacts"
  description = "gpufleet ${var.name}: read and write the stack's artifact bucket"
  policy      = data.aws_iam_policy_document.artifacts.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "artifacts" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.artifacts.arn
}

# --- Metrics: custom scaling metrics (in-flight requests, GPU utilization) ----------------

data "aws_iam_policy_document" "metrics" {
  statement {
    sid     = "PutFleetMetrics"
    actions = ["cloudwatch:PutMetricData"]
    # PutMetricData has no resource-level permissions; the namespace condition is what
    # confines it.
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metric_namespace]
    }
  }
}

resource "aws_iam_policy" "metrics" {
  name        = "${local.full_name}-metrics"
  description = "gpufleet ${var.name}: publish metrics to the ${var.metric_namespace} namespace only"
  policy      = data.aws_iam_policy_document.metrics.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "metrics" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.metrics.arn
}

# --- Fleet: rendezvous discovery and graceful drain on termination ------------------------

data "aws_iam_policy_document" "fleet" {
  statement {
    sid = "DescribeFleet"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "ec2:DescribeInstances",
    ]
    # These Describe* calls support no resource-level permissions: AWS only accepts "*".
    # They are read-only and let ranks find their peers' private addresses for rendezvous.
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(local.group_arns) == 0 ? [] : [local.group_arns]

    content {
      sid = "DrainOnTermination"
      actions = [
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
      ]
      resources = statement.value
    }
  }
}

resource "aws_iam_policy" "fleet" {
  name        = "${local.full_name}-fleet"
  description = "gpufleet ${var.name}: discover fleet peers and complete lifecycle actions on its own groups"
  policy      = data.aws_iam_policy_document.fleet.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "fleet" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.fleet.arn
}
