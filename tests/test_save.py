"""The Saver against real `docker save` output: every golden, byte for byte."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import attrs
import pytest
from golden_store import CASES, Golden, build_store, read_golden
from helpers import assert_tar_equal

from tarexport import MemoryStore, SavePlan, Saver, profiles
from tarexport.digest import Digest
from tarexport.errors import (
    AmbiguousReference,
    EmptyExport,
    ImageNotFound,
    InvalidReference,
    LayerChanged,
    LayerDigestMismatch,
    LayerNotFound,
    LayerSizeMismatch,
    OutputError,
    ReferenceNotFound,
    TarexportError,
)
from tarexport.tarstream import END_OF_ARCHIVE

DEBIAN_20_10 = attrs.evolve(profiles.DOCKER_20_10, owner_name="root")


def golden_profile(golden: Golden) -> profiles.Profile:
    return attrs.evolve(DEBIAN_20_10, image_order=golden.order, now=golden.symlink_mtime)


@pytest.mark.parametrize("files", [True, False], ids=["file-layers", "bytes-layers"])
@pytest.mark.parametrize("case", CASES)
def test_byte_identical_to_docker(case: str, files: bool, tmp_path: Path) -> None:
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=files)
    saver = Saver(store, store, store, profile=golden_profile(golden))
    out = io.BytesIO()
    plan = saver.save(golden.case["docker_save_args"], out)
    ours = out.getvalue()
    assert plan.total_size == len(ours)
    assert_tar_equal(ours, golden.archive)


def test_default_order_is_first_appearance_and_now_is_created(tmp_path: Path) -> None:
    """Without knobs: images in the order named, symlinked dirs stamped with `created`."""
    golden = read_golden("s10-base-and-derived-together")
    store = build_store(golden, tmp_path, files=True)
    names = golden.case["docker_save_args"]
    plan = Saver(store, store, store, profile=DEBIAN_20_10).plan(names)
    expected = [store.get(_tag(n)).hex for n in names]
    assert [p.id.hex for p in plan.images] == expected
    created = {p.id.hex: p.image.created for p in plan.images}
    symlinks = [e for e in plan.entries if e.header.typeflag == "2"]
    assert symlinks, "s10 shares a layer between its images"
    child = plan.images[1]
    assert child.image.created is not None
    assert symlinks[0].header.mtime == int(created[child.id.hex].unix_seconds)  # type: ignore[union-attr]


def _tag(name: str) -> Any:
    from tarexport.reference import parse_normalized_named

    return parse_normalized_named(name, legacy=True)


def test_empty_image_is_refused_before_any_byte() -> None:
    config = json.dumps({
        "architecture": "amd64",
        "config": {"Labels": {"only": "a label"}},
        "created": "2026-11-28T23:01:25.266573106Z",
        "os": "linux",
        "rootfs": {"type": "layers"},
    }).encode()
    store = MemoryStore()
    store.add_image(config, [], ["cc-s-nolayers:1"])
    out = io.BytesIO()
    for profile in profiles.ALL:
        if profile.zero_layer_images:
            continue  # the containerd store saves it
        with pytest.raises(EmptyExport, match="empty export - not implemented"):
            Saver(store, store, store, profile=profile).save(["cc-s-nolayers:1"], out)
    assert out.getvalue() == b""


@pytest.fixture(scope="module")
def repo_store() -> MemoryStore:
    """The images of s12 (two images of one repository) plus s13's by-ID case."""
    golden = read_golden("s12-repo-name-only")
    store = MemoryStore()
    for hex_, config in golden.configs.items():
        store.add_image(config, golden.layers[hex_], golden.tags[hex_])
    return store


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("nosuchimage", ImageNotFound, "No such image: nosuchimage"),
        ("deadbeef", ImageNotFound, "No such image: deadbeef"),
        ("sha256:deadbeef", ImageNotFound, "No such image: sha256:deadbeef"),
        ("cc-s-repo:nosuchtag", ReferenceNotFound, "reference does not exist"),
        ("other/repo:1", ReferenceNotFound, "reference does not exist"),
        ("cc-s-repo@sha256:" + "a" * 64, ReferenceNotFound, "reference does not exist"),
        ("b", AmbiguousReference, "ambiguous digest string"),
        ("sha256:b", AmbiguousReference, "ambiguous digest string"),
        ("a" * 64, ImageNotFound, "failed to get digest sha256:" + "a" * 64),
        ("Cc-s-repo:1", InvalidReference,
         "invalid reference format: repository name must be lowercase"),
        ("cc-s-repo:", InvalidReference, "invalid reference format"),
    ],
)
def test_resolution_errors_carry_dockers_messages(
    repo_store: MemoryStore, name: str, error: type[Exception], message: str
) -> None:
    out = io.BytesIO()
    saver = Saver(repo_store, repo_store, repo_store, profile=DEBIAN_20_10)
    with pytest.raises(error) as info:
        saver.save(["cc-s-repo:1", name], out)
    assert message in str(info.value)
    assert isinstance(info.value, TarexportError)
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    "names",
    [
        ["bc372f9efa29"],
        ["sha256:bc372f9efa29"],
        ["bc372f9efa29dd20c853a936cb144a357e0cc5176d9d741a9b787c57f98e0539"],
        ["sha256:bc372f9efa29dd20c853a936cb144a357e0cc5176d9d741a9b787c57f98e0539"],
        ["cc-s-repo:2"],
        ["docker.io/library/cc-s-repo:2"],
        ["cc-s-repo:2", "bc372f9efa29", "cc-s-repo:2"],
    ],
)
def test_every_way_of_naming_an_image(repo_store: MemoryStore, names: list[str]) -> None:
    plan = Saver(repo_store, repo_store, repo_store, profile=DEBIAN_20_10).plan(names)
    assert [p.id.hex[:12] for p in plan.images] == ["bc372f9efa29"]
    tagged = any(":" in n and not n.startswith("sha256:") for n in names)
    assert plan.images[0].repo_tags == (("cc-s-repo:2",) if tagged else ())


