"""The local fleet manager: serving replicas behind HAProxy on one machine, and their autoscaler.

What the local target (infra.targets.local) starts as a process of its own,
`python -m runtime.fleet DIR`; it reads a `FleetConfig` from DIR, never a spec.

config.py (`FleetConfig`: what to run, as data), manager.py (`FleetManager`: replicas,
HAProxy, the autoscaler loop), policy.py (the target-tracking rule, pure), scrape.py (a
replica's scaling metric), haproxy.py (HAProxy's runtime API and server options), state.py
(the state directory's files and process records by pid and start time).
"""
