locals {
  https = var.certificate_arn != ""

  # One pool forwards plainly; several pools share traffic through a weighted forward action.
  single_pool_arn = length(var.pools) == 1 ? aws_lb_target_group.this[keys(var.pools)[0]].arn : null
  weighted_pools  = length(var.pools) > 1 ? { for k, p in var.pools : k => p.weight } : {}
}

resource "aws_lb" "this" {
  name               = var.name
  internal           = false
  load_balancer_type = "application"
  subnets            = var.subnet_ids
  security_groups    = var.security_group_ids

  drop_invalid_header_fields = true
  enable_http2               = true
  idle_timeout               = var.idle_timeout_s
  enable_deletion_protection = var.deletion_protection

  tags = merge(var.tags, { Name = var.name })

  #checkov:skip=CKV_AWS_91:Access logs need a dedicated log bucket with an ELB delivery policy; left to the user's account-wide logging setup.
  #checkov:skip=CKV2_AWS_28:A WAF web ACL is account policy (and billed per rule); attach one outside the stack if needed.
  #checkov:skip=CKV_AWS_150:Fleets are created and destroyed by gpufleet; deletion protection is the deletion_protection input, off by default.
  #checkov:skip=CKV2_AWS_20:HTTP is redirected to HTTPS whenever a certificate is given; without one there is no HTTPS to redirect to.
}

resource "aws_lb_target_group" "this" {
  for_each = var.pools

  name        = "${var.name}-${each.key}"
  vpc_id      = var.vpc_id
  port        = var.target_port
  protocol    = "HTTP"
  target_type = "instance"

  load_balancing_algorithm_type = var.algorithm
  deregistration_delay          = var.deregistration_delay_s
  slow_start                    = var.slow_start_s

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = var.health_check.path
    interval            = var.health_check.interval_s
    timeout             = var.health_check.timeout_s
    healthy_threshold   = var.health_check.healthy_threshold
    unhealthy_threshold = var.health_check.unhealthy_threshold
    matcher             = var.health_check.matcher
  }

  tags = merge(var.tags, { Name = "${var.name}-${each.key}", "gpufleet:pool" = each.key })

  lifecycle {
    precondition {
      condition     = !(var.algorithm == "least_outstanding_requests" && var.slow_start_s > 0)
      error_message = "ALB target groups cannot combine least_outstanding_requests with slow start: set slow_start_s = 0 or algorithm = \"round_robin\"."
    }
  }

  #checkov:skip=CKV_AWS_378:TLS terminates at the load balancer; replicas sit in private subnets reachable only from the load balancer's security group.
}

# Plain HTTP forwarding, only when no certificate is given.
resource "aws_lb_listener" "http_forward" {
  count = local.https ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = var.listener_port
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = local.single_pool_arn

    dynamic "forward" {
      for_each = length(local.weighted_pools) > 0 ? [1] : []

      content {
        dynamic "target_group" {
          for_each = local.weighted_pools

          content {
            arn    = aws_lb_target_group.this[target_group.key].arn
            weight = target_group.value
          }
        }
      }
    }
  }

  #checkov:skip=CKV_AWS_2:Plain HTTP is what the user asked for by giving no certificate_arn; with one, this listener becomes HTTPS.
  #checkov:skip=CKV_AWS_103:No TLS on this listener (no certificate_arn given); the HTTPS listener uses a TLS 1.2+ policy.
}

resource "aws_lb_listener" "https_forward" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = var.listener_port
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = local.single_pool_arn

    dynamic "forward" {
      for_each = length(local.weighted_pools) > 0 ? [1] : []

      content {
        dynamic "target_group" {
          for_each = local.weighted_pools

          content {
            arn    = aws_lb_target_group.this[target_group.key].arn
            weight = target_group.value
          }
        }
      }
    }
  }
}

resource "aws_lb_listener" "http_redirect" {
  count = local.https && var.listener_port != 80 ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = tostring(var.listener_port)
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}
