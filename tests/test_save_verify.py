"""How a verified save checks layers: one hash per byte, and the file-state checks.

A hashing spy counts every byte given to ``hashlib`` while a plan is written (planning,
which hashes configs and v1 IDs, happens outside it), so each test can say exactly how many
times a layer's bytes were hashed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import tarfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Optional

import pytest
from test_docker_root import FILES, LINKS, craft_root, gnu_layer

from tarexport import MemoryStore, OCILayoutStore, Saver, profiles
from tarexport.compression import VerifyingReader
from tarexport.copy import FileState, copy_layer, needs_hash, source_state
from tarexport.digest import Digest
from tarexport.errors import LayerChanged, LayerDigestMismatch
from tarexport.stores import DockerRootStore
from tarexport.stores.protocols import FileRange, layer_verification, open_unverified

BIG = 5 << 20  # above the copy's threading threshold: the kernel copy with a hash aside


class HashSpy:
    """Counts the bytes every ``hashlib.new`` / ``hashlib.sha256`` object is fed."""

    def __init__(self) -> None:
        self.hashed = 0

    def wrap(self, real: Any) -> Any:
        spy = self
        named = real is hashlib.new  # new(name, data) rather than sha256(data)

        class Counting:
            def __init__(self, h: Any) -> None:
                self._h = h

            def update(self, data: Any) -> None:
                spy.hashed += memoryview(data).nbytes
                self._h.update(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._h, name)

        def make(*args: Any, **kwargs: Any) -> Counting:
            data = kwargs.pop("data", None)
            if named and len(args) > 1:
                args, data = args[:1], args[1]
            elif not named and args:
                args, data = (), args[0]
            counting = Counting(real(*args, **kwargs))
            if data is not None:
                counting.update(data)
            return counting

        return make


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> HashSpy:
    counter = HashSpy()
    monkeypatch.setattr(hashlib, "new", counter.wrap(hashlib.new))
    monkeypatch.setattr(hashlib, "sha256", counter.wrap(hashlib.sha256))
    return counter


def config_for(*layers: bytes) -> bytes:
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    return json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()


def layer_tar(size: int) -> bytes:
    """A layer tar of one file of ``size`` random bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo("blob")
        info.size = size
        t.addfile(info, io.BytesIO(secrets.token_bytes(size)))
    return out.getvalue()


def write_counting(spy: HashSpy, saver: Saver, name: str, out: BinaryIO) -> int:
    """Bytes hashed while the plan of ``name`` is written to ``out``."""
    plan = saver.plan(name)
    before = spy.hashed
    plan.write(out)
    return spy.hashed - before


# -- one hash per byte ----------------------------------------------------------------------


class SelfCheckingLayer:
    """A stream-only layer whose reads check its digest; ``claims`` says whether it says so."""

    def __init__(self, data: bytes, diff_id: Optional[Digest] = None, claims: bool = True):
        self._data = data
        self._diff_id = diff_id or Digest.from_bytes(data)
        if claims:
            self.verification = "on-read"
        self.opened_unverified = 0

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def size(self) -> int:
        return len(self._data)

    def open(self) -> BinaryIO:
        checked = VerifyingReader(io.BytesIO(self._data), self._diff_id,  # type: ignore[arg-type]
                                  size=len(self._data), what="test layer")
        return io.BufferedReader(checked)  # type: ignore[return-value]

    def open_unverified(self) -> BinaryIO:
        self.opened_unverified += 1
        return io.BytesIO(self._data)

    def file_range(self) -> Optional[FileRange]:
        return None


class QuietSelfCheckingLayer(SelfCheckingLayer):
    """Checks its reads but says nothing, and has no unverified way to be read."""

    open_unverified = None  # type: ignore[assignment]


class OneLayerStore:
    """Just enough of the three store protocols to save one image of one layer."""

    def __init__(self, layer: Any, data: bytes) -> None:
        self.config = config_for(data)
        self.image_id = Digest.from_bytes(self.config)
        self.layer = layer

    def get_config(self, image_id: Digest) -> bytes:
        return self.config

    def search(self, prefix: str) -> list[Digest]:
        return [self.image_id] if self.image_id.hex.startswith(prefix) else []

    def get_parent(self, image_id: Digest) -> Optional[Digest]:
        return None

    def get_layer(self, chain_id: Digest) -> Any:
        return self.layer

    def get(self, reference: Any) -> Digest:
        return self.image_id

    def references_by_name(self, name: Any) -> list[Any]:
        return []

    def references(self, image_id: Digest) -> list[Any]:
        return []


