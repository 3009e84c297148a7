"""Tests for tarexport.digest: go-digest validation, hashing, and Docker's chain IDs.

Expected messages are go-digest's (``Digest.Validate``): a string without ``:`` (or with an
empty side) is a format error; an algorithm Docker does not register is "unsupported" if the
whole string still fits go-digest's generic grammar and a format error otherwise; a registered
algorithm checks the length of the hex first, then that it is lowercase hex. Hash values come
from :mod:`hashlib`; chain IDs are checked against real ``docker save`` archives.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Dict, List, Optional

import pytest
from helpers import GoldenCase, golden_cases, golden_params
from hypothesis import given
from hypothesis import strategies as st

from tarexport.digest import Digest, Digester, chain_id, chain_ids
from tarexport.errors import InvalidDigest, TarexportError

HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
HEX64 = "0123456789abcdef" * 4

FORMAT = "invalid checksum digest format"
LENGTH = "invalid checksum digest length"
UNSUPPORTED = "unsupported digest algorithm"


# -- parsing and validation -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(HEX_LENGTHS))
def test_parse_accepts_each_registered_algorithm(algorithm: str) -> None:
    hex_ = ("0123456789abcdef" * 8)[: HEX_LENGTHS[algorithm]]
    digest = Digest.parse(f"{algorithm}:{hex_}")
    assert (digest.algorithm, digest.hex, digest.encoded) == (algorithm, hex_, hex_)
    assert str(digest) == f"{algorithm}:{hex_}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # no separator, or an empty side
        ("sha256", FORMAT),
        (HEX64, FORMAT),
        (":" + HEX64, FORMAT),
        ("sha256:", FORMAT),
        ("", FORMAT),
        # registered algorithm: the length is checked before the characters
        ("sha256:abc", LENGTH),
        ("sha256:" + HEX64[:-1], LENGTH),
        ("sha256:" + HEX64 + "0", LENGTH),
        ("sha256:" + "g" * 63, LENGTH),
        ("sha384:" + HEX64, LENGTH),
        ("sha512:" + HEX64 * 2 + "0", LENGTH),
        ("sha256:" + HEX64.upper(), FORMAT),
        ("sha256:" + HEX64[:-1] + "g", FORMAT),
        ("sha256:" + HEX64[:-1] + "=", FORMAT),
        ("sha256:" + HEX64[:-1] + ":", FORMAT),
        # unregistered algorithm: go-digest's generic grammar decides between the two messages
        ("md5:0123456789abcdef0123456789abcdef", UNSUPPORTED),
        ("sha1:abc", UNSUPPORTED),
        ("foo+bar.baz_q-x:A-Za_z09=", UNSUPPORTED),
        ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", UNSUPPORTED),
        ("SHA256:" + HEX64, FORMAT),
        ("Sha256:" + HEX64, FORMAT),
        ("sha-:abc", FORMAT),
        ("-sha:abc", FORMAT),
        ("md5:abc!", FORMAT),
        ("md5:a b", FORMAT),
        ("md5:abc\n", FORMAT),
        ("sha 256:" + HEX64, FORMAT),
    ],
)
def test_parse_errors_carry_go_digest_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidDigest) as caught:
        Digest.parse(text)
    assert str(caught.value) == message
    assert caught.value.message == message
    assert caught.value.input == text


def test_invalid_digest_is_a_value_error_and_a_tarexport_error() -> None:
    with pytest.raises(ValueError):
        Digest.parse("sha256:abc")
    with pytest.raises(TarexportError):
        Digest.parse("sha256:abc")


@pytest.mark.parametrize("value", [None, 1, b"sha256:" + HEX64.encode()])
def test_parse_rejects_non_str_naming_the_type(value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        Digest.parse(value)  # type: ignore[arg-type]


def test_constructor_validates_like_parse() -> None:
    assert Digest("sha256", HEX64) == Digest.parse("sha256:" + HEX64)
    with pytest.raises(InvalidDigest, match=LENGTH):
        Digest("sha256", "abc")
    with pytest.raises(InvalidDigest, match=FORMAT):
        Digest("sha256", HEX64.upper())
    with pytest.raises(InvalidDigest, match=UNSUPPORTED):
        Digest("md5", "0" * 32)


def test_coerce() -> None:
    digest = Digest.parse("sha256:" + HEX64)
    assert Digest.coerce(digest) is digest
    assert Digest.coerce(HEX64) == digest
    assert Digest.coerce("sha256:" + HEX64) == digest
    with pytest.raises(InvalidDigest, match=LENGTH):
        Digest.coerce(HEX64[:12])


def test_value_semantics() -> None:
    a = Digest.parse("sha256:" + HEX64)
    b = Digest.parse("sha256:" + HEX64)
    c = Digest.parse("sha256:" + "f" * 64)
    assert a == b and hash(a) == hash(b) and a != c
    assert sorted([c, a]) == [a, c]
    assert a.short() == HEX64[:12] and a.short(6) == HEX64[:6]


# -- hashing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(HEX_LENGTHS))
@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 100])
def test_from_bytes_matches_hashlib(algorithm: str, data: bytes) -> None:
    digest = Digest.from_bytes(data, algorithm)
    assert str(digest) == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def test_from_bytes_defaults_to_sha256() -> None:
    assert str(Digest.from_bytes(b"")) == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256"])
def test_unregistered_algorithm_cannot_hash(algorithm: str) -> None:
    with pytest.raises(InvalidDigest, match=UNSUPPORTED):
        Digest.from_bytes(b"x", algorithm)
    with pytest.raises(InvalidDigest, match=UNSUPPORTED):
        Digester(algorithm)


@pytest.mark.parametrize("algorithm", sorted(HEX_LENGTHS))
def test_digester_is_incremental_and_counts_bytes(algorithm: str) -> None:
    data = bytes(range(256)) * 37
    digester = Digester(algorithm)
    for start in range(0, len(data), 1000):
        chunk = data[start : start + 1000]
        digester.update(memoryview(chunk) if start % 2000 else bytearray(chunk))
    assert digester.size == len(data)
    assert digester.digest() == Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


# -- chain IDs ----------------------------------------------------------------------------------


def _d(n: int) -> Digest:
    return Digest.from_bytes(str(n).encode())


def test_chain_ids_of_nothing() -> None:
    assert chain_ids([]) == []
    with pytest.raises(ValueError):
        chain_id([])


def test_chain_ids_by_hand() -> None:
    d0, d1, d2 = _d(0), _d(1), _d(2)
    # ChainID(d0) = d0; ChainID(d0..dn) = sha256(ChainID(d0..dn-1) + " " + dn), full strings.
    c1 = "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {d2}".encode()).hexdigest()
    assert [str(c) for c in chain_ids([d0, d1, d2])] == [str(d0), c1, c2]
    assert str(chain_id([d0, d1, d2])) == c2
    assert chain_id([d0]) == d0
    assert chain_ids(iter([d0, d1])) == chain_ids([d0, d1])


def test_chain_id_depends_on_order_and_repeats() -> None:
    d0, d1 = _d(0), _d(1)
    assert chain_id([d0, d1]) != chain_id([d1, d0])
    assert chain_id([d0, d0]) != d0


_GOLDENS_WITH_TAR = [c for c in golden_cases() if c.save_tar is not None]


# Error cases (an image without layers) have no diff_ids.
_GOLDENS_WITH_LAYERS = [
    c for c in golden_cases() if any(image.get("diff_ids") for image in c.case.get("images", []))
]


@pytest.mark.parametrize("case", golden_params(_GOLDENS_WITH_LAYERS))
def test_first_chain_id_is_the_first_diff_id(case: GoldenCase) -> None:
    for image in case.case["images"]:
        diff_ids = [Digest.parse(d) for d in image["diff_ids"]]
        ids = chain_ids(diff_ids)
        assert len(ids) == len(diff_ids)
        assert ids[0] == diff_ids[0]
        assert chain_id(diff_ids) == ids[-1]


def _top_level_raw(text: str) -> Dict[str, str]:
    """The top-level members of a JSON object, each value as its exact source text."""
    decoder = json.JSONDecoder()
    members: Dict[str, str] = {}
    assert text[0] == "{"
    pos = 1
    while text[pos] != "}":
        key, pos = decoder.raw_decode(text, pos)
        assert text[pos] == ":"
        start = pos + 1
        _, pos = decoder.raw_decode(text, start)
        members[key] = text[start:pos]
        if text[pos] == ",":
            pos += 1
    return members


def _v1_id(layer_json: str, chain: Digest, parent: Optional[str], top: bool) -> str:
    """Docker's v1 ID (spec §5.2) recomputed from a saved layer ``json`` file.

    The saved file is the V1Image that went into the ID plus ``id``, ``parent`` (plain hex) and,
    below the top layer, ``os``, all added after the ID was computed.
    """
    members = _top_level_raw(layer_json)
    for key in ("id", "parent") if top else ("id", "parent", "os"):
        members.pop(key, None)
    members["layer_id"] = json.dumps(str(chain))
    if parent is not None:
        members["parent"] = json.dumps("sha256:" + parent)
    body = ",".join(json.dumps(key) + ":" + members[key] for key in sorted(members))
    return hashlib.sha256(("{" + body + "}").encode()).hexdigest()


@pytest.mark.parametrize("case", golden_params(_GOLDENS_WITH_TAR))
def test_chain_ids_reproduce_the_v1_layer_ids_of_real_archives(case: GoldenCase) -> None:
    assert case.save_tar is not None
    with tarfile.open(case.save_tar) as archive:
        manifest = json.load(_member(archive, "manifest.json"))
        for entry in manifest:
            config = json.load(_member(archive, entry["Config"]))
            diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
            layer_dirs = [path.split("/")[0] for path in entry["Layers"]]
            parent: Optional[str] = None
            for i, (chain, layer_dir) in enumerate(zip(chain_ids(diff_ids), layer_dirs)):
                layer_json = _member(archive, f"{layer_dir}/json").read().decode("utf-8")
                top = i == len(diff_ids) - 1
                assert _v1_id(layer_json, chain, parent, top) == layer_dir, (
                    f"{entry['Config']} layer {i}: chain ID {chain} does not give v1 ID {layer_dir}"
                )
                parent = layer_dir


@pytest.mark.parametrize("case", golden_params(_GOLDENS_WITH_TAR))
def test_digester_reproduces_the_diff_ids_of_real_layers(case: GoldenCase) -> None:
    assert case.save_tar is not None
    with tarfile.open(case.save_tar) as archive:
        manifest = json.load(_member(archive, "manifest.json"))
        for entry in manifest:
            config = json.load(_member(archive, entry["Config"]))
            for path, diff_id in zip(entry["Layers"], config["rootfs"]["diff_ids"]):
                digester = Digester()
                body = _member(archive, path)
                while chunk := body.read(65536):
                    digester.update(chunk)
                assert str(digester.digest()) == diff_id, path
                assert digester.size == archive.getmember(_resolve(archive, path)).size


def _resolve(archive: tarfile.TarFile, path: str) -> str:
    """The regular member a (possibly symlinked) layer path leads to."""
    info = archive.getmember(path)
    if info.issym():
        parts: List[str] = path.split("/")[:-1]
        for part in info.linkname.split("/"):
            if part == "..":
                parts.pop()
            else:
                parts.append(part)
        return "/".join(parts)
    return path


def _member(archive: tarfile.TarFile, path: str) -> io.BufferedReader:
    body = archive.extractfile(_resolve(archive, path))
    assert body is not None, path
    return body  # type: ignore[return-value]


# -- properties ---------------------------------------------------------------------------------

_algorithms = st.sampled_from(sorted(HEX_LENGTHS))


@st.composite
def _digests(draw: st.DrawFn) -> Digest:
    algorithm = draw(_algorithms)
    hex_ = draw(
        st.text(
            alphabet="0123456789abcdef",
            min_size=HEX_LENGTHS[algorithm],
            max_size=HEX_LENGTHS[algorithm],
        )
    )
    return Digest(algorithm, hex_)


@given(_digests())
def test_str_round_trips(digest: Digest) -> None:
    assert Digest.parse(str(digest)) == digest
    assert Digest.coerce(str(digest)) == digest


@given(st.one_of(st.text(), st.text(alphabet="sha256:0123456789abcdefABCDEFg+._-=", max_size=140)))
def test_any_text_parses_or_raises_invalid_digest(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except InvalidDigest as err:
        assert str(err) in (FORMAT, LENGTH, UNSUPPORTED)
    else:
        assert str(digest) == text
