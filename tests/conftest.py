"""Project-wide fixtures: peers (Docker daemon, skopeo, umoci) and Hypothesis profiles.

Shared helpers live in ``helpers.py`` (goldens, tar comparison) and ``peers.py``
(the peer clients); test modules import them directly (``from helpers import ...``).
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings
from peers import DAEMON_NAMES, DockerCLI, DockerScratch, Tool, peers_required

# No deadlines: a loaded two-core CI machine must not turn slowness into failures.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if peers_required(os.environ) else "dev")
)


@pytest.fixture(scope="session")
def docker_cli() -> DockerCLI:
    """The test daemon's CLI, shared by the session (no cleanup of its own)."""
    return DockerCLI.connect()


@pytest.fixture
def docker(docker_cli: DockerCLI) -> Iterator[DockerScratch]:
    """The test daemon for one test: ``docker.unique(ref)`` names, removed afterwards."""
    scratch = DockerScratch(docker_cli)
    try:
        yield scratch
    finally:
        scratch.cleanup()


_daemons: dict[str, DockerCLI] = {}


@pytest.fixture(params=DAEMON_NAMES)
def daemon(request: pytest.FixtureRequest) -> Iterator[DockerScratch]:
    """Each real daemon in turn (20.10, 26, 26c, 28, 28c), for one test, cleaned up after.

    ``daemon.name`` names it; ``daemon.containerd`` is true for the containerd image store.
    """
    name = request.param
    if name not in _daemons:
        _daemons[name] = DockerCLI.connect_named(name)
    scratch = DockerScratch(_daemons[name])
    try:
        yield scratch
    finally:
        scratch.cleanup()


@pytest.fixture(scope="session")
def skopeo() -> Tool:
    return Tool.find("skopeo")


@pytest.fixture(scope="session")
def umoci() -> Tool:
    return Tool.find("umoci")


PEER_FIXTURES = frozenset({"docker_cli", "docker", "daemon", "skopeo", "umoci", "podman"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a peer fixture as ``peer``, so ``-m "not peer"`` works."""
    for item in items:
        if PEER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.peer)
