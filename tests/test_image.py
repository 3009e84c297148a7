"""The image config model: raw bytes kept, fields decoded as Docker decodes them.

Expected values come from the goldens (``case.json`` as ``docker image inspect`` reported
each image), from the spec (§4.2 decoding rules, §4.3 key orders, §4.4 file bytes), and from
``data/go119/images.jsonl``: what Go 1.19.8's ``encoding/json`` did with each config when
decoding it into Docker 20.10's ``image.Image`` and marshalling its ``V1Image`` back (see
``data/go119/README.md``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest
from helpers import DATA_DIR, golden_cases, golden_params, read_tar
from hypothesis import given
from hypothesis import strategies as st

from tarexport import gojson, profiles
from tarexport.digest import Digest
from tarexport.errors import InvalidImageConfig
from tarexport.gotime import GoTime
from tarexport.image import ContainerConfig, HealthConfig, History, Image, V1Image
from tarexport.v1 import create_id

GO119 = DATA_DIR / "go119"
DIFF = "sha256:" + "c" * 64
ROOTFS = '"rootfs":{"type":"layers","diff_ids":["' + DIFF + '"]}'

# §4.4: the container_config of every intermediate layer, a full zero container.Config.
ZERO_CONFIG = (
    '{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,'
    '"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,'
    '"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,'
    '"Labels":null}'
)


def config(body: str = "") -> bytes:
    return ("{" + ROOTFS + ("," + body if body else "") + "}").encode()


def v1_json(image: Image, profile: profiles.Profile = profiles.DOCKER_20_10) -> str:
    """The top layer's V1Image as Docker marshals it before setting the v1 ID."""
    fields = attrs.evolve(image.v1, id="").to_go(profile)
    return gojson.dumps(fields, short_escapes=profile.go_short_escapes).decode()


