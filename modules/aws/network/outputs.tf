output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (load balancer, NAT gateway), one per zone."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (instances), one per zone."
  value       = aws_subnet.private[*].id
}

output "lb_security_group_id" {
  description = "Security group for the public load balancer."
  value       = aws_security_group.lb.id
}

output "serving_security_group_id" {
  description = "Security group for serving instances."
  value       = aws_security_group.serving.id
}

output "training_security_group_id" {
  description = "Security group for training instances."
  value       = aws_security_group.training.id
}

output "availability_zones" {
  description = "Availability zones the subnets were placed in, in subnet order."
  value       = local.azs
}

output "nat_public_ip" {
  description = "Public IP address that instance egress leaves from."
  value       = aws_eip.nat.public_ip
}