def test_name_only_saves_every_tag_sorted(repo_store: MemoryStore) -> None:
    plan = Saver(repo_store, repo_store, repo_store, profile=DEBIAN_20_10).plan(
        ["cc-s-repo:latest", "cc-s-repo"]
    )
    assert [p.repo_tags for p in plan.images] == [
        ("cc-s-repo:latest", "cc-s-repo:1", "cc-s-repo:1.0"),
        ("cc-s-repo:2",),
    ]


class _Failing(io.RawIOBase):
    def __init__(self, fail_after: int) -> None:
        self.left = fail_after

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.left < len(data):
            raise OSError(28, "No space left on device")
        self.left -= len(data)
        return len(data)


def test_output_failure_is_one_typed_error(tmp_path: Path) -> None:
    golden = read_golden("s08-build-bigfile-3MiB")
    store = build_store(golden, tmp_path, files=False)
    saver = Saver(store, store, store, profile=golden_profile(golden))
    with pytest.raises(OutputError, match="No space left"):
        saver.save(golden.case["docker_save_args"], _Failing(200_000))  # type: ignore[arg-type]


def _corrupt(tmp_path: Path, mutate: Any, after_plan: bool = True) -> tuple[SavePlan, int]:
    """A plan whose biggest layer file was altered after it was added, and that layer's end.

    Altered after planning, or between adding and planning (only for same-size changes:
    the plan checks the size the store recorded).
    """
    golden = read_golden("s08-build-bigfile-3MiB")
    store = build_store(golden, tmp_path, files=True)
    biggest = max(tmp_path.glob("*.tar"), key=lambda p: p.stat().st_size)
    if not after_plan:
        biggest.write_bytes(mutate(biggest.read_bytes()))
    plan = Saver(store, store, store, profile=golden_profile(golden)).plan(
        golden.case["docker_save_args"]
    )
    if after_plan:
        biggest.write_bytes(mutate(biggest.read_bytes()))
    offset = 0
    for entry in plan.entries:
        offset += len(entry.encoded)
        if entry.layer is not None and entry.layer.size == len(golden.layers[golden.order[0]][-1]):
            return plan, offset + entry.header.size
        offset += entry.length - len(entry.encoded)
    raise AssertionError("no layer entry found")


