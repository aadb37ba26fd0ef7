# Plan-level assertions on the network module with a mocked AWS provider (no server).
mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["us-east-1a", "us-east-1b", "us-east-1c"]
    }
  }
}

variables {
  name           = "t"
  cidr           = "10.20.0.0/16"
  zones          = 2
  serving_port   = 8080
  listener_ports = [80, 443]
}

run "only_the_load_balancer_is_reachable_from_outside" {
  command = plan

  assert {
    condition     = try(length(aws_security_group_rule.serving_ingress_lb.cidr_blocks), 0) == 0 && try(length(aws_security_group_rule.training_ingress_self.cidr_blocks), 0) == 0
    error_message = "instances accept no traffic from CIDR ranges"
  }
  assert {
    condition     = jsonencode(sort([for r in aws_security_group_rule.lb_ingress : tostring(r.from_port)])) == jsonencode(["443", "80"])
    error_message = "the load balancer listens on the listener ports, got ${jsonencode([for r in aws_security_group_rule.lb_ingress : r.from_port])}"
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : !s.map_public_ip_on_launch]) && length(aws_subnet.private) == 2
    error_message = "no public IPs by default; a private subnet per zone"
  }
}
