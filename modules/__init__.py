"""Package data, not code: gpufleet's Terraform modules, installed as `infra._modules`.

pyproject.toml maps this folder into the distribution ([tool.setuptools.package-dir]);
infra/assets.py reads it with importlib.resources, and rendering copies the modules a root
uses beside it. This file only makes the folder a package; Terraform ignores it.
"""
