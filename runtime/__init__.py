"""gpufleet runtime: what the instances of a stack run (data, train, serve, agent, fleet).

The runtime never reads a stack spec's YAML and never imports `infra`: it reads the resolved
runtime config JSON that `infra` renders next to the Terraform (the local target's fleet
manager reads the typed `runtime.fleet.config.FleetConfig` the same way). Shared below the
roles: `store` (local and S3 objects), `imds` (instance metadata), `errors` (exit codes).
The layering is held by tests/unit/test_layering.py.
"""

__version__ = "0.1.0"