@pytest.mark.parametrize(("kind", "times"), [("says-it-checks", 1), ("says-nothing", 2)])
def test_a_layer_that_checks_itself_is_hashed_once(spy: HashSpy, kind: str, times: int) -> None:
    """Said through ``verification``, the Saver leaves the check to the layer's stream;
    unsaid (and with no ``open_unverified``), the layer's check and the Saver's both run."""
    data = layer_tar(BIG)
    if kind == "says-it-checks":
        layer: SelfCheckingLayer = SelfCheckingLayer(data)
    else:
        layer = QuietSelfCheckingLayer(data, claims=False)
    store = OneLayerStore(layer, data)
    saver = Saver(store, store, store, profile=profiles.DOCKER_20_10)
    hashed = write_counting(spy, saver, store.image_id.hex, io.BytesIO())
    assert hashed == times * len(data)


def test_a_self_checking_layer_that_lies_still_fails_the_save() -> None:
    data = layer_tar(BIG)
    wrong = Digest.from_bytes(b"other bytes")
    store = OneLayerStore(SelfCheckingLayer(data, diff_id=wrong), data)
    store.config = config_for(b"other bytes")
    store.image_id = Digest.from_bytes(store.config)
    out = io.BytesIO()
    with pytest.raises(LayerDigestMismatch):
        Saver(store, store, store).save(store.image_id.hex, out)
    written = out.getvalue()
    start = written.find(data[:4096])
    assert start > 0 and len(written) - start < len(data)  # the last block was withheld


def test_a_layer_hashed_by_the_saver_is_read_unverified(spy: HashSpy) -> None:
    data = layer_tar(BIG)
    layer = SelfCheckingLayer(data, claims=False)
    store = OneLayerStore(layer, data)
    saver = Saver(store, store, store)
    assert write_counting(spy, saver, store.image_id.hex, io.BytesIO()) == len(data)
    assert layer.opened_unverified == 1


def test_no_verify_opens_a_self_checking_layer_unverified(spy: HashSpy) -> None:
    data = layer_tar(BIG)
    layer = SelfCheckingLayer(data)
    store = OneLayerStore(layer, data)
    saver = Saver(store, store, store, verify=False)
    assert write_counting(spy, saver, store.image_id.hex, io.BytesIO()) == 0
    assert layer.opened_unverified == 1


class PlainLayer:
    """A layer with the four required members only."""

    diff_id = Digest.from_bytes(b"abc")
    size = 3

    def open(self) -> BinaryIO:
        return io.BytesIO(b"abc")

    def file_range(self) -> Optional[FileRange]:
        return None


def test_optional_members_are_derived_when_absent() -> None:
    layer = PlainLayer()
    assert layer_verification(layer) is None
    assert open_unverified(layer).read() == b"abc"  # open() stands in
    assert needs_hash(layer)
    assert not needs_hash(layer, verify=False)
    assert layer_verification(SelfCheckingLayer(b"abc")) == "on-read"


@pytest.mark.parametrize(("verify", "times"), [(True, 1), (False, 0)])
def test_docker_root_hashes_once_and_not_at_all_without_verify(
    tmp_path: Path, spy: HashSpy, verify: bool, times: int
) -> None:
    tar = gnu_layer({**FILES, "big": secrets.token_bytes(1 << 16)}, LINKS)
    crafted = craft_root(tmp_path, tar)
    store = DockerRootStore(crafted.root)
    saver = Saver(store, store, store, profile=profiles.DOCKER_20_10, verify=verify)
    with open(tmp_path / "out.tar", "wb") as out:
        hashed = write_counting(spy, saver, crafted.image_id.hex, out)
    assert hashed == times * len(tar)


def oci_store(tmp_path: Path, data: bytes) -> tuple[OCILayoutStore, Digest]:
    store = OCILayoutStore(tmp_path / "layout", create=True, fsync=False)
    return store, store.add_image(config_for(data), [data], ["app:1"])


@pytest.mark.parametrize(("trust", "times"), [(False, 1), (True, 0)],
                         ids=["default", "trust-ingested"])
