"""The OCI image layout store: reading what others wrote, writing what others read, atomically."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import attrs
import pytest
from craft import docker_archive, image, sha256, tree_snapshot
from helpers import GoldenCase, assert_tar_equal, golden_params
from test_docker_archive import RESAVABLE, golden_images, golden_profile, resave

from tarexport import Saver, profiles
from tarexport.compression import zstd_available
from tarexport.digest import Digest
from tarexport.errors import (
    ImageNotFound,
    LayerDigestMismatch,
    PlatformNotFound,
    ReferenceNotFound,
    StoreError,
)
from tarexport.load import load
from tarexport.reference import parse_normalized_named
from tarexport.stores.oci_layout import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    OCILayoutStore,
    Platform,
)
from tarexport.stores.protocols import ImageSink, ImageStore, Layer, LayerStore, ReferenceStore

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def named(text: str) -> Any:
    return parse_normalized_named(text)


class HandLayout:
    """An OCI layout written by hand (as another tool would), to read with the store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.manifests: List[Dict[str, Any]] = []

    def blob(self, data: bytes) -> Dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def image(self, config: bytes, layers: Sequence[bytes], layer_type: str = OCI_LAYER,
              compress: Any = None) -> Dict[str, Any]:
        layer_descs = [{"mediaType": layer_type, **self.blob(compress(x) if compress else x)}
                       for x in layers]
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, **self.blob(config)},
                    "layers": layer_descs}
        return {"mediaType": OCI_MANIFEST, **self.blob(json.dumps(manifest).encode())}

    def index(self, children: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(children)}
        return {"mediaType": OCI_INDEX, **self.blob(json.dumps(doc).encode())}

    def add(self, descriptor: Dict[str, Any], **annotations: str) -> None:
        entry = dict(descriptor)
        if annotations:
            entry["annotations"] = {k.replace("_", "."): v for k, v in annotations.items()}
        self.manifests.append(entry)
        doc = {"schemaVersion": 2, "manifests": self.manifests}
        (self.root / "index.json").write_text(json.dumps(doc))


def names(**kw: str) -> Dict[str, str]:
    return kw


# -- creating and opening -------------------------------------------------------------------


