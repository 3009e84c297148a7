"""Hostile archives: each attack is refused with a typed error, and leaves no trace.

Every archive here is loaded into an OCI layout that already holds an image. The test checks
the error type, that every file under the layout's parent directory (the layout included) has
the same path, bytes and mode as before, and that nothing was written to ``TMPDIR``. The same
archive opened in place as a ``DockerArchiveStore`` must be refused too.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Dict, Tuple, Type

import pytest
from craft import (
    BLOCK,
    M,
    docker_archive,
    image,
    raw_header,
    set_field,
    sha256,
    tar_bytes,
    tree_snapshot,
)

from tarexport.digest import chain_ids
from tarexport.errors import InvalidArchive, TarexportError, UnsafeArchive
from tarexport.image import Image
from tarexport.load import load
from tarexport.stores.docker_archive import DockerArchiveStore, Limits
from tarexport.stores.oci_layout import OCILayoutStore

IMG = image(2, tags=("victim:1",))
L0, L1 = (sha256(layer)[7:] for layer in IMG.layers)
CONFIG = f"{IMG.hex}.json"


def entry(config: str = CONFIG, layers: Tuple[str, ...] = (f"{L0}/layer.tar", f"{L1}/layer.tar"),
          **extra: object) -> Dict[str, object]:
    return {"Config": config, "RepoTags": ["victim:1"], "Layers": list(layers), **extra}


def with_manifest(*manifest: Dict[str, object], extra=(), before=()) -> bytes:
    return docker_archive([IMG], manifest=list(manifest), extra=extra, before=before)


def pax_header_only(pax: Dict[str, str]) -> bytes:
    """A PAX ``x`` header block with its records, and no member after it."""
    return tar_bytes([M("x", b"", pax=pax)], end=False)[: 2 * BLOCK]


def member_limit_archive() -> Tuple[bytes, Limits]:
    return docker_archive([IMG], extra=[M(f"junk{i}", b"") for i in range(20)]), Limits(members=10)


# name -> (archive bytes, limits or None, expected error)
Case = Tuple[bytes, "Limits | None", Type[TarexportError]]


def cases() -> Dict[str, Case]:
    bomb = gzip.compress(tar_bytes([M("zeros", bytes(64 << 20))]), mtime=0)
    layer_bomb = gzip.compress(IMG.layers[0] + bytes(64 << 20), mtime=0)
    gz_layers = {sha256(x)[7:] + ".tar.gz": gzip.compress(x, mtime=0) for x in IMG.layers}
    crane_bomb_members = [M(name, layer_bomb if i == 0 else data)
                          for i, (name, data) in enumerate(gz_layers.items())]
    return {
        # -- member names
        "absolute-member": (with_manifest(entry(), extra=[M("/etc/passwd", b"x")]), None,
                            UnsafeArchive),
        "dotdot-member": (with_manifest(entry(), extra=[M("../evil", b"x")]), None,
                          UnsafeArchive),
        "nested-dotdot-member": (with_manifest(entry(), before=[M("a/../../evil", b"x")]), None,
                                 UnsafeArchive),
        "pax-path-dotdot": (with_manifest(entry(), extra=[M("innocent", b"x",
                                                            pax={"path": "../../evil"})]),
                            None, UnsafeArchive),
        "pax-path-absolute": (with_manifest(entry(), extra=[M("innocent", b"x",
                                                              pax={"path": "/etc/cron.d/x"})]),
                              None, UnsafeArchive),
        "gnu-longname-dotdot": (with_manifest(entry(), extra=[M("../" * 40 + "evil", b"x",
                                                                fmt=tarfile.GNU_FORMAT)]),
                                None, UnsafeArchive),
        "pax-path-nul": (with_manifest(entry(), extra=[M("a", b"x", pax={"path": "a\0b"})]),
                         None, UnsafeArchive),
        # -- links
        "symlink-absolute": (with_manifest(entry(), extra=[M("l", kind="symlink",
                                                             linkname="/etc/passwd")]),
                             None, UnsafeArchive),
        "symlink-climbs-out": (with_manifest(entry(), extra=[M("a/l", kind="symlink",
                                                               linkname="../../etc")]),
                               None, UnsafeArchive),
        "pax-linkpath-climbs-out": (with_manifest(entry(), extra=[
            M("l", kind="symlink", linkname="ok", pax={"linkpath": "../../../etc/shadow"})]),
            None, UnsafeArchive),
        "symlink-out-through-symlinked-dir": (with_manifest(entry(), extra=[
            M("up", kind="symlink", linkname="."), M("x", kind="symlink", linkname="up/..")]),
            None, UnsafeArchive),
        "hardlink-climbs-out": (with_manifest(entry(), extra=[
            M("h", kind="hardlink", linkname="../../etc/passwd")]), None, UnsafeArchive),
        "hardlink-absolute": (with_manifest(entry(), extra=[
            M("h", kind="hardlink", linkname="/etc/passwd")]), None, UnsafeArchive),
        "symlink-loop": (with_manifest(entry(layers=(f"{L0}/layer.tar", "loop/layer.tar")),
                                       extra=[M("loop", kind="symlink", linkname="pool"),
                                              M("pool", kind="symlink", linkname="loop")]),
                         None, UnsafeArchive),
        "symlink-self-loop": (with_manifest(entry(layers=(f"{L0}/layer.tar", "me")),
                                            extra=[M("me", kind="symlink", linkname="me")]),
                              None, UnsafeArchive),
        "manifest-symlink-to-host": (tar_bytes([M("manifest.json", kind="symlink",
                                                  linkname="/etc/passwd")]), None, UnsafeArchive),
        # -- what a member is
        "layer-is-a-fifo": (tar_bytes([M(CONFIG, IMG.config), M(f"{L0}/layer.tar", IMG.layers[0]),
                                       M(f"{L1}/layer.tar", kind="fifo"),
                                       M("manifest.json", json.dumps([entry()]).encode())]),
                            None, UnsafeArchive),
        "layer-is-a-char-device": (tar_bytes([M(CONFIG, IMG.config),
                                              M(f"{L0}/layer.tar", kind="chr"),
                                              M(f"{L1}/layer.tar", IMG.layers[1]),
                                              M("manifest.json", json.dumps([entry()]).encode())]),
                                   None, UnsafeArchive),
        "block-device-anywhere": (with_manifest(entry(), extra=[M("sda", kind="blk")]), None,
                                  UnsafeArchive),
        "data-on-a-symlink": (with_manifest(entry(), extra=[
            raw_header("l", size=5, typeflag=b"2", linkname="x") + b"hello".ljust(BLOCK, b"\0")]),
            None, UnsafeArchive),
        # -- duplicates
        "duplicate-manifest": (with_manifest(entry(), extra=[
            M("manifest.json", json.dumps([entry(config="other.json")]).encode())]),
            None, UnsafeArchive),
        "duplicate-layer": (with_manifest(entry(), extra=[M(f"{L0}/layer.tar", b"swapped")]),
                            None, UnsafeArchive),
        "duplicate-config-file-vs-dir": (with_manifest(entry(), extra=[M(CONFIG, kind="dir")]),
                                         None, UnsafeArchive),
        # -- manifest paths
        "config-path-escapes": (with_manifest(entry(config="../../etc/hostname")), None,
                                UnsafeArchive),
        "config-path-absolute": (with_manifest(entry(config="/etc/hostname")), None,
                                 UnsafeArchive),
        "layer-path-escapes": (with_manifest(entry(layers=(f"{L0}/../../../etc/passwd",
                                                           f"{L1}/layer.tar"))),
                               None, UnsafeArchive),
        "layer-path-nul": (with_manifest(entry(layers=(f"{L0}/layer.tar\u0000x",
                                                       f"{L1}/layer.tar"))),
                           None, UnsafeArchive),
        # -- sizes and bombs
        "manifest-over-json-limit": (tar_bytes([
            M(CONFIG, IMG.config),
            M("manifest.json", json.dumps([entry()]).encode() + b" " * (9 << 20))]),
            None, UnsafeArchive),
        "config-over-json-limit": (tar_bytes([
            M("big.json", b"{" + b" " * (9 << 20) + b"}"),
            M("manifest.json", json.dumps([entry(config="big.json", layers=())]).encode())]),
            None, UnsafeArchive),
        "v1-json-over-limit": (tar_bytes([M("abc/json", b" " * (9 << 20)),
                                          M("abc/layer.tar", IMG.layers[0])]),
                               None, UnsafeArchive),
        "gzip-bomb-archive": (bomb, Limits(decompressed_size=16 << 20), UnsafeArchive),
        "gzip-bomb-layer": (tar_bytes([M(CONFIG, IMG.config), *crane_bomb_members,
                                       M("manifest.json", json.dumps(
                                           [entry(layers=tuple(gz_layers))]).encode())]),
                            Limits(decompressed_size=16 << 20), UnsafeArchive),
        "too-many-members": (*member_limit_archive(), UnsafeArchive),
        # -- tar-level ambiguity
        "pax-global-header-renames": (
            set_field(raw_header("pax_global_header", 15, b"g"), 0, b"p")
            + b"15 path=../etc\n".ljust(BLOCK, b"\0") + with_manifest(entry()), None,
            UnsafeArchive),
        "two-pax-headers": (pax_header_only({"path": "a"}) + with_manifest(
            entry(), before=[M("b", b"2", pax={"path": "bb"})]), None, UnsafeArchive),
        "legacy-parent-escapes": (tar_bytes([
            M("abc/json", json.dumps({"id": "abc", "parent": "../../etc"}).encode()),
            M("abc/layer.tar", IMG.layers[0])]), None, UnsafeArchive),
    }


CASES = cases()
COMPRESSED = {"gzip-bomb-archive"}


def test_there_are_enough_attacks() -> None:
    assert len(CASES) >= 20


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tuple[OCILayoutStore, Path, Path]:
    """A layout with one image in it, under its own parent dir, and an empty TMPDIR."""
    parent = tmp_path / "parent"
    parent.mkdir()
    store = OCILayoutStore(parent / "layout", create=True)
    load(io.BytesIO(docker_archive([image(1, tags=("resident:1",), seed="resident")])),
         into=store)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return store, parent, tmpdir


def _expect_no_trace(action: Callable[[], object], error: Type[TarexportError],
                     target: Tuple[OCILayoutStore, Path, Path]) -> None:
    _, parent, tmpdir = target
    before = tree_snapshot(parent)
    with pytest.raises(error):
        action()
    assert tree_snapshot(parent) == before
    assert list(tmpdir.iterdir()) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_archive_is_refused_without_a_trace(name: str, target) -> None:
    data, limits, error = CASES[name]
    store = target[0]
    kwargs = {"limits": limits} if limits is not None else {}
    _expect_no_trace(lambda: load(io.BytesIO(data), into=store, **kwargs), error, target)


def _open_and_read_everything(path: Path, limits: Limits | None) -> None:
    store = DockerArchiveStore(path, **({"limits": limits} if limits is not None else {}))
    for image_id in store.image_ids:
        diff_ids = Image.from_bytes(store.get_config(image_id)).diff_ids
        for chain in chain_ids(diff_ids):
            layer = store.get_layer(chain)
            with layer.open() as stream:
                while stream.read(1 << 20):
                    pass


@pytest.mark.parametrize("name", sorted(set(CASES) - COMPRESSED))
def test_hostile_archive_is_refused_in_place(name: str, tmp_path: Path) -> None:
    """Opened in place, the archive is refused when indexed or, for a layer, when read."""
    data, limits, error = CASES[name]
    path = tmp_path / "hostile.tar"
    path.write_bytes(data)
    with pytest.raises(error):
        _open_and_read_everything(path, limits)


def test_control_archive_loads(target) -> None:
    """The same victim image, well formed: it loads, so the attacks fail for their attack."""
    store, parent, tmpdir = target
    loaded = load(io.BytesIO(with_manifest(entry())), into=store)
    assert [str(i) for i in loaded.image_ids] == [IMG.id]
    assert list(tmpdir.iterdir()) == []
    path = parent.parent / "control.tar"
    path.write_bytes(with_manifest(entry()))
    assert [str(i) for i in DockerArchiveStore(path).image_ids] == [IMG.id]


def test_errors_are_invalid_archives() -> None:
    assert issubclass(UnsafeArchive, InvalidArchive)


def _memory_state(store: object) -> object:
    ids = store.search("")  # type: ignore[attr-defined]
    return [(i, store.get_config(i), list(store.references(i)),  # type: ignore[attr-defined]
             store.get_parent(i)) for i in ids]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_archive_leaves_a_memory_store_unchanged(name: str) -> None:
    from tarexport.stores.memory import MemoryStore

    if not hasattr(MemoryStore, "begin_load"):
        pytest.skip("MemoryStore is not a load target yet")
    store = MemoryStore()
    load(io.BytesIO(docker_archive([image(1, tags=("resident:1",), seed="resident")])),
         into=store)  # type: ignore[arg-type]
    before = _memory_state(store)
    data, limits, error = CASES[name]
    with pytest.raises(error):
        load(io.BytesIO(data), into=store,  # type: ignore[arg-type]
             **({"limits": limits} if limits is not None else {}))
    assert _memory_state(store) == before
