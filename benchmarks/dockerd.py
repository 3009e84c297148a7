"""The Docker daemon the benchmark compares against: found, or started privately and stopped.

The address comes from ``--docker-host``, else ``TAREXPORT_BENCH_DOCKER_HOST``, else
``DOCKER_HOST``. When none answers, the docker rows are skipped. ``--start-dockerd`` starts a
private daemon (``vfs`` storage, no networking) under the work directory instead, and stops
it (and the containerd it started) when the benchmark ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Docker", "connect", "private_daemon"]

HOST_VARIABLES = ("TAREXPORT_BENCH_DOCKER_HOST", "DOCKER_HOST")
# The client's own settings would fight with `-H`.
_CLIENT_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
_ANSWER_TIMEOUT = 20.0


@dataclass(frozen=True)
class Docker:
    """A reachable daemon: its address, the CLI to reach it, and its temporary directory."""

    host: str
    binary: str
    server_version: str
    tmp_dir: Optional[Path]  # where the daemon stages archives, when it is local and readable

    @property
    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in _CLIENT_VARIABLES}

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "-H", self.host, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 900.0) -> str:
        """Run a docker command; its stdout, or ``RuntimeError`` with its stderr."""
        proc = subprocess.run(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc.stdout.decode(errors="replace")

    def has_image(self, reference: str) -> bool:
        try:
            self.run("image", "inspect", "--format", "{{.Id}}", reference, timeout=60)
        except RuntimeError:
            return False
        return True


def host_from(option: Optional[str], environ: Mapping[str, str]) -> Optional[str]:
    """The daemon address: the option, else the first of :data:`HOST_VARIABLES` set."""
    if option:
        return option
    for variable in HOST_VARIABLES:
        value = environ.get(variable, "").strip()
        if value:
            return value
    return None


def connect(host: Optional[str], tmp_dir: Optional[Path] = None) -> tuple[Optional[Docker], str]:
    """A :class:`Docker` for ``host`` if it answers, else ``None`` and the reason why."""
    if not host:
        return None, "no daemon address (--docker-host, TAREXPORT_BENCH_DOCKER_HOST, DOCKER_HOST)"
    binary = shutil.which("docker")
    if binary is None:
        return None, "the docker CLI is not on PATH"
    probe = Docker(host, binary, "", None)
    try:
        version = probe.run(
            "version", "--format", "{{.Server.Version}}", timeout=_ANSWER_TIMEOUT
        ).strip()
        if tmp_dir is None:
            root = probe.run("info", "--format", "{{.DockerRootDir}}", timeout=_ANSWER_TIMEOUT)
            candidate = Path(root.strip()) / "tmp"
            tmp_dir = candidate if candidate.is_dir() else None
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return None, f"the daemon at {host} did not answer: {exc}"
    return Docker(host, binary, version, tmp_dir), ""


@contextmanager
def private_daemon(base: Path) -> Iterator[str]:
    """Start ``dockerd`` under ``base`` (a short path: socket paths must fit 108 bytes).

    Yields its address once it answers; stops it, its containerd, and anything it left
    mounted under ``base`` on the way out.
    """
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("--start-dockerd: dockerd is not on PATH")
    base.mkdir(parents=True, exist_ok=True)
    (base / "daemon.json").write_text("{}\n")  # keep the machine's daemon.json out of it
    host = f"unix://{base}/docker.sock"
    pidfile = base / "dockerd.pid"
    with open(base / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(
            [
                dockerd,
                "--config-file", str(base / "daemon.json"),
                "--data-root", str(base / "d"),
                "--exec-root", str(base / "x"),
                "--pidfile", str(pidfile),
                "--host", host,
                "--storage-driver", "vfs",
                "--iptables=false", "--ip6tables=false", "--bridge=none",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            docker, _ = connect(host, base / "d" / "tmp")
            if docker is not None:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (base / "dockerd.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"dockerd did not come up; the end of its log:\n{tail}")
            time.sleep(0.5)
        yield host
    finally:
        _stop(proc, base)


def _stop(proc: subprocess.Popen[bytes], base: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # dockerd stops the containerd it started, unless dockerd itself had to be killed.
    containerd_pid = base / "x" / "containerd" / "containerd.pid"
    with suppress(OSError, ValueError):
        os.kill(int(containerd_pid.read_text().strip()), signal.SIGKILL)
    prefix = str(base) + "/"
    mounts = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
