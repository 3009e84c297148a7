"""The example image in ``examples/``: reproducible from its script, small, and loadable by Docker.

The README's first command saves it (``tarexport save --from oci:examples/hello hello:latest
-o hello.tar``) and hands it to ``docker load``; the peer test here runs exactly that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from peers import DockerScratch

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
LAYOUT = EXAMPLES / "hello"
SCRIPT = EXAMPLES / "build_hello.py"
TAG = "hello:latest"
TIMEOUT = 120.0

# What the script promises to put in the image (its own constants, restated as the spec).
CMD = ["/usr/local/bin/hello"]
ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "GREETING=Hello",
]
LABELS = {
    "org.opencontainers.image.title": "hello",
    "org.opencontainers.image.description": "The tarexport example image",
    "org.opencontainers.image.licenses": "Apache-2.0",
}
CREATED = "2024-01-01T00:00:00Z"
MTIME = 1704067200


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("TAREXPORT_STORE", None)
    return env


def files_under(root: Path) -> Dict[str, bytes]:
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in paths}


def blob(digest: str) -> bytes:
    algorithm, _, hex_ = digest.partition(":")
    return (LAYOUT / "blobs" / algorithm / hex_).read_bytes()


def manifest() -> Dict[str, Any]:
    index = json.loads((LAYOUT / "index.json").read_bytes())
    assert len(index["manifests"]) == 1
    descriptor = index["manifests"][0]
    assert descriptor["annotations"]["io.containerd.image.name"] == "docker.io/library/hello:latest"
    found: Dict[str, Any] = json.loads(blob(descriptor["digest"]))
    return found


def config() -> Dict[str, Any]:
    found: Dict[str, Any] = json.loads(blob(manifest()["config"]["digest"]))
    return found


def tarexport_command() -> List[str]:
    """The installed console script when there is one beside this Python, else ``-m``."""
    script = Path(sys.executable).parent / "tarexport"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "tarexport"]


# -- the committed layout ---------------------------------------------------------------------


def test_script_reproduces_the_committed_layout(tmp_path: Path) -> None:
    out = tmp_path / "hello"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)],
        capture_output=True, env=child_env(), cwd=tmp_path, timeout=TIMEOUT, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    built, committed = files_under(out), files_under(LAYOUT)
    assert sorted(built) == sorted(committed)
    differing = [name for name in committed if built[name] != committed[name]]
    assert not differing, f"rebuilt files differ from the committed ones: {differing}"


def test_script_twice_in_a_row_gives_the_same_bytes(tmp_path: Path) -> None:
    trees = []
    for name in ("a", "b"):
        subprocess.run(
            [sys.executable, str(SCRIPT), str(tmp_path / name)],
            env=child_env(), cwd=tmp_path, timeout=TIMEOUT, check=True, capture_output=True,
        )
        trees.append(files_under(tmp_path / name))
    assert trees[0] == trees[1]


def test_layout_is_small() -> None:
    total = sum(len(data) for data in files_under(LAYOUT).values())
    assert total < 16 * 1024, f"examples/hello is {total} bytes"


def test_every_blob_matches_its_digest() -> None:
    import hashlib

    for path in (LAYOUT / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_config_has_cmd_env_labels_and_a_fixed_date() -> None:
    cfg = config()
    assert cfg["config"]["Cmd"] == CMD
    assert cfg["config"]["Env"] == ENV
    assert cfg["config"]["Labels"] == LABELS
    assert cfg["created"] == CREATED
    assert (cfg["os"], cfg["architecture"]) == ("linux", "amd64")
    assert len(cfg["rootfs"]["diff_ids"]) == len(cfg["history"]) == 2


def _layers() -> List[List[tarfile.TarInfo]]:
    import hashlib
    import io

    layers = []
    cfg = config()
    for descriptor, diff_id in zip(manifest()["layers"], cfg["rootfs"]["diff_ids"]):
        data = blob(descriptor["digest"])
        # Uncompressed layers: the blob digest is the diff ID.
        assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            layers.append(archive.getmembers())
    return layers


def test_layers_hold_real_files_with_fixed_headers() -> None:
    layers = _layers()
    assert len(layers) == 2
    names = [[m.name for m in layer] for layer in layers]
    assert "usr/local/bin/hello" in names[0] and "etc/hello.conf" in names[0]
    assert "srv/hello/index.html" in names[1]
    for member in (m for layer in layers for m in layer):
        assert (member.uid, member.gid, member.mtime) == (0, 0, MTIME), member.name
        # Parents come before their children, as a tar of a real tree lists them.
        parent = member.name.rstrip("/").rpartition("/")[0]
        if parent:
            earlier = [m.name.rstrip("/") for m in layers[0] + layers[1]]
            assert parent in earlier[: earlier.index(member.name.rstrip("/"))]
    script = next(m for m in layers[0] if m.name == "usr/local/bin/hello")
    assert script.isfile() and script.mode == 0o755


# -- saving it --------------------------------------------------------------------------------


def _save_as_the_readme_says(workdir: Path) -> Path:
    """Run the README's command in a directory holding a copy of ``examples/``."""
    shutil.copytree(EXAMPLES, workdir / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    env = child_env()
    env["TAREXPORT_STORE"] = str(workdir / "store")  # never the user's own store
    proc = subprocess.run(
        [*tarexport_command(), "save", "--from", "oci:examples/hello", "hello:latest",
         "-o", "hello.tar"],
        capture_output=True, env=env, cwd=workdir, timeout=TIMEOUT, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return workdir / "hello.tar"


def test_readme_command_writes_a_docker_archive(tmp_path: Path) -> None:
    archive_path = _save_as_the_readme_says(tmp_path)
    with tarfile.open(archive_path) as archive:
        entries: Optional[Any] = archive.extractfile("manifest.json")
        assert entries is not None
        saved = json.load(entries)
    assert len(saved) == 1
    assert saved[0]["RepoTags"] == [TAG]
    image_id = manifest()["config"]["digest"]
    assert saved[0]["Config"] == "blobs/sha256/" + image_id.split(":")[1]
    assert saved[0]["Layers"] == [
        "blobs/sha256/" + d.split(":")[1] for d in config()["rootfs"]["diff_ids"]
    ]


@pytest.mark.peer
def test_readme_commands_load_into_docker(docker: DockerScratch, tmp_path: Path) -> None:
    archive_path = _save_as_the_readme_says(tmp_path)
    loaded = docker.load(archive_path)  # docker load -i hello.tar
    assert loaded == [TAG]
    inspected = docker.inspect(TAG)
    image_id = manifest()["config"]["digest"]
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Cmd"] == CMD
    assert inspected["Config"]["Env"] == ENV
    assert inspected["Config"]["Labels"] == LABELS
    assert inspected["Config"]["WorkingDir"] == "/srv/hello"
    assert inspected["RootFS"]["Layers"] == config()["rootfs"]["diff_ids"]
    assert inspected["Created"] == CREATED
