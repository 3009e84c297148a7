"""Docker 26, 28 and the containerd image store: every recorded save, byte for byte.

The inputs are only what a store holds (configs, layers, tags; for the containerd store the
manifests and blobs as kept) plus what the daemon itself did not repeat between saves: its
clock and its Go map order, read off its own archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import attrs
import pytest
from generations import (
    CONTAINERD_SETS,
    GRAPHDRIVER_SETS,
    SET_PROFILES,
    cases,
    containerd_store,
    graphdriver_store,
    read,
)
from helpers import assert_tar_equal

from tarexport import MemoryStore, OCILayoutStore, Saver, load, profiles
from tarexport.digest import Digest
from tarexport.errors import EmptyExport, ImageNotFound, PlatformNotFound, TarexportError
from tarexport.image import Image
from tarexport.layouts import containerd_manifest

GRAPHDRIVER_CASES = [
    (s, c) for s in GRAPHDRIVER_SETS for c in cases(s) if read(s, c).archive is not None
]
CONTAINERD_CASES = [(s, c) for s in CONTAINERD_SETS for c in cases(s)]


def _ids(params: list[tuple[str, str]]) -> list[str]:
    return [f"{s}-{c}" for s, c in params]


@pytest.mark.parametrize(("set_name", "case"), GRAPHDRIVER_CASES, ids=_ids(GRAPHDRIVER_CASES))
def test_graphdriver_save_is_the_daemons(set_name: str, case: str) -> None:
    golden = read(set_name, case)
    store = graphdriver_store(golden)
    out = io.BytesIO()
    plan = Saver(store, store, store, profile=golden.profile()).save(
        golden.case["docker_save_args"], out
    )
    assert plan.total_size == len(out.getvalue())
    assert_tar_equal(out.getvalue(), golden.archive)


@pytest.mark.parametrize("set_name", GRAPHDRIVER_SETS)
def test_graphdriver_errors_are_the_daemons(set_name: str) -> None:
    """s18: an image without layers, refused with the daemon's text before any byte."""
    golden = read(set_name, "s18-error-empty-image")
    assert golden.error is not None
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-12-07T23:04:30Z",
        "config": {"Labels": {"only": "a label"}}, "rootfs": {"type": "layers"},
    }).encode()
    store = MemoryStore()
    store.add_image(config, [], golden.case["docker_save_args"])
    out = io.BytesIO()
    with pytest.raises(EmptyExport) as caught:
        Saver(store, store, store, profile=SET_PROFILES[set_name]).save(
            golden.case["docker_save_args"], out
        )
    assert str(caught.value).startswith(golden.error["api_message"])
    assert out.getvalue() == b""


@pytest.mark.parametrize(("set_name", "case"), CONTAINERD_CASES, ids=_ids(CONTAINERD_CASES))
def test_containerd_save_is_the_daemons(set_name: str, case: str, tmp_path: Path) -> None:
    golden = read(set_name, case)
    assert golden.archive is not None  # this store saves even an image without layers
    store = containerd_store(golden, tmp_path / "layout")
    out = io.BytesIO()
    Saver(store, store, store, profile=golden.profile()).save(
        golden.case["docker_save_args"], out
    )
    assert_tar_equal(out.getvalue(), golden.archive)


@pytest.mark.parametrize("set_name", CONTAINERD_SETS)
@pytest.mark.parametrize("case", ["s09-load-identical-layers-symlink", "s19-load-raw-config-bytes"])
def test_containerd_manifest_of_a_loaded_archive_is_derived(set_name: str, case: str) -> None:
    """Images loaded from a legacy archive: configs and layer tars are enough."""
    golden = read(set_name, case)
    store = MemoryStore()
    for item in golden.manifest():
        store.add_image(golden.read(item["Config"]), [golden.read(p) for p in item["Layers"]],
                        item["RepoTags"] or [])
    out = io.BytesIO()
    Saver(store, store, store, profile=golden.profile()).save(
        golden.case["docker_save_args"], out
    )
    assert_tar_equal(out.getvalue(), golden.archive)  # type: ignore[arg-type]


# -- what no public golden shows, pinned by the daemons' source and the peer tests ----------


def _two_images() -> tuple[MemoryStore, str, str]:
    store = MemoryStore()
    layer = read("docker-28", "s01-import-single-gnu")
    item = layer.manifest()[0]
    tar = layer.read(item["Layers"][0])
    tagged = store.add_image(layer.read(item["Config"]), [tar], ["cc-tagged:1"])
    config = json.loads(layer.read(item["Config"]))
    config["created"] = "2026-01-02T03:04:05Z"
    untagged = store.add_image(json.dumps(config).encode(), [tar], [])
    return store, str(tagged), str(untagged)


