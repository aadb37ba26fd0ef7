"""Package data, not code: gpufleet's jinja2 templates, installed as `infra._templates`.

pyproject.toml maps this folder into the distribution ([tool.setuptools.package-dir]);
infra/assets.py reads it with importlib.resources. This file only makes the folder a
package, so an editable install finds it the same way an installed wheel does.
"""
