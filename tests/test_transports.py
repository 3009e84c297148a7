"""`copy` between every pair of local places, for every golden; names; all-or-nothing.

Expected images and names come from the goldens (Docker's own `manifest.json`); blobs are
checked by hashing what the destination holds, not by asking the code under test.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Tuple

import pytest
from craft import config_bytes, image, layer_tar, sha256
from golden_store import CASES, read_golden
from helpers import GOLDENS_DIR

from tarexport import MemoryStore, OCILayoutStore
from tarexport.digest import chain_ids
from tarexport.errors import (
    InvalidTransport,
    LayerDigestMismatch,
    NameConflict,
    StoreError,
    TarexportError,
)
from tarexport.image import Image
from tarexport.stores.oci_layout import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME
from tarexport.transports import parse
from tarexport.transports.copier import copy
from tarexport.transports.local import open_store
from tarexport.transports.stores import StoreSource

PLACES = ("docker-archive", "oci", "oci-archive", "store")
Contents = Dict[str, FrozenSet[str]]


@pytest.fixture(autouse=True)
def default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "default-store"
    monkeypatch.setenv("TAREXPORT_STORE", str(path))
    return path


def place(kind: str, tmp_path: Path, label: str) -> str:
    if kind == "store":
        return "store:"
    suffix = ".tar" if kind.endswith("archive") else ""
    return f"{kind}:{tmp_path / (label + suffix)}"


def verified_contents(where: str) -> Contents:
    """Image ID hex -> familiar names, every config and layer hashed to what names it."""
    store = open_store(where)
    found: Contents = {}
    for image_id in store.search(""):
        config = store.get_config(image_id)
        assert hashlib.sha256(config).hexdigest() == image_id.hex
        decoded = Image.from_bytes(config)
        for chain, diff_id in zip(chain_ids(decoded.diff_ids), decoded.diff_ids):
            with store.get_layer(chain).open() as stream:
                assert hashlib.sha256(stream.read()).hexdigest() == diff_id.hex
        names = {_familiar(str(ref)) for ref in store.references(image_id) if ref.tag}
        found[image_id.hex] = frozenset(names)
    return found


def _familiar(full: str) -> str:
    from tarexport.reference import familiar_string, parse_normalized_named

    return familiar_string(parse_normalized_named(full))


def golden_contents(name: str) -> Contents:
    """What Docker wrote in the golden's `manifest.json`: every image with its RepoTags."""
    golden = read_golden(name)
    return {
        item["Config"].removesuffix(".json"): frozenset(item["RepoTags"] or ())
        for item in golden.case["manifest"]
    }


# -- every golden, every pair ------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_copy_round_trips_between_every_pair_of_places(case: str, tmp_path: Path) -> None:
    expected = golden_contents(case)
    golden = f"docker-archive:{GOLDENS_DIR / case / 'save.tar'}"
    for first in PLACES:
        for second in PLACES:
            where = tmp_path / f"{first}-{second}"
            where.mkdir()
            os.environ["TAREXPORT_STORE"] = str(where / "store-a")
            a = place(first, where, "a")
            copy(golden, a)
            assert verified_contents(a) == expected, (first,)
            os.environ["TAREXPORT_STORE"] = str(where / "store-b")
            b = place(second, where, "b")
            copy(a if first != "store" else f"oci:{where / 'store-a'}", b)
            assert verified_contents(b) == expected, (first, second)


def test_copy_one_image_by_name_renamed(tmp_path: Path) -> None:
    golden = GOLDENS_DIR / "s11-siblings-shared-base" / "save.tar"
    copy(f"docker-archive:{golden}:cc-s-sib/a:1", f"oci:{tmp_path / 'l'}:x/renamed:2")
    contents = verified_contents(f"oci:{tmp_path / 'l'}")
    assert list(contents.values()) == [frozenset({"x/renamed:2"})]
    (hex_,) = contents
    assert golden_contents("s11-siblings-shared-base")[hex_] == {"cc-s-sib/a:1"}