def _index(store: MemoryStore, names: list[str], profile: profiles.Profile) -> list[dict]:  # type: ignore[type-arg]
    plan = Saver(store, store, store, profile=profile).plan(names)
    (entry,) = [e for e in plan.entries if e.name == "index.json"]
    manifests: list[dict] = json.loads(entry.data)["manifests"]  # type: ignore[type-arg]
    return manifests


@pytest.mark.parametrize("profile", [profiles.DOCKER_26, profiles.DOCKER_28, profiles.DOCKER_29],
                         ids=lambda p: p.name)
def test_untagged_image_is_indexed_only_before_any_descriptor(profile: profiles.Profile) -> None:
    store, _tagged, untagged = _two_images()
    after = _index(store, ["cc-tagged:1", untagged], profile)
    names = [d.get("annotations", {}).get("org.opencontainers.image.ref.name") for d in after]
    assert names == ["1"]
    before = _index(store, [untagged, "cc-tagged:1"], attrs.evolve(profile, image_order=[untagged]))
    assert len(before) == 2 and "annotations" not in before[0]


def test_default_and_containerd_index_every_untagged_image() -> None:
    store, _tagged, untagged = _two_images()
    assert len(_index(store, ["cc-tagged:1", untagged], profiles.DEFAULT)) == 2
    containerd = profiles.DOCKER_28_CONTAINERD
    saver = Saver(store, store, store, profile=containerd)
    image = Image.from_bytes(store.get_config(Digest.parse(untagged)))
    untagged_manifest = str(containerd_manifest(saver, image.id, image).digest)
    derived = _index(store, ["cc-tagged:1", untagged_manifest], containerd)
    assert len(derived) == 2 and "annotations" not in derived[1]
    assert len(_index(store, ["cc-tagged:1", untagged], profiles.DOCKER_25)) == 1


def test_docker_25_is_the_early_format() -> None:
    """25.0.0: platform in descriptors, no layer in the OCI manifest, no untagged entry."""
    store, _tagged, untagged = _two_images()
    plan = Saver(store, store, store, profile=profiles.DOCKER_25).plan(["cc-tagged:1", untagged])
    index = json.loads(next(e for e in plan.entries if e.name == "index.json").data)
    (desc,) = index["manifests"]
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(next(e for e in plan.entries if e.name.endswith(desc["digest"][7:])).data)
    assert manifest["layers"] == []
    assert manifest["config"]["platform"] == {"architecture": "amd64", "os": "linux"}


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (profiles.DOCKER_28, "no suitable export target found for platform linux/arm64"),
        (profiles.DOCKER_28_CONTAINERD,
         "no suitable export target found: image with reference cc-tagged:1 was found but does "
         "not provide the specified platform (linux/arm64)"),
    ],
    ids=["graphdriver", "containerd"],
)
def test_platform_mismatch_fails_before_any_byte(profile: profiles.Profile, message: str) -> None:
    store, _, _ = _two_images()
    out = io.BytesIO()
    with pytest.raises(PlatformNotFound) as caught:
        Saver(store, store, store, profile=profile, platform="linux/arm64").save(
            ["cc-tagged:1"], out
        )
    assert str(caught.value) == message
    assert out.getvalue() == b""
    ok = io.BytesIO()
    Saver(store, store, store, profile=profile, platform="linux/amd64").save(["cc-tagged:1"], ok)
    assert ok.getvalue()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # As Docker 28.5.2 with the containerd store answers (recorded on the daemon).
        ("cc-tagged:2", "No such image: cc-tagged:2"),
        ("deadbeef", "No such image: deadbeef:latest"),
        ("sha256:deadbeef", "No such image: sha256:deadbeef"),
        ("sha256:" + "a" * 64, "No such image: sha256:" + "a" * 64),
        ("cc-tagged@sha256:" + "a" * 64, "No such image: cc-tagged@sha256:" + "a" * 64),
    ],
)
def test_containerd_lookup_errors(name: str, message: str) -> None:
    store, _, _ = _two_images()
    out = io.BytesIO()
    with pytest.raises(ImageNotFound) as caught:
        Saver(store, store, store, profile=profiles.DOCKER_28_CONTAINERD).save([name], out)
    assert str(caught.value) == message
    assert out.getvalue() == b""


