"""A fresh "VM" on this machine: private mount and network namespaces that a bootstrap runs in.

An `Instance` is a process held in its own mount, network and UTS namespaces (`unshare --mount
--net --uts`), which stands in for an instance the cloud just launched:

- network: only loopback (plus `eth0` on a bridge for a training fleet, `Fabric`, with EC2's
  `ip-A-B-C-D` hostname resolving to the address, as the VPC's DNS would). No route to
  anything else, so a step that reaches for PyPI or the internet fails, as it would in a VPC
  without a NAT. 169.254.169.254 is on `lo`, where a fake IMDSv2 (`fake_imds_in`) answers on port 80.
- the cloud's APIs: `127.0.0.1:PORT` inside the namespace is relayed (`Relay`) to the AWS
  emulator (moto) in the host's namespace, through a listening socket made inside the namespace.
  It stands for the regional endpoints a VPC reaches (the S3 gateway endpoint and the API
  endpoints); nothing else of the host is reachable.
- filesystem: the host's, with every place a bootstrap writes made private: /etc and /var are
  overlays whose writes land in a tmpfs, /opt, /tmp, /usr/local/bin and /root/.cache are tmpfs,
  /dev/console is a file (the "serial console" a test reads), and /usr/bin/systemctl is a
  stand-in (tests/bootstrap/standins.py) bind-mounted over the real one; `python3` on PATH is the image's (a
  wrapper that execs the given interpreter: a symlink would make it find another stdlib), and
  `aws` the real CLI when this machine has one, else a boto3 stand-in (standins.py) for the
  commands the bootstrap runs. Nothing leaks to the host, and the
  namespace disappears with its last process.

Sockets are made inside a namespace by a short-lived thread that `setns(2)`s into it (network
namespaces are per thread); the servers themselves run in this process, so a test changes the
metadata (a spot notice) by assigning to a dict.

Everything here needs root and unshare(2); `unavailable()` says why not, for a skip reason.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from metadata_fake import FakeMetadata  # noqa: E402

CLONE_NEWNET = 0x40000000
IMDS_ADDRESS = "169.254.169.254"
# What a cloud-init runs user_data with, plus the AWS SDK settings an instance gets from its
# role and the environment: credentials here are the emulator's ("test"); AWS_ENDPOINT_URL
# points the CLI and boto3 at the relayed emulator instead of the regional endpoints.
# Where an instance has the image's Python environment: the Deep Learning AMI's place for its
# PyTorch venv (copied in: the host's copy may be under /tmp, which the instance has its own of).
IMAGE_DIR = "/opt/pytorch"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The host folders an instance gets a private tmpfs over (see Instance._setup).
PRIVATE = ("/opt", "/tmp", "/root/.cache", "/usr/local/bin")


def host_folders_to_keep() -> list[str]:
    """The checkout and this Python's environment where they lie under a PRIVATE folder (a clone
    under /tmp, as CI's may be): the instance must still see them, for the stand-ins and the
    Python that runs them."""
    checkout = str(Path(__file__).resolve().parents[2])
    wanted = {checkout, str(Path(sys.prefix).resolve()), str(Path(sys.base_prefix).resolve())}
    under = [w for w in wanted if any(w == d or w.startswith(d + "/") for d in PRIVATE)]
    return [w for w in sorted(under) if not any(w.startswith(o + "/") for o in under)]

def unavailable() -> str | None:
    """Why private namespaces cannot be made here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "needs root: unshare of mount and network namespaces (CI runs as root)"
    for tool in ("unshare", "nsenter", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (util-linux / iproute2)"
    proc = subprocess.run(["unshare", "--mount", "--net", "--uts", "--fork", "true"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"unshare --mount --net is not permitted here: {proc.stderr.strip() or proc.returncode}"
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(pid: int, kind=socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside the network namespace of `pid` (by a thread that joins it)."""
    out: dict = {}

    def make():
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                out["error"] = OSError(ctypes.get_errno(), "setns into the instance's network namespace")
                return
            out["sock"] = socket.socket(socket.AF_INET, kind)
        finally:
            os.close(fd)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class Relay:
    """127.0.0.1:port inside a namespace -> `target` in this one, counting the bytes each way."""

    def __init__(self, pid: int, port: int, target: tuple[str, int]):
        self.target, self.bytes_in, self.bytes_out = target, 0, 0
        self.sock = socket_in(pid)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            threading.Thread(target=self._pipe, args=(conn, up, "out"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, conn, "in"), daemon=True).start()

    def _pipe(self, src, dst, direction):
        try:
            while chunk := src.recv(1 << 16):
                dst.sendall(chunk)
                if direction == "in":
                    self.bytes_in += len(chunk)
                else:
                    self.bytes_out += len(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._closed = True
        self.sock.close()


def fake_imds_in(pid: int, values: dict) -> FakeMetadata:
    """The fake IMDSv2 (tests/metadata_fake.py) at 169.254.169.254:80 inside the namespace of `pid`."""
    sock = socket_in(pid)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((IMDS_ADDRESS, 80))
    sock.listen(32)
    return FakeMetadata(values, sock=sock)


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


class Namespace:
    """A process held in new mount, network and UTS (hostname) namespaces (`sleep` under `unshare --fork`)."""

    def __init__(self, name: str):
        self.name = name
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--uts", "--fork", "--kill-child", "--propagation", "private",
             "sh", "-c", "echo $$; exec sleep infinity"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.pid = int(self.holder.stdout.readline())
        self.netns = _netns_inode(self.pid)

    def run(self, *argv: str, env: dict | None = None, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess:
        """argv inside the namespaces (nsenter), its output captured."""
        proc = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-n", "-u", "--", *argv], capture_output=True,
                              text=True, env=env, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, **kw)

    def path(self, instance_path: str) -> Path:
        """A path as the namespace sees it (through /proc/PID/root: its mounts, not the host's)."""
        return Path(f"/proc/{self.pid}/root") / instance_path.lstrip("/")

    def pids(self) -> list[int]:
        """Every process in this network namespace (the holder, and all the bootstrap started)."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid() and _netns_inode(int(entry)) == self.netns:
                out.append(int(entry))
        return out

    def close(self):
        """Kill every process of the namespace by pid; the namespaces go with the last one."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.holder.stdout.close()


class Instance(Namespace):
    """A fresh instance: the namespaces, their private filesystem, IMDS and the emulator relay.

    `image` is a venv on the host standing for the GPU image's Python environment (torch and the
    rest, no gpufleet: tests/bootstrap/conftest.py builds it), copied to IMAGE_DIR, and
    `python3` on PATH is its interpreter; without one, `python3` is `python` (an image without
    torch).
    """

    def __init__(self, name: str, tools: Path, emulator: tuple[str, int], metadata: dict,
                 image: Path | None = None, python: str = sys.executable):
        super().__init__(name)
        self.emulator_port = emulator[1]
        self.image = image
        try:
            self._setup(tools, f"{IMAGE_DIR}/bin/python3" if image else python)
            self.imds = fake_imds_in(self.pid, metadata)
            self.relay = Relay(self.pid, self.emulator_port, emulator)
        except BaseException:
            super().close()
            raise

    def _setup(self, tools: Path, image_python: str):
        kept = host_folders_to_keep()
        keep = "".join(f"mkdir -p /mnt/keep/{i} && mount --bind {path} /mnt/keep/{i}\n" for i, path in enumerate(kept))
        restore = "".join(f"mkdir -p {path} && mount --bind /mnt/keep/{i} {path}\n" for i, path in enumerate(kept))
        # /mnt is this instance's scratch tmpfs (the overlays' upper folders), made first so
        # that later tmpfs mounts (over /tmp, where `tools` may live) do not hide what it needs.
        self.sh(f"""
ip link set lo up
ip addr add {IMDS_ADDRESS}/32 dev lo
mount -t tmpfs -o mode=0755 scratch /mnt
mkdir -p /mnt/etc.u /mnt/etc.w /mnt/var.u /mnt/var.w /mnt/bin
cp -a {tools}/. /mnt/bin/
{f"cp -a {self.image} /mnt/image" if self.image else ":"}
{keep}printf '#!/bin/sh\nexec %s "$@"\n' {image_python} >/mnt/bin/python3 && chmod 755 /mnt/bin/python3
mount -t overlay overlay -o lowerdir=/etc,upperdir=/mnt/etc.u,workdir=/mnt/etc.w /etc
mount -t overlay overlay -o lowerdir=/var,upperdir=/mnt/var.u,workdir=/mnt/var.w /var
mount -t tmpfs tmpfs /etc/systemd
mkdir -p /etc/systemd/system /var/log /var/lib
mount -t tmpfs -o mode=0755 tmpfs /opt
{f"mv /mnt/image {IMAGE_DIR}" if self.image else ":"}
mount -t tmpfs -o mode=1777 tmpfs /tmp
if [ -d /root/.cache ]; then mount -t tmpfs tmpfs /root/.cache; fi
mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin
cp -a /mnt/bin/python3 /mnt/bin/aws /usr/local/bin/
{restore}mount --bind /mnt/bin/systemctl {shutil.which('systemctl') or '/usr/bin/systemctl'}
: >/var/log/console
mount --bind /var/log/console /dev/console
""")

    def environment(self, region: str) -> dict:
        """The environment user_data runs with (see BASE_PATH); the unit inherits it."""
        return {"PATH": BASE_PATH, "HOME": "/root", "LANG": "C.UTF-8",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.emulator_port}",
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": region,
               # a fresh VM has no pip configuration (this machine's points at local caches)
               "PIP_CONFIG_FILE": os.devnull, "OMP_NUM_THREADS": "1"}

    def boot(self, user_data: str, region: str, timeout: float = 180) -> tuple[int, float]:
        """Run user_data as cloud-init would (bash, as root); (exit code, seconds)."""
        self.path("/var/lib/cloud/instance").mkdir(parents=True, exist_ok=True)
        self.path("/var/lib/cloud/instance/user-data.txt").write_text(user_data)
        start = time.monotonic()
        proc = self.run("bash", "/var/lib/cloud/instance/user-data.txt", env=self.environment(region),
                        check=False, timeout=timeout)
        return proc.returncode, time.monotonic() - start

    def console(self) -> str:
        return self.path("/var/log/console").read_text()

    def bootstrap_log(self) -> str:
        path = self.path("/var/log/gpufleet-bootstrap.log")
        return path.read_text() if path.exists() else ""

    def unit_log(self, role: str) -> str:
        path = self.path(f"/var/log/gpufleet-{role}.service.log")
        return path.read_text() if path.exists() else ""

    def unit_exit(self, role: str) -> int | None:
        path = self.path(f"/var/lib/systemctl-standin/gpufleet-{role}.service.status")
        return int(path.read_text()) if path.exists() else None

    def unit_started(self, role: str) -> bool:
        return self.path(f"/var/lib/systemctl-standin/gpufleet-{role}.service.pid").exists()

    def http_get(self, url: str, timeout: float = 5) -> tuple[int, str]:
        """curl inside the namespace: (HTTP status or 0, body)."""
        proc = self.run("curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", url, check=False, timeout=timeout + 5)
        body, _, code = proc.stdout.rpartition("\n")
        return int(code or 0), body

    def http_post(self, url: str, data: str, timeout: float = 10) -> tuple[int, str]:
        proc = self.run("curl", "-s", "-m", str(timeout), "-H", "content-type: application/json", "--data-binary",
                        data, "-w", "\n%{http_code}", url, check=False, timeout=timeout + 5)
        body, _, code = proc.stdout.rpartition("\n")
        return int(code or 0), body

    def close(self):
        for part in ("relay", "imds"):
            if hasattr(self, part):
                getattr(self, part).close()
        super().close()


class Fabric(Namespace):
    """A third network namespace holding a bridge; `attach` puts an instance's eth0 on it."""

    def __init__(self, name: str = "fabric"):
        super().__init__(name)
        self.sh("ip link set lo up; ip link add br0 type bridge; ip link set br0 up")
        self.ports = 0

    def attach(self, inst: Instance, address: str, prefix: int):
        self.ports += 1
        port = f"p{self.ports}"
        self.sh(f"ip link add {port} type veth peer name eth0 netns {inst.pid}; "
                f"ip link set {port} master br0; ip link set {port} up")
        # EC2's hostname for the address, resolving to it (the VPC's DNS does that on AWS):
        # gloo finds the address it announces to its peers from the hostname.
        host = "ip-" + address.replace(".", "-")
        inst.sh(f"ip addr add {address}/{prefix} dev eth0; ip link set eth0 up; hostname {host}; "
                f"echo '{address} {host}' >>/etc/hosts")
