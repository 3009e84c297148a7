"""Transports against real peers: every Docker daemon over its Engine API, skopeo, umoci.

The `tarexport` command runs with a `PATH` that holds no `docker`: the daemon is reached over
its socket only. Expected values come from the goldens and from the daemon's own CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from craft import config_bytes, layer_tar, sha256
from golden_store import read_golden
from helpers import GOLDENS_DIR
from peers import GRAPHDRIVER_DAEMONS, DockerScratch, Tool
from test_transports import golden_contents, verified_contents

from tarexport import OCILayoutStore
from tarexport.transports.local import open_store

pytestmark = pytest.mark.peer


def tarexport(
    *args: str, tmp_path: Path, host: Optional[str] = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """The command, with no `docker` reachable on PATH and its own default store."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {
        "PATH": str(empty),
        "HOME": str(tmp_path),
        "TAREXPORT_STORE": str(tmp_path / "default-store"),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    (tmp_path / "tmp").mkdir(exist_ok=True)
    if host is not None:
        env["DOCKER_HOST"] = host
    proc = subprocess.run(
        [sys.executable, "-m", "tarexport", *args], env=env, capture_output=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tarexport {' '.join(args)}: {proc.stderr.decode()}")
    return proc


# -- docker-daemon: -------------------------------------------------------------------------

ROUND_TRIP = ("s10-base-and-derived-together", "s08-build-bigfile-3MiB", "s07-build-fszoo")


def unique_images(case: str, daemon: DockerScratch, tmp_path: Path) -> Dict[str, List[bytes]]:
    """The golden's images with a label of this test in their configs, in an OCI layout.

    The layers are the golden's; the image IDs are this test's own, so no other test of the
    shared daemons removes them by ID while this one runs. Returns name -> layer tars; the
    layout is ``tmp_path / case``, and each image's ID is ``sha256(config)`` of
    :func:`labelled`.
    """
    golden = read_golden(case)
    store = OCILayoutStore(tmp_path / case, create=True)
    made: Dict[str, List[bytes]] = {}
    for hex_, tags in golden_contents(case).items():
        (tag,) = tags
        repository, _, tagged = tag.rpartition(":")
        name = daemon.unique(f"cc16-{repository.split('/')[-1]}:{tagged}")
        store.add_image(labelled(golden.configs[hex_], daemon.token), golden.layers[hex_], [name])
        made[name] = golden.layers[hex_]
    return made


def labelled(config: bytes, token: str) -> bytes:
    value = json.loads(config)
    value["config"] = dict(value.get("config") or {}, Labels={"test.token": token})
    return json.dumps(value).encode()


def image_hex(case: str, name: str, daemon: DockerScratch) -> str:
    golden = read_golden(case)
    for hex_, tags in golden_contents(case).items():
        (tag,) = tags
        repository, _, tagged = tag.rpartition(":")
        if daemon.unique(f"cc16-{repository.split('/')[-1]}:{tagged}") == name:
            return hashlib.sha256(labelled(golden.configs[hex_], daemon.token)).hexdigest()
    raise KeyError(name)


@pytest.mark.parametrize("case", ROUND_TRIP)
def test_daemon_write_then_read_without_a_docker_cli(
    daemon: DockerScratch, case: str, tmp_path: Path
) -> None:
    for name, layers in unique_images(case, daemon, tmp_path).items():
        hex_ = image_hex(case, name, daemon)
        proc = tarexport("copy", f"oci:{tmp_path / case}:{name}", f"docker-daemon:{name}",
                         tmp_path=tmp_path, host=daemon.host)
        assert proc.stdout.decode().splitlines() == [f"Loaded image: {name}"]
        info = daemon.inspect(name)
        assert info["RootFS"]["Layers"] == [sha256(layer) for layer in layers]
        if not daemon.containerd:  # the containerd store's IDs are manifest digests
            assert info["Id"] == f"sha256:{hex_}"
        back = tmp_path / f"back-{hex_[:12]}"
        tarexport("copy", f"docker-daemon:{name}", f"oci:{back}", tmp_path=tmp_path,
                  host=daemon.host)
        assert verified_contents(f"oci:{back}") == {hex_: {name}}


def test_daemon_read_into_the_default_store_renamed(daemon: DockerScratch, tmp_path: Path) -> None:
    case = "s11-siblings-shared-base"
    name = sorted(unique_images(case, daemon, tmp_path))[0]
    hex_ = image_hex(case, name, daemon)
    tarexport("copy", f"oci:{tmp_path / case}:{name}", f"docker-daemon:{name}",
              tmp_path=tmp_path, host=daemon.host)
    proc = tarexport("copy", f"docker-daemon:{name}", "renamed/a:2", tmp_path=tmp_path,
                     host=daemon.host)
    assert proc.stdout.decode().splitlines() == ["Loaded image: renamed/a:2"]
    assert verified_contents(f"oci:{tmp_path / 'default-store'}") == {hex_: {"renamed/a:2"}}
    # And from the daemon to an archive file (staged in a private layout on the way).
    out = tmp_path / "from-daemon.tar"
    tarexport("copy", f"docker-daemon:{name}", f"docker-archive:{out}", tmp_path=tmp_path,
              host=daemon.host)
    assert verified_contents(f"docker-archive:{out}") == {hex_: {name}}
    assert os.listdir(tmp_path / "tmp") == []  # the staging layout is gone


def _one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 1, proc
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert proc.stdout == b""
    return lines[0]


def test_daemon_errors_are_one_line(daemon: DockerScratch, tmp_path: Path) -> None:
    missing = daemon.unique("cc16-missing:1")
    proc = tarexport("copy", f"docker-daemon:{missing}", f"oci:{tmp_path / 'out'}",
                     tmp_path=tmp_path, host=daemon.host, check=False)
    line = _one_error_line(proc)
    assert line.startswith(f"tarexport: docker daemon at {daemon.host}: ")
    assert "no such image" in line.lower() and missing in line
    assert not (tmp_path / "out").exists()

    # A layer that is no tar: the daemon refuses to apply it, and says why.
    layout = tmp_path / "broken"
    data = b"this is not a tar archive\n" * 100
    OCILayoutStore(layout, create=True).add_image(config_bytes([sha256(data)]), [data],
                                                  ["broken:1"])
    target = daemon.unique("cc16-broken:1")
    proc = tarexport("copy", f"oci:{layout}:broken:1", f"docker-daemon:{target}",
                     tmp_path=tmp_path, host=daemon.host, check=False)
    line = _one_error_line(proc)
    assert line.startswith(f"tarexport: docker daemon at {daemon.host}: ")
    assert "invalid tar header" in line


def test_no_daemon_at_the_host_is_one_line(tmp_path: Path) -> None:
    host = f"unix://{tmp_path / 'no.sock'}"
    proc = tarexport("copy", "docker-daemon:x:1", f"oci:{tmp_path / 'out'}", tmp_path=tmp_path,
                     host=host, check=False)
    assert _one_error_line(proc) == (
        f"tarexport: docker daemon at {host}: cannot connect: No such file or directory"
    )


# -- images: sizes as docker images prints them ----------------------------------------------


def _size_images(token: str) -> List[List[bytes]]:
    """Layers whose sizes exercise every unit: bytes, kB (10.2kB), MB, several layers."""
    return [
        [layer_tar({"token": token.encode(), "empty": b""})],
        [layer_tar({"token": token.encode(), "ten": b"t" * 10240})],
        [layer_tar({"token": token.encode(), "a": b"a" * 999}),
         layer_tar({"token2": token.encode(), "b": b"b" * 3_145_728})],
        [layer_tar({"token": token.encode(), f"f{i}": b"x" * (i * 37)}) for i in range(1, 6)],
    ]


# The containerd image store reports disk usage, not content size: no archive predicts it.
@pytest.mark.parametrize("daemon", GRAPHDRIVER_DAEMONS, indirect=True)
def test_images_sizes_equal_docker_images(daemon: DockerScratch, tmp_path: Path) -> None:
    names = []
    for n, layers in enumerate(_size_images(daemon.token)):
        name = daemon.unique(f"cc16-size{n}:1")
        layout = tmp_path / f"img{n}"
        config = config_bytes([sha256(layer) for layer in layers])
        OCILayoutStore(layout, create=True).add_image(config, layers, [name])
        tarexport("copy", f"oci:{layout}", f"docker-daemon:{name}", tmp_path=tmp_path,
                  host=daemon.host)
        tarexport("copy", f"oci:{layout}", "store:", tmp_path=tmp_path)
        names.append(name)
    theirs = daemon.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout
    ours = tarexport("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}",
                     tmp_path=tmp_path).stdout
    wanted = set(names)
    their_rows = {line for line in theirs.decode().splitlines() if line.split()[0] in wanted}
    our_rows = set(ours.decode().splitlines())
    assert our_rows == their_rows and len(our_rows) == len(names)
    assert any(row.endswith(" 10.2kB") for row in our_rows)
    # The table itself: the same columns and widths (ages aside, both "N seconds ago").
    their_table = daemon.run("images", names[1]).stdout.decode().splitlines()
    our_table = tarexport("images", names[1], tmp_path=tmp_path).stdout.decode().splitlines()
    assert [row.split("   ")[0] for row in our_table] == [r.split("   ")[0] for r in their_table]
    assert our_table[0] == their_table[0]


# -- skopeo and umoci read the default store by name ------------------------------------------


def _load_goldens_into_default_store(tmp_path: Path) -> Dict[str, str]:
    """Every golden into the default store; name -> image hex."""
    names: Dict[str, str] = {}
    for case in sorted(p.name for p in GOLDENS_DIR.iterdir() if (p / "save.tar").exists()):
        tarexport("copy", f"docker-archive:{GOLDENS_DIR / case / 'save.tar'}", "store:",
                  tmp_path=tmp_path)
    store = open_store(f"oci:{tmp_path / 'default-store'}")
    from tarexport.reference import familiar_string

    for image_id in store.search(""):
        for ref in store.references(image_id):
            names[familiar_string(ref)] = image_id.hex
    return names


def test_skopeo_copies_every_image_of_the_default_store_by_name(
    skopeo: Tool, tmp_path: Path
) -> None:
    names = _load_goldens_into_default_store(tmp_path)
    tags = [name.rpartition(":")[2] for name in names]
    assert any(tags.count(t) > 1 for t in tags)  # two repositories with one tag among them
    store = tmp_path / "default-store"
    for name, hex_ in names.items():
        out = tmp_path / f"sk-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        skopeo.run("copy", f"oci:{store}:{name}", f"oci:{out}:copied")
        index = json.loads((out / "index.json").read_bytes())
        (desc,) = index["manifests"]
        manifest = json.loads((out / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
        assert manifest["config"]["digest"] == f"sha256:{hex_}", name


def test_skopeo_written_layouts_are_read_by_name(skopeo: Tool, tmp_path: Path) -> None:
    case = "s10-base-and-derived-together"
    archive = GOLDENS_DIR / case / "save.tar"
    skopeo.run("copy", f"docker-archive:{archive}:cc-s-app:1", f"oci:{tmp_path / 'bare'}:v1")
    skopeo.run("copy", f"docker-archive:{archive}:cc-s-app:1",
               f"oci:{tmp_path / 'named'}:example.com/team/app:2")
    app = _config_of_only_image(tmp_path / "bare")  # skopeo rewrites the config for OCI
    assert _config_of_only_image(tmp_path / "named") == app
    # A bare tag names no repository: the destination must give one.
    proc = tarexport("copy", f"oci:{tmp_path / 'bare'}:v1", f"oci:{tmp_path / 'o1'}",
                     tmp_path=tmp_path, check=False)
    assert proc.returncode == 1 and b"must name a repository" in proc.stderr
    tarexport("copy", f"oci:{tmp_path / 'bare'}:v1", f"oci:{tmp_path / 'o1'}:app:1",
              tmp_path=tmp_path)
    assert verified_contents(f"oci:{tmp_path / 'o1'}") == {app: {"app:1"}}
    tarexport("copy", f"oci:{tmp_path / 'named'}:example.com/team/app:2",
              f"docker-archive:{tmp_path / 'o2.tar'}", tmp_path=tmp_path)
    assert verified_contents(f"docker-archive:{tmp_path / 'o2.tar'}") == {
        app: {"example.com/team/app:2"}}


def _config_of_only_image(layout: Path) -> str:
    (desc,) = json.loads((layout / "index.json").read_bytes())["manifests"]
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
    return str(manifest["config"]["digest"]).removeprefix("sha256:")


def test_umoci_written_layouts_are_read_by_name(umoci: Tool, tmp_path: Path) -> None:
    layout = tmp_path / "u"
    umoci.run("init", "--layout", str(layout))
    umoci.run("new", "--image", f"{layout}:quay.io/team/tool:1")
    umoci.run("config", "--image", f"{layout}:quay.io/team/tool:1", "--config.env", "A=1")
    umoci.run("tag", "--image", f"{layout}:quay.io/team/tool:1", "quay.io/team/tool:stable")
    tarexport("copy", f"oci:{layout}:quay.io/team/tool:stable", f"oci:{tmp_path / 'out'}",
              tmp_path=tmp_path)
    contents = verified_contents(f"oci:{tmp_path / 'out'}")
    assert list(contents.values()) == [{"quay.io/team/tool:stable"}]
    env = tarexport("inspect", "--from", f"oci:{layout}", "-f", "{{json .Config.Env}}",
                    "quay.io/team/tool:1", tmp_path=tmp_path).stdout
    assert "A=1" in json.loads(env)
    # umoci reads what tarexport wrote, by the same names.
    listed = umoci.run("ls", "--layout", str(tmp_path / "out")).stdout.decode().split()
    assert listed == ["quay.io/team/tool:stable"]


def test_skopeo_written_oci_archives_are_read_by_name(skopeo: Tool, tmp_path: Path) -> None:
    archive = GOLDENS_DIR / "s11-siblings-shared-base" / "save.tar"
    out = tmp_path / "sk.tar"
    skopeo.run("copy", f"docker-archive:{archive}:cc-s-sib/b:1", f"oci-archive:{out}:b-tag")
    config = json.loads(skopeo.run("inspect", "--config", f"oci-archive:{out}:b-tag").stdout)
    hex_ = hashlib.sha256(skopeo.run("inspect", "--raw", "--config",
                                     f"oci-archive:{out}:b-tag").stdout).hexdigest()
    assert config["rootfs"]["type"] == "layers"
    tarexport("copy", f"oci-archive:{out}:b-tag", f"oci:{tmp_path / 'o'}:sib/b:1",
              tmp_path=tmp_path)
    assert verified_contents(f"oci:{tmp_path / 'o'}") == {hex_: {"sib/b:1"}}


# The containerd image store keeps images in containerd, not in a graphdriver data root.
@pytest.mark.parametrize("daemon", GRAPHDRIVER_DAEMONS, indirect=True)
def test_daemon_data_root_read_without_the_daemon(daemon: DockerScratch, tmp_path: Path) -> None:
    assert daemon.data_root, f"daemon {daemon.name} names no data root"
    case = "s10-base-and-derived-together"
    name = sorted(unique_images(case, daemon, tmp_path))[0]
    hex_ = image_hex(case, name, daemon)
    tarexport("copy", f"oci:{tmp_path / case}:{name}", f"docker-daemon:{name}",
              tmp_path=tmp_path, host=daemon.host)
    tarexport("copy", f"docker-root:{daemon.data_root}:{name}", f"oci:{tmp_path / 'o'}",
              tmp_path=tmp_path)
    assert verified_contents(f"oci:{tmp_path / 'o'}") == {hex_: {name}}
    # Within one daemon, under another name (its archive staged on the way).
    again = daemon.unique("cc16-again:2")
    tarexport("copy", f"docker-daemon:{name}", f"docker-daemon:{again}", tmp_path=tmp_path,
              host=daemon.host)
    assert daemon.inspect(again)["Id"] == f"sha256:{hex_}"
