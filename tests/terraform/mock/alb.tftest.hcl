# Plan-level assertions on the alb module with a mocked AWS provider (no server).
mock_provider "aws" {
  mock_resource "aws_lb" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/t/0123456789abcdef"
      arn_suffix = "app/t/0123456789abcdef"
      dns_name   = "t-123.us-east-1.elb.amazonaws.com"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t-main/0123456789abcdef"
      arn_suffix = "targetgroup/t-main/0123456789abcdef"
    }
  }
}

variables {
  name                   = "t"
  vpc_id                 = "vpc-0123456789abcdef0"
  subnet_ids             = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  security_group_ids     = ["sg-0123456789abcdef0"]
  target_port            = 8080
  algorithm              = "least_outstanding_requests"
  pools                  = { main = { weight = 1 } }
  health_check           = { path = "/readyz", interval_s = 10, timeout_s = 5, healthy_threshold = 2, unhealthy_threshold = 3, matcher = "200" }
  deregistration_delay_s = 30
  slow_start_s           = 0
  listener_port          = 80
}

run "least_connections_and_health_check" {
  command = plan

  assert {
    condition     = aws_lb_target_group.this["main"].load_balancing_algorithm_type == "least_outstanding_requests"
    error_message = "least_connections maps to least_outstanding_requests"
  }
  assert {
    condition     = aws_lb_target_group.this["main"].health_check[0].path == "/readyz" && aws_lb_target_group.this["main"].health_check[0].unhealthy_threshold == 3
    error_message = "health check from the spec"
  }
  assert {
    condition     = tostring(aws_lb_target_group.this["main"].deregistration_delay) == "30"
    error_message = "deregistration delay"
  }
  assert {
    condition     = aws_lb.this.drop_invalid_header_fields && !aws_lb.this.internal
    error_message = "a public ALB that drops invalid headers"
  }
}

run "weighted_round_robin" {
  command = plan

  variables {
    algorithm = "round_robin"
    pools     = { a10g = { weight = 3 }, l4 = { weight = 1 } }
  }

  assert {
    condition     = length(aws_lb_target_group.this) == 2 && aws_lb_target_group.this["l4"].load_balancing_algorithm_type == "round_robin"
    error_message = "one round-robin target group per pool"
  }
  assert {
    condition     = jsonencode(sort([for tg in aws_lb_listener.http_forward[0].default_action[0].forward[0].target_group : tostring(tg.weight)])) == jsonencode(["1", "3"])
    error_message = "the listener forwards to the pools by weight, got ${jsonencode(aws_lb_listener.http_forward[0].default_action)}"
  }
}

run "slow_start_with_least_outstanding_is_refused" {
  command = plan

  variables {
    slow_start_s = 60
  }

  expect_failures = [aws_lb_target_group.this]
}

run "https_with_a_certificate" {
  command = plan

  variables {
    listener_port   = 443
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f"
  }

  assert {
    condition     = length(aws_lb_listener.http_forward) == 0 && aws_lb_listener.https_forward[0].protocol == "HTTPS"
    error_message = "with a certificate the listener is HTTPS"
  }
  assert {
    condition     = startswith(aws_lb_listener.https_forward[0].ssl_policy, "ELBSecurityPolicy-TLS13")
    error_message = "a TLS 1.2+ policy"
  }
  assert {
    condition     = aws_lb_listener.http_redirect[0].port == 80 && aws_lb_listener.http_redirect[0].default_action[0].type == "redirect"
    error_message = "plain HTTP redirects to HTTPS"
  }
}
