"""Terraform state kept remotely: the S3 backend's bucket and lock table, and its lock.

`backend` checks before `terraform init` that the bucket (and DynamoDB table) a stack's
`backend:` names exist, and creates them for `gpufleet state bootstrap SPEC`, through the same
endpoint the target points Terraform at. `lock` reads Terraform's "Error acquiring the state
lock" diagnostic into who holds the lock, for a message in the user's terms.
"""
