"""``tarexport save`` with the profiles of Docker 26, 28 and the containerd store; --platform."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from test_cli import CLI, REPO, assert_error

EXAMPLE = f"oci:{REPO / 'examples' / 'hello'}"


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "store")


@pytest.mark.parametrize(
    ("spelling", "blob_mode"),
    [("docker-26", 0o644), ("28", 0o644), ("28-containerd", 0o444),
     ("DOCKER_28_CONTAINERD", 0o444)],
)
def test_every_profile_is_selectable(cli: CLI, spelling: str, blob_mode: int) -> None:
    archive = cli.ok("save", "--from", EXAMPLE, "--profile", spelling, "hello:latest").stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        blobs = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("blobs/")]
    assert blobs and {m.mode for m in blobs} == {blob_mode}


def test_platform_selects_or_refuses_before_writing(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    cli.ok("save", "--from", EXAMPLE, "--platform", "linux/amd64", "-o", str(out), "hello:latest")
    assert out.stat().st_size > 0
    refused = tmp_path / "refused.tar"
    proc = cli("save", "--from", EXAMPLE, "--platform", "linux/arm64", "-o", str(refused),
               "hello:latest")
    assert_error(proc, "no suitable export target found for platform linux/arm64")
    assert not refused.exists()


def test_platform_must_be_os_and_architecture(cli: CLI) -> None:
    proc = cli("save", "--from", EXAMPLE, "--platform", "linux", "hello:latest")
    assert proc.returncode == 2
    assert b"invalid platform 'linux'" in proc.stderr