@pytest.mark.parametrize(
    ("mutate", "after_plan", "error"),
    [
        (lambda d: d[:1000] + bytes([d[1000] ^ 1]) + d[1001:], False, LayerDigestMismatch),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), False, LayerDigestMismatch),
        (lambda d: d[:1000] + bytes([d[1000] ^ 1]) + d[1001:], True, LayerChanged),
        (lambda d: d[:-512], True, LayerSizeMismatch),  # the store's own size check
        (lambda d: d + bytes(512), True, LayerSizeMismatch),
    ],
    ids=["flipped-bit", "flipped-last-byte", "flipped-after-plan", "shorter-after-plan",
         "longer-after-plan"],
)
@pytest.mark.parametrize("sink", ["bytesio", "file", "pipe"])
def test_corrupt_layer_leaves_a_visibly_truncated_archive(
    tmp_path: Path, mutate: Any, after_plan: bool, error: type[Exception], sink: str
) -> None:
    """The bad layer's member is never completed, so every tar reader sees a truncated file."""
    plan, layer_end = _corrupt(tmp_path, mutate, after_plan)
    if sink == "file":
        with open(tmp_path / "out.tar", "wb") as f, pytest.raises(error):
            plan.write(f)
        written = (tmp_path / "out.tar").read_bytes()
    elif sink == "pipe":
        written = _write_to_pipe(plan, error)
    else:
        buffer = io.BytesIO()
        with pytest.raises(error):
            plan.write(buffer)
        written = buffer.getvalue()
    assert len(written) < layer_end
    assert not written.endswith(END_OF_ARCHIVE)


def _write_to_pipe(plan: SavePlan, error: type[Exception]) -> bytes:
    import threading

    read_fd, write_fd = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as r:
            while chunk := r.read(1 << 16):
                chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(write_fd, "wb") as w, pytest.raises(error):
        plan.write(w)
    reader.join()
    return b"".join(chunks)


def test_missing_layer_fails_at_plan_time() -> None:
    golden = read_golden("s01-import-single-gnu")
    hex_ = golden.order[0]
    store = MemoryStore()
    store.add_image(golden.configs[hex_], golden.layers[hex_], golden.tags[hex_])
    store._layers.clear()  # a store that lost a layer
    with pytest.raises(LayerNotFound):
        Saver(store, store, store).plan(golden.case["docker_save_args"])


def test_plan_is_a_value_and_total_size_is_exact(tmp_path: Path) -> None:
    golden = read_golden("s10-base-and-derived-together")
    store = build_store(golden, tmp_path, files=True)
    for profile in profiles.ALL:
        plan = Saver(store, store, store, profile=profile).plan(golden.case["docker_save_args"])
        out = io.BytesIO()
        plan.write(out)
        assert len(out.getvalue()) == plan.total_size
        out2 = io.BytesIO()
        plan.write(out2)
        assert out.getvalue() == out2.getvalue()
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            assert "manifest.json" in tar.getnames()


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    golden = read_golden("s08-build-bigfile-3MiB")
    store = build_store(golden, tmp_path, files=True)
    events = []
    plan = Saver(store, store, store).save(golden.case["docker_save_args"], io.BytesIO(),
                                           progress=events.append)
    assert events[0].phase == "start" and events[0].done == 0
    assert events[-1].phase == "done" and events[-1].done == plan.total_size
    dones = [e.done for e in events]
    assert dones == sorted(dones)
    assert any(e.phase == "bytes" and e.layer for e in events)
    assert all(e.total == plan.total_size for e in events)


def test_digest_coercion_in_image_order() -> None:
    assert Digest.coerce("a" * 64) == Digest.coerce("sha256:" + "a" * 64)