def test_containerd_image_ids_are_manifest_digests() -> None:
    store, tagged, _ = _two_images()
    saver = Saver(store, store, store, profile=profiles.DOCKER_28_CONTAINERD)
    plan = saver.plan(["cc-tagged:1"])
    index = json.loads(next(e for e in plan.entries if e.name == "index.json").data)
    manifest_id = index["manifests"][0]["digest"]
    assert manifest_id != tagged
    by_id = saver.plan([manifest_id[7:19]])
    assert [p.id for p in by_id.images] == [p.id for p in plan.images]
    with pytest.raises(TarexportError):
        saver.plan([tagged[7:19]])  # the config digest is no ID in this store


# -- loading what these daemons write -------------------------------------------------------


@pytest.mark.parametrize(("set_name", "case"), CONTAINERD_CASES, ids=_ids(CONTAINERD_CASES))
def test_containerd_archive_loaded_then_saved_is_the_same(
    set_name: str, case: str, tmp_path: Path
) -> None:
    """The loader keeps manifests and compressed blobs as they came, so a save gives them back."""
    golden = read(set_name, case)
    assert golden.archive is not None
    store = OCILayoutStore(tmp_path / "layout", create=True)
    load(io.BytesIO(golden.archive), into=store)
    names = golden.case["docker_save_args"]
    if not any(image["repo_tags"] for image in golden.case["images"]) or "@" in names[0]:
        names = [golden.case["images"][0]["id"]]  # the archive names no tag: save by ID
    out = io.BytesIO()
    Saver(store, store, store, profile=golden.profile()).save(names, out)
    assert_tar_equal(out.getvalue(), golden.archive)


def _zstd_nested_archive() -> tuple[bytes, bytes, str]:
    """s01 of the containerd store with its layer as zstd, under a nested index."""
    zstandard = pytest.importorskip("zstandard")
    golden = read("docker-28-containerd", "s01-import-single-gnu")
    (item,) = golden.manifest()
    config = golden.read(item["Config"])
    tar = gzip.decompress(golden.read(item["Layers"][0]))
    layer = zstandard.ZstdCompressor(level=3).compress(tar)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": item["Config"].replace("blobs/sha256/", "sha256:"),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}],
    }).encode()
    m_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    nested = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": m_digest, "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()
    n_digest = "sha256:" + hashlib.sha256(nested).hexdigest()
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                       "digest": n_digest, "size": len(nested),
                       "annotations": {"io.containerd.image.name": "docker.io/library/zz:1",
                                       "org.opencontainers.image.ref.name": "1"}}],
    }).encode()
    files = {
        item["Config"]: config,
        "blobs/sha256/" + hashlib.sha256(layer).hexdigest(): layer,
        "blobs/sha256/" + m_digest[7:]: manifest,
        "blobs/sha256/" + n_digest[7:]: nested,
        "index.json": index,
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "manifest.json": json.dumps([{
            "Config": item["Config"], "RepoTags": ["zz:1"],
            "Layers": ["blobs/sha256/" + hashlib.sha256(layer).hexdigest()]}]).encode(),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue(), tar, m_digest


def test_nested_index_and_zstd_layer_load_and_save(tmp_path: Path) -> None:
    archive, tar, manifest_digest = _zstd_nested_archive()
    store = OCILayoutStore(tmp_path / "layout", create=True)
    loaded = load(io.BytesIO(archive), into=store)
    assert [str(r) for r in loaded.references] == ["docker.io/library/zz:1"]
    # Graphdriver profiles get the uncompressed layer tar, checked against its diff ID...
    out = io.BytesIO()
    Saver(store, store, store, profile=profiles.DOCKER_28).save(["zz:1"], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as saved:
        diff_id = hashlib.sha256(tar).hexdigest()
        member = saved.extractfile(f"blobs/sha256/{diff_id}")
        assert member is not None and member.read() == tar
    # ... and the containerd exporter the zstd blob and the manifest exactly as they came.
    out = io.BytesIO()
    Saver(store, store, store, profile=profiles.DOCKER_28_CONTAINERD).save(["zz:1"], out)
    saved = dict(_members(out.getvalue()))
    index = json.loads(saved["index.json"])
    assert index["manifests"][0]["digest"] == manifest_digest
    original = dict(_members(archive))
    manifest = json.loads(original["blobs/sha256/" + manifest_digest[7:]])
    zstd_blob = "blobs/sha256/" + manifest["layers"][0]["digest"][7:]
    assert saved[zstd_blob] == original[zstd_blob]
    assert saved["blobs/sha256/" + manifest_digest[7:]] == original["blobs/sha256/" +
                                                                     manifest_digest[7:]]


def _members(archive: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [(m.name, tar.extractfile(m).read())  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()]
