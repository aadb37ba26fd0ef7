"""The `local` target: a whole stack on this machine.

stack.py (`up`, `down`, `status`), fleet.py (the background fleet manager: replicas, HAProxy,
the autoscaler loop), policy.py (the target-tracking rule, pure), haproxy.py (config and
runtime API), state.py (build/<name>/local/ and process records), load.py (an open-loop load
generator), demo.py (the load ramp, report and plot of `make up`), cli.py (the commands).
"""
