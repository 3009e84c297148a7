"""Built images against real consumers: every Docker daemon, skopeo and umoci.

Docker loads the archive; ``docker create`` then ``docker export`` gives back the tree as it
was built (names, modes, link targets, content, owners), and ``docker image inspect`` shows
every config field that was set. skopeo copies the gzip OCI layout and ``umoci unpack`` of
the copy gives the same tree. The multi-platform archive loads into the containerd image
store and is refused by the graphdriver ones, as their own multi-platform images are.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from peers import DockerScratch, PeerCommandError, Tool

from tarexport import ImageBuilder
from tarexport.build import Bytes, LayerOptions, Tree
from tarexport.build.oci import add_to_layout, index_archive

CONFIG: dict[str, Any] = dict(
    env=["APP_MODE=test", "PATH=/usr/bin:/bin"],
    entrypoint=["/app/bin/run"],
    cmd=["--serve", "8080"],
    working_dir="/app",
    user="1000:1000",
    labels={"org.example.title": "built", "empty": ""},
    exposed_ports=["8080", "53/udp"],
    volumes=["/data"],
    stop_signal="SIGINT",
)
CREATED = 1234567890  # 2009-02-13T23:31:30Z


def make_tree(root: Path) -> Path:
    """A tree with every kind of entry a build keeps: modes, links, nesting, empty files."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "run").write_bytes(b"#!/bin/sh\nexec echo run \"$@\"\n")
    (root / "bin" / "run").chmod(0o755)
    (root / "bin" / "suid").write_bytes(b"setuid")
    (root / "bin" / "suid").chmod(0o4750)
    (root / "etc").mkdir()
    (root / "etc" / "private").mkdir(mode=0o700)
    (root / "etc" / "private" / "key").write_bytes(b"secret-ish\n")
    (root / "etc" / "private" / "key").chmod(0o600)
    (root / "etc" / "empty").write_bytes(b"")
    (root / "etc" / "hard").write_bytes(b"one inode, two names\n")
    os.link(root / "etc" / "hard", root / "etc" / "hard2")
    (root / "share" / "deep" / "er").mkdir(parents=True)
    (root / "share" / "deep" / "er" / ("long-name-" * 12)).write_bytes(os.urandom(300_000))
    (root / "rel").symlink_to("bin/run")
    (root / "abs").symlink_to("/etc/passwd")
    (root / "dangling").symlink_to("nowhere/at/all")
    return root


def tree_of(members: list[tarfile.TarInfo], reader: Any, under: str) -> dict[str, Any]:
    """name -> (kind, mode, owner, link target or content) of everything under ``under``."""
    result: dict[str, Any] = {}
    for m in members:
        name = m.name.lstrip("./").rstrip("/")
        if name != under and not name.startswith(under + "/"):
            continue
        if m.isreg():
            data = reader(m)
            result[name] = ("file", m.mode & 0o7777, (m.uid, m.gid), data)
        elif m.islnk():
            result[name] = ("hardlink", m.mode & 0o7777, (m.uid, m.gid),
                            m.linkname.lstrip("/"))
        elif m.issym():
            result[name] = ("symlink", None, (m.uid, m.gid), m.linkname)
        elif m.isdir():
            result[name] = ("dir", m.mode & 0o7777, (m.uid, m.gid), None)
    return result


def resolve_hardlinks(tree: dict[str, Any]) -> dict[str, Any]:
    """A hard link compared as the file it names (which name comes first is the tar's)."""
    out = {}
    for name, (kind, mode, owner, value) in tree.items():
        if kind == "hardlink":
            _, _, _, data = tree[value]
            out[name] = ("file", mode, owner, data)
        else:
            out[name] = (kind, mode, owner, value)
    return out