def _records(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


# -- goldens -----------------------------------------------------------------------------------

SAVED = [c for c in golden_cases() if c.save_tar is not None]


@pytest.mark.parametrize("case", golden_params(SAVED))
def test_golden_configs(case: Any) -> None:
    members = {info.name: body for info, body in read_tar(case.save_tar)}
    inspected = {image["id"]: image for image in case.case["images"]}
    for entry in case.case["manifest"]:
        raw = members[entry["Config"]]
        assert raw is not None
        image = Image.from_bytes(raw)
        assert image.raw == raw
        assert image.id.hex + ".json" == entry["Config"]
        assert len(image.diff_ids) == len(entry["Layers"])
        if str(image.id) in inspected:
            seen = inspected[str(image.id)]
            assert [str(d) for d in image.diff_ids] == seen["diff_ids"]
            assert (image.os, image.architecture) == (seen["os"], seen["architecture"])
            assert image.created is not None
            assert image.created.format() == seen["created"]


def test_golden_raw_config_with_unknown_fields() -> None:
    (case,) = [c for c in SAVED if c.name == "s19-load-raw-config-bytes"]
    members = {info.name: body for info, body in read_tar(case.save_tar)}
    raw = members[case.case["manifest"][0]["Config"]]
    assert raw is not None
    image = Image.from_bytes(raw)
    assert image.author == "Zo\u00eb <zoe@example.com> \u4e2d"
    assert image.config is not None
    assert image.config.labels == {"z": "last", "a": "first", "html": "<html> & <raw>"}
    assert image.config.env == ("A=1",)
    assert image.history == (
        History(created=GoTime.parse("2019-06-07T06:09:10Z"), created_by="hand-written"),
    )
    assert image.rootfs_type == "layers"


# -- Go 1.19 itself ----------------------------------------------------------------------------

IMAGE_RECORDS = _records(GO119 / "images.jsonl")
LAYER_ID = "sha256:" + "a" * 64
PARENT_ID = "b" * 64


def _history_as_go(entry: History) -> dict[str, Any]:
    """A 20.10 ``image.History`` as Go marshals it (``created`` is a plain ``time.Time``)."""
    out: dict[str, Any] = {"created": (entry.created or GoTime.ZERO).format()}
    for key, value in [
        ("author", entry.author),
        ("created_by", entry.created_by),
        ("comment", entry.comment),
        ("empty_layer", entry.empty_layer),
    ]:
        if value:
            out[key] = value
    return out


def _invalid_diff_id(rest: dict[str, Any]) -> Optional[int]:
    for i, text in enumerate(rest["rootfs"].get("diff_ids") or ()):
        try:
            Digest.parse(text)
        except ValueError:
            return i
    return None


@pytest.mark.parametrize("record", IMAGE_RECORDS, ids=[r["name"] for r in IMAGE_RECORDS])
def test_decoding_matches_go(record: dict[str, Any]) -> None:
    raw = base64.b64decode(record["input"])
    if "error" in record:
        with pytest.raises(InvalidImageConfig) as caught:
            Image.from_bytes(raw)
        if record["error"] == "invalid image JSON, no RootFS key":
            assert caught.value.field == "rootfs"
        return
    rest = json.loads(record["rest"])
    bad = _invalid_diff_id(rest)
    if bad is not None:
        # Go keeps any string; a diff ID that is no digest cannot name a layer.
        with pytest.raises(InvalidImageConfig) as caught:
            Image.from_bytes(raw)
        assert caught.value.field == f"rootfs.diff_ids[{bad}]"
        return
    image = Image.from_bytes(raw)
    assert v1_json(image) == record["v1"]
    assert create_id(image.v1, LAYER_ID, PARENT_ID) == record["v1_id"]
    assert [_history_as_go(h) for h in image.history] == (rest["history"] or [])
    assert image.rootfs_type == rest["rootfs"]["type"]
    assert [str(d) for d in image.diff_ids] == (rest["rootfs"].get("diff_ids") or [])
    assert image.os_version == rest["os.version"]
    assert list(image.os_features) == (rest["os.features"] or [])


# -- §4.2 how the daemon decodes the config ----------------------------------------------------


def test_unknown_keys_are_dropped() -> None:
    image = Image.from_bytes(config('"zzz":1,"config":{"Bogus":[1],"Env":["A=1"]}'))
    assert "zzz" not in v1_json(image) and "Bogus" not in v1_json(image)
    assert image.config == ContainerConfig(env=("A=1",))


def test_keys_match_case_insensitively() -> None:
    image = Image.from_bytes(
        config('"Architecture":"arm64","OS":"linux","size":7,"config":{"env":["A"]}')
    )
    assert (image.architecture, image.os, image.size) == ("arm64", "linux", 7)
    assert image.config is not None and image.config.env == ("A",)
    assert v1_json(image).endswith('"architecture":"arm64","os":"linux","Size":7}')


def test_last_duplicate_wins() -> None:
    image = Image.from_bytes(config('"os":"a","os":"b","OS":"c"'))
    assert image.os == "c"


def test_top_level_parent_is_ignored_and_id_is_read() -> None:
    image = Image.from_bytes(config('"parent":"sha256:' + "d" * 64 + '","id":"abc"'))
    assert image.v1.parent == ""
    assert image.v1.id == "abc"
    assert '"parent"' not in v1_json(image)


def test_strslice_accepts_a_bare_string() -> None:
    image = Image.from_bytes(config('"config":{"Cmd":"x","Entrypoint":["a","b"],"Shell":"sh"}'))
    assert image.config is not None
    assert (image.config.cmd, image.config.entrypoint, image.config.shell) == (
        ("x",),
        ("a", "b"),
        ("sh",),
    )
    assert '"Cmd":["x"]' in v1_json(image)


NULLABLE = ("Env", "Cmd", "Entrypoint", "OnBuild")


@pytest.mark.parametrize("key", NULLABLE)
@pytest.mark.parametrize(("given_as", "written"), [("null", "null"), (None, "null"), ("[]", "[]")])
def test_null_and_empty_lists_stay_distinct(
    key: str, given_as: Optional[str], written: str
) -> None:
    body = f'"config":{{"{key}":{given_as}}}' if given_as else '"config":{}'
    assert f'"{key}":{written}' in v1_json(Image.from_bytes(config(body)))


@pytest.mark.parametrize("key", ["Volumes", "Labels"])
@pytest.mark.parametrize(("given_as", "written"), [("null", "null"), (None, "null"), ("{}", "{}")])
def test_null_and_empty_maps_stay_distinct(key: str, given_as: Optional[str], written: str) -> None:
    body = f'"config":{{"{key}":{given_as}}}' if given_as else '"config":{}'
    assert f'"{key}":{written}' in v1_json(Image.from_bytes(config(body)))


def test_config_null_or_absent_is_omitted_and_container_config_is_always_written() -> None:
    for body in ('"config":null', ""):
        image = Image.from_bytes(config(body))
        assert image.config is None
        assert v1_json(image) == (
            '{"created":"0001-01-01T00:00:00Z","container_config":' + ZERO_CONFIG + "}"
        )
    image = Image.from_bytes(config('"config":{}'))
    assert v1_json(image).endswith('"config":' + ZERO_CONFIG + "}")


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters() -> None:
    raw = b"{" + ROOTFS.encode() + b',"comment":"a\xffb\\ud800c","author":"\xed\xa0\x80"}'
    image = Image.from_bytes(raw)
    assert image.comment == "a\ufffdb\ufffdc"
    assert image.author == "\ufffd\ufffd\ufffd"
    assert image.raw == raw


# -- §4.3 V1Image and container.Config key orders ----------------------------------------------

V1_KEYS = [
    "id", "parent", "comment", "created", "container", "container_config",
    "docker_version", "author", "config", "architecture", "variant", "os", "Size",
]  # fmt: skip
CONFIG_KEYS = [
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
    "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
    "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
]  # fmt: skip
OMITEMPTY_CONFIG_KEYS = {
    "ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
    "StopSignal", "StopTimeout", "Shell",
}  # fmt: skip

FULL_CONFIG = ContainerConfig(
    hostname="h", domainname="d", user="u", attach_stdin=True, attach_stdout=True,
    attach_stderr=True, exposed_ports=gojson.Map({"80/tcp": gojson.Map()}), tty=True,
    open_stdin=True, stdin_once=True, env=("A=1",), cmd=("c",),
    healthcheck=HealthConfig(test=("CMD",), interval=1, timeout=2, start_period=3,
                             start_interval=4, retries=5),
    args_escaped=True, image="i", volumes=gojson.Map({"/v": gojson.Map()}), working_dir="/w",
    entrypoint=("e",), network_disabled=True, mac_address="m", on_build=("o",),
    labels=gojson.Map({"k": "v"}), stop_signal="SIGTERM", stop_timeout=1, shell=("sh",),
)  # fmt: skip
FULL_V1 = V1Image(
    id="i", parent="p", comment="c", created=GoTime.from_unix(1), created_value=GoTime.from_unix(1),
    container="ct", container_config=FULL_CONFIG, docker_version="dv", author="a",
    config=FULL_CONFIG, architecture="amd64", variant="v8", os="linux", size=9,
)  # fmt: skip


def _keys(text: bytes) -> list[str]:
    return [k for k, _ in json.loads(text, object_pairs_hook=list)]


def test_v1image_key_order() -> None:
    assert _keys(gojson.dumps(FULL_V1.to_go(profiles.DOCKER_20_10))) == V1_KEYS


def test_v1image_omits_empty_fields_but_never_created_or_container_config() -> None:
    assert list(V1Image().to_go(profiles.DOCKER_20_10)) == ["created", "container_config"]
    assert V1Image().to_go(profiles.DOCKER_20_10)["created"] == "0001-01-01T00:00:00Z"


def test_v1image_per_profile() -> None:
    assert "variant" not in FULL_V1.to_go(profiles.DOCKER_1_11)
    assert V1Image().to_go(profiles.DOCKER_25)["created"] is None  # a nil *time.Time
    assert FULL_V1.to_go(profiles.DOCKER_25)["created"] == "1970-01-01T00:00:01Z"


def test_container_config_key_order_and_omitempty() -> None:
    full = FULL_CONFIG.to_go(profiles.DOCKER_20_10)
    assert list(full) == CONFIG_KEYS
    empty = ContainerConfig().to_go(profiles.DOCKER_20_10)
    assert list(empty) == [k for k in CONFIG_KEYS if k not in OMITEMPTY_CONFIG_KEYS]
    assert gojson.dumps(empty).decode() == ZERO_CONFIG


def test_sets_are_written_with_empty_objects() -> None:
    image = Image.from_bytes(config('"config":{"ExposedPorts":{"80/tcp":{},"53/udp":{"x":1}}}'))
    assert '"ExposedPorts":{"53/udp":{},"80/tcp":{}}' in v1_json(image)


def test_stop_timeout_zero_is_written_and_empty_shell_is_not() -> None:
    image = Image.from_bytes(config('"config":{"StopTimeout":0,"Shell":[]}'))
    text = v1_json(image)
    assert '"StopTimeout":0' in text
    assert '"Shell"' not in text


def test_healthcheck_with_empty_test_is_an_empty_object() -> None:
    image = Image.from_bytes(config('"config":{"Healthcheck":{"Test":[]}}'))
    assert '"Healthcheck":{}' in v1_json(image)


def test_health_config_order_and_start_interval_from_docker_25() -> None:
    body = (
        '"config":{"Healthcheck":{"Retries":2,"StartInterval":4,"StartPeriod":3,'
        '"Timeout":2,"Interval":1,"Test":["CMD"]}}'
    )
    image = Image.from_bytes(config(body))
    assert (
        '"Healthcheck":{"Test":["CMD"],"Interval":1,"Timeout":2,"StartPeriod":3,"Retries":2}'
        in (v1_json(image, profiles.DOCKER_20_10))
    )
    assert (
        '"Healthcheck":{"Test":["CMD"],"Interval":1,"Timeout":2,"StartPeriod":3,'
        '"StartInterval":4,"Retries":2}'
    ) in v1_json(image, profiles.DOCKER_25)


def test_start_interval_of_the_wrong_type_is_ignored() -> None:
    # Docker before 25 drops StartInterval as an unknown key, whatever its value.
    image = Image.from_bytes(config('"config":{"Healthcheck":{"StartInterval":"soon"}}'))
    assert image.config is not None and image.config.healthcheck == HealthConfig()


def test_html_characters_are_escaped_in_v1_json() -> None:
    image = Image.from_bytes(config('"config":{"Labels":{"html":"<b>&amp;</b>\u2028"}}'))
    assert '"Labels":{"html":"\\u003cb\\u003e\\u0026amp;\\u003c/b\\u003e\\u2028"}' in v1_json(image)


# -- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "created", "created_value"),
    [
        ("", None, "0001-01-01T00:00:00Z"),
        ('"created":null', None, "0001-01-01T00:00:00Z"),
        ('"created":"2019-06-07T08:09:10+00:00"', "2019-06-07T08:09:10Z", "2019-06-07T08:09:10Z"),
        ('"created":"2019-06-07T08:09:10.5+02:00"', *["2019-06-07T08:09:10.5+02:00"] * 2),
        ('"created":"1969-07-20T20:17:40Z"', *["1969-07-20T20:17:40Z"] * 2),
        ('"created":"2250-01-01T00:00:00Z"', *["2250-01-01T00:00:00Z"] * 2),
        # A later null: a time.Time keeps its value, a *time.Time (Docker 25+) becomes nil.
        ('"created":"2019-06-07T08:09:10Z","created":null', None, "2019-06-07T08:09:10Z"),
    ],
)
def test_created(body: str, created: Optional[str], created_value: str) -> None:
    image = Image.from_bytes(config(body))
    assert (image.created.format() if image.created else None) == created
    assert image.created_value.format() == created_value
    written = v1_json(image)
    assert written.startswith('{"created":"' + created_value + '"')


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b"", 0),
        (b"xyz", 1),
        (b"nil", 2),
        (b'{"rootfs":', 10),
        (b'{"a" 1}', 6),
        (b"{} {}", 4),
        (b'{"a":"\x01"}', 7),
    ],
)
def test_not_json_names_the_byte_offset(raw: bytes, offset: int) -> None:
    with pytest.raises(InvalidImageConfig) as caught:
        Image.from_bytes(raw)
    assert caught.value.offset == offset
    assert f"offset {offset}" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('"Size":1.5', "Size"),
        ('"Size":1e3', "Size"),
        ('"Size":"3"', "Size"),
        ('"Size":9223372036854775808', "Size"),
        ('"config":{"StopTimeout":1.0}', "config.StopTimeout"),
        ('"config":{"Healthcheck":{"Interval":1e9}}', "config.Healthcheck.Interval"),
        ('"config":{"Healthcheck":{"Retries":"3"}}', "config.Healthcheck.Retries"),
        ('"container_config":{"Tty":1}', "container_config.Tty"),
        ('"config":{"Env":["a",1]}', "config.Env[1]"),
        ('"config":{"Cmd":5}', "config.Cmd"),
        ('"config":{"Volumes":{"/a":1}}', 'config.Volumes["/a"]'),
        ('"config":[]', "config"),
        ('"os":1', "os"),
        ('"parent":5', "parent"),
        ('"created":"yesterday"', "created"),
        ('"created":1560000000', "created"),
        ('"created":"2019\\u002d06-07T08:09:10Z"', "created"),
        ('"history":[{"created":"2019-02-29T00:00:00Z"}]', "history[0].created"),
    ],
)
def test_wrong_types_name_the_field(body: str, field: str) -> None:
    with pytest.raises(InvalidImageConfig) as caught:
        Image.from_bytes(config(body))
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize("raw", [b'{"os":"linux"}', b'{"rootfs":null}', b"null", b"{}"])
def test_missing_rootfs(raw: bytes) -> None:
    with pytest.raises(InvalidImageConfig, match="invalid image JSON, no RootFS key") as caught:
        Image.from_bytes(raw)
    assert caught.value.field == "rootfs"


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"1"])
def test_not_an_object(raw: bytes) -> None:
    with pytest.raises(InvalidImageConfig):
        Image.from_bytes(raw)