def test_destination_ref_needs_one_image(tmp_path: Path) -> None:
    golden = GOLDENS_DIR / "s11-siblings-shared-base" / "save.tar"
    with pytest.raises(InvalidTransport, match=r"names one image, but .* holds 2"):
        copy(f"docker-archive:{golden}", f"oci:{tmp_path / 'l'}:x:1")
    assert not (tmp_path / "l").exists()


# -- names in OCI layouts ----------------------------------------------------------------


def test_two_repositories_with_one_tag_stay_apart(tmp_path: Path) -> None:
    layout = tmp_path / "l"
    store = OCILayoutStore(layout, create=True, fsync=False)
    a, b = image(1, seed="a"), image(1, seed="b")
    store.add_image(a.config, a.layers, ["one/app:latest"])
    store.add_image(b.config, b.layers, ["two/app:latest"])
    index = json.loads((layout / "index.json").read_bytes())
    ref_names = [d["annotations"][ANNOTATION_REF_NAME] for d in index["manifests"]]
    assert ref_names == ["one/app:latest", "two/app:latest"]
    copy(f"oci:{layout}:two/app:latest", f"oci:{tmp_path / 'out'}")
    assert verified_contents(f"oci:{tmp_path / 'out'}") == {b.hex: {"two/app:latest"}}


Entry = Tuple[bytes, Tuple[bytes, ...], Dict[str, str]]


def _hand_layout(path: Path, entries: List[Entry]) -> None:
    """A layout as another tool writes it: blobs and an index with the given annotations."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def put(data: bytes) -> str:
        digest = sha256(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    manifests = []
    for config, layers, names in entries:
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": put(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": put(layer), "size": len(layer)} for layer in layers],
        }).encode()
        descriptor: Dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": put(manifest), "size": len(manifest)}
        if names:
            descriptor["annotations"] = names
        manifests.append(descriptor)
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))


def test_a_bare_tag_source_needs_a_named_destination(tmp_path: Path) -> None:
    img = image(1)
    _hand_layout(tmp_path / "l", [(img.config, img.layers, {ANNOTATION_REF_NAME: "latest"})])
    with pytest.raises(InvalidTransport, match=r"tag 'latest' alone"):
        copy(f"oci:{tmp_path / 'l'}:latest", f"oci:{tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()
    copy(f"oci:{tmp_path / 'l'}:latest", f"oci:{tmp_path / 'out'}:app:1")
    assert verified_contents(f"oci:{tmp_path / 'out'}") == {img.hex: {"app:1"}}


def test_disagreeing_names_of_one_descriptor_are_an_error(tmp_path: Path) -> None:
    img = image(1)
    _hand_layout(tmp_path / "l", [(img.config, img.layers, {
        ANNOTATION_IMAGE_NAME: "docker.io/library/app:1", ANNOTATION_REF_NAME: "other:2"})])
    for ref in ("app:1", "other:2"):
        with pytest.raises(NameConflict, match=r"app:1.*other:2"):
            copy(f"oci:{tmp_path / 'l'}:{ref}", f"oci:{tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()


def test_docker_25_names_agree(tmp_path: Path) -> None:
    img = image(1)
    _hand_layout(tmp_path / "l", [(img.config, img.layers, {
        ANNOTATION_IMAGE_NAME: "docker.io/library/app:1", ANNOTATION_REF_NAME: "1"})])
    copy(f"oci:{tmp_path / 'l'}:app:1", f"oci:{tmp_path / 'out'}")
    assert verified_contents(f"oci:{tmp_path / 'out'}") == {img.hex: {"app:1"}}


def test_one_name_for_two_images_is_an_error(tmp_path: Path) -> None:
    a, b = image(1, seed="a"), image(1, seed="b")
    _hand_layout(tmp_path / "l", [
        (a.config, a.layers, {ANNOTATION_IMAGE_NAME: "docker.io/library/app:1"}),
        (b.config, b.layers, {ANNOTATION_REF_NAME: "app:1"}),
    ])
    with pytest.raises(NameConflict, match=r"docker.io/library/app:1 names two images"):
        copy(f"oci:{tmp_path / 'l'}:app:1", f"oci:{tmp_path / 'out'}")
    with pytest.raises(NameConflict):
        copy(f"oci:{tmp_path / 'l'}:app", f"oci:{tmp_path / 'out'}")


def test_one_bare_tag_for_two_images_is_an_error(tmp_path: Path) -> None:
    a, b = image(1, seed="a"), image(1, seed="b")
    _hand_layout(tmp_path / "l", [
        (a.config, a.layers, {ANNOTATION_IMAGE_NAME: "docker.io/one/app:latest",
                              ANNOTATION_REF_NAME: "latest"}),
        (b.config, b.layers, {ANNOTATION_IMAGE_NAME: "docker.io/two/app:latest",
                              ANNOTATION_REF_NAME: "latest"}),
    ])
    with pytest.raises(NameConflict, match=r"'latest' names 2 different images"):
        copy(f"oci:{tmp_path / 'l'}:latest", f"oci:{tmp_path / 'out'}")
    # Each is still found by its whole name.
    copy(f"oci:{tmp_path / 'l'}:two/app:latest", f"oci:{tmp_path / 'out'}")
    assert verified_contents(f"oci:{tmp_path / 'out'}") == {b.hex: {"two/app:latest"}}


# -- all or nothing ----------------------------------------------------------------------


def _corrupt_store(tmp_path: Path) -> MemoryStore:
    """A store whose second image's layer file no longer holds what its diff ID says."""
    store = MemoryStore()
    good = image(1, seed="good")
    store.add_image(good.config, good.layers, ["good:1"])
    layer = layer_tar({"f": b"x" * 5000})
    path = tmp_path / "layer.tar"
    path.write_bytes(layer)
    store.add_image(config_bytes([sha256(layer)]), [path], ["bad:1"])
    path.write_bytes(layer.replace(b"x" * 10, b"y" * 10, 1))
    return store


