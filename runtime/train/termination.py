"""Instance-termination notices: checkpoint, then let the instance go.

A training instance can be taken away two ways, both visible in instance metadata (IMDSv2):
- a spot interruption: `meta-data/spot/instance-action` exists (~2 minutes' warning);
- an Auto Scaling scale-in: `meta-data/autoscaling/target-lifecycle-state` turns "Terminated",
  and the group's termination lifecycle hook holds the instance in Terminating:Wait.

`TerminationWatcher` polls both on the node's local rank 0 and calls `on_notice(reason)`; the
worker turns that into a stop all ranks agree on, global rank 0 commits a checkpoint, all ranks
pass a barrier (the checkpoint is durable), and then `complete()` completes the lifecycle
action (CONTINUE) so Auto Scaling terminates the instance without waiting for the hook's
timeout. The group's other instances restart from that checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading

from runtime.imds import InstanceMetadata

log = logging.getLogger(__name__)


def autoscaling_client(region=None, endpoint=None):
    import boto3
    return boto3.client("autoscaling", region_name=region,
                        endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL") or None)


class TerminationWatcher:
    def __init__(self, on_notice, metadata_url="http://169.254.169.254", group=None, hook=None, region=None,
                 poll_s=5.0, endpoint=None, autoscaling=None):
        self.on_notice = on_notice
        self.metadata = InstanceMetadata(metadata_url)
        self.group, self.hook, self.region, self.endpoint = group, hook, region, endpoint
        self.poll_s = poll_s
        self._autoscaling = autoscaling
        self.reason = None
        self._stop = threading.Event()
        self._thread = None

    @property
    def autoscaling(self):
        if self._autoscaling is None:
            self._autoscaling = autoscaling_client(self.region, self.endpoint)
        return self._autoscaling

    def check(self):
        """The reason to stop ("spot", "autoscaling") or None."""
        if self.metadata.get("meta-data/spot/instance-action"):
            return "spot"
        if self.metadata.get("meta-data/autoscaling/target-lifecycle-state") == "Terminated":
            return "autoscaling"
        return None

    def _loop(self):
        while not self._stop.is_set():
            try:
                reason = self.check()
            except Exception:  # noqa: BLE001 - a metadata hiccup must not stop training
                log.exception("reading instance metadata failed")
                reason = None
            if reason:
                self.reason = reason
                self.on_notice(reason)
                return
            self._stop.wait(self.poll_s)

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True, name="termination-watcher")
        self._thread.start()

    def stop(self):
        self._stop.set()

    def complete(self):
        """After the checkpoint: complete the Auto Scaling lifecycle action, if there is one to complete."""
        if self.reason != "autoscaling" or not self.hook:  # a spot interruption has no action to complete
            return False
        instance = self.metadata.instance_id()
        group = self.group
        if not group:
            found = self.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
            group = found[0]["AutoScalingGroupName"] if found else None
        if not group:
            return False
        self.autoscaling.complete_lifecycle_action(LifecycleHookName=self.hook, AutoScalingGroupName=group,
                                                   InstanceId=instance, LifecycleActionResult="CONTINUE")
        return True