def expected_tree(root: Path, at: str = "app") -> dict[str, Any]:
    """What the build promises, read from the source with ``os`` (exact modes, root owner)."""
    result: dict[str, Any] = {at: ("dir", 0o755, (0, 0), None)}
    for path in sorted(root.rglob("*")):
        name = f"{at}/{path.relative_to(root)}"
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            result[name] = ("symlink", None, (0, 0), os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            result[name] = ("dir", stat.S_IMODE(info.st_mode), (0, 0), None)
        else:
            result[name] = ("file", stat.S_IMODE(info.st_mode), (0, 0), path.read_bytes())
    result["app/owned"] = ("file", 0o640, (1000, 1000), b"owned by 1000\n")
    return result


def build(tree: Path, tag: str, platform: str = "linux/amd64") -> Any:
    builder = ImageBuilder(platform=platform, created=CREATED)
    options = LayerOptions(mtime=CREATED, exact_modes=True)
    builder.add_layer([Tree(str(tree), "/app"),
                       Bytes("/app/owned", b"owned by 1000\n", mode=0o640, uid=1000, gid=1000)],
                      options=options, created_by="COPY tree /app")
    builder.configure(**CONFIG)
    return builder.build([tag])


def test_a_built_image_loads_runs_as_built_and_inspects_with_its_config(
    daemon: DockerScratch, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree")
    tag = daemon.unique("tarexport-build/app:1")
    image = build(tree, tag)
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as f:
        image.save(f)
    assert daemon.load(archive) == [tag]

    info = daemon.inspect(tag)
    config = info["Config"]
    assert config["Env"] == CONFIG["env"]
    assert config["Entrypoint"] == CONFIG["entrypoint"]
    assert config["Cmd"] == CONFIG["cmd"]
    assert config["WorkingDir"] == "/app"
    assert config["User"] == "1000:1000"
    assert config["Labels"] == CONFIG["labels"]
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["StopSignal"] == "SIGINT"
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Created"] == "2009-02-13T23:31:30Z"
    assert info["RootFS"]["Layers"] == [str(d) for d in image.diff_ids]
    if not daemon.containerd:
        assert info["Id"] == str(image.id)

    container = daemon.run("create", tag).stdout.decode().strip()
    try:
        exported = daemon.run("export", container).stdout
    finally:
        daemon.run("rm", "-f", container, check=False)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        got = tree_of(tar.getmembers(), lambda m: tar.extractfile(m).read(), "app")  # type: ignore[union-attr]
    assert resolve_hardlinks(got) == expected_tree(tree)


def test_a_multi_platform_archive_loads_where_docker_loads_one(
    daemon: DockerScratch, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree")
    tag = daemon.unique("tarexport-build/multi:1")
    images = [build(tree, tag, platform) for platform in ("linux/amd64", "linux/arm64/v8")]
    archive = tmp_path / "multi.tar"
    with open(archive, "wb") as f:
        index_archive(images).write(f)
    if not daemon.containerd:
        with pytest.raises(PeerCommandError):  # a graphdriver Docker has no multi-platform
            daemon.load(archive)
        assert not daemon.exists(tag)
        return
    major = int(daemon.server_version()["Version"].split(".")[0])
    if major >= 28:  # `docker load --platform` picks one
        proc = daemon.run("load", "--platform", "linux/arm64/v8", "-i", str(archive))
        assert tag in proc.stdout.decode()
        daemon._made.append(tag)
        info = json.loads(daemon.run("image", "inspect", "--platform", "linux/arm64/v8",
                                     tag).stdout)[0]
        assert (info["Architecture"], info.get("Variant")) == ("arm64", "v8")
    assert daemon.load(archive) == [tag]
    info = daemon.inspect(tag)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Config"]["Cmd"] == CONFIG["cmd"]


def test_skopeo_copies_the_gzip_layout_and_umoci_unpacks_the_same_tree(
    skopeo: Tool, umoci: Tool, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree")
    image = build(tree, "tarexport-build/oci:1")
    add_to_layout([image], str(tmp_path / "layout"), compression="gzip")
    # The layout names the image by its whole reference, as skopeo and umoci look it up.
    skopeo.run("copy", f"oci:{tmp_path / 'layout'}:tarexport-build/oci:1",
               f"oci:{tmp_path / 'copy'}:1")
    config = json.loads(skopeo.run("inspect", "--config", f"oci:{tmp_path / 'copy'}:1").stdout)
    assert config["config"]["Entrypoint"] == CONFIG["entrypoint"]
    assert config["rootfs"]["diff_ids"] == [str(d) for d in image.diff_ids]
    bundle = tmp_path / "bundle"
    umoci.run("unpack", "--image", f"{tmp_path / 'copy'}:1", str(bundle))
    rootfs = bundle / "rootfs"
    got: dict[str, Any] = {}
    for path in [rootfs / "app", *sorted((rootfs / "app").rglob("*"))]:
        name = str(path.relative_to(rootfs))
        info = path.lstat()
        owner = (info.st_uid, info.st_gid)
        if stat.S_ISLNK(info.st_mode):
            got[name] = ("symlink", None, owner, os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            got[name] = ("dir", stat.S_IMODE(info.st_mode), owner, None)
        else:
            got[name] = ("file", stat.S_IMODE(info.st_mode), owner, path.read_bytes())
    assert got == expected_tree(tree)
    assert os.stat(rootfs / "app/etc/hard").st_ino == os.stat(rootfs / "app/etc/hard2").st_ino


def test_skopeo_reads_the_multi_platform_archive(skopeo: Tool, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    images = [build(tree, "tarexport-build/multi:1", p) for p in ("linux/amd64", "linux/arm64")]
    archive = tmp_path / "multi.tar"
    with open(archive, "wb") as f:
        index_archive(images).write(f)
    raw = json.loads(skopeo.run("inspect", "--raw", f"oci-archive:{archive}").stdout)
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    skopeo.run("copy", "--all", f"oci-archive:{archive}", f"oci:{tmp_path / 'all'}:1")
    for image, platform in zip(images, ("amd64", "arm64")):
        config = json.loads(skopeo.run("--override-arch", platform, "inspect", "--config",
                                       f"oci:{tmp_path / 'all'}:1").stdout)
        assert config["rootfs"]["diff_ids"] == [str(d) for d in image.diff_ids]
        assert config["architecture"] == platform
