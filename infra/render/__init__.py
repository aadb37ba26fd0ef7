"""Stack -> Terraform root: `hcl` (escaping and formatting), `render` (templates), `runtime_config`."""

from infra.render.render import render, render_emulator_override, render_files

__all__ = ["render", "render_emulator_override", "render_files"]
