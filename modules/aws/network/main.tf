# Only looked up when availability_zones is not given. Local and Wavelength Zones are left out.
data "aws_availability_zones" "available" {
  count = length(var.availability_zones) == 0 ? 1 : 0

  state = "available"

  filter {
    name   = "zone-type"
    values = ["availability-zone"]
  }

  #checkov:skip=CKV_AWS_394:Zones are pinned with the availability_zones input; this lookup (first `zones` names in sorted order) is only the default when none are given.
}

# `.id` is the region name in every provider major (6.x deprecates `.name`; 3.x and 5.x have no `.region`).
data "aws_region" "current" {}

locals {
  azs = length(var.availability_zones) > 0 ? var.availability_zones : slice(data.aws_availability_zones.available[0].names, 0, var.zones)

  # 16 equal subnets: private ones (instances) take indexes 0-5, public ones (ALB, NAT) 8-13.
  private_cidrs = [for i in range(var.zones) : cidrsubnet(var.cidr, 4, i)]
  public_cidrs  = [for i in range(var.zones) : cidrsubnet(var.cidr, 4, i + 8)]

  # Serving and training instances may reach package mirrors, S3, CloudWatch and the
  # Auto Scaling API over HTTP(S); nothing else leaves the VPC.
  instance_egress_ports = { https = 443, http = 80 }
}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    precondition {
      condition     = length(var.availability_zones) == 0 || length(var.availability_zones) == var.zones
      error_message = "The availability_zones list must be empty or name exactly `zones` (${var.zones}) zones."
    }
  }

  #checkov:skip=CKV2_AWS_11:VPC flow logs need a log destination with its own retention and encryption policy; left to the user's account-wide logging setup.
}

# Adopting the default security group removes all of its rules.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count = var.zones

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.public_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-public-${local.azs[count.index]}", "gpufleet:tier" = "public" })
}

resource "aws_subnet" "private" {
  count = var.zones

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.private_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-private-${local.azs[count.index]}", "gpufleet:tier" = "private" })
}

# Neither `vpc` (deprecated in 5.x, removed in 6.0) nor `domain` (not settable in 3.x): AWS
# allocates in a VPC by default since EC2-Classic was retired, so one spelling serves 3.x to 6.x.
resource "aws_eip" "nat" {
  tags = merge(var.tags, { Name = "${var.name}-nat" })

  depends_on = [aws_internet_gateway.this]

  #checkov:skip=CKV2_AWS_19:This is the NAT gateway's address; the check credits that attachment only when vpc or domain is written, and neither can be for every provider major.
}

# One NAT gateway for all private subnets: cheaper, at the cost of egress depending on one zone.
resource "aws_nat_gateway" "this" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id

  tags = merge(var.tags, { Name = var.name })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = var.zones

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route" "private_nat" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this.id
}

resource "aws_route_table_association" "private" {
  count = var.zones

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# Artifact and checkpoint traffic to S3 stays off the NAT gateway (and its per-GB charge).
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.id}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

# ---------------------------------------------------------------------------------------
# Security groups. The load balancer's listeners are the only thing reachable from outside.
# ---------------------------------------------------------------------------------------

resource "aws_security_group" "lb" {
  name        = "${var.name}-lb"
  description = "gpufleet ${var.name}: public load balancer, reaches serving replicas only"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-lb" })

  #checkov:skip=CKV2_AWS_5:Attached outside this module (load balancer in modules/aws/alb, launch templates in modules/aws/gpu-asg); checkov's graph does not follow module outputs.
}

resource "aws_security_group_rule" "lb_ingress" {
  for_each = toset([for p in var.listener_ports : tostring(p)])

  security_group_id = aws_security_group.lb.id
  type              = "ingress"
  description       = "Public listener port ${each.value}"
  protocol          = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_blocks       = ["0.0.0.0/0"]
}

resource "aws_security_group_rule" "lb_egress_serving" {
  security_group_id        = aws_security_group.lb.id
  type                     = "egress"
  description              = "Forward requests and health checks to serving replicas"
  protocol                 = "tcp"
  from_port                = var.serving_port
  to_port                  = var.serving_port
  source_security_group_id = aws_security_group.serving.id
}

resource "aws_security_group" "serving" {
  name        = "${var.name}-serving"
  description = "gpufleet ${var.name}: serving replicas, reachable from the load balancer only"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-serving" })

  #checkov:skip=CKV2_AWS_5:Attached outside this module (load balancer in modules/aws/alb, launch templates in modules/aws/gpu-asg); checkov's graph does not follow module outputs.
}

resource "aws_security_group_rule" "serving_ingress_lb" {
  security_group_id        = aws_security_group.serving.id
  type                     = "ingress"
  description              = "Requests and health checks from the load balancer"
  protocol                 = "tcp"
  from_port                = var.serving_port
  to_port                  = var.serving_port
  source_security_group_id = aws_security_group.lb.id
}

resource "aws_security_group_rule" "serving_egress" {
  for_each = local.instance_egress_ports

  security_group_id = aws_security_group.serving.id
  type              = "egress"
  description       = "Outbound ${upper(each.key)} for packages, S3, CloudWatch and AWS APIs"
  protocol          = "tcp"
  from_port         = each.value
  to_port           = each.value
  cidr_blocks       = ["0.0.0.0/0"]
}

resource "aws_security_group" "training" {
  name        = "${var.name}-training"
  description = "gpufleet ${var.name}: training ranks, reachable from each other only"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-training" })

  #checkov:skip=CKV2_AWS_5:Attached outside this module (load balancer in modules/aws/alb, launch templates in modules/aws/gpu-asg); checkov's graph does not follow module outputs.
}

# Security groups are stateful per direction: a rank that opens a connection to another
# rank needs the egress rule, the rank that accepts it needs the ingress rule.
resource "aws_security_group_rule" "training_ingress_self" {
  security_group_id = aws_security_group.training.id
  type              = "ingress"
  description       = "All TCP between training ranks (c10d rendezvous, NCCL, gloo)"
  protocol          = "tcp"
  from_port         = 0
  to_port           = 65535
  self              = true
}

resource "aws_security_group_rule" "training_egress_self" {
  security_group_id = aws_security_group.training.id
  type              = "egress"
  description       = "All TCP between training ranks (c10d rendezvous, NCCL, gloo)"
  protocol          = "tcp"
  from_port         = 0
  to_port           = 65535
  self              = true
}

resource "aws_security_group_rule" "training_egress" {
  for_each = local.instance_egress_ports

  security_group_id = aws_security_group.training.id
  type              = "egress"
  description       = "Outbound ${upper(each.key)} for packages, S3, CloudWatch and AWS APIs"
  protocol          = "tcp"
  from_port         = each.value
  to_port           = each.value
  cidr_blocks       = ["0.0.0.0/0"]
}
