"""The warm-pool waiter: the unit's ExecStart on a warm-pooled instance (AWS).

`python -m runtime.warm_pool [the bootstrap's options] -- CMD...` runs from the venv the
bootstrap installed, so it lives beside the runtime rather than in the lone bootstrap script
(which must fit EC2's 16 KB of user data and runs before anything is installed). It:

1. polls the instance metadata's `autoscaling/target-lifecycle-state` and starts nothing until
   it says `InService`: a pre-warmed instance never serves from the pool, stopped or running;
2. runs CMD (the runtime), forwarding SIGTERM/SIGINT to it (systemd's KillSignal reaches the
   runtime, which drains);
3. once /readyz on the serving port answers 200, completes the launch lifecycle action
   (hook "<GPUFLEET_GROUP><warm_pool.launch_hook_suffix>") so the group puts the instance behind
   the load balancer only when it can answer; a failure to complete it is logged, and the hook's
   timeout then abandons the instance;
4. exits with CMD's exit status.

Lines go to the same console and log file as the bootstrap's, with the same prefix.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from runtime.bootstrap import (IN_SERVICE, Boot, Log, StepFailed, aws_complete_lifecycle, aws_metadata, boot_of,
                               lifecycle_state, metadata_url, parser, read_config)


def readyz(port: int) -> int | None:
    """The status /readyz answers on loopback, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


def when_in_service(boot: Boot, cmd: list[str]) -> int:
    """Wait for InService, run `cmd`, complete the launch hook after /readyz 200; `cmd`'s exit status."""
    log = Log(boot)
    try:
        config, env = read_config(boot)
    except StepFailed as e:
        log.line(f"waiter FAILED: {e}")
        return 1
    url, region = metadata_url(boot, "aws"), config.get("region", "")
    said = None
    while True:
        try:
            state = lifecycle_state(url, boot.metadata_timeout_s)
        except StepFailed as e:
            state = f"unknown ({e})"
        if state == IN_SERVICE:
            break
        if state != said:
            log.line(f"not serving: the instance is {state}; waiting for {IN_SERVICE}")
            said = state
        time.sleep(boot.poll_s)
    log.line(f"{IN_SERVICE}: starting the runtime")
    child = subprocess.Popen(cmd)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    port = int((config.get("serve") or {}).get("port") or 8080)
    start = time.monotonic()
    while child.poll() is None:
        if readyz(port) == 200:
            _complete_launch(boot, log, config, env, url, region, time.monotonic() - start)
            break
        time.sleep(min(boot.poll_s, 0.5))
    return child.wait()


def _complete_launch(boot: Boot, log: Log, config: dict, env: dict, url: str, region: str, after_s: float) -> None:
    group = env.get("GPUFLEET_GROUP", "")
    hook = group + (config.get("warm_pool") or {}).get("launch_hook_suffix", "-launch")
    try:
        instance = aws_metadata(url, "instance-id", boot.metadata_timeout_s)
        (boot.complete_lifecycle or aws_complete_lifecycle())(group, hook, instance, region)
        log.line(f"/readyz 200 after {after_s:.2f} s: launch lifecycle action {hook} completed")
    except Exception as e:  # noqa: BLE001 (the hook's timeout abandons the instance; say why)
        log.line(f"/readyz 200 but the launch lifecycle action {hook} was not completed: {e}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser("python -m runtime.warm_pool").error("the runtime's command goes after --")
    cut = argv.index("--")
    a = parser("python -m runtime.warm_pool", "Start the runtime once the instance is InService.").parse_args(argv[:cut])
    return when_in_service(boot_of(a), argv[cut + 1:])


if __name__ == "__main__":
    sys.exit(main())
