"""Rendering a resolved stack to a self-contained Terraform root (build/<stack>/ under the cwd by default).

Output: main.tf, variables.tf, outputs.tf, providers.tf, terraform.tfvars.json,
user_data/<role>.sh.tftpl, runtime/<role>.json, modules/<cloud>/<name>/ (copies of the modules
main.tf calls, as `./modules/...`: infra.render.modules), bundle/. The spec's cloud picks the
templates (templates/aws/ or templates/gcp/, whose values come from infra.render.gcp); the
target must deploy that cloud (emulator and aws: AWS; gcp: GCP). The directory needs neither
gpufleet nor its checkout: plain `terraform`/`tofu` can init, plan and apply it elsewhere.
Rendering is deterministic: an unchanged spec changes no byte. Every file is built first and
staged in a temporary directory, then moved into place, so an error in rendering leaves the
previous render untouched, and Terraform's own files in the directory (.terraform/, state) are kept.
"""

from __future__ import annotations

import ast
import base64
import gzip
import json
import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import jinja2

from infra import build_dir
from infra.assets import template_loader
from infra.bundle import bundle_files, digest, wheel_name
from infra.render.gcp import gcp_context, gcp_tfvars
from infra.render.hcl import format_hcl, hcl
from infra.render.modules import SOURCE_PREFIX, copied_modules
from infra.render.providers import AWS_PROVIDERS, AwsProvider, spellings
from infra.render.runtime_config import (BUNDLE_PREFIX, LAUNCH_HOOK_SUFFIX, LAUNCH_HOOK_TIMEOUT_S,
                                         TRAINING_HOOK_TIMEOUT_S, runtime_config)
from infra.spec.resolve import (ALB_ALGORITHMS, CUSTOM_METRIC_NAMES, METRIC_NAMESPACE, ResolvedBackend, ResolvedCapacity,
                                ResolvedStack)
from infra.target_names import AWS, EMULATOR, GCP
from infra.wheelhouse import MANIFEST, WHEELHOUSE, parse_header, read_manifests
from runtime import bootstrap as instance_bootstrap
from runtime.errors import BadInput


RENDER_MANIFEST = ".gpufleet-render.json"
EMULATOR_OVERRIDE = "emulator_override.tf"
# The serving instance's drain budget (ResolvedStack.serving_drain_s) plus these margins:
# the termination lifecycle hook waits for the agent to finish draining and complete it...
SERVING_HOOK_MARGIN_S = 30
SERVING_HOOK_MIN_S = 30
# ...and systemd lets the serving units drain before it kills them.
SERVING_STOP_MARGIN_S = 10