@pytest.mark.parametrize("kind", ["oci", "docker-archive", "oci-archive", "store"])
def test_a_bad_layer_leaves_the_destination_as_it_was(
    kind: str, tmp_path: Path, default_store: Path
) -> None:
    store = _corrupt_store(tmp_path)
    destination = place(kind, tmp_path, "dest")
    before = image(1, seed="before")
    if kind in ("oci", "store"):
        layout = default_store if kind == "store" else tmp_path / "dest"
        OCILayoutStore(layout, create=True).add_image(before.config, before.layers, ["old:1"])
        snapshot = {p: p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    else:
        Path(parse(destination).path).write_bytes(b"old archive")
    with pytest.raises(LayerDigestMismatch):
        copy(StoreSource(store, None, "memory"), destination)
    if kind in ("oci", "store"):
        assert {p: p.read_bytes() for p in layout.rglob("*") if p.is_file()} == snapshot
    else:
        assert Path(parse(destination).path).read_bytes() == b"old archive"
        assert not [n for n in os.listdir(tmp_path) if n.startswith(".dest.tar.")]


def test_unknown_names_fail_before_anything(tmp_path: Path) -> None:
    golden = GOLDENS_DIR / "s01-import-single-gnu" / "save.tar"
    with pytest.raises(TarexportError, match=r"does not exist|No such image"):
        copy(f"docker-archive:{golden}:nope:1", f"docker-archive:{tmp_path / 'x.tar'}")
    assert not (tmp_path / "x.tar").exists()
    with pytest.raises(InvalidTransport, match=r"cannot be written"):
        copy(f"docker-archive:{golden}", f"docker-root:{tmp_path / 'root'}")
    with pytest.raises(StoreError):
        copy(f"oci:{tmp_path / 'missing'}", f"oci:{tmp_path / 'out'}")


def test_a_source_digest_mismatch_in_a_layout_is_caught(tmp_path: Path) -> None:
    layout = tmp_path / "l"
    img = image(1)
    OCILayoutStore(layout, create=True).add_image(img.config, img.layers, ["app:1"])
    blob = layout / "blobs" / "sha256" / sha256(img.layers[0]).split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b"x layer 0", b"y layer 0"))
    for destination in (f"oci:{tmp_path / 'out'}", f"docker-archive:{tmp_path / 'o.tar'}"):
        with pytest.raises(LayerDigestMismatch):
            copy(f"oci:{layout}:app:1", destination)
    assert sorted(os.listdir(tmp_path)) == ["l"]  # no layout made, no archive, no temporary


