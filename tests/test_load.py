"""The Loader: goldens loaded and saved back byte for byte, every layout, every check."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
from pathlib import Path
from typing import Any, List, Set

import attrs
import pytest
from craft import M, OnlyRead, docker_archive, image, sha256, tar_bytes, tree_snapshot
from helpers import GoldenCase, assert_tar_equal, golden_params
from test_docker_archive import (
    RESAVABLE,
    crane_style,
    golden_profile,
    legacy_variant,
    resave,
)

from tarexport import profiles
from tarexport.compression import zstd_available
from tarexport.digest import Digest
from tarexport.errors import (
    ArchiveDigestMismatch,
    InvalidArchive,
    LayerDigestMismatch,
    UnsafeArchive,
)
from tarexport.load import LoadedImage, Loader, LoadResult, load
from tarexport.reference import parse_normalized_named
from tarexport.stores.docker_archive import DockerArchiveStore
from tarexport.stores.oci_layout import ANNOTATION_PARENT, OCILayoutStore


@pytest.fixture
def layout(tmp_path: Path) -> OCILayoutStore:
    return OCILayoutStore(tmp_path / "layout", create=True)


def load_bytes(data: bytes, store: OCILayoutStore, **kwargs: Any) -> LoadResult:
    return load(io.BytesIO(data), into=store, **kwargs)


def index_blobs(store: OCILayoutStore) -> Set[str]:
    """Every blob the layout's index reaches (manifests, configs, layers)."""
    reached = set()
    index = json.loads(Path(store.path, "index.json").read_bytes())
    todo = [d["digest"] for d in index["manifests"]]
    while todo:
        digest = todo.pop()
        reached.add(digest)
        doc = json.loads(Path(store.blob_path(Digest.parse(digest))).read_bytes())
        if "manifests" in doc:
            todo.extend(d["digest"] for d in doc["manifests"])
        elif "config" in doc:
            reached.add(doc["config"]["digest"])
            reached.update(layer["digest"] for layer in doc["layers"])
    return reached


def layout_manifests(store: OCILayoutStore) -> List[Any]:
    """The image manifests ``index.json`` lists directly."""
    index = json.loads(Path(store.path, "index.json").read_bytes())
    return [json.loads(Path(store.blob_path(Digest.parse(d["digest"]))).read_bytes())
            for d in index["manifests"]]


def all_blobs(store: OCILayoutStore) -> Set[str]:
    root = Path(store.path, "blobs")
    return {f"{p.parent.name}:{p.name}" for p in root.glob("*/*")}