def test_diff_ids_must_be_digests() -> None:
    raw = b'{"rootfs":{"type":"layers","diff_ids":["' + DIFF.encode() + b'","sha256:xyz"]}}'
    with pytest.raises(InvalidImageConfig) as caught:
        Image.from_bytes(raw)
    assert caught.value.field == "rootfs.diff_ids[1]"


def test_empty_rootfs_has_no_layers() -> None:
    image = Image.from_bytes(b'{"rootfs":{}}')
    assert image.diff_ids == () and image.rootfs_type == ""


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_an_image_or_invalid_image_config(raw: bytes) -> None:
    try:
        image = Image.from_bytes(raw)
    except InvalidImageConfig as error:
        assert str(error).startswith("invalid image")
    else:
        assert image.raw == raw


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_CONFIG_KEYS = st.sampled_from(
    ["created", "config", "container_config", "Size", "history", "os", "rootfs", "os.features",
     *CONFIG_KEYS]
)  # fmt: skip


@given(st.dictionaries(_CONFIG_KEYS, _JSON_VALUES, max_size=6))
def test_config_shaped_input_gives_an_image_or_invalid_image_config(fields: dict[str, Any]) -> None:
    body = {"rootfs": {"type": "layers", "diff_ids": [DIFF]}, **fields}
    if "config" in body and isinstance(body["config"], dict):
        body["config"] = {**fields, **body["config"]}
    raw = json.dumps(body).encode()
    try:
        image = Image.from_bytes(raw)
    except InvalidImageConfig as error:
        assert error.field is not None
    else:
        assert image.id == Digest("sha256", hashlib.sha256(raw).hexdigest())
