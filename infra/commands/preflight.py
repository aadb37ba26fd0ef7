"""`gpufleet preflight SPEC`: ask the cloud whether the stack's fleets can exist, before any plan.

For a GCP stack (infra.targets.gcp_preflight, through google-cloud-compute): each zone is in the
region and exists, the machine types exist there, the GPU types are offered there with enough
cards per instance, and the regional GPU quotas (PREEMPTIBLE_ ones for spot groups) and the
project's GPUS_ALL_REGIONS cover every group at `max`. Every problem is reported in one run.
`plan --target gcp` runs the same check first.

`--endpoint URL` points the Compute Engine client at another API endpoint; a plain-http one (a
local fake, as the tests use) gets anonymous credentials: the rule of runtime.gcp.compute's
`client_kwargs`, which discovery on instances uses too. Exit codes: 0 no problems, 2 problems
(or bad input), 1 the API could not be asked.
"""

from __future__ import annotations

from infra.spec import load_stack
from runtime.errors import EXIT_OK, BadInput

CLOUDS = ("gcp",)


def cmd_preflight(args) -> int:
    stack = load_stack(args.spec)
    cloud = stack.spec.cloud
    if cloud not in CLOUDS:
        raise BadInput(f"cloud: preflight asks {', '.join(CLOUDS)} (got {cloud!r}; an AWS stack's capacity is "
                       "checked by `gpufleet plan`)")
    from infra.targets.gcp import fleet_needs, find_credentials
    from infra.targets.gcp_preflight import preflight
    from runtime.gcp.compute import client_kwargs

    if not args.endpoint:
        find_credentials()
    needs = fleet_needs(stack)
    problems = preflight(stack.gcp.project, stack.spec.region, list(stack.gcp.zones), needs,
                         **(client_kwargs(args.endpoint) if args.endpoint else {}))
    if problems:
        raise BadInput(problems)
    print(f"preflight: {len(needs)} group(s) of {stack.name} fit in {', '.join(stack.gcp.zones)} "
          f"(project {stack.gcp.project}): machine types, GPU types and GPU quotas")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("preflight", help="ask the cloud whether the stack's fleets can exist (GCP: zones, "
                                          "machine and GPU types, GPU quotas)")
    p.add_argument("spec", help="the stack spec (YAML)")
    p.add_argument("--endpoint", metavar="URL", help="the Compute Engine API endpoint (default Google's; "
                                                      "http:// gets anonymous credentials, e.g. a local fake)")
    p.set_defaults(func=cmd_preflight)
