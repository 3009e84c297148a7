"""A docker-archive read in place: goldens re-saved byte for byte, other layouts, bad archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import attrs
import pytest
from craft import M, docker_archive, image, sha256, tar_bytes
from helpers import GoldenCase, assert_tar_equal, golden_cases, golden_params

from tarexport import Saver, profiles
from tarexport.digest import Digest
from tarexport.errors import (
    ImageNotFound,
    InvalidArchive,
    LayerDigestMismatch,
    LayerNotFound,
    ReferenceNotFound,
    StoreError,
    UnsafeArchive,
)
from tarexport.reference import parse_normalized_named
from tarexport.stores.docker_archive import (
    DockerArchiveStore,
    Limits,
    config_from_v1,
    parse_manifest,
    parse_repo_tag,
)
from tarexport.stores.protocols import ImageStore, Layer, LayerStore, ReferenceStore

SAVED = [c for c in golden_cases() if c.save_tar is not None]
# An archive carries no repo digests, so a `name@digest` save cannot be redone from one.
RESAVABLE = [c for c in SAVED if "@" not in " ".join(c.case["docker_save_args"])]


def golden_now(case: GoldenCase) -> Optional[int]:
    """The save-time clock of a golden: the mtime of a layer dir whose layer.tar is a symlink."""
    links = case.case.get("symlinked_layers") or {}
    if not links:
        return None
    with tarfile.open(case.save_tar) as archive:  # type: ignore[arg-type]
        for info in archive:
            if info.isdir() and info.name.rstrip("/") + "/layer.tar" in links:
                return int(info.mtime)
    raise AssertionError("symlinked layer dir not found")


def golden_profile(case: GoldenCase) -> profiles.Profile:
    """DOCKER_20_10 as the golden's daemon ran: Debian owner names, its image order and clock."""
    order = tuple(entry["Config"][: -len(".json")] for entry in case.case["manifest"])
    return attrs.evolve(profiles.DOCKER_20_10, owner_name="root", image_order=order,
                        now=golden_now(case))


def resave(store: object, case: GoldenCase, profile: Optional[profiles.Profile] = None) -> bytes:
    out = io.BytesIO()
    saver = Saver(store, store, store, profile=profile or golden_profile(case))  # type: ignore[arg-type]
    saver.save(case.case["docker_save_args"], out)
    return out.getvalue()


@attrs.frozen
class GoldenImage:
    config: bytes
    layers: Tuple[bytes, ...]
    tags: Tuple[str, ...]
    parent: str


def golden_images(case: GoldenCase) -> List[GoldenImage]:
    """The images of a golden read with tarfile and its case.json, not with the code under test."""
    files: Dict[str, bytes] = {}
    links: Dict[str, str] = {}
    with tarfile.open(case.save_tar) as archive:  # type: ignore[arg-type]
        for info in archive:
            if info.isreg():
                files[info.name] = archive.extractfile(info).read()  # type: ignore[union-attr]
            elif info.issym():
                links[info.name] = os.path.normpath(
                    os.path.join(os.path.dirname(info.name), info.linkname))
    result = []
    for entry in case.case["manifest"]:
        layers = tuple(files[links.get(path, path)] for path in entry["Layers"])
        result.append(GoldenImage(files[entry["Config"]], layers, tuple(entry["RepoTags"] or ()),
                                  entry.get("Parent", "")))
    return result


# -- goldens, in place -------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_golden_resaved_in_place_is_byte_identical(case: GoldenCase) -> None:
    store = DockerArchiveStore(case.save_tar)  # type: ignore[arg-type]
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


