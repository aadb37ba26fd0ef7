"""The serving contract: /openapi.json and a real replica agree, as schemathesis checks them.

schemathesis loads the schema from a replica over HTTP and runs its engine on it, the same run
as `st run URL/openapi.json --checks all` (what a new user would try): its coverage phase
(boundary values, wrong types, unsupported methods, missing and wrong content types) and its
fuzzing phase generate schema-valid and schema-violating requests, and every check it has
judges each answer: no 5xx, only documented status codes and content types, bodies that match
their schemas, invalid data refused, valid data accepted, a correct Allow header on 405, ...

Deterministic: a fixed seed, derandomized generation, no example database, one worker (a
sequential client never fills the queue, so no 429 or 504 depends on timing) and a fixed
number of examples per operation.

Why the engine and not `schemathesis.pytest.from_fixture`: that loader sets a private pytest
attribute (`Function._nodeid`) that pytest 9 no longer has, and fails before running a case.
"""

from __future__ import annotations

import schemathesis
from schemathesis.engine import Status, StopReason, events, from_schema

MAX_EXAMPLES = 300  # per operation, for the fuzzing phase; the coverage phase adds its own cases


def _config() -> schemathesis.Config:
    config = schemathesis.Config.from_dict({
        "seed": 11,
        "workers": 1,
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": True}},
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    })
    config.projects.override.checks.update(included_check_names=["all"])  # the CLI's --checks all
    return config


def run_schemathesis(url: str) -> dict:
    """Run every phase and check against the replica at `url`; what was tested and what failed."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_config())
    # schemathesis leaves out the operation that served the schema unless a filter names it;
    # a filter naming every path keeps GET /openapi.json in.
    schema = schema.include(path_regex="^/")
    seen = {"failures": [], "errors": [], "checks": set(), "cases": {}, "stop": None}
    for event in from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            recorder = event.recorder
            for case_id, nodes in recorder.checks.items():
                case = recorder.cases[case_id].value
                label = f"{case.method.upper()} {case.path}"
                seen["cases"][label] = seen["cases"].get(label, 0) + 1
                for node in nodes:
                    seen["checks"].add(node.name)
                    if node.status == Status.FAILURE:
                        info = node.failure_info
                        seen["failures"].append(f"{node.name}: {info.failure.title}\n{info.failure.message}\n"
                                                f"{info.code_sample}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            seen["errors"].append(repr(getattr(event, "value", None) or getattr(event, "exception", None)))
        elif isinstance(event, events.EngineFinished):
            seen["stop"] = event.stop_reason
            seen["failures"] += [f"{f.title}\n{f.message}" for f in event.failures]
    return seen


def test_replica_keeps_its_openapi_contract(replica, artifacts):
    r = replica("--model", str(artifacts["mlp"]))
    seen = run_schemathesis(r.url)
    assert not seen["errors"], seen["errors"]
    assert not seen["failures"], "\n\n".join(seen["failures"])
    assert seen["stop"] == StopReason.COMPLETED
    documented = {"POST /v1/predict", "GET /livez", "GET /readyz", "GET /metrics", "GET /openapi.json"}
    assert documented <= set(seen["cases"]), seen["cases"]
    assert seen["cases"]["POST /v1/predict"] >= MAX_EXAMPLES, seen["cases"]
    for check in ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                  "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
                  "positive_data_acceptance", "unsupported_method", "allow_header_conformance"):
        assert check in seen["checks"], sorted(seen["checks"])