def _hcl_ident(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError(f"not an HCL identifier: {value!r}")
    return value


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=template_loader(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hcl"] = hcl
    env.filters["hcl_ident"] = _hcl_ident
    return env


def default_out_dir(r: ResolvedStack) -> Path:
    """build/<name>/ under the current directory (or under $GPUFLEET_BUILD_DIR)."""
    return build_dir() / r.name


def _image(fleet) -> dict:
    img = fleet.image
    if img.id:
        return {"id": img.id, "owner": "", "name_pattern": ""}
    return {"id": "", "owner": img.lookup.owner, "name_pattern": img.lookup.name}


def _capacity(c: ResolvedCapacity) -> dict:
    return {
        "on_demand_base": c.on_demand_base,
        "on_demand_percentage_above_base": c.on_demand_percentage_above_base,
        "spot_allocation_strategy": c.spot_allocation_strategy,
    }


def _context(r: ResolvedStack, provider: AwsProvider, modules: str) -> dict:
    s = r.spec
    ctx: dict = {
        "stack": s,
        "r": r,
        "modules": modules,
        "metric_namespace": METRIC_NAMESPACE,
        "provider_constraint": provider.constraint,
        "compat": provider.spellings,
        # S3 lock files (use_lockfile) need Terraform 1.10; a DynamoDB lock or a local state does not
        "required_version": ">= 1.10" if r.backend and r.backend.lock == "lockfile" else ">= 1.3",
        "bundle_files": {BUNDLE_PREFIX + name: "bundle/" + name for name in (wheel_name(), "requirements.txt")},
        "capacity": _capacity,
        "images": {},
        "serving_port": s.serving.port if s.serving else 8080,
        "listener_ports": [],
        "training_grace_s": 300,
        "training_hook": {"heartbeat_timeout_s": TRAINING_HOOK_TIMEOUT_S, "default_result": "CONTINUE"},
    }
    if s.training:
        ctx["images"]["training"] = _image(s.training)
    if s.serving:
        sv, lb = s.serving, s.serving.load_balancer
        scaling = sv.autoscaling
        ports = [lb.listener.port]
        if lb.listener.certificate_arn and lb.listener.port != 80:
            ports.append(80)  # the HTTP listener that redirects to HTTPS
        ctx.update(
            lb=lb,
            listener_ports=ports,
            images={**ctx["images"], "serving": _image(sv)},
            alb_algorithm=ALB_ALGORITHMS[lb.algorithm],
            alb_pools={p.name: {"weight": p.weight} for p in r.pools},
            health_check={
                "path": lb.health_check.path,
                "interval_s": lb.health_check.interval_s,
                "timeout_s": lb.health_check.timeout_s,
                "healthy_threshold": lb.health_check.healthy_threshold,
                "unhealthy_threshold": lb.health_check.unhealthy_threshold,
                "matcher": "200",
            },
            serving_grace_s=max(scaling.warmup_s if scaling else 0, 60),
            default_cooldown_s=scaling.scale_in_cooldown_s if scaling else 300,
            serving_hook={
                "heartbeat_timeout_s": max(SERVING_HOOK_MIN_S, r.serving_drain_s + SERVING_HOOK_MARGIN_S),
                "default_result": "CONTINUE",
            },
            # an instance that never answers /readyz is abandoned (terminated and replaced)
            warm_pool=None if sv.warm_pool is None else {
                "min_size": sv.warm_pool.min, "state": sv.warm_pool.state.capitalize(),
                "launch_hook_suffix": LAUNCH_HOOK_SUFFIX, "launch_hook_timeout_s": LAUNCH_HOOK_TIMEOUT_S},
            scaling=(
                {
                    "metric": scaling.metric,
                    "target": scaling.target,
                    "warmup_s": scaling.warmup_s,
                    "metric_name": CUSTOM_METRIC_NAMES.get(scaling.metric, ""),
                }
                if scaling
                else None
            ),
        )
    return ctx


# EC2 refuses user data over 16 KB; GCP's startup-script limit (256 KB) is looser.
AWS_USER_DATA_LIMIT = 16 * 1024


EMBEDDED_HEADER = ("# runtime/bootstrap.py of gpufleet, its docstrings and comments left out to fit EC2's 16 KB "
                   "of user data: read the whole file in the package\n")


def embedded_bootstrap() -> str:
    """runtime/bootstrap.py without its docstrings and full-line comments: the same code, line
    for line, in what fits EC2's user data once gzipped (the documented file is 34 KB)."""
    source = Path(instance_bootstrap.__file__).read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    drop: set[int] = set()  # 0-based line numbers
    keep: set[int] = set()  # inside multi-line string literals: never touched
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and node.end_lineno > node.lineno:
            keep.update(range(node.lineno, node.end_lineno - 1))
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            doc = body[0]
            span = range(doc.lineno - 1, doc.end_lineno)
            if len(body) == 1:  # a body of only a docstring keeps a statement
                lines[doc.lineno - 1] = " " * doc.col_offset + "pass"
                span = range(doc.lineno, doc.end_lineno)
            drop.update(span)
    out: list[str] = []
    for i, ln in enumerate(lines):
        if i in drop or (i not in keep and ln.lstrip().startswith("#")):
            continue
        if ln.strip() or i in keep or (out and out[-1].strip()):  # runs of blank lines as one
            out.append(ln)
    text = EMBEDDED_HEADER + "\n".join(out) + "\n"
    compile(text, "bootstrap.py", "exec")  # what instances run must at least parse
    return text


def bootstrap_b64(cloud: str = "aws") -> str:
    """The bootstrap, gzipped (mtime 0, so the same source renders the same text) and base64:
    the whole file for GCP (a startup script may have 256 KB), embedded_bootstrap() for AWS."""
    source = (Path(instance_bootstrap.__file__).read_text(encoding="utf-8") if cloud == "gcp"
              else embedded_bootstrap())
    return base64.b64encode(gzip.compress(source.encode(), compresslevel=9, mtime=0)).decode()


def _user_data(r: ResolvedStack, role: str, bundle_sha256: str, archs: frozenset[str]) -> str:
    config = json.dumps(runtime_config(r, role, archs), sort_keys=True, separators=(",", ":"))
    stop = TRAINING_HOOK_TIMEOUT_S if role == "train" else r.serving_drain_s + SERVING_STOP_MARGIN_S
    text = environment().get_template("cloud-init/user_data.sh.j2").render(
        cloud=r.spec.cloud,
        role=role,
        config_b64=base64.b64encode(config.encode()).decode(),
        stop_timeout_s=stop,
        bundle_sha256=bundle_sha256,
        bootstrap_b64=bootstrap_b64(r.spec.cloud),
    )
    # Terraform fills in ${bucket} (at most 63 characters) after this.
    if r.spec.cloud == "aws" and len(text.encode()) + 63 > AWS_USER_DATA_LIMIT:
        raise ValueError(f"the {role} user_data is {len(text.encode())} bytes; EC2 accepts {AWS_USER_DATA_LIMIT}")
    return text


def render_files(r: ResolvedStack, target: str = EMULATOR, bundle_sha256: str | dict[str, str] = "0" * 64,
                 provider: AwsProvider | None = None, wheelhouse_archs: frozenset[str] = frozenset()) -> dict[str, bytes]:
    """Relative path -> content of every file of the rendered root, the copied modules included
    (without the bundle's bytes).

    `bundle_sha256`: one digest for every role, or role -> digest. `wheelhouse_archs`: the
    architectures bundle/wheelhouse/ holds a wheelhouse for (infra.wheelhouse); the runtime
    config points the roles of those architectures at it. `provider` replaces the target's
    pinned AWS provider (e.g. 5.x against the emulator); a GCP root pins infra.render.gcp's
    Google provider.
    """
    cloud = r.spec.cloud
    targets = (GCP,) if cloud == "gcp" else tuple(AWS_PROVIDERS)
    if target not in targets:
        raise ValueError(f"render target {target!r} does not deploy cloud {cloud!r} (renders for {', '.join(targets)})")
    if cloud == "gcp":
        if provider is not None:
            raise ValueError("an AWS provider for a GCP root")
        ctx = gcp_context(r, SOURCE_PREFIX)
    else:
        provider = provider or AWS_PROVIDERS[target]
        ctx = _context(r, provider, SOURCE_PREFIX)
    env = environment()
    files: dict[str, bytes] = {}
    for name in ("main.tf", "variables.tf", "outputs.tf", "providers.tf"):
        text = env.get_template(f"{cloud}/{name}.j2").render(**ctx)
        files[name] = format_hcl(text).encode()
    tfvars = gcp_tfvars(r) if cloud == "gcp" else {"region": r.spec.region,
                                                   "force_destroy_artifacts": r.spec.artifacts.force_destroy}
    if cloud == "aws" and provider.emulated:
        # moto evaluates a bucket policy's deny but not its aws:SecureTransport condition, has
        # no instance refresh, and rounds a fractional spot/on-demand split down (launching
        # fewer instances than desired, so waiting for capacity never ends). The emulator's
        # data is throwaway, so force_destroy too.
        tfvars.update(
            enforce_tls_on_artifacts=False,
            instance_refresh=False,
            wait_for_capacity_timeout="0",
            force_destroy_artifacts=True,
        )
    files["terraform.tfvars.json"] = (json.dumps(tfvars, indent=2, sort_keys=True) + "\n").encode()
    roles = (["train"] if r.spec.training else []) + (["serve"] if r.spec.serving else [])
    for role in roles:
        sha = bundle_sha256 if isinstance(bundle_sha256, str) else bundle_sha256[role]
        files[f"user_data/{role}.sh.tftpl"] = _user_data(r, role, sha, wheelhouse_archs).encode()
        config = runtime_config(r, role, wheelhouse_archs)
        files[f"runtime/{role}.json"] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    files.update(copied_modules(files["main.tf"].decode()))
    return files


def render_emulator_override(endpoint: str, provider_major: int = AWS_PROVIDERS[EMULATOR].major,
                             backend: ResolvedBackend | None = None) -> str:
    """The override that points a root at the emulator: the AWS provider, and the S3 state
    backend when the stack has one (an override's backend block replaces the original's whole)."""
    text = environment().get_template("aws/emulator_override.tf.j2").render(
        endpoint=endpoint, provider_major=provider_major, compat=spellings(provider_major),
        backend=backend,
    )
    return format_hcl(text)


def write_tree(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write `files` under out_dir; remove files (and folders left empty) an earlier render wrote
    that are gone now. Files that did not change are not touched (Terraform sees no change).

    Every changed file is staged in a temporary directory beside them first, then each is
    renamed into place (atomic per file): a failure while staging leaves the directory as it was.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / RENDER_MANIFEST
    previous = set(json.loads(manifest_path.read_text())) if manifest_path.is_file() else set()
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out_dir))
    try:
        staged = []
        for rel, data in files.items():
            dest = out_dir / rel
            if dest.is_file() and dest.read_bytes() == data:
                continue
            tmp = staging / rel.replace("/", "__")
            tmp.write_bytes(data)
            staged.append((tmp, dest))
        for tmp, dest in staged:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        for rel in sorted(previous - set(files)):
            gone = out_dir / rel
            gone.unlink(missing_ok=True)
            _remove_empty_parents(gone.parent, out_dir)
        manifest = json.dumps(sorted(files), indent=1)
        if not manifest_path.is_file() or manifest_path.read_text() != manifest:
            tmp_manifest = staging / RENDER_MANIFEST
            tmp_manifest.write_text(manifest)
            os.replace(tmp_manifest, manifest_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def wheelhouse_manifests(r: ResolvedStack, out: Path) -> dict[str, bytes]:
    """arch -> manifest of the wheelhouses `gpufleet bundle` left under out/bundle/wheelhouse/ for
    the stack's architectures; one built for another Python or torch policy is refused (exit 2)
    rather than shipped to instances that could not install from it."""
    rt = r.runtime
    manifests = read_manifests(out, set(rt.archs.values()))
    for arch, data in manifests.items():
        built = parse_header(data.decode("utf-8", "replace"))
        want = (arch, rt.python_version, rt.torch)
        if built != want:
            got = f"python {built[1]}, torch {built[2]}" if built else "no header"
            raise BadInput(f"runtime: {out / WHEELHOUSE / arch} was built for {got}, the stack needs python "
                           f"{want[1]}, torch {want[2]}: run `gpufleet bundle` for this spec again")
    return manifests


def render(r: ResolvedStack, out_dir: Path | None = None, target: str = EMULATOR,
           provider: AwsProvider | None = None) -> Path:
    """Render the stack's Terraform root and runtime bundle into out_dir; return out_dir."""
    out = Path(out_dir) if out_dir else default_out_dir(r)
    bundle = bundle_files()
    manifests = wheelhouse_manifests(r, out)
    digests = {}
    for role, arch in r.runtime.archs.items():
        extra = {f"wheelhouse/{arch}/{MANIFEST}": manifests[arch]} if arch in manifests else {}
        digests[role] = digest({**bundle, **extra})
    files = render_files(r, target, bundle_sha256=digests, provider=provider, wheelhouse_archs=frozenset(manifests))
    files.update({f"bundle/{name}": data for name, data in bundle.items()})
    write_tree(out, files)
    provider = provider or AWS_PROVIDERS.get(target)  # None: a GCP root
    if provider is None or not provider.emulated:
        # the emulator target writes this at plan time; a real cloud must never inherit it
        (out / EMULATOR_OVERRIDE).unlink(missing_ok=True)
    return out