@pytest.mark.parametrize("case", golden_params(SAVED))
def test_golden_images_tags_and_parents(case: GoldenCase) -> None:
    store = DockerArchiveStore(case.save_tar)  # type: ignore[arg-type]
    manifest = case.case["manifest"]
    assert [d.hex + ".json" for d in store.image_ids] == [e["Config"] for e in manifest]
    for entry in manifest:
        image_id = Digest("sha256", entry["Config"][:-5])
        tags = [str(parse_normalized_named(t)) for t in entry["RepoTags"] or ()]
        assert [str(r) for r in store.references(image_id)] == tags
        parent = store.get_parent(image_id)
        assert (str(parent) if parent else "") == entry.get("Parent", "")


@pytest.mark.parametrize("case", golden_params(SAVED))
def test_layers_are_byte_ranges_of_the_archive(case: GoldenCase) -> None:
    """Zero-copy: each layer's file range holds exactly the bytes that hash to its diff ID."""
    store = DockerArchiveStore(case.save_tar)  # type: ignore[arg-type]
    data = case.save_tar.read_bytes()  # type: ignore[union-attr]
    for golden in case.case["images"]:
        diff_ids = [Digest.parse(d) for d in golden["diff_ids"]]
        chain = None
        for diff_id in diff_ids:
            chain = diff_id if chain is None else Digest(
                "sha256", hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest())
            layer = store.get_layer(chain)
            where = layer.file_range()
            assert where is not None and where.path == str(case.save_tar)
            body = data[where.offset : where.offset + where.length]
            assert Digest.from_bytes(body) == diff_id == layer.diff_id
            assert layer.size == where.length
            with layer.open() as stream:
                assert stream.read() == body


def test_store_satisfies_the_protocols() -> None:
    store = DockerArchiveStore(SAVED[0].save_tar)  # type: ignore[arg-type]
    assert isinstance(store, ImageStore)
    assert isinstance(store, LayerStore)
    assert isinstance(store, ReferenceStore)
    layer = store.get_layer(Digest.parse(SAVED[0].case["images"][0]["diff_ids"][0]))
    assert isinstance(layer, Layer)


def test_lookups_that_fail() -> None:
    store = DockerArchiveStore(SAVED[0].save_tar)  # type: ignore[arg-type]
    nowhere = Digest("sha256", "0" * 64)
    with pytest.raises(ImageNotFound):
        store.get_config(nowhere)
    with pytest.raises(LayerNotFound):
        store.get_layer(nowhere)
    with pytest.raises(ReferenceNotFound):
        store.get(parse_normalized_named("nothing:here"))
    assert store.search("") == sorted(store.image_ids)
    assert store.search("zz") == []


# -- other layouts of the same images ----------------------------------------------------------


def crane_style(case: GoldenCase) -> bytes:
    """The golden's images as crane writes a tarball: gzip layers named by digest."""
    members: List[M] = []
    entries = []
    seen = set()
    for img in golden_images(case):
        paths = []
        for layer in img.layers:
            path = sha256(layer).split(":")[1] + ".tar.gz"
            if path not in seen:
                seen.add(path)
                members.append(M(path, gzip.compress(layer, mtime=0)))
            paths.append(path)
        config_path = sha256(img.config)
        if config_path not in seen:
            seen.add(config_path)
            members.append(M(config_path, img.config))
        entry = {"Config": config_path, "RepoTags": list(img.tags), "Layers": paths}
        if img.parent:
            entry["Parent"] = img.parent
        entries.append(entry)
    members.insert(0, M("manifest.json", json.dumps(entries).encode()))
    return tar_bytes(members)


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_crane_style_compressed_layers(case: GoldenCase, tmp_path: Path) -> None:
    path = tmp_path / "crane.tar"
    path.write_bytes(crane_style(case))
    store = DockerArchiveStore(path)
    chain = Digest.parse(case.case["images"][0]["diff_ids"][0])
    assert store.get_layer(chain).file_range() is None  # decompressed, so not a plain range
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]


