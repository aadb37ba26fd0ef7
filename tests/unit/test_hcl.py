"""The one escaping filter: any user string renders to an HCL literal Terraform reads back unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.render.hcl import format_hcl, hcl
from infra.terraform.runner import Terraform

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = [
    'a"b',
    "back\\slash",
    "new\nline",
    "${var.secret}",
    "%{ if true }x%{ endif }",
    "$${already}",
    "$$${x}",
    "<<EOF\nrm -rf /\nEOF",
    '"\n}\nresource "aws_instance" "evil" {\n',
    "tab\tand\rcarriage",
    "unicode \u2028 sep \u0000 nul \x7f nel \x85 vt \x0b ff \x0c",
    "trailing backslash \\",
    "#{not ruby}",
    "",
]

_TOKENS = list('ab$%{}"\\\n\r\t<>#/*=[]()x \u00e9\u2028') + ["${", "%{", "<<EOF", "$${", "%%{"]
_hostile_text = st.lists(st.sampled_from(_TOKENS), max_size=12).map("".join)


def test_scalars_and_collections():
    assert hcl(None) == "null"
    assert hcl(True) == "true" and hcl(False) == "false"
    assert hcl(3) == "3" and hcl(2.5) == "2.5" and hcl(16.0) == "16"
    assert hcl(["a", 1]) == '["a", 1]'
    assert hcl({}) == "{}"
    assert hcl("${x}") == '"$${x}"'
    assert hcl("%{x}") == '"%%{x}"'
    with pytest.raises(ValueError):
        hcl(float("nan"))
    with pytest.raises(TypeError):
        hcl(object())


def test_formatter_aligns_like_terraform_fmt():
    text = 'a {\nx = 1\nlonger = "v"\nm = {\n"k" = 1\n"kk" = 2\n}\ny = 2\n}\n'
    assert format_hcl(text) == 'a {\n  x      = 1\n  longer = "v"\n  m = {\n    "k"  = 1\n    "kk" = 2\n  }\n  y = 2\n}\n'


def _terraform_round_trip(tmp_path: Path, values: list[str]) -> list[str]:
    """Write each value through `hcl` into a root module's output and read it back with Terraform."""
    body = "\n".join(f"output \"v{i}\" {{\n  value = {hcl(v)}\n}}\n" for i, v in enumerate(values))
    body += f"\nlocals {{\n  tags = {hcl({v: v for v in values if v})}\n}}\noutput \"tags\" {{\n  value = local.tags\n}}\n"
    (tmp_path / "main.tf").write_text(format_hcl(body))
    tf = Terraform(tmp_path, offline=True)
    res = tf.run("apply", "-auto-approve", "-input=false", "-no-color")
    assert res.rc == 0, res.stderr + res.stdout
    out = tf.output()
    assert out["tags"] == {v: v for v in values if v}
    return [out[f"v{i}"] for i in range(len(values))]


def test_hostile_strings_survive_terraform(tmp_path):
    assert _terraform_round_trip(tmp_path, HOSTILE) == HOSTILE
    # and nothing outside the outputs and locals was declared
    text = (tmp_path / "main.tf").read_text()
    assert not re.search(r"^resource ", text, re.M)


@settings(max_examples=4, deadline=None, derandomize=True)
@given(st.lists(st.text(max_size=12) | _hostile_text, min_size=60, max_size=60))
def test_generated_strings_survive_terraform(tmp_path_factory, values):
    # Terraform itself normalises strings to NFC; compare against that.
    import unicodedata

    values = [unicodedata.normalize("NFC", v) for v in values]
    tmp = tmp_path_factory.mktemp("hcl")
    assert _terraform_round_trip(tmp, values) == values


def test_every_template_value_goes_through_the_filter():
    """A `{{ ... }}` in a Terraform template must end in `| hcl` (or `| hcl_ident` for references)."""
    paths = [*(ROOT / "templates" / "aws").glob("*.tf.j2"), *(ROOT / "templates" / "gcp").glob("*.tf.j2")]
    assert any(p.parent.name == "gcp" for p in paths)
    for path in paths:
        for expr in re.findall(r"\{\{(.*?)\}\}", path.read_text(), re.S):
            assert re.search(r"\|\s*(hcl|hcl_ident)\s*$", expr.strip()), f"{path.name}: {{{{{expr}}}}} is not escaped"


def test_user_data_carries_no_spec_strings():
    """Spec values reach user_data only base64-encoded inside the runtime config."""
    text = (ROOT / "templates/cloud-init/user_data.sh.j2").read_text()
    names = set(re.findall(r"\{\{\s*([a-z0-9_]+)", text))
    assert names <= {"role", "config_b64", "stop_timeout_s", "bundle_sha256", "bootstrap_b64"}, names