# -- goldens --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_golden_loaded_into_a_layout_saves_back_byte_identical(
    case: GoldenCase, layout: OCILayoutStore
) -> None:
    with open(case.save_tar, "rb") as f:  # type: ignore[arg-type]
        loaded = load(f, into=layout)
    assert [str(i) for i in loaded.image_ids] == [
        "sha256:" + e["Config"][:-5] for e in case.case["manifest"]]
    assert_tar_equal(resave(layout, case), case.save_tar.read_bytes())  # type: ignore[union-attr]
    assert index_blobs(layout) == all_blobs(layout)  # nothing stray
    assert [p.name for p in Path(layout.path).iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_golden_from_a_pipe(case: GoldenCase, layout: OCILayoutStore) -> None:
    """A non-seekable stream with short reads and no readinto loads the same."""
    load(OnlyRead(case.save_tar.read_bytes()), into=layout)  # type: ignore[arg-type,union-attr]
    assert_tar_equal(resave(layout, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


COMPRESSIONS = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}
if zstd_available():
    import zstandard

    COMPRESSIONS["zstd"] = lambda data: zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind", sorted(COMPRESSIONS))
def test_compressed_archive(kind: str, layout: OCILayoutStore) -> None:
    case = RESAVABLE[3]
    data = COMPRESSIONS[kind](case.save_tar.read_bytes())  # type: ignore[union-attr]
    load(OnlyRead(data), into=layout)  # type: ignore[arg-type]
    assert_tar_equal(resave(layout, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_crane_style_archive_is_stored_uncompressed(
    case: GoldenCase, layout: OCILayoutStore
) -> None:
    load_bytes(crane_style(case), layout)
    assert_tar_equal(resave(layout, case), case.save_tar.read_bytes())  # type: ignore[union-attr]
    for manifest in layout_manifests(layout):
        media = {layer["mediaType"] for layer in manifest["layers"]}
        assert media == {"application/vnd.oci.image.layer.v1.tar"}


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_docker_25_hybrid_archive(case: GoldenCase, layout: OCILayoutStore) -> None:
    hybrid_profile = attrs.evolve(profiles.DOCKER_26, image_order=golden_profile(case).image_order)
    hybrid = resave(DockerArchiveStore(case.save_tar), case, hybrid_profile)  # type: ignore[arg-type]
    load_bytes(hybrid, layout)
    assert_tar_equal(resave(layout, case), case.save_tar.read_bytes())  # type: ignore[union-attr]
    assert_tar_equal(resave(layout, case, hybrid_profile), hybrid)


def test_legacy_archive(layout: OCILayoutStore) -> None:
    case = next(c for c in RESAVABLE if c.name.startswith("s04"))
    loaded = load_bytes(legacy_variant(case), layout)
    assert loaded.legacy
    # Every v1 directory becomes an image, parents first; the tag goes to the top one.
    layers = case.case["manifest"][0]["Layers"]
    assert len(loaded.images) == len(layers)
    top = loaded.images[-1]
    assert [str(r) for r in top.references] == ["docker.io/library/cc-s-layers:3"]
    assert [i.parent for i in loaded.images] == [None, *loaded.image_ids[:-1]]
    assert layout.get_parent(top.id) == loaded.image_ids[-2]
    out = io.BytesIO()
    from tarexport import Saver

    Saver(layout, layout, layout, profile=profiles.DOCKER_20_10).save(["cc-s-layers:3"], out)
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["Layers"] == layers  # the same v1 IDs


def test_parent_link_is_recorded(layout: OCILayoutStore) -> None:
    case = next(c for c in RESAVABLE if c.name.startswith("s10"))
    load_bytes(case.save_tar.read_bytes(), layout)  # type: ignore[union-attr]
    base, app = (Digest("sha256", e["Config"][:-5]) for e in case.case["manifest"])
    assert layout.get_parent(app) == base
    assert layout.get_parent(base) is None
    annotated = [m["annotations"][ANNOTATION_PARENT] for m in layout_manifests(layout)
                 if "annotations" in m]
    assert annotated == [str(base)]


# -- what a load returns ------------------------------------------------------------------


def test_result_and_messages(layout: OCILayoutStore) -> None:
    tagged = image(1, tags=("app:1", "app:2"))
    untagged = image(1, tags=(), seed="u")
    result = load_bytes(docker_archive([tagged, untagged]), layout)
    assert result == LoadResult((
        LoadedImage(Digest.parse(tagged.id), (parse_normalized_named("app:1"),
                                              parse_normalized_named("app:2"))),
        LoadedImage(Digest.parse(untagged.id)),
    ))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.images = ()  # type: ignore[misc]
    # Docker prints the IDs only when the last image had no tag.
    assert result.messages() == [
        "Loaded image: app:1", "Loaded image: app:2",
        f"Loaded image ID: {tagged.id}", f"Loaded image ID: {untagged.id}"]
    assert load_bytes(docker_archive([untagged, tagged]), layout).messages() == [
        "Loaded image: app:1", "Loaded image: app:2"]


def test_progress_reports(layout: OCILayoutStore) -> None:
    seen = []
    load_bytes(docker_archive([image(2)]), layout, progress=seen.append)
    phases = [p.phase for p in seen]
    assert phases[0] == "start" and phases[-1] == "done" and "entry" in phases
    assert "manifest.json" in {p.entry for p in seen}


def test_loading_twice_changes_nothing(layout: OCILayoutStore) -> None:
    data = docker_archive([image(2, tags=("a:1", "b:2"))])
    load_bytes(data, layout)
    before = tree_snapshot(layout.path)
    load_bytes(data, layout)
    assert tree_snapshot(layout.path) == before


def test_tags_move_and_the_old_image_stays_listed(layout: OCILayoutStore) -> None:
    old = image(1, tags=("app:1",), seed="old")
    new = image(1, tags=("app:1",), seed="new")
    load_bytes(docker_archive([old]), layout)
    load_bytes(docker_archive([new]), layout)
    assert layout.get(parse_normalized_named("app:1")) == Digest.parse(new.id)
    assert layout.references(Digest.parse(old.id)) == []
    assert set(layout.search("")) == {Digest.parse(old.id), Digest.parse(new.id)}
    assert index_blobs(layout) == all_blobs(layout)


def test_same_tag_twice_in_one_archive_goes_to_the_last(layout: OCILayoutStore) -> None:
    first = image(1, tags=("app:1",), seed="first")
    second = image(1, tags=("app:1",), seed="second")
    load_bytes(docker_archive([first, second]), layout)
    assert layout.get(parse_normalized_named("app:1")) == Digest.parse(second.id)


def test_layer_shared_by_images_is_stored_once(layout: OCILayoutStore) -> None:
    a = image(2, tags=("a:1",))
    b = attrs.evolve(a, config=a.config.replace(b"2024", b"2025"), tags=("b:1",))
    load_bytes(docker_archive([a, b]), layout)
    assert len(all_blobs(layout)) == 2 + 2 + 2  # layers, configs, manifests


def test_zero_layer_image_loads(layout: OCILayoutStore) -> None:
    empty = image(0, tags=("empty:1",))
    assert load_bytes(docker_archive([empty]), layout).image_ids == (Digest.parse(empty.id),)


# -- malformed archives -------------------------------------------------------------------


def good() -> Any:
    return image(2, tags=("app:1",))


def layer_path(layer: bytes) -> str:
    return sha256(layer)[7:] + "/layer.tar"


MALFORMED = {
    "not-a-tar": (b"this is not a tar archive at all" * 40, "not a tar"),
    "empty": (b"", "empty"),
    "truncated": (docker_archive([good()])[:3000], "truncated"),
    "no-end-marker": (docker_archive([good()])[:-1024], "end-of-archive"),
    "no-manifest": (tar_bytes([M("readme", b"hi")]), "manifest.json"),
    "manifest-object": (docker_archive([good()], manifest={"Config": "x"}), "cannot unmarshal"),
    "manifest-null": (docker_archive([good()], manifest=b"null"), "cannot be null"),
    "manifest-not-json": (docker_archive([good()], manifest=b"[{"), "invalid JSON"),
    "config-missing": (docker_archive([good()], manifest=[
        {"Config": "nope.json", "RepoTags": [], "Layers": []}]), "no such file"),
    "config-without-rootfs": (docker_archive(
        [attrs.evolve(good(), config=b'{"os":"linux"}')]), "RootFS"),
    "config-not-json": (docker_archive([attrs.evolve(good(), config=b"{{{")]), "config"),
    "layer-count": (docker_archive([good()], manifest=[
        {"Config": f"{good().hex}.json", "RepoTags": ["app:1"],
         "Layers": [layer_path(good().layers[0])]}]), "layers length mismatch"),
    "layer-missing": (docker_archive([good()], manifest=[
        {"Config": f"{good().hex}.json", "RepoTags": ["app:1"],
         "Layers": [layer_path(good().layers[0]), "gone/layer.tar"]}]), "no such file"),
    "repotag-digest": (docker_archive([attrs.evolve(good(), tags=(
        "app@sha256:" + "a" * 64,))]), "invalid tag"),
    "repotag-uppercase": (docker_archive([attrs.evolve(good(), tags=("App:1",))]),
                          "invalid tag"),
    "layer-is-a-directory": (docker_archive([good()], before=[M(sha256(good().layers[1])[7:],
                                                                kind="dir")], manifest=[
        {"Config": f"{good().hex}.json", "RepoTags": ["app:1"],
         "Layers": [layer_path(good().layers[0]), sha256(good().layers[1])[7:]]}]),
        "is a directory"),
    "repotag-no-tag": (docker_archive([attrs.evolve(good(), tags=("app",))]), "invalid tag"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_archives_are_invalid(name: str, layout: OCILayoutStore) -> None:
    data, message = MALFORMED[name]
    before = tree_snapshot(layout.path)
    with pytest.raises(InvalidArchive, match=message):
        load_bytes(data, layout)
    assert tree_snapshot(layout.path) == before


def test_layer_digest_mismatch(layout: OCILayoutStore) -> None:
    img = good()
    evil = attrs.evolve(img, layers=(img.layers[0], b"\0" * 1024))
    manifest = [{"Config": f"{img.hex}.json", "RepoTags": ["app:1"],
                 "Layers": [layer_path(img.layers[0]), layer_path(evil.layers[1])]}]
    before = tree_snapshot(layout.path)
    with pytest.raises(ArchiveDigestMismatch) as caught:
        load_bytes(docker_archive([evil], manifest=manifest), layout)
    assert isinstance(caught.value, InvalidArchive)
    assert isinstance(caught.value, LayerDigestMismatch)
    assert str(sha256(img.layers[1])) in str(caught.value)
    assert tree_snapshot(layout.path) == before


def test_blob_named_by_a_digest_it_does_not_have(layout: OCILayoutStore) -> None:
    img = good()
    wrong = "blobs/sha256/" + "e" * 64
    members = [M(wrong, img.config)] + [M(f"blobs/sha256/{sha256(x)[7:]}", x) for x in img.layers]
    manifest = [{"Config": wrong, "RepoTags": ["app:1"],
                 "Layers": [f"blobs/sha256/{sha256(x)[7:]}" for x in img.layers]}]
    with pytest.raises(ArchiveDigestMismatch, match="e" * 64):
        load_bytes(tar_bytes([*members, M("manifest.json", json.dumps(manifest).encode())]),
                   layout)


def test_failure_in_a_later_image_loads_nothing(layout: OCILayoutStore) -> None:
    """Everything is verified before anything is registered: all or nothing for bad input."""
    first = image(1, tags=("first:1",), seed="a")
    second = image(1, tags=("second:1",), seed="b")
    manifest = [
        {"Config": f"{first.hex}.json", "RepoTags": ["first:1"],
         "Layers": [layer_path(first.layers[0])]},
        {"Config": f"{second.hex}.json", "RepoTags": ["second:1"],
         "Layers": [layer_path(first.layers[0])]},
    ]
    before = tree_snapshot(layout.path)
    with pytest.raises(ArchiveDigestMismatch):
        load_bytes(docker_archive([first, second], manifest=manifest), layout)
    assert tree_snapshot(layout.path) == before


def test_store_failure_keeps_earlier_images_and_no_stray_blobs(
    layout: OCILayoutStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the store itself fails mid-load, images registered before stay, as in Docker."""
    first = image(1, tags=("first:1",), seed="a")
    second = image(2, tags=("second:1",), seed="b")
    writes: List[int] = []
    real = layout._write_index

    def failing_write(raw: Any) -> None:
        writes.append(1)
        if len(writes) == 2:
            raise OSError(28, "No space left on device")
        real(raw)

    monkeypatch.setattr(layout, "_write_index", failing_write)
    with pytest.raises(OSError, match="No space"):
        load_bytes(docker_archive([first, second]), layout)
    assert layout.search("") == [Digest.parse(first.id)]
    assert index_blobs(layout) == all_blobs(layout)
    assert [p.name for p in Path(layout.path).iterdir() if p.name.startswith(".")] == []


def test_json_member_limit(layout: OCILayoutStore) -> None:
    from tarexport.stores.docker_archive import Limits

    with pytest.raises(UnsafeArchive, match="JSON limit"):
        load_bytes(docker_archive([good()]), layout, limits=Limits(json_size=100))


def test_loader_object(layout: OCILayoutStore) -> None:
    loader = Loader(layout)
    first = loader.load(io.BytesIO(docker_archive([good()])))
    assert first.image_ids == (Digest.parse(good().id),)
    assert os.listdir(layout.path) != []


def test_from_an_os_pipe(layout: OCILayoutStore) -> None:
    """A real pipe (its buffer widened when the system allows) fed by another thread."""
    import threading

    case = RESAVABLE[7]
    data = case.save_tar.read_bytes()  # type: ignore[union-attr]
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with open(write_fd, "wb") as w:
            w.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with open(read_fd, "rb") as r:
        load(r, into=layout)
    feeder.join()
    assert_tar_equal(resave(layout, case), data)


def test_result_has_one_value_per_manifest_entry(layout: OCILayoutStore) -> None:
    # Two entries with one config and different tags: docker load prints both, in order.
    first = image(1, tags=("app:1",))
    second = attrs.evolve(first, tags=("app:2",))
    data = docker_archive([first, second])
    assert len(json.loads(tar_member(data, "manifest.json"))) == 2
    result = load_bytes(data, layout)
    app1, app2 = parse_normalized_named("app:1"), parse_normalized_named("app:2")
    assert result.images == (
        LoadedImage(Digest.parse(first.id), (app1,)),
        LoadedImage(Digest.parse(first.id), (app2,)),
    )
    assert result.messages() == ["Loaded image: app:1", "Loaded image: app:2"]
    assert layout.references(Digest.parse(first.id)) == [app1, app2]


def tar_member(data: bytes, name: str) -> bytes:
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


# -- bounds: what a load may make the reader do, and hold ------------------------------------


def zeros_layer(mib: int) -> bytes:
    from craft import layer_tar

    return layer_tar({"zeros": bytes(mib << 20)})


def zeros_image(mib: int, tag: str) -> Any:
    from craft import Img, config_bytes

    layer = zeros_layer(mib)
    return Img(config_bytes([sha256(layer)]), (layer,), (tag,))


def test_memory_store_refuses_a_layer_that_inflates_past_its_limit() -> None:
    from tarexport.stores.memory import DEFAULT_LOAD_LIMIT, MemoryStore

    bomb = zeros_image(3, "bomb:1")
    archive = docker_archive([bomb], compress_layers="gzip")
    assert len(archive) < 64 << 10  # a small archive ...
    store = MemoryStore(load_limit=2 << 20)  # ... whose layer inflates past this
    with pytest.raises(UnsafeArchive, match=r"MemoryStore's limit of 2097152 bytes"):
        load(io.BytesIO(archive), into=store)
    assert store.search("") == []
    assert MemoryStore().load_limit == DEFAULT_LOAD_LIMIT == 1 << 30
    for roomy in (MemoryStore(), MemoryStore(load_limit=None), MemoryStore(load_limit=4 << 20)):
        assert load(io.BytesIO(archive), into=roomy).image_ids == (Digest.parse(bomb.id),)


def test_memory_store_limit_is_per_load() -> None:
    from tarexport.stores.memory import MemoryStore

    img = zeros_image(1, "one:1")
    twice = docker_archive([img, attrs.evolve(img, tags=("two:1",))])
    store = MemoryStore(load_limit=(1 << 20) + 8192)
    load(io.BytesIO(twice), into=store)
    load(io.BytesIO(twice), into=store)
    assert len(store.references(Digest.parse(img.id))) == 2


def test_repeated_directories_count_against_the_member_limit_of_a_load() -> None:
    from tarexport.stores.docker_archive import Limits
    from tarexport.stores.memory import MemoryStore

    archive = docker_archive([image()], before=[M("d", kind="dir")] * 60)
    with pytest.raises(UnsafeArchive, match="more than 50 members"):
        load(io.BytesIO(archive), into=MemoryStore(), limits=Limits(members=50))
    load(io.BytesIO(archive), into=MemoryStore(), limits=Limits(members=70))
