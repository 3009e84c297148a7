"""Real peers for tests: a Docker daemon (through its CLI), skopeo and umoci.

Peer tests are marked ``@pytest.mark.peer`` and get their peer from a fixture in
``conftest.py``. A missing peer skips the test on a developer machine, but fails it under
CI (``CI=true`` or ``CI=1``), so a CI run can never go green by skipping every peer test.

The Docker 20.10 daemon is named by ``TAREXPORT_TEST_DOCKER_HOST``
(``unix:///path/to/docker.sock``). Every real daemon, 20.10 and the newer generations in both
image stores, is described by ``TAREXPORT_TEST_DAEMONS``: a JSON object from a daemon name
(``20.10``, ``26``, ``26c``, ``28``, ``28c``; ``c`` for the containerd image store) to its
``host``, ``cli`` (the docker CLI of that generation), ``data_root`` and ``containerd``.
``.ci/peers.sh start`` starts them all and prints both variables; ``.ci/run`` does so.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Union

import pytest

DOCKER_HOST_VARIABLE = "TAREXPORT_TEST_DOCKER_HOST"
DAEMONS_VARIABLE = "TAREXPORT_TEST_DAEMONS"
DAEMON_NAMES = ("20.10", "26", "26c", "28", "28c")
GRAPHDRIVER_DAEMONS = ("20.10", "26", "28")
"""The daemons with the graphdriver image store (parametrize ``daemon`` indirectly with it)."""
"""Every daemon CI runs: Docker 20.10, 26.1.5 and 28.5.2; ``c``: the containerd image store."""
# A safety net against a wedged peer, not a performance assertion.
COMMAND_TIMEOUT = 600.0

# The client's own defaults would fight with `-H` (a context) or point elsewhere.
_CLIENT_VARIABLES_TO_DROP = (
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
)


def peers_required(environ: Mapping[str, str]) -> bool:
    """Whether a missing peer is a failure: under CI (``CI`` is ``true`` or ``1``)."""
    return environ.get("CI", "").strip().lower() in ("true", "1")


def missing_peer(reason: str, environ: Optional[Mapping[str, str]] = None) -> NoReturn:
    """Skip the current test because a peer is missing, or fail it under CI."""
    if peers_required(os.environ if environ is None else environ):
        pytest.fail(f"peer required under CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"peer unavailable: {reason}")


class PeerCommandError(subprocess.CalledProcessError):
    """A peer command exited non-zero; ``str()`` includes the end of its stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.decode("utf-8", "replace") if isinstance(self.stderr, bytes) else ""
        tail = stderr.strip()[-2000:]
        return f"{super().__str__()}\nstderr: {tail}" if tail else super().__str__()