def test_compressed_layer_with_wrong_content_is_caught(tmp_path: Path) -> None:
    good = image(1, tags=("c:1",))
    # The config names the good layer's diff ID; the gzip member holds something else.
    evil = attrs.evolve(good, layers=(b"not the layer" * 100,))
    data = docker_archive([evil], compress_layers="gzip",
                          manifest=[{"Config": f"{good.hex}.json", "RepoTags": ["c:1"],
                                     "Layers": [sha256(evil.layers[0])[7:] + ".tar.gz"]}])
    path = tmp_path / "a.tar"
    path.write_bytes(data)
    store = DockerArchiveStore(path)
    layer = store.get_layer(Digest.parse(sha256(good.layers[0])))
    with pytest.raises(LayerDigestMismatch):
        layer.size  # noqa: B018 - measuring decompresses and verifies


@pytest.mark.parametrize("case", golden_params(RESAVABLE))
def test_docker_25_hybrid_archive(case: GoldenCase, tmp_path: Path) -> None:
    """An archive with blobs/sha256 (25+) reads back to the same images and layers."""
    golden = DockerArchiveStore(case.save_tar)  # type: ignore[arg-type]
    hybrid_profile = attrs.evolve(profiles.DOCKER_26, image_order=golden_profile(case).image_order)
    hybrid = resave(golden, case, hybrid_profile)
    path = tmp_path / "hybrid.tar"
    path.write_bytes(hybrid)
    store = DockerArchiveStore(path)
    with tarfile.open(path) as archive:
        members = archive.getnames()
    assert "oci-layout" in members and not any(n.endswith("/layer.tar") for n in members)
    assert_tar_equal(resave(store, case), case.save_tar.read_bytes())  # type: ignore[union-attr]
    assert_tar_equal(resave(store, case, hybrid_profile), hybrid)


def legacy_variant(case: GoldenCase) -> bytes:
    """The golden without manifest.json and configs: only v1 dirs and repositories remain."""
    out = io.BytesIO()
    with tarfile.open(case.save_tar) as src, tarfile.open(fileobj=out, mode="w",
                                                          format=tarfile.PAX_FORMAT) as dst:
        for info in src:
            if info.name == "manifest.json" or ("/" not in info.name and
                                                info.name.endswith(".json")):
                continue
            dst.addfile(info, src.extractfile(info) if info.isreg() else None)
    return out.getvalue()


@pytest.mark.parametrize(
    "case", golden_params([c for c in RESAVABLE if c.case["repositories"]]))
