"""Legacy v1 IDs and per-layer ``json`` files, checked against real ``docker save`` output.

Every layer of every image in the Docker 20.10 goldens is recomputed from the image's config
bytes alone: its v1 ID must name the layer's directory and its ``json`` must be the file in
the archive. The other expectations come from the spec (§1.2, §1.3, §1.4, §4.4, §5.2).
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import attrs
import pytest
from helpers import golden_cases, golden_params, read_tar

from tarexport import gojson, profiles
from tarexport.digest import Digest, chain_ids
from tarexport.gotime import GoTime
from tarexport.image import Image, V1Image
from tarexport.v1 import LegacyLayer, create_id, legacy_layers

SAVED = [c for c in golden_cases() if c.save_tar is not None]

# §4.4: the container_config of every intermediate layer, a full zero container.Config.
ZERO_CONFIG = (
    b'{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,'
    b'"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,'
    b'"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,'
    b'"Labels":null}'
)
D1, D2, D3 = (Digest("sha256", c * 64) for c in "123")


def make_image(body: str = '"os":"linux"', diff_ids: tuple[Digest, ...] = (D1, D2, D3)) -> Image:
    ids = ",".join(f'"{d}"' for d in diff_ids)
    sep = "," if body else ""
    return Image.from_bytes(
        f'{{"rootfs":{{"type":"layers","diff_ids":[{ids}]}}{sep}{body}}}'.encode()
    )


def _first_difference(actual: bytes, expected: bytes) -> str:
    at = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b), None)
    if at is None:
        at = min(len(actual), len(expected))
    return f"byte {at}: actual {actual[at : at + 40]!r}, expected {expected[at : at + 40]!r}"


# -- the goldens ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(SAVED))
def test_golden_v1_ids_and_json(case: Any) -> None:
    members = {info.name: body for info, body in read_tar(case.save_tar)}
    checked = 0
    for entry in case.case["manifest"]:
        config = members[entry["Config"]]
        assert config is not None
        layers = legacy_layers(Image.from_bytes(config), profiles.DOCKER_20_10)
        assert len(layers) == len(entry["Layers"]), entry["Config"]
        for index, (layer, path) in enumerate(zip(layers, entry["Layers"])):
            where = f"{entry['Config']} layer {index}"
            directory = path.split("/")[0]
            expected = members[f"{directory}/json"]
            assert expected is not None
            if layer.id != directory:
                # Show the field that changed the ID: compare with the archive's IDs put in.
                ours = layer.json.replace(layer.id.encode(), directory.encode())
                if layer.parent is not None and index > 0:
                    archived_parent = entry["Layers"][index - 1].split("/")[0]
                    ours = ours.replace(layer.parent.encode(), archived_parent.encode())
                detail = _first_difference(ours, expected) if ours != expected else "same json"
                pytest.fail(f"{where}: v1 ID {layer.id}, archive has {directory}; {detail}")
            if layer.json != expected:
                pytest.fail(
                    f"{where} ({directory}/json): {_first_difference(layer.json, expected)}"
                )
            checked += 1
    assert checked == sum(len(e["Layers"]) for e in case.case["manifest"]) > 0


# -- the layer chain ----------------------------------------------------------------------------


def test_chain_of_layers() -> None:
    image = make_image()
    layers = legacy_layers(image)
    assert [layer.diff_id for layer in layers] == [D1, D2, D3]
    assert [layer.chain_id for layer in layers] == chain_ids([D1, D2, D3])
    assert [layer.parent for layer in layers] == [None, layers[0].id, layers[1].id]
    assert all(isinstance(layer, LegacyLayer) for layer in layers)
    assert len({layer.id for layer in layers}) == 3
    assert legacy_layers(make_image(diff_ids=())) == []


def test_intermediate_json_20_10() -> None:
    first, second, top = legacy_layers(make_image(), profiles.DOCKER_20_10)
    assert first.json == (
        b'{"id":"' + first.id.encode() + b'","created":"1970-01-01T00:00:00Z",'
        b'"container_config":' + ZERO_CONFIG + b',"os":"linux"}'
    )
    assert second.json == (
        b'{"id":"' + second.id.encode() + b'","parent":"' + first.id.encode() + b'",'
        b'"created":"1970-01-01T00:00:00Z","container_config":' + ZERO_CONFIG + b',"os":"linux"}'
    )
    assert top.json == (
        b'{"id":"' + top.id.encode() + b'","parent":"' + second.id.encode() + b'",'
        b'"created":"0001-01-01T00:00:00Z","container_config":' + ZERO_CONFIG + b',"os":"linux"}'
    )


def test_intermediate_json_without_os() -> None:
    first, _ = legacy_layers(make_image("", (D1, D2)))
    assert b'"os"' not in first.json


def test_create_id_as_the_spec_describes_it() -> None:
    """§5.2: sorted keys, layer_id the chain ID, parent ``sha256:<parent v1 ID>``."""
    chain = "sha256:" + "4" * 64
    parent = "5" * 64
    expected = hashlib.sha256(
        b'{"container_config":' + ZERO_CONFIG + b',"created":"1970-01-01T00:00:00Z",'
        b'"layer_id":"' + chain.encode() + b'","parent":"sha256:' + parent.encode() + b'"}'
    ).hexdigest()
    lower = V1Image.intermediate(profiles.DOCKER_20_10)
    assert create_id(lower, chain, parent) == expected
    assert create_id(lower, Digest.parse(chain), "sha256:" + parent) == expected
    assert create_id(lower, chain, Digest("sha256", parent)) == expected
    bottom = hashlib.sha256(
        b'{"container_config":' + ZERO_CONFIG + b',"created":"1970-01-01T00:00:00Z",'
        b'"layer_id":"' + chain.encode() + b'"}'
    ).hexdigest()
    assert create_id(lower, chain, None) == bottom == create_id(lower, chain, "")


def test_top_layer_id_uses_sorted_keys_with_size_first() -> None:
    image = make_image('"os":"linux","architecture":"amd64","comment":"c","Size":5', (D1,))
    (layer,) = legacy_layers(image)
    data = (
        b'{"Size":5,"architecture":"amd64","comment":"c","container_config":' + ZERO_CONFIG
        + b',"created":"0001-01-01T00:00:00Z","layer_id":"' + str(D1).encode() + b'","os":"linux"}'
    )  # fmt: skip
    assert layer.id == hashlib.sha256(data).hexdigest()


def test_config_id_never_reaches_the_json() -> None:
    (layer,) = legacy_layers(make_image('"id":"abc","os":"linux"', (D1,)))
    assert layer.json.startswith(b'{"id":"' + layer.id.encode() + b'"')
    assert layer.id == legacy_layers(make_image('"os":"linux"', (D1,)))[0].id


def test_os_is_added_after_the_id_is_computed() -> None:
    with_os = legacy_layers(make_image('"os":"linux"'))
    without = legacy_layers(make_image('"os":""'))
    assert [a.id for a in with_os[:2]] == [b.id for b in without[:2]]
    assert with_os[2].id != without[2].id  # the top layer hashes its own os


# -- profiles -----------------------------------------------------------------------------------


def test_docker_1_11_intermediate_layers() -> None:
    image = make_image('"os":"linux","architecture":"arm","variant":"v7"')
    first, second, top = legacy_layers(image, profiles.DOCKER_1_11)
    assert first.json == (
        b'{"id":"' + first.id.encode() + b'","created":"0001-01-01T00:00:00Z",'
        b'"container_config":' + ZERO_CONFIG + b"}"
    )
    assert second.json.startswith(b'{"id":"' + second.id.encode() + b'","parent":"')
    assert b'"os"' not in second.json
    assert b'"variant"' not in top.json
    assert top.json.endswith(b'"architecture":"arm","os":"linux"}')
    modern = legacy_layers(image, profiles.DOCKER_20_10)
    assert first.id != modern[0].id
    assert b'"variant":"v7"' in modern[2].json


@pytest.mark.parametrize(
    ("tz_offset", "created"),
    [
        (3600, b"1970-01-01T01:00:00+01:00"),
        (-3600, b"1969-12-31T23:00:00-01:00"),
        (19800, b"1970-01-01T05:30:00+05:30"),
    ],
)
def test_tz_offset_changes_intermediate_created_and_ids(tz_offset: int, created: bytes) -> None:
    image = make_image()
    utc = legacy_layers(image, profiles.DOCKER_20_10)
    zoned = legacy_layers(image, attrs.evolve(profiles.DOCKER_20_10, tz_offset=tz_offset))
    assert b'"created":"' + created + b'"' in zoned[0].json
    assert b'"created":"' + created + b'"' in zoned[1].json
    assert b'"created":"0001-01-01T00:00:00Z"' in zoned[2].json  # the image's own created
    assert all(a.id != b.id for a, b in zip(utc, zoned))  # parents chain the change upward


def test_tz_offset_does_not_apply_to_docker_1_11() -> None:
    zoned = attrs.evolve(profiles.DOCKER_1_11, tz_offset=3600)
    assert legacy_layers(make_image(), zoned) == legacy_layers(make_image(), profiles.DOCKER_1_11)


def test_docker_25_missing_created_is_null() -> None:
    first, _, top = legacy_layers(make_image(), profiles.DOCKER_25)
    assert b'"created":"1970-01-01T00:00:00Z"' in first.json
    assert b'"created":null' in top.json
    dated = legacy_layers(make_image('"created":"2024-01-02T03:04:05Z"'), profiles.DOCKER_25)
    assert b'"created":"2024-01-02T03:04:05Z"' in dated[2].json


def test_short_escapes_from_docker_28() -> None:
    image = make_image('"comment":"a\\bb\\fc\\u0001","os":"x\\by"', (D1, D2))
    old = legacy_layers(image, profiles.DOCKER_20_10)
    new = legacy_layers(image, profiles.DOCKER_28)
    assert b'"comment":"a\\u0008b\\u000cc\\u0001"' in old[1].json
    assert b'"comment":"a\\bb\\fc\\u0001"' in new[1].json
    assert old[1].id != new[1].id
    # The os copied into the lower layer's json is escaped the same way.
    assert old[0].json.endswith(b'"os":"x\\u0008y"}')
    assert new[0].json.endswith(b'"os":"x\\by"}')


def test_start_interval_only_from_docker_25() -> None:
    image = make_image('"config":{"Healthcheck":{"StartPeriod":1,"StartInterval":2}}', (D1,))
    (old,) = legacy_layers(image, profiles.DOCKER_20_10)
    (new,) = legacy_layers(image, profiles.DOCKER_25)
    assert b'"Healthcheck":{"StartPeriod":1}' in old.json
    assert b'"Healthcheck":{"StartPeriod":1,"StartInterval":2}' in new.json


# -- the V1Image value ----------------------------------------------------------------------------


def test_intermediate_v1image() -> None:
    epoch = GoTime.from_unix(0)
    assert V1Image.intermediate(profiles.DOCKER_20_10) == V1Image(
        created=epoch, created_value=epoch
    )
    zero = V1Image.intermediate(profiles.DOCKER_1_11)
    assert zero.created == zero.created_value == GoTime.ZERO


def test_top_layer_json_is_the_images_v1image() -> None:
    image = make_image('"author":"<me>","os":"linux","config":{"Env":[]}', (D1, D2))
    bottom, top = legacy_layers(image)
    expected: dict[str, Optional[object]] = {"id": top.id, "parent": bottom.id}
    expected.update(attrs.evolve(image.v1, id="").to_go(profiles.DOCKER_20_10))
    assert top.json == gojson.dumps(expected)
    assert b'"author":"\\u003cme\\u003e"' in top.json
