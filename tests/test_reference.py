"""Tests for tarexport.reference: Docker's reference grammar, normalisation and familiar forms.

The conformance data (``references.jsonl``) was labelled by a real Docker 20.10 daemon, whose
parser is docker/distribution 2.x: every line must agree with ``legacy=True``. The current
grammar (the default) must agree too, except on the lines listed in ``CURRENT_DIFFERENCES``.
Other expected values follow distribution/reference's documented behaviour.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any, ContextManager, Dict, List, Optional, Tuple

import attrs
import pytest
from helpers import REFERENCES_JSONL
from hypothesis import given, reject
from hypothesis import strategies as st

from tarexport.digest import Digest
from tarexport.errors import InvalidReference, TarexportError
from tarexport.reference import (
    DigestReference,
    Named,
    Reference,
    familiar_name,
    familiar_string,
    is_name_only,
    parse,
    parse_any_reference,
    parse_docker_ref,
    parse_named,
    parse_normalized_named,
    split_docker_domain,
    split_domain,
    tag_name_only,
    trim_named,
    with_digest,
    with_name,
    with_tag,
)

HEX64 = "0123456789abcdef" * 4
SHA = "sha256:" + HEX64
GENERATIONS = [pytest.param(True, id="legacy"), pytest.param(False, id="current")]

INVALID_FORMAT = "invalid reference format"
TOO_LONG = "repository name must not be more than 255 characters"


def raises(message: str) -> ContextManager[pytest.ExceptionInfo[InvalidReference]]:
    """Expect InvalidReference whose str() is exactly ``message``."""
    return pytest.raises(InvalidReference, match=f"^{re.escape(message)}$")


# -- conformance with the Docker 20.10 daemon -------------------------------------------------
#
# Where the messages come from. Each probe's text is the parser's error, sometimes decorated by
# the daemon. `save` (GET /images/get) returns the parser's text unchanged; `inspect` prefixes it
# with "no such image: <input>: " (checked below). "invalid reference format: repository name
# must be lowercase" is not such a decoration: it is one literal message of the 2.x normaliser,
# raised before the string reaches the grammar, so it is exactly what our str() must be. The
# grammar's own uppercase message, "repository name must be lowercase", only appears where the
# normaliser's check cannot see the uppercase letter (see test_grammar_uppercase_message).

_LINES: List[Dict[str, Any]] = [
    json.loads(line) for line in REFERENCES_JSONL.read_text(encoding="utf-8").splitlines() if line
]


def _valid_name(familiar: str, normalized_full: str) -> Dict[str, Any]:
    return {
        "valid": True,
        "error": None,
        "valid_any": True,
        "error_any": None,
        "kind": "name",
        "familiar": familiar,
        "normalized_full": normalized_full,
    }


LONG_NAME = "cc-" + "n" * 235  # 238 characters: 256 with "docker.io/library/", 246 as a path

# Lines where the current grammar parts from Docker 20.10, why, and what it gives instead.
CURRENT_DIFFERENCES: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "[::1]:5000/cc-x": (
        "IPv6 literal hosts exist only in the current grammar",
        _valid_name("[::1]:5000/cc-x:latest", "[::1]:5000/cc-x:latest"),
    ),
    LONG_NAME: (
        "the current 255-character limit counts the path only (library/ + 238 = 246)",
        _valid_name(LONG_NAME + ":latest", "docker.io/library/" + LONG_NAME + ":latest"),
    ),
    "LOCALHOST/cc-x": (
        "the current normaliser takes a first component with an uppercase letter as a domain",
        _valid_name("LOCALHOST/cc-x:latest", "LOCALHOST/cc-x:latest"),
    ),
    "CC-APP": (
        "the current lowercase message names the repository",
        {
            "error": "invalid reference format: repository name (library/CC-APP) must be lowercase",
            "error_any": (
                "invalid reference format: repository name (library/CC-APP) must be lowercase"
            ),
        },
    ),
    "cc-App": (
        "the current lowercase message names the repository",
        {
            "error": "invalid reference format: repository name (library/cc-App) must be lowercase",
            "error_any": (
                "invalid reference format: repository name (library/cc-App) must be lowercase"
            ),
        },
    ),
}

# Every field that a parser decides; the probes and tag outcomes are daemon behaviour.
COMPARED_FIELDS = (
    *("valid", "error", "valid_any", "error_any"),
    *("kind", "familiar", "normalized_full"),
)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:24]!r}...({len(text)})"


def _line_params() -> List[Any]:
    params = []
    for line in _LINES:
        for legacy in (True, False):
            generation = "legacy" if legacy else "current"
            params.append(pytest.param(line, legacy, id=f"{generation}-{_short(line['input'])}"))
    return params


def _kind(ref: Reference) -> str:
    if isinstance(ref, DigestReference):
        return "id-digest"
    return {
        (False, False): "name",
        (True, False): "tagged",
        (False, True): "digested",
        (True, True): "tagged+digested",
    }[(ref.tag is not None, ref.digest is not None)]


def _observe(text: str, legacy: bool) -> Dict[str, Any]:
    """What our parser says about ``text``, in the fields of references.jsonl."""
    observed: Dict[str, Any] = {}
    named: Optional[Named] = None
    anyref: Optional[Reference] = None
    try:
        named = parse_normalized_named(text, legacy=legacy)
        observed.update(valid=True, error=None)
    except InvalidReference as err:
        observed.update(valid=False, error=str(err))
    try:
        anyref = parse_any_reference(text, legacy=legacy)
        observed.update(valid_any=True, error_any=None)
    except InvalidReference as err:
        observed.update(valid_any=False, error_any=str(err))
    observed["kind"] = None if anyref is None else _kind(anyref)
    # The daemon showed an image-ID digest as itself, and a name after TagNameOnly.
    shown = anyref if isinstance(anyref, DigestReference) else named
    observed["familiar"] = None if shown is None else familiar_string(tag_name_only(shown))
    observed["normalized_full"] = None if named is None else str(tag_name_only(named))
    observed["any_string"] = None if anyref is None else str(anyref)
    return observed


@pytest.mark.parametrize(("line", "legacy"), _line_params())
def test_agrees_with_docker_20_10(line: Dict[str, Any], legacy: bool) -> None:
    expected = {field: line[field] for field in COMPARED_FIELDS}
    if line["kind"] == "id-digest":
        expected["any_string"] = line["any_string"]
    note = ""
    if not legacy and line["input"] in CURRENT_DIFFERENCES:
        reason, overrides = CURRENT_DIFFERENCES[line["input"]]
        expected.update(overrides)
        note = f" (differs from Docker 20.10: {reason})"
    observed = _observe(line["input"], legacy)
    for field, value in expected.items():
        assert observed[field] == value, (
            f"{_short(line['input'])}: first differing field {field!r}: "
            f"expected {value!r}, got {observed[field]!r}{note}"
        )


def test_current_differences_are_all_in_the_data() -> None:
    inputs = {line["input"] for line in _LINES}
    assert set(CURRENT_DIFFERENCES) <= inputs
    assert len(LONG_NAME) == 238


@pytest.mark.parametrize(
    "line", [pytest.param(ln, id=_short(ln["input"])) for ln in _LINES if not ln["valid_any"]]
)
def test_daemon_messages_are_the_parser_message_plus_decoration(line: Dict[str, Any]) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_any_reference(line["input"], legacy=True)
    message = str(caught.value)
    probes = line["probes"]
    assert probes["save"]["error"] == message
    if probes["inspect"] is not None:
        assert probes["inspect"]["message"] == f"no such image: {line['input']}: {message}"


# -- values ---------------------------------------------------------------------------------


def test_named_value_semantics() -> None:
    digest = Digest.parse(SHA)
    ref = Named("docker.io", "library/app", "1", digest)
    assert ref.name == "docker.io/library/app"
    assert str(ref) == f"docker.io/library/app:1@{SHA}"
    assert ref == Named("docker.io", "library/app", "1", Digest.parse(SHA))
    assert hash(ref) == hash(Named("docker.io", "library/app", "1", Digest.parse(SHA)))
    assert ref != Named("docker.io", "library/app", "1")
    assert {ref, attrs.evolve(ref)} == {ref}
    assert str(Named("", "app")) == "app" and Named("", "app").name == "app"
    assert str(Named("", "app", digest=digest)) == f"app@{SHA}"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ref.tag = "2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("docker.io", "Library/app"), INVALID_FORMAT),
        (("docker.io", ""), INVALID_FORMAT),
        (("docker.io", "app/"), INVALID_FORMAT),
        (("bad_domain", "app"), INVALID_FORMAT),
        (("docker.io/x", "app"), INVALID_FORMAT),
        (("docker.io", "app", ""), "invalid tag format"),
        (("docker.io", "app", ".x"), "invalid tag format"),
        (("docker.io", "app", "x" * 129), "invalid tag format"),
    ],
)
def test_named_refuses_malformed_parts(fields: Tuple[Any, ...], message: str) -> None:
    with raises(message):
        Named(*fields)


def test_named_refuses_wrong_types() -> None:
    with pytest.raises(TypeError, match="str"):
        Named("docker.io", "app", "1", SHA)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        Named(b"docker.io", "app")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DigestReference(SHA)  # type: ignore[arg-type]


def test_digest_reference() -> None:
    ref = DigestReference(Digest.parse(SHA))
    assert str(ref) == SHA and ref.digest == Digest.parse(SHA)
    assert ref == DigestReference(Digest.parse(SHA))
    assert familiar_string(ref) == SHA
    assert tag_name_only(ref) is ref


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", GENERATIONS)
@pytest.mark.parametrize(
    ("text", "domain", "path"),
    [
        ("ubuntu", "", "ubuntu"),
        ("a/b", "a", "b"),
        ("a/b/c", "a", "b/c"),
        ("localhost", "", "localhost"),
        ("localhost/x", "localhost", "x"),
        ("my_reg.com/x", "", "my_reg.com/x"),
        ("my-reg.com:5000/x", "my-reg.com:5000", "x"),
        ("Example.COM/x", "Example.COM", "x"),
        ("1.2.3.4:5000/x", "1.2.3.4:5000", "x"),
        (HEX64, "", HEX64),
    ],
)
def test_parse_splits_without_normalising(legacy: bool, text: str, domain: str, path: str) -> None:
    ref = parse(text, legacy=legacy)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, None, None)
    assert str(ref) == text


@pytest.mark.parametrize("legacy", GENERATIONS)
def test_parse_tag_and_digest(legacy: bool) -> None:
    ref = parse(f"example.com:5000/ns/app:V1.0-rc_1@{SHA}", legacy=legacy)
    assert ref == Named("example.com:5000", "ns/app", "V1.0-rc_1", Digest.parse(SHA))
    assert parse("app:5000", legacy=legacy) == Named("", "app", "5000")


@pytest.mark.parametrize("legacy", GENERATIONS)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "repository name must have at least one component"),
        ("Ubuntu", "repository name must be lowercase"),
        ("docker.io/library/App:1", "repository name must be lowercase"),
        ("ubuntu\n", INVALID_FORMAT),
        ("\nubuntu", INVALID_FORMAT),
        ("x:\u0663", INVALID_FORMAT),  # an Arabic-Indic digit: \w, but not ASCII
        ("x:" + "t" * 129, INVALID_FORMAT),
        ("x@sha256:" + HEX64.upper(), "invalid checksum digest format"),
        ("x@sha256:" + HEX64[:-1], "invalid checksum digest length"),
        ("x@sha256:" + HEX64[:31], INVALID_FORMAT),
        ("x@md5:" + HEX64[:32], "unsupported digest algorithm"),
        ("x@SHA256:" + HEX64, "invalid checksum digest format"),
        ("x@", INVALID_FORMAT),
        ("[fe80::1%eth0]:5000/x", INVALID_FORMAT),
        ("example.com:/x", INVALID_FORMAT),
        ("-a.com/x", INVALID_FORMAT),
    ],
)
def test_parse_errors(legacy: bool, text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse(text, legacy=legacy)
    assert str(caught.value) == message
    assert caught.value.input == text


@pytest.mark.parametrize("legacy", GENERATIONS)
def test_grammar_uppercase_message(legacy: bool) -> None:
    # Go's strings.ToLower maps U+0130 (capital I with dot) to "i" and the Kelvin sign to "k";
    # the lowered text then fits the grammar, so the grammar reports uppercase. The normaliser's
    # own check looks only at the path before any ":", so a tag or domain gets this far.
    for text in ("x:\u0130", "x:\u212a", "example\u212a.com/x", "\u0130.com/x"):
        with raises("repository name must be lowercase"):
            parse_normalized_named(text, legacy=legacy)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[::1]:5000/x", Named("[::1]:5000", "x")),
        ("[::1]/x", Named("[::1]", "x")),
        ("[2001:DB8::1]:80/a/b:t", Named("[2001:DB8::1]:80", "a/b", "t")),
    ],
)
def test_ipv6_hosts_only_in_the_current_grammar(text: str, expected: Named) -> None:
    assert parse(text) == expected
    assert parse_normalized_named(text) == expected
    for parser in (parse, parse_normalized_named):
        with raises(INVALID_FORMAT):
            parser(text, legacy=True)


def test_length_limit_generations() -> None:
    # 2.x: the whole name, domain included; current: the path only.
    path255 = "a" * 255
    assert parse(path255, legacy=True).path == path255
    assert parse("example.com/" + path255).path == path255
    with raises(TOO_LONG):
        parse("example.com/" + path255, legacy=True)
    with raises(TOO_LONG):
        parse("a" * 256)
    # The current grammar puts no limit on the domain.
    long_domain = ".".join(["d"] * 500)
    assert parse_normalized_named(long_domain + "/x").domain == long_domain
    # The limit is checked before the digest.
    with raises(TOO_LONG):
        parse("a" * 256 + "@sha256:" + HEX64[:-1])
    with raises(TOO_LONG):
        parse_normalized_named("a" * 238 + "@md5:" + HEX64[:32], legacy=True)


@pytest.mark.parametrize("legacy", GENERATIONS)
@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("ubuntu", "docker.io/library/ubuntu"),
        ("ubuntu:20.04", "docker.io/library/ubuntu:20.04"),
        ("library/ubuntu", "docker.io/library/ubuntu"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu"),
        ("index.docker.io/ubuntu", "docker.io/library/ubuntu"),
        ("index.docker.io/a/b", "docker.io/a/b"),
        ("a/b/c", "docker.io/a/b/c"),
        ("localhost/x", "localhost/x"),
        ("localhost:5000/x", "localhost:5000/x"),
        ("example.com/x", "example.com/x"),
        ("DOCKER.IO/x", "DOCKER.IO/x"),
        ("Index.docker.io/x", "Index.docker.io/x"),
        ("sha256:abc", "docker.io/library/sha256:abc"),
        (f"x@{SHA}", f"docker.io/library/x@{SHA}"),
        (f"docker.io/library/{HEX64}", f"docker.io/library/{HEX64}"),
    ],
)
def test_parse_normalized_named(legacy: bool, text: str, full: str) -> None:
    ref = parse_normalized_named(text, legacy=legacy)
    assert str(ref) == full
    assert parse_named(full, legacy=legacy) == ref


@pytest.mark.parametrize("legacy", GENERATIONS)
def test_hex_identifiers_are_not_names(legacy: bool) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_normalized_named(HEX64, legacy=legacy)
    assert str(caught.value) == (
        f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"
    )
    assert parse_any_reference(HEX64, legacy=legacy) == DigestReference(Digest.parse(SHA))
    assert parse_any_reference(SHA, legacy=legacy) == DigestReference(Digest.parse(SHA))
    assert parse_any_reference("sha256:" + HEX64[:12], legacy=legacy) == Named(
        "docker.io", "library/sha256", HEX64[:12]
    )
    assert parse_any_reference(HEX64[:63], legacy=legacy) == Named(
        "docker.io", "library/" + HEX64[:63]
    )
    sha512 = "sha512:" + HEX64 * 2
    assert parse_any_reference(sha512, legacy=legacy) == DigestReference(Digest.parse(sha512))
    # Uppercase hex is not an identifier, and not a name either.
    with pytest.raises(InvalidReference, match="must be lowercase"):
        parse_any_reference(HEX64.upper(), legacy=legacy)


def test_lowercase_messages_per_generation() -> None:
    legacy = "invalid reference format: repository name must be lowercase"
    for text, remote in [("Foo", "library/Foo"), ("a/B:x", "a/B"), ("localhost/X", "X")]:
        with raises(legacy):
            parse_normalized_named(text, legacy=True)
        with pytest.raises(InvalidReference) as caught:
            parse_normalized_named(text)
        assert str(caught.value) == (
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )


@pytest.mark.parametrize("legacy", GENERATIONS)
def test_parse_named_requires_canonical_form(legacy: bool) -> None:
    assert parse_named("docker.io/library/x:1", legacy=legacy) == Named(
        "docker.io", "library/x", "1"
    )
    for text in ("x", "x:1", "docker.io/x", "library/x", "index.docker.io/library/x"):
        with raises("repository name must be canonical"):
            parse_named(text, legacy=legacy)
    with raises("invalid reference format"):
        parse_named("docker.io/library/x:", legacy=legacy)


@pytest.mark.parametrize("legacy", GENERATIONS)
def test_parse_docker_ref(legacy: bool) -> None:
    digest = Digest.parse(SHA)
    assert parse_docker_ref("x", legacy=legacy) == Named("docker.io", "library/x", "latest")
    assert parse_docker_ref("x:1", legacy=legacy) == Named("docker.io", "library/x", "1")
    assert parse_docker_ref(f"x@{SHA}", legacy=legacy) == Named(
        "docker.io", "library/x", digest=digest
    )
    assert parse_docker_ref(f"x:1@{SHA}", legacy=legacy) == Named(
        "docker.io", "library/x", digest=digest
    )
    with pytest.raises(InvalidReference, match="must be lowercase"):
        parse_docker_ref("X", legacy=legacy)


@pytest.mark.parametrize(
    "parser", [parse, parse_named, parse_normalized_named, parse_any_reference, parse_docker_ref]
)
@pytest.mark.parametrize("value", [None, 1, b"ubuntu", ["ubuntu"]])
def test_non_str_input_is_a_type_error(parser: Any, value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        parser(value)


def test_invalid_reference_is_a_value_error_and_a_tarexport_error() -> None:
    with pytest.raises(ValueError):
        parse_normalized_named("X")
    with pytest.raises(TarexportError):
        parse_normalized_named("X")


# -- splitting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "legacy_split", "current_split"),
    [
        ("x", ("docker.io", "library/x"), ("docker.io", "library/x")),
        ("x:1", ("docker.io", "library/x:1"), ("docker.io", "library/x:1")),
        ("a/b", ("docker.io", "a/b"), ("docker.io", "a/b")),
        ("localhost/a", ("localhost", "a"), ("localhost", "a")),
        ("LOCALHOST/a", ("docker.io", "LOCALHOST/a"), ("LOCALHOST", "a")),
        ("Registry/a", ("docker.io", "Registry/a"), ("Registry", "a")),
        ("index.docker.io/a", ("docker.io", "library/a"), ("docker.io", "library/a")),
        ("docker.io/a/b", ("docker.io", "a/b"), ("docker.io", "a/b")),
        ("reg:5000/a", ("reg:5000", "a"), ("reg:5000", "a")),
        ("[::1]/a", ("[::1]", "a"), ("[::1]", "a")),
        ("x@sha256:a", ("docker.io", "library/x@sha256:a"), ("docker.io", "library/x@sha256:a")),
    ],
)
def test_split_docker_domain(
    name: str, legacy_split: Tuple[str, str], current_split: Tuple[str, str]
) -> None:
    assert split_docker_domain(name, legacy=True) == legacy_split
    assert split_docker_domain(name) == current_split


def test_split_domain() -> None:
    assert split_domain("docker.io/library/x") == ("docker.io", "library/x")
    assert split_domain("a/b") == ("a", "b")
    assert split_domain("x") == ("", "x")
    assert split_domain("my_reg.com/x") == ("", "my_reg.com/x")
    assert split_domain("[::1]:5000/x") == ("[::1]:5000", "x")
    assert split_domain("[::1]:5000/x", legacy=True) == ("", "[::1]:5000/x")
    assert split_domain("not a name") == ("", "not a name")


# -- building and transforming ----------------------------------------------------------------


def test_with_name() -> None:
    assert with_name("docker.io/library/x") == Named("docker.io", "library/x")
    assert with_name("x") == Named("", "x")
    with raises(INVALID_FORMAT):
        with_name("x:1")
    with raises(INVALID_FORMAT):
        with_name("X")
    long_path = "a" * 250 + "/b/c"
    assert with_name("example.com/" + long_path).path == long_path
    with raises(TOO_LONG):
        with_name("example.com/" + long_path, legacy=True)
    # 2.x checks the length before the format; the current module the other way round.
    with raises(TOO_LONG):
        with_name("X" * 256, legacy=True)
    with raises(INVALID_FORMAT):
        with_name("X" * 256)


def test_with_tag_and_with_digest() -> None:
    digest = Digest.parse(SHA)
    repo = Named("docker.io", "library/x")
    tagged = with_tag(repo, "1")
    assert tagged == Named("docker.io", "library/x", "1")
    both = with_digest(tagged, digest)
    assert both == Named("docker.io", "library/x", "1", digest)
    assert with_tag(both, "2") == Named("docker.io", "library/x", "2", digest)
    assert with_digest(repo, SHA) == Named("docker.io", "library/x", digest=digest)
    for tag in ("", ".x", "-x", "x" * 129, "a:b", "\u00e9"):
        with raises("invalid tag format"):
            with_tag(repo, tag)
    assert with_tag(repo, "_" + "x" * 127).tag == "_" + "x" * 127
    with raises("invalid digest format"):
        with_digest(repo, "sha256:abc")
    with raises("unsupported digest algorithm"):
        with_digest(repo, "md5:" + HEX64[:32])
    with raises("invalid checksum digest format"):
        with_digest(repo, "sha256:" + HEX64.upper())
    with pytest.raises(TypeError):
        with_tag(DigestReference(digest), "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        with_digest(repo, 1)  # type: ignore[arg-type]


def test_trim_and_name_only() -> None:
    digest = Digest.parse(SHA)
    full = Named("example.com", "x", "1", digest)
    assert trim_named(full) == Named("example.com", "x")
    assert is_name_only(Named("", "x"))
    assert not is_name_only(Named("", "x", "1"))
    assert not is_name_only(Named("", "x", digest=digest))
    assert tag_name_only(Named("", "x")) == Named("", "x", "latest")
    assert tag_name_only(Named("", "x", digest=digest)) == Named("", "x", digest=digest)
    assert tag_name_only(Named("", "x", "1")) == Named("", "x", "1")


# -- familiar forms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "familiar"),
    [
        ("docker.io/library/x", "x"),
        ("docker.io/library/x:1", "x:1"),
        (f"docker.io/library/x:1@{SHA}", f"x:1@{SHA}"),
        ("docker.io/a/b", "a/b"),
        # only a two-component library/ path is an official image
        ("docker.io/library/a/b", "library/a/b"),
        ("docker.io/library", "library"),
        ("localhost/x", "localhost/x"),
        ("example.com/library/x", "example.com/library/x"),
        ("DOCKER.IO/library/x", "DOCKER.IO/library/x"),
    ],
)
@pytest.mark.parametrize("legacy", GENERATIONS)
def test_familiar_forms(legacy: bool, full: str, familiar: str) -> None:
    ref = parse(full, legacy=legacy)
    assert familiar_string(ref) == familiar
    assert familiar_name(ref) == familiar.split("@")[0].rsplit(":", 1)[0]


def test_familiar_name_of_a_ported_registry() -> None:
    assert familiar_name(parse("localhost:5000/x:1")) == "localhost:5000/x"


# -- properties -----------------------------------------------------------------------------

_LOWER_DIGITS = string.ascii_lowercase + string.digits
_LETTERS_DIGITS = string.ascii_letters + string.digits
_WORD = _LETTERS_DIGITS + "_"

_alphanumerics = st.text(alphabet=_LOWER_DIGITS, min_size=1, max_size=6)
_separators = st.one_of(st.sampled_from([".", "_", "__"]), st.integers(1, 3).map(lambda n: "-" * n))


@st.composite
def _path_components(draw: st.DrawFn) -> str:
    parts = [draw(_alphanumerics)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(_separators), draw(_alphanumerics)]
    return "".join(parts)


@st.composite
def _domain_components(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from(_LETTERS_DIGITS))
    if draw(st.booleans()):
        return first
    middle = draw(st.text(alphabet=_LETTERS_DIGITS + "-", max_size=6))
    return first + middle + draw(st.sampled_from(_LETTERS_DIGITS))


_paths = st.lists(_path_components(), min_size=1, max_size=4).map("/".join)
_domain_names = st.one_of(
    st.just("localhost"),
    st.lists(_domain_components(), min_size=1, max_size=3).map(".".join),
)
_ipv6_hosts = st.text(alphabet="0123456789abcdefABCDEF:", min_size=1, max_size=16).map(
    lambda text: f"[{text}]"
)
_ports = st.text(alphabet=string.digits, min_size=1, max_size=5).map(lambda text: ":" + text)
_tags = st.tuples(st.sampled_from(_WORD), st.text(alphabet=_WORD + ".-", max_size=127)).map("".join)


@st.composite
def _digests(draw: st.DrawFn) -> Digest:
    algorithm, size = draw(st.sampled_from([("sha256", 64), ("sha384", 96), ("sha512", 128)]))
    hex_ = draw(st.text(alphabet="0123456789abcdef", min_size=size, max_size=size))
    return Digest(algorithm, hex_)


@st.composite
def _reference_strings(draw: st.DrawFn, legacy: bool) -> str:
    """A string that the grammar of the chosen generation accepts, built from its pieces."""
    host = draw(_domain_names if legacy else st.one_of(_domain_names, _ipv6_hosts))
    domain = draw(st.none() | st.just(host) | _ports.map(lambda port: host + port))
    text = (domain + "/" if domain else "") + draw(_paths)
    tag = draw(st.none() | _tags)
    digest = draw(st.none() | _digests())
    if tag is not None:
        text += ":" + tag
    if digest is not None:
        text += "@" + str(digest)
    return text


def _familiar_is_ambiguous(ref: Named) -> bool:
    """Whether Docker's familiar form of ``ref`` re-parses as something else.

    That happens when dropping ``docker.io/`` leaves a first component that looks like a
    domain (``docker.io/my.org/app`` → ``my.org/app``), or leaves a bare 64-hex name.
    """
    if ref.domain != "docker.io":
        return False
    first = ref.path.split("/")[0]
    familiar = familiar_string(ref)
    looks_like_domain = "/" in familiar and ("." in first or first == "localhost")
    return looks_like_domain or re.fullmatch("[a-f0-9]{64}", familiar) is not None


@pytest.mark.parametrize("legacy", GENERATIONS)
@given(data=st.data())
def test_parse_round_trips(legacy: bool, data: st.DataObject) -> None:
    text = data.draw(_reference_strings(legacy))
    ref = parse(text, legacy=legacy)
    assert str(ref) == text
    assert parse(str(ref), legacy=legacy) == ref


@pytest.mark.parametrize("legacy", GENERATIONS)
@given(data=st.data())
def test_normalised_and_familiar_forms_are_stable(legacy: bool, data: st.DataObject) -> None:
    text = data.draw(_reference_strings(legacy))
    try:
        ref = parse_normalized_named(text, legacy=legacy)
    except InvalidReference:
        reject()  # e.g. an uppercase first component, which 2.x takes for a path
    for form in (ref, tag_name_only(ref), parse_docker_ref(text, legacy=legacy)):
        full = str(form)
        assert parse_normalized_named(full, legacy=legacy) == form
        assert parse_named(full, legacy=legacy) == form
        assert parse(full, legacy=legacy) == form
        if not _familiar_is_ambiguous(form):
            assert parse_normalized_named(familiar_string(form), legacy=legacy) == form
            assert familiar_name(form) == familiar_string(trim_named(form))


def test_ambiguous_familiar_forms_are_docker_behaviour() -> None:
    # The cases the predicate above excludes, checked as examples.
    for full, familiar, reparsed in [
        ("docker.io/my.org/app", "my.org/app", "my.org/app"),
        ("docker.io/localhost/app", "localhost/app", "localhost/app"),
    ]:
        ref = parse_normalized_named(full)
        assert familiar_string(ref) == familiar
        assert str(parse_normalized_named(familiar)) == reparsed
    with pytest.raises(InvalidReference, match="64-byte hexadecimal"):
        parse_normalized_named(familiar_string(parse_normalized_named(f"library/{HEX64}")))


@given(data=st.data())
def test_legacy_acceptance_implies_the_same_current_result(data: st.DataObject) -> None:
    text = data.draw(st.one_of(_reference_strings(True), _reference_strings(False)))
    for parser in (parse, parse_normalized_named, parse_any_reference):
        try:
            legacy_result = parser(text, legacy=True)
        except InvalidReference:
            continue
        assert parser(text) == legacy_result


_ALL_PARSERS = (parse, parse_normalized_named, parse_named, parse_any_reference, parse_docker_ref)
_KNOWN_MESSAGES = {
    INVALID_FORMAT,
    TOO_LONG,
    "repository name must be lowercase",
    "repository name must have at least one component",
    "repository name must be canonical",
    "invalid reference format: repository name must be lowercase",
    "invalid checksum digest format",
    "invalid checksum digest length",
    "unsupported digest algorithm",
}


def _check_total(text: str) -> None:
    """Every parser returns a reference or raises InvalidReference with a known message."""
    for legacy in (True, False):
        for parser in _ALL_PARSERS:
            try:
                result = parser(text, legacy=legacy)
            except InvalidReference as err:
                message = str(err)
                assert err.input == text
                assert (
                    message in _KNOWN_MESSAGES
                    or message.startswith("invalid repository name (")
                    or (
                        message.startswith("invalid reference format: repository name (")
                        and message.endswith(") must be lowercase")
                    )
                ), message
            else:
                assert isinstance(result, (Named, DigestReference))
        split_domain(text, legacy=legacy)
        split_docker_domain(text, legacy=legacy)
        try:
            with_name(text, legacy=legacy)
        except InvalidReference as err:
            assert str(err) in (INVALID_FORMAT, TOO_LONG)


_GRAMMAR_CHARS = "abz09AZ._-/:@[]%\u0130\u212a \n"


@given(
    st.one_of(
        st.text(),
        st.text(alphabet=_GRAMMAR_CHARS, max_size=80),
        st.text(alphabet="ab.-_/:", min_size=200, max_size=300),
    )
)
def test_any_text_parses_or_raises_invalid_reference(text: str) -> None:
    _check_total(text)


@given(data=st.data())
def test_near_misses_parse_or_raise_invalid_reference(data: st.DataObject) -> None:
    text = data.draw(_reference_strings(data.draw(st.booleans())))
    where = data.draw(st.integers(0, len(text)))
    inserted = data.draw(st.sampled_from(_GRAMMAR_CHARS) | st.characters())
    replace = data.draw(st.booleans())
    mutated = text[:where] + inserted + text[where + replace :]
    _check_total(mutated)
    try:
        ref = parse(mutated)
    except InvalidReference:
        return
    assert str(ref) == mutated


# -- linear time ----------------------------------------------------------------------------

_MB = 1 << 20

# Inputs built to make a backtracking matcher explore many ways to split the same text: long
# runs of one separator, alternations of alphanumerics and separators that fail only at the very
# end, digests that miss by one character, and runs of ":" and "/".
ADVERSARIAL = {
    "a-repeated": "a-" * (_MB // 2),
    "a.-repeated": "a." * (_MB // 2),
    "alphanumeric-run-then-bang": "a" * _MB + "!",
    "a-a-then-bang": "a-" * (_MB // 2) + "a!",
    "a.a-slash-bang": "a." * (_MB // 2) + "a/!",
    "a/-repeated-then-bang": "a/" * (_MB // 2) + "a!",
    "underscores": "a" + "_" * _MB + "a",
    "colons": ":" * _MB,
    "near-miss-digest": "a@sha256:" + "f" * _MB + "g",
    "near-miss-algorithm": "a@" + "a." * (_MB // 2) + ":" + "f" * 64,
    "ipv6-unclosed": "[" + ":" * _MB,
}


@pytest.mark.parametrize("text", [pytest.param(v, id=k) for k, v in ADVERSARIAL.items()])
@pytest.mark.parametrize("legacy", GENERATIONS)
def test_megabyte_inputs_do_not_backtrack_catastrophically(text: str, legacy: bool) -> None:
    # No timed assertion: the test finishes in well under a second per input when parsing is
    # linear, and would not finish at all if it were exponential.
    for parser in (parse, parse_any_reference):
        with pytest.raises(InvalidReference):
            parser(text, legacy=legacy)


def test_a_valid_megabyte_domain_parses_in_the_current_grammar() -> None:
    domain = "a." * (_MB // 2) + "a"
    assert parse_normalized_named(domain + "/x").domain == domain
    with raises(TOO_LONG):
        parse_normalized_named(domain + "/x", legacy=True)
