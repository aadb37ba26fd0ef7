"""The `gpufleet` command's subcommands, grouped by what they drive; `infra.cli` builds the parser.

common.py: what every group shares (messages, `--target`); deploy.py: the Terraform verbs
(render, plan, apply, destroy, outputs, drift) on a rendered root; state.py: the remote
state's bucket and lock (`state bootstrap`, `state unlock`).
"""