def run_command(
    argv: Sequence[str],
    *,
    input: Optional[bytes] = None,
    check: bool = True,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a peer command, capturing its output as bytes; raise on failure if ``check``."""
    proc = subprocess.run(
        list(argv),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=None if env is None else dict(env),
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise PeerCommandError(proc.returncode, list(argv), proc.stdout, proc.stderr)
    return proc


class Tool:
    """A peer command-line tool (skopeo, umoci) found on ``PATH``."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    @classmethod
    def find(cls, name: str) -> Tool:
        """The tool named ``name``; skips (fails under CI) when it is not on ``PATH``."""
        path = shutil.which(name)
        if path is None:
            missing_peer(f"{name} is not on PATH")
        return cls(path)

    def run(
        self, *args: str, input: Optional[bytes] = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return run_command([self.binary, *args], input=input, check=check)

    def version(self) -> str:
        """The first line ``--version`` prints."""
        out = self.run("--version").stdout.decode("utf-8", "replace").strip()
        return out.splitlines()[0] if out else ""


class DockerCLI:
    """The docker CLI pointed at one daemon with ``-H``.

    ``name`` is the daemon's name in :data:`DAEMON_NAMES`; ``containerd`` tells whether it
    uses the containerd image store (image IDs are then manifest digests); ``data_root`` is
    its data root, for reading it without the daemon.
    """

    def __init__(
        self,
        binary: str,
        host: str,
        *,
        name: str = "20.10",
        containerd: bool = False,
        data_root: Optional[str] = None,
    ) -> None:
        self.binary = binary
        self.host = host
        self.name = name
        self.containerd = containerd
        self.data_root = data_root
        self._env = {k: v for k, v in os.environ.items() if k not in _CLIENT_VARIABLES_TO_DROP}

    @classmethod
    def connect(cls, environ: Optional[Mapping[str, str]] = None) -> DockerCLI:
        """The daemon named by ``TAREXPORT_TEST_DOCKER_HOST``, checked to answer.

        Skips (fails under CI) when the variable is unset, the CLI is missing, or the
        daemon does not answer.
        """
        env = os.environ if environ is None else environ
        host = env.get(DOCKER_HOST_VARIABLE, "").strip()
        if not host:
            missing_peer(f"{DOCKER_HOST_VARIABLE} is not set", env)
        binary = shutil.which("docker")
        if binary is None:
            missing_peer("the docker CLI is not on PATH", env)
        cli = cls(binary, host)
        cli._check_answers(env)
        return cli

    @classmethod
    def connect_named(cls, name: str, environ: Optional[Mapping[str, str]] = None) -> DockerCLI:
        """The daemon ``name`` (see :data:`DAEMON_NAMES`) from ``TAREXPORT_TEST_DAEMONS``.

        Skips (fails under CI) when the variable is unset or lacks it, or it does not answer.
        """
        env = os.environ if environ is None else environ
        raw = env.get(DAEMONS_VARIABLE, "").strip()
        if not raw:
            missing_peer(f"{DAEMONS_VARIABLE} is not set", env)
        try:
            daemons = json.loads(raw)
            spec = daemons[name]
            cli = cls(spec["cli"], spec["host"], name=name, containerd=bool(spec["containerd"]),
                      data_root=spec.get("data_root"))
        except (ValueError, KeyError, TypeError) as exc:
            missing_peer(f"{DAEMONS_VARIABLE} has no usable entry {name!r}: {exc}", env)
        cli._check_answers(env)
        return cli

    def _check_answers(self, env: Mapping[str, str]) -> None:
        cli, host = self, self.host
        try:
            proc = cli.run("version", "--format", "{{.Server.APIVersion}}", check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            missing_peer(f"docker daemon at {host} did not answer: {exc}", env)
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            missing_peer(f"docker daemon at {host} did not answer: {stderr}", env)

    def run(
        self, *args: str, input: Optional[bytes] = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """``docker -H HOST ARGS...``, output captured as bytes."""
        return run_command(
            [self.binary, "-H", self.host, *args], input=input, check=check, env=self._env
        )

    def server_version(self) -> Dict[str, Any]:
        """The daemon's ``Server`` section of ``docker version`` (Version, ApiVersion, ...)."""
        out = self.run("version", "--format", "{{json .Server}}").stdout
        result: Dict[str, Any] = json.loads(out)
        return result

    def inspect(self, ref: str) -> Dict[str, Any]:
        """``docker image inspect REF`` as a dict."""
        out = self.run("image", "inspect", ref).stdout
        found: List[Dict[str, Any]] = json.loads(out)
        return found[0]

    def exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def import_tar(self, tar_bytes: bytes, ref: Optional[str] = None) -> str:
        """``docker import`` a layer tar as an image; returns its ID (``sha256:...``)."""
        args = ["import", "-", *([ref] if ref else [])]
        return self.run(*args, input=tar_bytes).stdout.decode().strip()

    def load(self, archive: Union[Path, bytes]) -> List[str]:
        """``docker load`` an archive (path or bytes); returns what it loaded.

        Each entry is a name (``repo:tag``) or, for untagged images, an ID.
        """
        if isinstance(archive, Path):
            out = self.run("load", "-i", str(archive)).stdout
        else:
            out = self.run("load", input=archive).stdout
        loaded = []
        for line in out.decode("utf-8", "replace").splitlines():
            for prefix in ("Loaded image: ", "Loaded image ID: "):
                if line.startswith(prefix):
                    loaded.append(line[len(prefix) :].strip())
        return loaded

    def save(self, *names: str) -> bytes:
        """``docker save NAMES...``: the archive's bytes."""
        return self.run("save", *names).stdout

    def tag(self, source: str, target: str) -> None:
        self.run("tag", source, target)

    def rmi(self, *refs: str, force: bool = True, check: bool = True) -> None:
        if refs:
            self.run("rmi", *(["--force"] if force else []), *refs, check=check)

    def image_ids(self) -> Dict[str, List[str]]:
        """Every image ID in the daemon, with its tags (``[]`` for untagged images)."""
        out = self.run("image", "ls", "--all", "--no-trunc", "--format", "{{json .}}").stdout
        images: Dict[str, List[str]] = {}
        for line in out.decode().splitlines():
            row = json.loads(line)
            tags = images.setdefault(row["ID"], [])
            if row["Repository"] != "<none>" and row["Tag"] != "<none>":
                tags.append(f"{row['Repository']}:{row['Tag']}")
        return images


class DockerScratch(DockerCLI):
    """A :class:`DockerCLI` for one test: unique names, and cleanup of what it made.

    Names from :meth:`unique` carry a per-test token; :meth:`cleanup` removes every
    image tagged with it, and every image this object imported or loaded.
    """

    def __init__(self, cli: DockerCLI) -> None:
        super().__init__(cli.binary, cli.host, name=cli.name, containerd=cli.containerd,
                         data_root=cli.data_root)
        self.token = secrets.token_hex(4)
        self._made: List[str] = []

    def unique(self, ref: str) -> str:
        """``ref`` with ``-<token>`` appended to its last path component.

        The domain, path depth and tag stay as given, so normalisation rules
        (``docker.io/library/``, ``host:port``) still apply to the result.
        """
        name, at, digest = ref.partition("@")
        slash = name.rfind("/")
        colon = name.rfind(":")
        tag = ""
        if colon > slash:
            name, tag = name[:colon], name[colon:]
        return f"{name}-{self.token}{tag}{at}{digest}"

    def import_tar(self, tar_bytes: bytes, ref: Optional[str] = None) -> str:
        image_id = super().import_tar(tar_bytes, ref)
        self._made.append(image_id)
        return image_id

    def load(self, archive: Union[Path, bytes]) -> List[str]:
        loaded = super().load(archive)
        for ref in loaded:
            proc = self.run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
            if proc.returncode == 0:
                self._made.append(proc.stdout.decode().strip())
        return loaded

    def cleanup(self) -> None:
        """Remove the images this test made (by ID, so every tag goes with them)."""
        doomed = set(self._made)
        for image_id, tags in self.image_ids().items():
            if any(self.token in tag for tag in tags):
                doomed.add(image_id)
        # A parent cannot go while a child still exists, so retry what a pass left.
        for _ in range(4):
            left = set(self.image_ids())
            doomed &= left
            if not doomed:
                break
            for image_id in sorted(doomed):
                self.rmi(image_id, check=False)
        self._made.clear()
