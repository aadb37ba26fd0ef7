"""gpufleet runtime: what the instances of a stack run (data, train, serve, agent).

The runtime never reads a stack spec's YAML; it reads the resolved runtime config JSON
that `infra` renders next to the Terraform.
"""

__version__ = "0.1.0"