def test_create_makes_a_layout(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "new", create=True)
    root = Path(store.path)
    assert (root / "oci-layout").read_bytes() == b'{"imageLayoutVersion": "1.0.0"}'
    assert json.loads((root / "index.json").read_bytes()) == {
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert (root / "blobs" / "sha256").is_dir()
    assert store.search("") == []
    # Opening it again, with or without create, changes nothing.
    before = tree_snapshot(root)
    OCILayoutStore(root, create=True)
    OCILayoutStore(root)
    assert tree_snapshot(root) == before


def test_not_a_layout(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not an OCI image layout"):
        OCILayoutStore(tmp_path)
    (tmp_path / "stuff").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        OCILayoutStore(tmp_path, create=True)


def test_unsupported_layout_version(tmp_path: Path) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"2.0.0"}')
    with pytest.raises(StoreError, match="version"):
        OCILayoutStore(tmp_path)


def test_store_satisfies_the_protocols(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    for protocol in (ImageStore, LayerStore, ReferenceStore, ImageSink):
        assert isinstance(store, protocol)


# -- writing through add_image ------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_add_image_then_save_is_byte_identical(case: GoldenCase, tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    ids = {}
    for n, golden in enumerate(golden_images(case)):
        # Half the layers as bytes, half as files: both kinds of source.
        layers: List[Any] = []
        for i, layer in enumerate(golden.layers):
            if i % 2:
                path = tmp_path / f"layer-{n}-{i}.tar"
                path.write_bytes(layer)
                layers.append(path)
            else:
                layers.append(layer)
        parent = golden.parent or None
        if parent is not None and parent not in ids.values():
            parent = None
        ids[n] = str(store.add_image(golden.config, layers, golden.tags, parent=parent))
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


def test_add_image_checks_layers_first(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    img = image(2)
    before = tree_snapshot(store.path)
    with pytest.raises(LayerDigestMismatch):
        store.add_image(img.config, [img.layers[0], b"wrong"], ["x:1"])
    assert tree_snapshot(store.path) == before


def test_add_reference(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    img = image(1, tags=())
    image_id = store.add_image(img.config, img.layers)
    store.add_reference("other:2", image_id)
    assert store.get(named("other:2")) == image_id
    assert store.references(image_id) == [named("other:2")]
    with pytest.raises(ImageNotFound):
        store.add_reference("x:1", "sha256:" + "0" * 64)


def test_written_manifest_and_index_are_docker_25s_with_a_whole_ref_name(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    img = image(1, tags=())
    image_id = store.add_image(img.config, img.layers, ["registry.example:5000/a/b:v1"])
    index = json.loads(Path(store.path, "index.json").read_bytes())
    (desc,) = index["manifests"]
    assert desc["annotations"] == {
        # ref.name holds the whole name (Docker 25 writes the tag alone): skopeo and umoci
        # look images up by it, and two repositories' `v1` must stay apart for them.
        ANNOTATION_IMAGE_NAME: "registry.example:5000/a/b:v1",
        ANNOTATION_REF_NAME: "registry.example:5000/a/b:v1"}
    manifest = Path(store.blob_path(Digest.parse(desc["digest"]))).read_bytes()
    assert manifest == (
        b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","config":{"mediaType":'
        b'"' + OCI_CONFIG.encode() + b'","digest":"' + str(image_id).encode() + b'","size":'
        + str(len(img.config)).encode() + b'},"layers":[{"mediaType":"' + OCI_LAYER.encode()
        + b'","digest":"' + sha256(img.layers[0]).encode() + b'","size":'
        + str(len(img.layers[0])).encode() + b"}]}")


def test_untagged_image_gets_an_unnamed_descriptor_until_it_is_named(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    img = image(1, tags=())
    image_id = store.add_image(img.config, img.layers)
    index = json.loads(Path(store.path, "index.json").read_bytes())
    assert [d.get("annotations") for d in index["manifests"]] == [None]
    store.add_reference("x:1", image_id)
    index = json.loads(Path(store.path, "index.json").read_bytes())
    assert [d["annotations"][ANNOTATION_REF_NAME] for d in index["manifests"]] == ["x:1"]


# -- reading what other tools write ----------------------------------------------------------


def test_names_from_annotations(tmp_path: Path) -> None:
    hand = HandLayout(tmp_path)
    imgs = [image(1, tags=(), seed=s) for s in "abcd"]
    descs = [hand.image(i.config, i.layers) for i in imgs]
    hand.add(descs[0], **{ANNOTATION_IMAGE_NAME: "docker.io/library/a:1",
                          ANNOTATION_REF_NAME: "1"})
    hand.add(descs[1], **{ANNOTATION_REF_NAME: "quay.io/b/c:2"})
    hand.add(descs[2], **{ANNOTATION_REF_NAME: "latest"})  # a bare tag names no repository
    hand.add(descs[3])
    store = OCILayoutStore(tmp_path)
    ids = [Digest.parse(i.id) for i in imgs]
    assert store.get(named("a:1")) == ids[0]
    assert store.get(named("quay.io/b/c:2")) == ids[1]
    assert store.references(ids[2]) == [] and store.references(ids[3]) == []
    assert set(store.search("")) == set(ids)
    with pytest.raises(ReferenceNotFound):
        store.get(named("latest"))


def test_docker_manifest_types_are_read(tmp_path: Path) -> None:
    hand = HandLayout(tmp_path)
    img = image(2, tags=())
    desc = hand.image(img.config, img.layers,
                      layer_type="application/vnd.docker.image.rootfs.diff.tar")
    hand.add(desc, **{ANNOTATION_REF_NAME: "x:1"})
    store = OCILayoutStore(tmp_path)
    layer = store.get_layer(Digest.parse(sha256(img.layers[0])))
    assert layer.file_range() is not None and layer.size == len(img.layers[0])


COMPRESSORS = {"gzip": (lambda d: gzip.compress(d, mtime=0), "+gzip")}
if zstd_available():
    import zstandard

    COMPRESSORS["zstd"] = (lambda d: zstandard.ZstdCompressor().compress(d), "+zstd")


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_layers_are_decompressed_and_verified(kind: str, tmp_path: Path) -> None:
    compress, suffix = COMPRESSORS[kind]
    case = RESAVABLE[3]
    hand = HandLayout(tmp_path)
    for golden in golden_images(case):
        desc = hand.image(golden.config, golden.layers, OCI_LAYER + suffix, compress)
        hand.add(desc, **{ANNOTATION_IMAGE_NAME: str(named(golden.tags[0]))})
    store = OCILayoutStore(tmp_path)
    layer = store.get_layer(Digest.parse(case.case["images"][0]["diff_ids"][0]))
    assert isinstance(layer, Layer) and layer.file_range() is None
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


def test_corrupt_compressed_layer_is_caught(tmp_path: Path) -> None:
    hand = HandLayout(tmp_path)
    img = image(1, tags=())
    desc = hand.image(img.config, [b"something else entirely" * 50], OCI_LAYER + "+gzip",
                      lambda d: gzip.compress(d, mtime=0))
    # The config still names the real layer's diff ID.
    hand.add(desc, **{ANNOTATION_IMAGE_NAME: "docker.io/library/x:1"})
    store = OCILayoutStore(tmp_path)
    layer = store.get_layer(Digest.parse(sha256(img.layers[0])))
    with pytest.raises(LayerDigestMismatch):
        layer.size  # noqa: B018 - measuring decompresses and verifies


def test_missing_blob_is_a_store_error(tmp_path: Path) -> None:
    hand = HandLayout(tmp_path)
    img = image(1, tags=())
    hand.add(hand.image(img.config, img.layers), **{ANNOTATION_REF_NAME: "x:1"})
    os.unlink(tmp_path / "blobs" / "sha256" / sha256(img.layers[0])[7:])
    store = OCILayoutStore(tmp_path)
    with pytest.raises(StoreError, match="missing"):
        store.get_layer(Digest.parse(sha256(img.layers[0])))


def test_tampered_config_blob_is_refused(tmp_path: Path) -> None:
    hand = HandLayout(tmp_path)
    img = image(1, tags=())
    hand.add(hand.image(img.config, img.layers), **{ANNOTATION_REF_NAME: "x:1"})
    (tmp_path / "blobs" / "sha256" / img.hex).write_bytes(img.config + b" ")
    store = OCILayoutStore(tmp_path)
    with pytest.raises(StoreError, match="holds content"):
        store.get_config(Digest.parse(img.id))


# -- platforms --------------------------------------------------------------------------------


def multi_platform(tmp_path: Path) -> Dict[str, Digest]:
    hand = HandLayout(tmp_path)
    platforms = {"linux/amd64": None, "linux/arm64/v8": None, "linux/arm/v7": None,
                 "linux/arm/v6": None}
    children = []
    ids = {}
    for text in platforms:
        os_, arch, *variant = text.split("/")
        img = image(1, tags=(), seed=text, architecture=arch)
        desc = hand.image(img.config, img.layers)
        desc["platform"] = {"os": os_, "architecture": arch,
                            **({"variant": variant[0]} if variant else {})}
        children.append(desc)
        ids[text] = Digest.parse(img.id)
    children.append({**hand.blob(b"{}"), "mediaType": OCI_MANIFEST,
                     "platform": {"os": "unknown", "architecture": "unknown"}})
    hand.add(hand.index(children), **{ANNOTATION_IMAGE_NAME: "docker.io/library/multi:1"})
    return ids


@pytest.mark.parametrize(
    ("platform", "chosen"),
    [("linux/amd64", "linux/amd64"), ("linux/arm64", "linux/arm64/v8"),
     ("linux/aarch64", "linux/arm64/v8"), ("linux/arm64/v8", "linux/arm64/v8"),
     ("linux/arm", "linux/arm/v7"), ("linux/arm/v6", "linux/arm/v6"),
     ("linux/armv7l", "linux/arm/v7")],
)
def test_platform_picks_the_manifest(platform: str, chosen: str, tmp_path: Path) -> None:
    ids = multi_platform(tmp_path)
    store = OCILayoutStore(tmp_path, platform=platform)
    assert store.get(named("multi:1")) == ids[chosen]
    assert store.search("") == [ids[chosen]]


def test_default_platform_is_the_hosts(tmp_path: Path) -> None:
    multi_platform(tmp_path)
    assert OCILayoutStore(tmp_path).platform == Platform.host()


def test_no_matching_platform_lists_what_there_is(tmp_path: Path) -> None:
    multi_platform(tmp_path)
    store = OCILayoutStore(tmp_path, platform="linux/s390x")
    with pytest.raises(PlatformNotFound) as caught:
        store.get(named("multi:1"))
    message = str(caught.value)
    assert "linux/s390x" in message
    assert "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, unknown/unknown" in message
    assert store.search("") == []


def test_bad_platform_text(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="platform"):
        OCILayoutStore(tmp_path / "l", create=True, platform="linux")


# -- atomicity --------------------------------------------------------------------------------


def test_staging_stays_inside_the_layout_and_goes_away(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    txn = store.begin_load()
    writer = txn.stage_blob()
    writer.write(b"partial")
    staged = [p for p in Path(store.path).iterdir() if p.name.startswith(".")]
    assert len(staged) == 1 and staged[0].is_dir()
    assert list((Path(store.path) / "blobs" / "sha256").iterdir()) == []  # invisible
    writer.abort()
    txn.close()
    txn.close()
    assert [p for p in Path(store.path).iterdir() if p.name.startswith(".")] == []


def _check_consistent(root: Path) -> Optional[str]:
    """What a reader finds wrong in a layout right now: a partial blob or index."""
    try:
        index = json.loads((root / "index.json").read_bytes())
    except ValueError as exc:
        return f"index.json unreadable: {exc}"
    for blob in (root / "blobs" / "sha256").iterdir():
        try:
            data = blob.read_bytes()
        except FileNotFoundError:
            continue  # removed between listing and reading: not partial
        if hashlib.sha256(data).hexdigest() != blob.name:
            return f"blob {blob.name} is partial"
    for desc in index["manifests"]:
        if not (root / "blobs" / "sha256" / desc["digest"][7:]).exists():
            return f"index.json points at a missing manifest {desc['digest']}"
    return None


def test_concurrent_readers_never_see_a_partial_state(tmp_path: Path) -> None:
    store = OCILayoutStore(tmp_path / "l", create=True)
    root = Path(store.path)
    archives = [docker_archive([image(3, tags=(f"img{n}:1",), seed=f"s{n}")]) for n in range(12)]
    problems: List[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            problem = _check_consistent(root)
            if problem:
                problems.append(problem)
                return
            OCILayoutStore(root).search("")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for data in archives:
            load(io.BytesIO(data), into=store)
    finally:
        done.set()
        thread.join()
    assert problems == []
    assert len(store.search("")) == 12


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    root = tmp_path / "l"
    OCILayoutStore(root, create=True)
    errors: List[BaseException] = []

    def writer(n: int) -> None:
        store = OCILayoutStore(root)  # its own store object: the lock is on the directory
        try:
            for k in range(4):
                load(io.BytesIO(docker_archive([image(1, tags=(f"w{n}:{k}",), seed=f"{n}-{k}")])),
                     into=store)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = OCILayoutStore(root)
    assert len(store.search("")) == 12
    assert all(store.get(named(f"w{n}:{k}")) for n in range(3) for k in range(4))


# -- peers ------------------------------------------------------------------------------------

SINGLE = [c for c in RESAVABLE if len(c.case["manifest"]) == 1
          and len(c.case["manifest"][0]["RepoTags"] or ()) == 1]


def _written_layout(case: GoldenCase, tmp_path: Path) -> OCILayoutStore:
    store = OCILayoutStore(tmp_path / "ours", create=True)
    with open(case.save_tar, "rb") as f:  # type: ignore[arg-type]
        load(f, into=store)
    return store


@pytest.mark.parametrize("case", golden_params(SINGLE))
def test_skopeo_reads_our_layout(case: GoldenCase, tmp_path: Path, skopeo: Any) -> None:
    store = _written_layout(case, tmp_path)
    name = case.case["manifest"][0]["RepoTags"][0]  # the ref.name is the whole name
    out = tmp_path / "dir"
    skopeo.run("copy", f"oci:{store.path}:{name}", f"dir:{out}")
    image_id = case.case["images"][0]["id"]
    assert (out / image_id[7:]).read_bytes() == store.get_config(Digest.parse(image_id))
    for diff_id in case.case["images"][0]["diff_ids"]:
        assert hashlib.sha256((out / diff_id[7:]).read_bytes()).hexdigest() == diff_id[7:]


@pytest.mark.parametrize("case", golden_params(SINGLE[:4]))
def test_umoci_lists_our_layout(case: GoldenCase, tmp_path: Path, umoci: Any) -> None:
    store = _written_layout(case, tmp_path)
    listed = umoci.run("ls", "--layout", store.path).stdout.decode().split()
    assert listed == [case.case["manifest"][0]["RepoTags"][0]]  # the whole name
    # umoci can also unpack what we wrote (it checks every blob's digest while doing so).
    umoci.run("stat", "--image", f"{store.path}:{listed[0]}")


def _skopeo_layout(case: GoldenCase, tmp_path: Path, skopeo: Any, *flags: str) -> Path:
    dest = tmp_path / "skopeo"
    ref = case.case["manifest"][0]["RepoTags"][0]
    skopeo.run("copy", *flags, f"docker-archive:{case.save_tar}", f"oci:{dest}:{ref}")
    return dest


@pytest.mark.parametrize("flags", [("--preserve-digests",), ("--format", "v2s2")],
                         ids=["preserve-digests", "v2s2-gzip"])
@pytest.mark.parametrize("case", golden_params(SINGLE))
def test_skopeo_layout_saves_back_byte_identical(
    case: GoldenCase, flags: Sequence[str], tmp_path: Path, skopeo: Any
) -> None:
    """skopeo keeps Docker's config with these flags; the layers may come back gzipped."""
    store = OCILayoutStore(_skopeo_layout(case, tmp_path, skopeo, *flags))
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


@pytest.mark.parametrize("case", golden_params(SINGLE))
def test_skopeo_default_copy_rewrites_the_config(
    case: GoldenCase, tmp_path: Path, skopeo: Any
) -> None:
    """By default skopeo converts the config to OCI form (new image ID) and gzips the layers.

    The archive we save from it then differs from Docker's where the config does; the layers
    must still be the very same bytes, under the same diff IDs.
    """
    store = OCILayoutStore(_skopeo_layout(case, tmp_path, skopeo))
    golden = case.case["images"][0]
    (image_id,) = store.search("")
    assert str(image_id) != golden["id"]  # skopeo rewrote the config
    config = json.loads(store.get_config(image_id))
    assert config["rootfs"]["diff_ids"] == golden["diff_ids"]
    out = io.BytesIO()
    profile = attrs.evolve(golden_profile(case), image_order=())
    Saver(store, store, store, profile=profile).save(case.case["docker_save_args"], out)
    import tarfile

    originals = {}
    with tarfile.open(case.save_tar) as archive:  # type: ignore[arg-type]
        for info in archive:
            if info.isreg() and info.name.endswith("layer.tar"):
                originals[hashlib.sha256(archive.extractfile(info).read()).hexdigest()] = 1  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        ours = {hashlib.sha256(archive.extractfile(i).read()).hexdigest()  # type: ignore[union-attr]
                for i in archive if i.isreg() and i.name.endswith("layer.tar")}
    assert ours == set(originals) == {d[7:] for d in golden["diff_ids"]}


def test_other_tools_entries_survive_our_writes(tmp_path: Path) -> None:
    """Descriptors we cannot read, or that name things we do not manage, are kept as they are."""
    hand = HandLayout(tmp_path)
    theirs = image(1, tags=(), seed="theirs")
    desc = hand.image(theirs.config, theirs.layers)
    del desc["mediaType"]  # some writers leave it out: the document says what it is
    hand.add(desc, **{ANNOTATION_REF_NAME: "latest"})
    hand.manifests.append({"mediaType": OCI_MANIFEST, "digest": "not-a-digest", "size": 1})
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                     "manifests": hand.manifests}))
    store = OCILayoutStore(tmp_path)
    assert store.search("") == [Digest.parse(theirs.id)]
    ours = image(1, tags=("ours:1",), seed="ours")
    load(io.BytesIO(docker_archive([ours])), into=store)
    index = json.loads((tmp_path / "index.json").read_bytes())
    assert index["manifests"][:2] == hand.manifests
    assert set(store.search("")) == {Digest.parse(theirs.id), Digest.parse(ours.id)}


@pytest.mark.parametrize("case", golden_params(
    [c for c in RESAVABLE if not any(e.get("Parent") for e in c.case["manifest"])]))
def test_docker_25_archive_unpacked_is_a_layout_we_read(case: GoldenCase, tmp_path: Path) -> None:
    """A `docker save` 25+ archive is an OCI layout inside: unpacked, this store reads it.

    (Docker keeps a parent link only in ``manifest.json``, not in the layout, so cases with a
    ``Parent`` cannot come back whole this way.)
    """
    import tarfile

    from tarexport.stores.docker_archive import DockerArchiveStore

    hybrid_profile = attrs.evolve(profiles.DOCKER_26, image_order=golden_profile(case).image_order)
    hybrid = resave(DockerArchiveStore(case.save_tar), case, hybrid_profile)  # type: ignore[arg-type]
    root = tmp_path / "unpacked"
    with tarfile.open(fileobj=io.BytesIO(hybrid)) as archive:
        archive.extractall(root, filter="data")
    store = OCILayoutStore(root)
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


# -- writes that fail, and reads that stay small ------------------------------------------


def loaded_layout(tmp_path: Path) -> Path:
    path = tmp_path / "layout"
    load(io.BytesIO(docker_archive([image(2)])), into=OCILayoutStore(path, create=True))
    return path


@pytest.mark.parametrize(
    ("in_the_way", "error"),
    [("blobs/sha256", "File exists"), ("blobs", "Not a directory")],
)
def test_a_file_where_blobs_go_is_a_typed_error_naming_it(
    tmp_path: Path, in_the_way: str, error: str
) -> None:
    import shutil

    from tarexport.errors import StoreWriteError

    path = loaded_layout(tmp_path)
    shutil.rmtree(path / "blobs")
    (path / in_the_way).parent.mkdir(exist_ok=True)
    (path / in_the_way).write_bytes(b"")
    blobs = path / "blobs" / "sha256"
    with pytest.raises(StoreWriteError, match=f"^cannot write {blobs}: {error}$") as caught:
        load(io.BytesIO(docker_archive([image(2)])), into=OCILayoutStore(path))
    assert caught.value.filename == str(blobs)
    assert isinstance(caught.value, OSError) and caught.value.errno is not None


def test_a_full_file_system_is_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    """The file-size limit of the process makes writes fail as on a full disk (EFBIG)."""
    import subprocess
    import sys

    archive = tmp_path / "big.tar"
    archive.write_bytes(docker_archive([image(1, seed="x" * 300_000)]))
    program = f"""
import resource, signal, sys
from tarexport import OCILayoutStore, load
from tarexport.errors import StoreWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    load(open({str(archive)!r}, "rb"), into=OCILayoutStore({str(tmp_path / "l")!r}, create=True))
except StoreWriteError as exc:
    print(exc.errno, exc)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, check=True)
    errno_text, _, message = done.stdout.decode().strip().partition(" ")
    assert int(errno_text) == 27  # EFBIG
    assert message.startswith(f"cannot write {tmp_path / 'l'}/.tarexport-staging-")
    assert message.endswith(": File too large")


def test_index_and_configs_are_read_to_their_size(tmp_path: Path) -> None:
    import tracemalloc

    path = loaded_layout(tmp_path)
    tracemalloc.start()
    try:
        store = OCILayoutStore(path)
        assert len(store.search("")) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20  # not read(limit + 1): 64 MiB for index.json, 8 MiB per config
