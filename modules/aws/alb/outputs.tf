output "lb_arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.this.arn
}

output "lb_arn_suffix" {
  description = "ARN suffix of the load balancer (CloudWatch LoadBalancer dimension, first half of an ALBRequestCountPerTarget resource label)."
  value       = aws_lb.this.arn_suffix
}

output "lb_dns_name" {
  description = "Public DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "lb_zone_id" {
  description = "Route 53 hosted zone ID of the load balancer, for alias records."
  value       = aws_lb.this.zone_id
}

output "target_group_arns" {
  description = "Target group ARN of each pool."
  value       = { for k, tg in aws_lb_target_group.this : k => tg.arn }
}

output "target_group_arn_suffixes" {
  description = "Target group ARN suffix of each pool (CloudWatch TargetGroup dimension)."
  value       = { for k, tg in aws_lb_target_group.this : k => tg.arn_suffix }
}

output "listener_arns" {
  description = "ARNs of the listeners: the forwarding listener first, then the HTTP-to-HTTPS redirect if any."
  value       = concat(aws_lb_listener.http_forward[*].arn, aws_lb_listener.https_forward[*].arn, aws_lb_listener.http_redirect[*].arn)
}

output "forward_listener_arn" {
  description = "ARN of the listener that forwards to the pools (HTTP or HTTPS)."
  value       = one(concat(aws_lb_listener.http_forward[*].arn, aws_lb_listener.https_forward[*].arn))
}

output "url" {
  description = "Base URL of the load balancer."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}${(local.https && var.listener_port == 443) || (!local.https && var.listener_port == 80) ? "" : ":${var.listener_port}"}"
}
