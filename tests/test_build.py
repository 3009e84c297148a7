"""Building images from files: reproducible bytes, streamed sources, bases, gzip layouts, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tarexport import ImageBuilder, MemoryStore, OCILayoutStore, Saver, profiles
from tarexport.build import Bytes, Directory, File, LayerOptions, OpaqueWhiteout, Symlink, Whiteout
from tarexport.build.layer import TarLayer
from tarexport.build.oci import MEDIA_LAYER_GZIP, add_to_layout, index_archive
from tarexport.cli import main
from tarexport.digest import Digest
from tarexport.errors import (
    BuildError,
    InvalidBuildOption,
    InvalidLayerEntry,
    LayerDigestMismatch,
    SourceChanged,
)
from tarexport.image import Image

SDE = 1234567890


def make_tree(root: Path, *, order: int = 0, mtime: int = 0, umask: int = 0o022,
              owner: int = 0) -> Path:
    """The same tree, made in a different order, with other mtimes, umask and owners."""
    files = [("bin/tool", b"#!/bin/sh\necho tool\n", 0o777), ("etc/conf", b"k=v\n", 0o666),
             ("share/doc/readme", b"readme " * 300, 0o666),
             ("big", bytes(range(256)) * 20000, 0o666)]
    if order:
        files.reverse()
    previous = os.umask(umask)
    try:
        for name, data, mode in files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode & ~umask)
        (root / "link").symlink_to("bin/tool")
        os.link(root / "etc/conf", root / "etc/conf.hard")
    finally:
        os.umask(previous)
    for path in [root, *root.rglob("*")]:
        if owner and os.geteuid() == 0:
            os.lchown(path, owner, owner)
        if mtime and not path.is_symlink():
            os.utime(path, (mtime, mtime))
    return root


def build_archive(tree: Path, env: dict[str, str]) -> bytes:
    builder = ImageBuilder(environ=env)
    builder.add_tree(tree, "/app")
    builder.configure(env=["A=1"], cmd=["/app/bin/tool"])
    out = io.BytesIO()
    builder.build(["repro:1"]).save(out)
    return out.getvalue()


def test_two_builds_of_the_same_tree_give_identical_bytes(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one", mtime=1_000_000_000)
    second = make_tree(tmp_path / "two", order=1, mtime=1_600_000_000, umask=0o077, owner=1234)
    env = {"SOURCE_DATE_EPOCH": str(SDE)}
    a, b = build_archive(first, env), build_archive(second, env)
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert config["created"] == "2009-02-13T23:31:30Z"
    assert config["history"][0]["created"] == "2009-02-13T23:31:30Z"


def test_the_cli_build_is_reproducible_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    one = make_tree(tmp_path / "one", mtime=5)
    two = make_tree(tmp_path / "two", order=1, umask=0o027)
    for tree, out in ((one, "a.tar"), (two, "b.tar")):
        assert main(["build", "--layer", f"{tree}:/srv", "--env", "X=1", "-t", "r:1",
                     "-o", str(tmp_path / out)]) == 0
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def layer_members(layer_bytes: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_layer_reads_back_with_every_kind_of_entry(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"from a file")
    builder = ImageBuilder(created=SDE)
    layer = builder.add_layer([
        File("/usr/bin/x", source, mode=0o4755),
        Bytes("/etc/motd", b"hello\n", uid=1000, gid=1000),
        Directory("/var/empty", mode=0o700),
        Symlink("/usr/bin/y", "x"),
        Whiteout("/etc/old"),
        OpaqueWhiteout("/var/cache"),
    ])
    data = layer.open().read()
    assert len(data) == layer.size
    assert Digest.from_bytes(data) == layer.diff_id
    got = layer_members(data)
    assert got["usr/bin/x"].mode == 0o4755
    assert got["etc/motd"].uid == 1000 and got["etc/motd"].mtime == SDE
    assert got["var/empty"].mode == 0o700
    assert got["usr/bin/y"].linkname == "x"
    assert "etc/.wh.old" in got and "var/cache/.wh..wh..opq" in got


def test_streaming_the_built_layer_copies_from_the_files(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    builder = ImageBuilder()
    builder.add_tree(tree)
    image = builder.build(["s:1"])
    # The same bytes whichever way the Saver copies: kernel to a file, buffer, verified.
    to_file = tmp_path / "out.tar"
    with open(to_file, "wb") as f:
        image.save(f)
    buffered = io.BytesIO()
    image.save(buffered, verify=True)
    assert to_file.read_bytes() == buffered.getvalue()


@pytest.mark.parametrize("change", ["grow", "shrink", "vanish", "modify"])
def test_a_source_that_changes_after_planning_is_a_typed_error(
    tmp_path: Path, change: str
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    victim = tree / "data"
    victim.write_bytes(b"x" * 600_000)
    builder = ImageBuilder()
    builder.add_tree(tree)
    image = builder.build(["c:1"])
    if change == "grow":
        with open(victim, "ab") as f:
            f.write(b"more")
    elif change == "shrink":
        victim.write_bytes(b"x" * 10)
    elif change == "vanish":
        victim.unlink()
    else:
        os.utime(victim, (1, 1))
    out = tmp_path / "out.tar"
    with open(out, "wb") as f, pytest.raises(SourceChanged) as info:
        image.save(f)
    assert str(victim) in str(info.value)
    assert not out.read_bytes().endswith(bytes(1024))  # never looks complete


def test_the_cli_leaves_no_output_when_a_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_bytes(b"a" * 1000)
    real_plan = ImageBuilder.build

    def build_then_touch(self: ImageBuilder, tags: Any = ()) -> Any:
        image = real_plan(self, tags)
        (tree / "f").write_bytes(b"b" * 1001)
        return image

    monkeypatch.setattr(ImageBuilder, "build", build_then_touch)
    out = tmp_path / "o.tar"
    assert main(["build", "--layer", str(tree), "-t", "x:1", "-o", str(out)]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [tree]


def test_bad_inputs_fail_before_any_output(tmp_path: Path) -> None:
    builder = ImageBuilder()
    with pytest.raises(InvalidLayerEntry, match="not a directory"):
        builder.add_tree(__file__)
    with pytest.raises(InvalidLayerEntry, match="escapes"):
        builder.add_layer([Bytes("../etc/passwd", b"")])
    with pytest.raises(InvalidBuildOption):
        builder.configure(env=["NOEQUALS"])
    with pytest.raises(InvalidBuildOption):
        ImageBuilder(platform="linux")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar")
    with pytest.raises(BuildError):
        TarLayer(bad)


def test_a_name_that_cannot_be_encoded_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / os.fsdecode(b"bad\xff")).write_bytes(b"")
    with pytest.raises(InvalidLayerEntry, match="UTF-8") as info:
        ImageBuilder().add_tree(tree)
    assert "bad" in info.value.path


def base_store(tmp_path: Path) -> tuple[MemoryStore, bytes]:
    layer_tree = tmp_path / "base"
    layer_tree.mkdir()
    (layer_tree / "base.txt").write_bytes(b"base\n")
    builder = ImageBuilder(created=1000, platform="linux/arm64/v8")
    builder.add_tree(layer_tree)
    builder.configure(env=["PATH=/bin", "KEEP=1"], cmd=["sh"], labels={"from": "base"})
    base = builder.build(["base:1"])
    store = MemoryStore()
    layer_bytes = base.layers[0].open().read()
    store.add_image(base.config, [layer_bytes], ["base:1"])
    return store, layer_bytes


def test_a_base_keeps_its_layers_and_extends_diff_ids_and_history(tmp_path: Path) -> None:
    store, base_layer = base_store(tmp_path)
    base = Image.from_bytes(store.get_config(store.get(store._parse_reference("base:1"))))
    builder = ImageBuilder(base=(store, "base:1"), created=2000)
    builder.add_layer([Bytes("/new.txt", b"new\n")], created_by="add new")
    builder.configure(env=["PATH=/usr/bin:/bin"], entrypoint=["/bin/app"])
    image = builder.build(["child:1"])
    assert image.diff_ids[:1] == base.diff_ids and len(image.diff_ids) == 2
    assert image.image.history[: len(base.history)] == base.history
    assert [h.created_by for h in image.image.history[len(base.history):]] == [
        "add new", 'ENV PATH=/usr/bin:/bin; ENTRYPOINT ["/bin/app"]']
    config = image.image.config
    assert config is not None
    assert config.env == ("PATH=/usr/bin:/bin", "KEEP=1")
    assert config.cmd is None  # a new entrypoint resets the base's cmd, as in Docker
    assert config.labels == {"from": "base"}
    assert (image.image.architecture, image.image.variant) == ("arm64", "v8")
    assert image.get_parent(image.id) == base.id
    assert image.layers[0] is store.get_layer(base.diff_ids[0])  # used by reference
    # Into the store that holds the base: the parent chain is recorded there.
    image.into(store)
    assert store.get_parent(image.id) == base.id
    out = io.BytesIO()
    Saver(store, store, store, profile=profiles.DOCKER_20_10).save(["child:1"], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        first = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    assert first == base_layer


def test_append_and_mutate_on_the_command_line(tmp_path: Path) -> None:
    store, _ = base_store(tmp_path)
    layout = tmp_path / "layout"
    OCILayoutStore(str(layout), create=True)
    base = Image.from_bytes(store.get_config(store.search("")[0]))
    plain = tmp_path / "extra.tar"
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("extra.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    import gzip

    zipped = tmp_path / "extra2.tar.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    archive = tmp_path / "base.tar"
    with open(archive, "wb") as f:
        Saver(store, store, store).save(["base:1"], f)
    assert main(["append", "--from", f"docker-archive:{archive}", "base:1", "--layer-tar",
                 str(plain), "--layer-tar", str(zipped), "-t", "appended:1",
                 "--into", f"oci:{layout}"]) == 0
    appended = OCILayoutStore(str(layout), platform="linux/arm64/v8")
    image = Image.from_bytes(appended.get_config(appended.get(
        appended._parse_reference("appended:1"))))
    plain_id = Digest.from_bytes(plain.read_bytes())
    assert image.diff_ids == (*base.diff_ids, plain_id, plain_id)
    assert main(["mutate", "--from", f"oci:{layout}", "appended:1", "--user", "nobody",
                 "--expose", "8080", "-t", "mutated:1", "--into", f"oci:{layout}"]) == 0
    mutated = Image.from_bytes(appended.get_config(appended.get(
        appended._parse_reference("mutated:1"))))
    assert mutated.diff_ids == image.diff_ids
    assert mutated.config is not None and mutated.config.user == "nobody"
    assert mutated.history[-1].empty_layer


def test_gzip_layers_in_an_oci_layout(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    builder = ImageBuilder()
    builder.add_tree(tree)
    image = builder.build(["zipped:1"])
    for name in ("one", "two"):
        add_to_layout([image], str(tmp_path / name), compression="gzip")
    index = json.loads((tmp_path / "one" / "index.json").read_text())
    manifest_digest = Digest.parse(index["manifests"][0]["digest"])
    blobs = tmp_path / "one" / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest.hex).read_bytes())
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == MEDIA_LAYER_GZIP
    blob = (blobs / Digest.parse(layer["digest"]).hex).read_bytes()
    assert blob[:2] == b"\x1f\x8b" and blob[4:8] == bytes(4)  # gzip, mtime 0
    assert blob[3] & 0x08 == 0  # no file name
    assert Digest.parse(layer["digest"]) != image.diff_ids[0]
    assert Digest.from_bytes(blob) == Digest.parse(layer["digest"])
    assert layer["size"] == len(blob)
    import gzip

    assert Digest.from_bytes(gzip.decompress(blob)) == image.diff_ids[0]
    assert (tmp_path / "two" / "index.json").read_bytes() == \
        (tmp_path / "one" / "index.json").read_bytes()  # deterministic
    # Read back and saved: the same image, byte for byte, as saving the built one.
    store = OCILayoutStore(str(tmp_path / "one"))
    from_layout, built = io.BytesIO(), io.BytesIO()
    Saver(store, store, store).save(["zipped:1"], from_layout)
    image.save(built)
    assert from_layout.getvalue() == built.getvalue()


def test_an_index_archive_over_platforms(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    images = []
    for platform in ("linux/amd64", "linux/arm64/v8"):
        builder = ImageBuilder(platform=platform)
        builder.add_tree(tree)
        images.append(builder.build(["multi:1"]))
    out = io.BytesIO()
    index_archive(images).write(out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        top = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        (descriptor,) = top["manifests"]
        nested = json.load(tar.extractfile(  # type: ignore[arg-type]
            "blobs/sha256/" + descriptor["digest"].split(":")[1]))
    assert "manifest.json" not in names
    assert descriptor["annotations"]["io.containerd.image.name"] == "docker.io/library/multi:1"
    assert [m["platform"] for m in nested["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"}]
    with pytest.raises(InvalidBuildOption, match="two images"):
        index_archive([images[0], images[0]])


def test_a_layer_whose_store_lies_is_caught_when_staged() -> None:
    builder = ImageBuilder()
    layer = builder.add_layer([Bytes("/a", b"a")])
    layer._diff_id = Digest("sha256", hashlib.sha256(b"other").hexdigest())
    image = builder.build(["lie:1"])
    with pytest.raises(LayerDigestMismatch):
        image.into(MemoryStore())


def test_layer_options_reach_the_headers(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", mtime=500)
    builder = ImageBuilder(created=SDE)
    layer = builder.add_tree(tree, options=LayerOptions(mtime=1000, clamp_mtime=True, uid=5))
    got = layer_members(layer.open().read())
    assert {m.mtime for m in got.values() if not m.issym()} == {500}
    assert {m.uid for m in got.values()} == {5}


@pytest.mark.parametrize("size", [100, 5 << 20])
def test_a_source_that_changes_before_it_is_hashed_is_a_typed_error(
    tmp_path: Path, size: int
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_bytes(b"x" * size)
    builder = ImageBuilder()
    builder.add_tree(tree)
    (tree / "f").write_bytes(b"x" * (size // 2))
    with pytest.raises(SourceChanged, match="shrank"):
        builder.build(["h:1"])


def test_fifos_devices_and_xattrs_only_when_asked(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    os.mkfifo(tree / "pipe")
    (tree / "tagged").write_bytes(b"x")
    try:
        os.setxattr(tree / "tagged", "user.origin", b"here")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    plain = layer_members(ImageBuilder().add_tree(tree).open().read())
    assert set(plain) == {"tagged"} and not plain["tagged"].pax_headers
    options = LayerOptions(devices=True, xattrs=True)
    full = layer_members(ImageBuilder().add_tree(tree, options=options).open().read())
    assert full["pipe"].isfifo()
    assert full["tagged"].pax_headers["SCHILY.xattr.user.origin"] == "here"


def test_keep_owners_keeps_what_the_file_system_says(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_bytes(b"x")
    if os.geteuid() == 0:
        os.chown(tree / "f", 4321, 8765)
    info = os.stat(tree / "f")
    got = layer_members(ImageBuilder().add_tree(
        tree, options=LayerOptions(keep_owners=True)).open().read())
    assert (got["f"].uid, got["f"].gid) == (info.st_uid, info.st_gid)


def test_build_on_a_base_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, base_layer = base_store(tmp_path)
    archive = tmp_path / "base.tar"
    with open(archive, "wb") as f:
        Saver(store, store, store).save(["base:1"], f)
    tree = make_tree(tmp_path / "t")
    out = tmp_path / "child.tar"
    assert main(["build", "--base", f"docker-archive:{archive}", "base:1", "--layer",
                 f"{tree}:/srv", "--cmd", "/srv/bin/tool", "-t", "child:1",
                 "-o", str(out)]) == 0
    from tarexport import DockerArchiveStore

    child = DockerArchiveStore(str(out))
    from tarexport.reference import parse_normalized_named

    image = Image.from_bytes(child.get_config(child.get(parse_normalized_named("child:1"))))
    base = Image.from_bytes(store.get_config(store.search("")[0]))
    assert image.diff_ids[:1] == base.diff_ids and len(image.diff_ids) == 2
    assert image.architecture == "arm64"  # the base's platform
    with child.get_layer(base.diff_ids[0]).open() as layer:
        assert layer.read() == base_layer
    assert main(["build", "--base", f"docker-archive:{archive}", "nope:1", "--layer",
                 str(tree), "-t", "x:1", "-o", str(tmp_path / "never.tar")]) == 1
    assert not (tmp_path / "never.tar").exists()


def test_cli_multi_platform_and_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "t")
    out = tmp_path / "multi.tar"
    assert main(["build", "--layer", str(tree), "--platform", "linux/amd64", "--platform",
                 "linux/arm64/v8", "-t", "m:1", "-o", str(out)]) == 0
    with tarfile.open(out) as tar:
        assert "index.json" in tar.getnames() and "manifest.json" not in tar.getnames()
    capsys.readouterr()
    assert main(["build", "--layer", str(tree), "-t", "m:1", "--gzip", "-o",
                 str(tmp_path / "x.tar")]) == 1
    assert "--gzip needs --into" in capsys.readouterr().err
    assert main(["build", "--layer", str(tree), "--platform", "linux/amd64", "--platform",
                 "linux/arm64", "-t", "m:1", "--into", f"oci:{tmp_path / 'l'}"]) == 1
    assert "several platforms" in capsys.readouterr().err
    assert main(["build", "--layer", str(tree), "--platform", "windows", "-t", "m:1",
                 "-o", str(tmp_path / "y.tar")]) == 1
    assert "OS/ARCH" in capsys.readouterr().err
    assert main(["build", "--layer", str(tmp_path / "missing"), "-t", "m:1",
                 "-o", str(tmp_path / "z.tar")]) == 1
    assert "missing" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x.tar", "y.tar", "z.tar", "l"))