@pytest.mark.parametrize("sink", ["file", "bytesio"])
def test_trust_mode_skips_the_hash_of_blobs_verified_at_ingest(
    tmp_path: Path, spy: HashSpy, trust: bool, times: int, sink: str
) -> None:
    data = layer_tar(BIG)
    store, _ = oci_store(tmp_path, data)
    saver = Saver(store, store, store, trust_ingested=trust)
    if sink == "file":
        with open(tmp_path / "out.tar", "wb") as f:
            hashed = write_counting(spy, saver, "app:1", f)
    else:
        hashed = write_counting(spy, saver, "app:1", io.BytesIO())
    assert hashed == times * len(data)


@pytest.mark.parametrize(("trust", "times"), [(False, 1), (True, 0)],
                         ids=["default", "trust-ingested"])
def test_trust_mode_covers_blobs_the_containerd_profile_writes_as_stored(
    tmp_path: Path, spy: HashSpy, trust: bool, times: int
) -> None:
    data = layer_tar(BIG)
    store, _ = oci_store(tmp_path, data)
    saver = Saver(store, store, store, profile=profiles.DOCKER_28_CONTAINERD,
                  trust_ingested=trust)
    with open(tmp_path / "out.tar", "wb") as f:
        hashed = write_counting(spy, saver, "app:1", f)
    assert hashed == times * len(data)


def test_without_trust_a_tampered_blob_fails(tmp_path: Path) -> None:
    data = layer_tar(BIG)
    store, _ = oci_store(tmp_path, data)
    blob = tmp_path / "layout" / "blobs" / "sha256" / Digest.from_bytes(data).hex
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 1
    blob.write_bytes(bytes(tampered))  # same size, after ingest and before planning
    saver = Saver(store, store, store)
    with open(tmp_path / "out.tar", "wb") as out, pytest.raises(LayerDigestMismatch):
        saver.save("app:1", out)
    written = (tmp_path / "out.tar").read_bytes()
    start = written.find(data[:4096])
    assert start > 0 and len(written) - start < len(data)  # the last block was withheld


# -- the file-state checks ------------------------------------------------------------------


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[tuple[MemoryStore, Path]]:
    data = layer_tar(BIG)
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    store = MemoryStore()
    store.add_image(config_for(data), [path], ["app:1"])
    yield store, path


def rewrite_in_place(path: Path) -> None:
    """Same size, one bit flipped; the mtime set back a second later than it was."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[1000] ^= 1
    with open(path, "r+b") as f:
        f.write(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def replace_by_rename(path: Path) -> None:
    """The same bytes under a new inode, as an atomic rewrite leaves it."""
    other = path.with_suffix(".new")
    other.write_bytes(path.read_bytes())
    os.replace(other, path)


@pytest.mark.parametrize("change", [rewrite_in_place, replace_by_rename],
                         ids=["rewritten", "replaced"])
@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
def test_a_file_changed_between_plan_and_write_is_refused_before_byte_0(
    tmp_path: Path, file_store: tuple[MemoryStore, Path], change: Any, verify: bool
) -> None:
    store, path = file_store
    plan = Saver(store, store, store, verify=verify).plan("app:1")
    change(path)
    with open(tmp_path / "out.tar", "wb") as out, pytest.raises(LayerChanged, match="planned"):
        plan.write(out)
    assert (tmp_path / "out.tar").read_bytes() == b""


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
def test_a_file_written_during_the_copy_is_refused(tmp_path: Path, verify: bool) -> None:
    data = layer_tar(BIG)
    path = tmp_path / "layer.tar"
    path.write_bytes(data)

    class FileLayer:
        diff_id = Digest.from_bytes(data)
        size = len(data)

        def open(self) -> BinaryIO:
            return open(path, "rb")

        def file_range(self) -> FileRange:
            return FileRange(str(path), 0, len(data))

    layer = FileLayer()
    planned = source_state(layer)
    assert isinstance(planned, FileState)

    def append_once(n: int) -> None:  # the first chunk is out: the file grows behind it
        if path.stat().st_size == len(data):
            with open(path, "ab") as f:
                f.write(b"x")

    out_path = tmp_path / "out.tar"
    with open(out_path, "wb") as out, pytest.raises(LayerChanged, match="while it was copied"):
        copy_layer(layer, out, name="x/layer.tar", verify=verify, planned_state=planned,
                   on_progress=append_once)
    assert out_path.read_bytes() == data[:-512]  # all but the last block, withheld


def test_file_state_of_a_stream_layer_is_none() -> None:
    assert source_state(SelfCheckingLayer(b"abc")) is None