# -- oci-archive: an OCI layout in a tar, with no manifest.json ------------------------------


def _tar_directory(directory: Path, out: Path) -> None:
    import tarfile

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)


def test_an_oci_layout_in_a_tar_is_read_by_ref_name_and_loaded(tmp_path: Path) -> None:
    a, b = image(2, seed="a"), image(1, seed="b")
    _hand_layout(tmp_path / "l", [
        (a.config, a.layers, {ANNOTATION_REF_NAME: "v1"}),
        (b.config, b.layers, {ANNOTATION_IMAGE_NAME: "docker.io/team/b:2",
                              ANNOTATION_REF_NAME: "2"}),
    ])
    archive = tmp_path / "l.tar"
    _tar_directory(tmp_path / "l", archive)
    copy(f"oci-archive:{archive}:v1", f"oci:{tmp_path / 'out'}:team/a:1")
    copy(f"oci-archive:{archive}:2", f"oci:{tmp_path / 'out'}")
    assert verified_contents(f"oci:{tmp_path / 'out'}") == {
        a.hex: {"team/a:1"}, b.hex: {"team/b:2"}}
    with pytest.raises(InvalidTransport, match=r"tag 'v1' alone"):
        copy(f"oci-archive:{archive}:v1", f"oci:{tmp_path / 'out2'}")
    from tarexport import load

    target = OCILayoutStore(tmp_path / "loaded", create=True, fsync=False)
    with open(archive, "rb") as stream:
        result = load(stream, into=target)
    assert sorted(str(i) for i in result.image_ids) == sorted([a.id, b.id])
    assert verified_contents(f"oci:{tmp_path / 'loaded'}") == {a.hex: set(), b.hex: {"team/b:2"}}


def test_a_tag_of_two_repositories_in_a_docker_25_archive_is_ambiguous(tmp_path: Path) -> None:
    golden = GOLDENS_DIR / "s11-siblings-shared-base" / "save.tar"
    hybrid = tmp_path / "hybrid.tar"
    copy(f"docker-archive:{golden}", f"oci-archive:{hybrid}")  # Docker 25+'s ref.name: the tag
    with pytest.raises(NameConflict, match=r"'1' names 2 different images"):
        copy(f"oci-archive:{hybrid}:1", f"oci:{tmp_path / 'out'}")
    copy(f"oci-archive:{hybrid}:cc-s-sib/b:1", f"oci:{tmp_path / 'out'}")
    assert list(verified_contents(f"oci:{tmp_path / 'out'}").values()) == [{"cc-s-sib/b:1"}]


def test_a_bare_tag_destination_keeps_the_repository(tmp_path: Path) -> None:
    golden = GOLDENS_DIR / "s11-siblings-shared-base" / "save.tar"
    contents = golden_contents("s11-siblings-shared-base")
    (hex_,) = [h for h, tags in contents.items() if tags == {"cc-s-sib/b:1"}]
    copy(f"docker-archive:{golden}:cc-s-sib/b:1", f"oci:{tmp_path / 'l'}:stable")
    assert verified_contents(f"oci:{tmp_path / 'l'}") == {hex_: {"cc-s-sib/b:stable"}}
    with pytest.raises(InvalidTransport, match=r"names one image, but the source holds 2"):
        copy(f"docker-archive:{golden}", f"oci:{tmp_path / 'm'}:stable")
    with pytest.raises(InvalidTransport, match=r"invalid tag format"):
        copy(f"docker-archive:{golden}:cc-s-sib/b:1", f"oci:{tmp_path / 'm'}:-bad")
    img = image(1)
    _hand_layout(tmp_path / "bare", [(img.config, img.layers, {ANNOTATION_REF_NAME: "v1"})])
    with pytest.raises(InvalidTransport, match=r"tag 'v1' alone"):
        copy(f"oci:{tmp_path / 'bare'}:v1", f"oci:{tmp_path / 'm'}:v2")
    assert not (tmp_path / "m").exists()