def test_legacy_archive_keeps_the_v1_ids(case: GoldenCase, tmp_path: Path) -> None:
    """Docker's legacy loader makes configs from v1 json; a re-save gives the same v1 IDs.

    (The made config may or may not equal the original: Docker's own configs are written with
    sorted keys, so a one-step image round-trips exactly, a built one does not.)
    """
    path = tmp_path / "legacy.tar"
    path.write_bytes(legacy_variant(case))
    store = DockerArchiveStore(path)
    assert store.legacy
    expected = {e["Config"]: e["Layers"] for e in case.case["manifest"]}
    tags = sorted({t for e in case.case["manifest"] for t in e["RepoTags"] or ()})
    out = io.BytesIO()
    Saver(store, store, store, profile=profiles.DOCKER_20_10).save(tags, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        resaved = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(e["Layers"] for e in resaved) == sorted(
        layers for config, layers in expected.items()
        if any(set(e["RepoTags"] or ()) & set(tags) for e in case.case["manifest"]
               if e["Config"] == config))


def test_legacy_config_is_made_as_docker_makes_it() -> None:
    v1 = (b'{"id":"ab","parent":"cd","Size":5,"created":"2020-01-01T00:00:00.5Z",'
          b'"container_config":{"Cmd":["/bin/sh","-c","echo <hi>"]},"os":"linux",'
          b'"throwaway":true,  "author": "me & you"}')
    history = [b'{"created":"2020-01-01T00:00:00.5Z"}']
    diff = Digest("sha256", "1" * 64)
    config = config_from_v1(v1, [diff], history)
    assert config == (
        b'{"author":"me \\u0026 you","container_config":{"Cmd":["/bin/sh","-c","echo \\u003chi'
        b'\\u003e"]},"created":"2020-01-01T00:00:00.5Z","history":[{"created":'
        b'"2020-01-01T00:00:00.5Z"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["'
        + str(diff).encode() + b'"]}}'
    )


# -- bad archives ---------------------------------------------------------------------------


def test_changed_archive_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(docker_archive([image(1)]))
    store = DockerArchiveStore(path)
    layer = store.get_layer(Digest.parse(sha256(image(1).layers[0])))
    with open(path, "ab") as f:
        f.write(bytes(512))
    with pytest.raises(StoreError, match="changed"):
        layer.open()


def test_compressed_archive_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(gzip.compress(docker_archive([image(1)])))
    with pytest.raises(InvalidArchive, match="gzip-compressed"):
        DockerArchiveStore(path)


def test_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        DockerArchiveStore(tmp_path / "nothing.tar")


def test_hostile_archive_is_refused_in_place_too(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(docker_archive([image(1)], extra=[M("../evil", b"x")]))
    with pytest.raises(UnsafeArchive):
        DockerArchiveStore(path)


def test_json_limit_applies_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(docker_archive([image(1)]))
    with pytest.raises(UnsafeArchive, match="JSON limit"):
        DockerArchiveStore(path, limits=Limits(json_size=64))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"null", "cannot be null"),
        (b"{}", "cannot unmarshal object"),
        (b"[1]", "not an object"),
        (b'[{"Config": 5}]', "not a string"),
        (b'[{"Config": "a", "Layers": "x"}]', "not a list"),
        (b"[", "invalid JSON"),
        (b"[NaN]", "invalid JSON"),
        (b"[" * 100000, "invalid JSON|too deeply"),
    ],
    ids=["null", "object", "number-entry", "config-type", "layers-type", "truncated", "nan",
         "deep"],
)
def test_bad_manifests(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArchive, match=message):
        parse_manifest(data)


def test_manifest_keys_match_as_go_matches_them() -> None:
    (entry,) = parse_manifest(b'[{"config": "a", "LAYERS": ["l"], "Config": "b"}]')
    assert (entry.config, entry.layers) == ("b", ("l",))


@pytest.mark.parametrize("tag", ["x@sha256:" + "a" * 64, "Upper:1", "x", "x:1@sha256:" + "a" * 64])
def test_invalid_repo_tags(tag: str) -> None:
    with pytest.raises(InvalidArchive, match="invalid tag"):
        parse_repo_tag(tag)


def test_parent_must_be_a_real_parent(tmp_path: Path) -> None:
    base = image(1, tags=("base:1",), history=[{"created_by": "a"}])
    child = image(2, tags=("child:1",), seed="y",
                  history=[{"created_by": "other"}, {"created_by": "b"}])
    entries = [
        {"Config": f"{base.hex}.json", "RepoTags": ["base:1"],
         "Layers": [f"{sha256(base.layers[0])[7:]}/layer.tar"]},
        {"Config": f"{child.hex}.json", "RepoTags": ["child:1"],
         "Layers": [f"{sha256(layer)[7:]}/layer.tar" for layer in child.layers],
         "Parent": base.id},
    ]
    path = tmp_path / "a.tar"
    path.write_bytes(docker_archive([base, child], manifest=entries))
    with pytest.raises(InvalidArchive, match="not a valid parent"):
        DockerArchiveStore(path)


def test_parent_outside_the_archive_is_dropped(tmp_path: Path) -> None:
    img = image(1)
    entry = {"Config": f"{img.hex}.json", "RepoTags": ["craft:1"],
             "Layers": [f"{sha256(img.layers[0])[7:]}/layer.tar"],
             "Parent": "sha256:" + "9" * 64}
    path = tmp_path / "a.tar"
    path.write_bytes(docker_archive([img], manifest=[entry]))
    store = DockerArchiveStore(path)
    assert store.get_parent(Digest.parse(img.id)) is None
