"""The peer harness's own rules: when a missing peer skips and when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import DOCKER_HOST_VARIABLE, DockerCLI, DockerScratch, missing_peer, peers_required


@pytest.mark.parametrize(
    "environ",
    [{"CI": "true"}, {"CI": "TRUE"}, {"CI": "True"}, {"CI": "1"}, {"CI": " true\n"}],
    ids=repr,
)
def test_ci_requires_peers(environ: dict[str, str]) -> None:
    assert peers_required(environ)


@pytest.mark.parametrize(
    "environ",
    [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}, {"CI": "no"}, {"GITHUB_ACTIONS": "true"}],
    ids=repr,
)
def test_peers_optional_outside_ci(environ: dict[str, str]) -> None:
    assert not peers_required(environ)


def test_missing_peer_skips_outside_ci() -> None:
    with pytest.raises(pytest.skip.Exception, match="no such thing"):
        missing_peer("no such thing", {"CI": "false"})


def test_missing_peer_fails_under_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match="no such thing"):
        missing_peer("no such thing", {"CI": "true"})


def test_unset_docker_host_skips_outside_ci() -> None:
    with pytest.raises(pytest.skip.Exception, match=DOCKER_HOST_VARIABLE):
        DockerCLI.connect({})


def test_unset_docker_host_fails_under_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match=DOCKER_HOST_VARIABLE):
        DockerCLI.connect({"CI": "1"})


def test_unanswering_daemon_fails_under_ci(tmp_path: Path) -> None:
    # Without a docker CLI on PATH the reason differs, but it is a failure either way.
    with pytest.raises(pytest.fail.Exception, match="unavailable"):
        DockerCLI.connect({"CI": "true", DOCKER_HOST_VARIABLE: f"unix://{tmp_path}/absent.sock"})


def test_unanswering_daemon_skips_outside_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="unavailable"):
        DockerCLI.connect({DOCKER_HOST_VARIABLE: f"unix://{tmp_path}/absent.sock"})


@pytest.mark.parametrize(
    ("ref", "template"),
    [
        ("localhost:5000/a/b:c", "localhost:5000/a/b-{}:c"),
        ("Example.com:443/x", "Example.com:443/x-{}"),
        ("docker.io/library/plain:1", "docker.io/library/plain-{}:1"),
        ("app", "app-{}"),
        ("app@sha256:" + "0" * 64, "app-{}@sha256:" + "0" * 64),
    ],
)
def test_unique_names_keep_domain_depth_and_tag(ref: str, template: str) -> None:
    scratch = DockerScratch(DockerCLI("docker", "unix:///nonexistent.sock"))
    assert scratch.unique(ref) == template.format(scratch.token)
    assert DockerScratch(scratch).token != scratch.token
