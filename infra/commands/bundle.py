"""`gpufleet bundle SPEC`: build the wheelhouse instances install the runtime from (infra.wheelhouse).

An explicit step, because it downloads (torch's CUDA build alone is several GB): `render`,
`plan` and `apply` stay fast and offline, and include a wheelhouse that is there: its
manifest goes into the bundle's digest and the runtime config, and the storage module uploads
its files beside the gpufleet wheel. Exit codes: 0 built, 1 pip could not download, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path

from infra.commands.common import say
from runtime.errors import EXIT_FAILED, EXIT_OK


def cmd_bundle(args) -> int:
    from infra.render.render import default_out_dir
    from infra.spec import load_stack
    from infra.wheelhouse import WHEELHOUSE, WheelhouseError, download

    r = load_stack(args.spec)
    rt = r.runtime
    root = Path(args.root) if args.root else default_out_dir(r)
    archs = sorted(set(rt.archs.values()))
    say(f"wheelhouse for {r.name}: {', '.join(archs)}, CPython {rt.python_version}, torch {rt.torch} "
        f"(torch {'left to the image' if rt.torch == 'use_image_torch' else 'included'})")
    for arch in archs:
        try:
            built = download(arch, rt.python_version, rt.torch, root / WHEELHOUSE / arch,
                             find_links=args.find_links or [], no_index=args.no_index)
        except WheelhouseError as e:
            say(f"error: {e}")
            return EXIT_FAILED
        print(f"{arch}: {built.wheels} wheels, {built.bytes / 1e6:.1f} MB in {built.folder}")
    say(f"next: gpufleet render/plan/apply {args.spec} (the wheelhouse goes into the bundle and the bucket)")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("bundle", help="download the runtime's wheels for the instances (the wheelhouse, "
                                       "build/<name>/bundle/wheelhouse/<arch>/) so they install offline")
    p.add_argument("spec", help="the stack spec (YAML)")
    p.add_argument("--root", metavar="DIR", help="the rendered root the wheelhouse goes under (default build/<name>/)")
    p.add_argument("--find-links", metavar="DIR", action="append",
                   help="also take wheels from DIR (pip's --find-links; e.g. a local torch wheel); repeatable")
    p.add_argument("--no-index", action="store_true", help="take wheels only from --find-links, not the package index")
    p.set_defaults(func=cmd_bundle)
