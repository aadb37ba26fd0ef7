"""Instance-termination notices: checkpoint, then let the instance go.

On AWS a training instance can be taken away two ways, both visible in instance metadata (IMDSv2):
- a spot interruption: `meta-data/spot/instance-action` exists (~2 minutes' warning);
- an Auto Scaling scale-in: `meta-data/autoscaling/target-lifecycle-state` turns "Terminated",
  and the group's termination lifecycle hook holds the instance in Terminating:Wait.

On GCP (`cloud="gcp"`), a spot VM's preemption sets the GCE metadata value `instance/preempted`
to TRUE (~30 seconds' warning). The watcher holds a `wait_for_change` request on it (`poll_s`
seconds at a time, at least 1), so the notice arrives as soon as the server has it. A scale-in
of a managed instance group has no hook to hold the instance; its shutdown sends SIGTERM, which
the worker handles the same way.

`TerminationWatcher` polls both on the node's local rank 0 and calls `on_notice(reason)`; the
worker turns that into a stop all ranks agree on, global rank 0 commits a checkpoint, all ranks
pass a barrier (the checkpoint is durable), and then `complete()` completes the lifecycle
action (CONTINUE) so Auto Scaling terminates the instance without waiting for the hook's
timeout (on GCP there is nothing to complete). The group's other instances restart from that
checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
import threading

from runtime.imds import InstanceMetadata

log = logging.getLogger(__name__)


def autoscaling_client(region=None, endpoint=None):
    import boto3
    return boto3.client("autoscaling", region_name=region,
                        endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL") or None)


class TerminationWatcher:
    def __init__(self, on_notice, metadata_url=None, group=None, hook=None, region=None,
                 poll_s=5.0, endpoint=None, autoscaling=None, cloud="aws"):
        self.on_notice = on_notice
        self.cloud = cloud
        if cloud == "gcp":
            from runtime.gcp.metadata import GceMetadata
            self.metadata = GceMetadata(metadata_url)  # None: GCE_METADATA_HOST, else the real server
        else:
            self.metadata = InstanceMetadata(metadata_url or "http://169.254.169.254")
        self._etag = None
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
        """The reason to stop ("spot", "autoscaling"; "preempted" on GCP) or None, without waiting."""
        if self.cloud == "gcp":
            return "preempted" if self.metadata.preempted() else None
        if self.metadata.get("meta-data/spot/instance-action"):
            return "spot"
        if self.metadata.get("meta-data/autoscaling/target-lifecycle-state") == "Terminated":
            return "autoscaling"
        return None

    def _wait(self):
        """One round: GCP holds a wait_for_change request; AWS checks, then sleeps poll_s."""
        if self.cloud != "gcp":
            reason = self.check()
            if not reason:
                self._stop.wait(self.poll_s)
            return reason
        if self._etag is None:  # the first read: the value now, and the ETag to wait on
            value, self._etag = self.metadata.read("instance/preempted")
            preempted = (value or "").upper() == "TRUE"
            if not preempted and self._etag is None:  # nothing to wait on: poll instead
                self._stop.wait(self.poll_s)
        else:
            preempted, self._etag = self.metadata.wait_preempted(max(1, math.ceil(self.poll_s)), self._etag)
        return "preempted" if preempted else None

    def _loop(self):
        while not self._stop.is_set():
            try:
                reason = self._wait()
            except Exception:  # noqa: BLE001 - a metadata hiccup must not stop training
                log.exception("reading instance metadata failed")
                reason = None
                self._stop.wait(self.poll_s)
            if reason:
                self.reason = reason
                self.on_notice(reason)
                return

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True, name="termination-watcher")
        self._thread.start()

    def stop(self):
        self._stop.set()

    def complete(self):
        """After the checkpoint: complete the Auto Scaling lifecycle action, if there is one to complete."""
        if self.reason != "autoscaling" or not self.hook:  # spot, preemption: no action to complete
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
