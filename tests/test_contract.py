"""The public API as the architecture contract spells it, used end to end.

Programs that embed tarexport rely on these names and call shapes; this module uses each one
the way the contract shows, so a rename or a changed signature fails here first.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import attrs
import pytest
from golden_store import read_golden

from tarexport import (
    DockerArchiveStore,
    DockerRootStore,
    MemoryStore,
    OCILayoutStore,
    Saver,
    load,
    profiles,
)
from tarexport.digest import Digest
from tarexport.errors import InvalidReference, TarexportError
from tarexport.image import Image
from tarexport.reference import (
    familiar_name,
    familiar_string,
    parse_any_reference,
    parse_named,
    parse_normalized_named,
    tag_name_only,
)
from tarexport.stores import ImageStore, Layer, LayerStore, ReferenceStore
from tarexport.v1 import create_id, legacy_layers

# A golden with one image of three layers; its tags and bytes come from real Docker.
CASE = "s04-build-multilayer-emptylayers"


def test_reference_functions() -> None:
    named = parse_normalized_named("localhost:5000/app")
    assert (named.domain, named.path, named.name, named.tag, named.digest) == (
        "localhost:5000", "app", "localhost:5000/app", None, None
    )
    assert str(tag_name_only(named)) == "localhost:5000/app:latest"
    assert familiar_string(tag_name_only(parse_normalized_named("ubuntu"))) == "ubuntu:latest"
    assert familiar_name(parse_normalized_named("docker.io/library/x:1")) == "x"
    assert str(parse_named("docker.io/library/x:1")) == "docker.io/library/x:1"
    assert str(parse_any_reference("a" * 64)) == "sha256:" + "a" * 64
    with pytest.raises(InvalidReference) as info:
        parse_normalized_named("Upper/Case", legacy=True)
    assert str(info.value) == "invalid reference format: repository name must be lowercase"
    assert isinstance(info.value, ValueError) and isinstance(info.value, TarexportError)


def test_save_load_and_stores_as_the_contract_shows(tmp_path: Path) -> None:
    golden = read_golden(CASE)
    (hex_,) = golden.order
    config = golden.configs[hex_]
    layers = golden.layers[hex_]
    tag = golden.case["docker_save_args"][0]

    image = Image.from_bytes(config)
    assert image.id == Digest.from_bytes(config)
    v1 = legacy_layers(image, profiles.DOCKER_20_10)
    assert len(v1) == len(layers) and all(len(layer.id) == 64 for layer in v1)
    assert json.loads(v1[-1].json)["id"] == v1[-1].id
    assert len(create_id(image.v1, image.diff_ids[0], None)) == 64

    store = MemoryStore()
    layer_paths = []
    for i, data in enumerate(layers):
        path = tmp_path / f"layer{i}.tar"
        path.write_bytes(data)
        layer_paths.append(path)
    repo = tag.rpartition(":")[0]
    image_id = store.add_image(
        config, [layers[0], *layer_paths[1:]],  # bytes and paths both work
        references=[tag, f"{repo}@sha256:{'b' * 64}"], parent=None,
    )
    assert image_id == image.id
    assert isinstance(store, ImageStore) and isinstance(store, LayerStore)
    assert isinstance(store, ReferenceStore)
    assert isinstance(store.get_layer(image.diff_ids[0]), Layer)

    profile = attrs.evolve(profiles.DOCKER_20_10, owner_name="root")
    saver = Saver(store, store, store, profile=profile, verify=True)
    out = io.BytesIO()
    saver.save([tag], out)
    assert out.getvalue() == golden.archive
    plan = saver.plan([tag])
    assert plan.total_size == len(golden.archive)
    again = io.BytesIO()
    plan.write(again)
    assert again.getvalue() == golden.archive

    layout = OCILayoutStore(tmp_path / "layout", create=True)
    with open(tmp_path / "in.tar", "wb") as f:
        f.write(golden.archive)
    with open(tmp_path / "in.tar", "rb") as f:
        loaded = load(f, into=layout)
    assert image.id in loaded.image_ids
    from_layout = io.BytesIO()
    Saver(layout, layout, layout, profile=profile).save([tag], from_layout)
    assert from_layout.getvalue() == golden.archive

    archive = DockerArchiveStore(tmp_path / "in.tar")
    in_place = io.BytesIO()
    Saver(archive, archive, archive, profile=profile).save([tag], in_place)
    assert in_place.getvalue() == golden.archive

    assert callable(DockerRootStore)  # exercised against a real data root in test_docker_root
    assert profiles.DEFAULT in profiles.ALL
    for name in ("DOCKER_1_11", "DOCKER_20_10", "DOCKER_25", "DOCKER_26", "DOCKER_28",
                 "DOCKER_28_CONTAINERD", "DOCKER_29", "DEFAULT"):
        assert attrs.has(type(getattr(profiles, name)))
