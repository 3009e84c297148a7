"""Go ``encoding/json``: escaping, maps, whitespace, the scanner, unquoting, typed decoding.

Expected values come from the spec (§4.1), from Go's documented behaviour, and from
``data/go119/syntax.jsonl``: what Go 1.19.8's ``json.Unmarshal`` said of each input (its
syntax error and offset, or the value re-marshalled); see ``data/go119/README.md``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA_DIR
from hypothesis import given
from hypothesis import strategies as st

from tarexport import gojson
from tarexport.errors import InvalidJSON, TarexportError
from tarexport.gojson import Field, Int, Map, MapOf, Ptr, Raw, Slice, String, Struct

GO119 = DATA_DIR / "go119"


def _records(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


# -- strings (spec §4.1 table) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('"', b'"\\""'),
        ("\\", b'"\\\\"'),
        ("<", b'"\\u003c"'),
        (">", b'"\\u003e"'),
        ("&", b'"\\u0026"'),
        ("\u2028", b'"\\u2028"'),
        ("\u2029", b'"\\u2029"'),
        ("\n", b'"\\n"'),
        ("\r", b'"\\r"'),
        ("\t", b'"\\t"'),
        ("\x00", b'"\\u0000"'),
        ("\x01", b'"\\u0001"'),
        ("\x08", b'"\\u0008"'),
        ("\x0c", b'"\\u000c"'),
        ("\x1b", b'"\\u001b"'),
        ("\x1f", b'"\\u001f"'),
        ("\x7f", b'"\x7f"'),
        ("/", b'"/"'),
        ("'", b'"\'"'),
        ("\u00e9", '"\u00e9"'.encode()),
        ("\u65e5\u672c", '"\u65e5\u672c"'.encode()),
        ("\U0001f600", '"\U0001f600"'.encode()),
        ("\ufffd", '"\ufffd"'.encode()),
        ("\u2027\u202a", '"\u2027\u202a"'.encode()),
        ("", b'""'),
    ],
)
def test_string_escapes_go_1_19(text: str, written: bytes) -> None:
    assert gojson.dumps(text) == written


def test_spec_control_character_example() -> None:
    # §4.1: "ctl":"\u0001\u0008\u000c\t\n\r" followed by a raw DEL.
    value = {"ctl": "\x01\x08\x0c\t\n\r\x7f"}
    assert gojson.dumps(value) == b'{"ctl":"\\u0001\\u0008\\u000c\\t\\n\\r\x7f"}'


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("\x08", b'"\\b"'),
        ("\x0c", b'"\\f"'),
        ("\x01", b'"\\u0001"'),
        ("\x0b", b'"\\u000b"'),
        ("\n\r\t", b'"\\n\\r\\t"'),
        ("<&>", b'"\\u003c\\u0026\\u003e"'),
        ("\u2028", b'"\\u2028"'),
    ],
)
def test_string_escapes_go_1_22(text: str, written: bytes) -> None:
    assert gojson.dumps(text, short_escapes=True) == written


def test_lone_surrogates_are_written_as_replacement_character() -> None:
    # No Go string holds a lone surrogate; Go writes invalid UTF-8 as \ufffd.
    assert gojson.dumps("a\ud800b\udfff") == b'"a\\ufffdb\\ufffd"'


# -- structure ----------------------------------------------------------------------------------


def test_struct_keeps_insertion_order_and_map_sorts_bytewise() -> None:
    struct = {"b": 1, "a": 2, "Z": 3}
    assert gojson.dumps(struct) == b'{"b":1,"a":2,"Z":3}'
    keys = ["b", "a", "B", "", "\u00e9", "\U0001f600", "\uffff", "a b", "A"]
    written = gojson.dumps(Map({k: 0 for k in keys}))
    order = [k.encode() for k in keys]
    expected = b"{" + b",".join(b'"' + k + b'":0' for k in sorted(order)) + b"}"
    assert written == expected
    assert written.startswith(b'{"":0,"A":0,"B":0,"a":0,"a b":0,"b":0')


def test_map_keys_are_escaped_like_strings() -> None:
    assert gojson.dumps(Map({"<k>": "&"})) == b'{"\\u003ck\\u003e":"\\u0026"}'


def test_null_empty_and_scalars_stay_distinct() -> None:
    value = {"n": None, "l": [], "t": (), "o": {}, "m": Map(), "f": False, "z": 0, "s": ""}
    assert gojson.dumps(value) == b'{"n":null,"l":[],"t":[],"o":{},"m":{},"f":false,"z":0,"s":""}'


def test_integers_and_booleans() -> None:
    assert gojson.dumps([True, False, 1, 0, -1, 9223372036854775807]) == (
        b"[true,false,1,0,-1,9223372036854775807]"
    )


def test_raw_is_written_verbatim() -> None:
    raw = Raw(b'{"x":"\xc3\xa9","y":[1,2]}')
    assert gojson.dumps({"a": raw, "b": [raw]}) == (
        b'{"a":{"x":"\xc3\xa9","y":[1,2]},"b":[{"x":"\xc3\xa9","y":[1,2]}]}'
    )


def test_encode_adds_one_newline_and_dumps_none() -> None:
    value = [Map({"b": {"c": None}, "a": ["<"]})]
    assert gojson.dumps(value) == b'[{"a":["\\u003c"],"b":{"c":null}}]'
    assert gojson.encode(value) == gojson.dumps(value) + b"\n"
    assert gojson.encode("\b", short_escapes=True) == b'"\\b"\n'


@pytest.mark.parametrize("value", [1.5, b"x", {1, 2}, object(), {1: "x"}])
def test_values_go_never_writes_here_are_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        gojson.dumps(value)


def test_map_is_an_immutable_hashable_mapping() -> None:
    m = Map({"a": "1"}, b="2")
    assert dict(m) == {"a": "1", "b": "2"}
    assert m == {"a": "1", "b": "2"}
    assert hash(m) == hash(Map(b="2", a="1"))
    assert "a" in m and len(m) == 2
    with pytest.raises(TypeError):
        m["c"] = "3"  # type: ignore[index]


# -- properties ---------------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_TEXT, inner, max_size=4)
        | st.dictionaries(_TEXT, inner, max_size=4).map(Map)
    ),
    max_leaves=20,
)


def _plain(value: Any) -> Any:
    if isinstance(value, (dict, Map)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@given(_VALUES, st.booleans())
def test_output_parses_back_to_the_same_value(value: Any, short: bool) -> None:
    written = gojson.dumps(value, short_escapes=short)
    assert json.loads(written) == _plain(value)
    assert gojson.loads(written) == _plain(value)
    text = written.decode("utf-8")
    # HTML-safe and whitespace-free: no raw <, >, &, line separators or control characters.
    assert not any(c in text for c in "<>&\u2028\u2029")
    assert not any(ord(c) < 0x20 for c in text)


@given(_VALUES)
def test_map_output_is_sorted_by_utf8_bytes(value: Any) -> None:
    if isinstance(value, dict):
        written = json.loads(gojson.dumps(Map(value)), object_pairs_hook=list)
        keys = [k.encode() for k, _ in written]
        assert keys == sorted(keys)


# -- the scanner (syntax) -----------------------------------------------------------------------

SYNTAX_RECORDS = _records(GO119 / "syntax.jsonl")


def _floats(value: Any) -> Any:
    """Numbers as Go's interface{} decoding holds them (float64), for comparison."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return [_floats(v) for v in value]


@pytest.mark.parametrize("record", SYNTAX_RECORDS, ids=[r["name"] for r in SYNTAX_RECORDS])
def test_syntax_matches_go(record: dict[str, Any]) -> None:
    data = base64.b64decode(record["input"])
    if "error" in record:
        with pytest.raises(InvalidJSON) as caught:
            gojson.parse(data)
        assert (caught.value.message, caught.value.offset) == (record["error"], record["offset"])
        assert isinstance(caught.value, TarexportError)
    elif record["value"].startswith("[" * 100):
        # Too deep to compare recursively: walk down the nested arrays.
        value, depth = gojson.loads(data), 0
        while value:
            value, depth = value[0], depth + 1
        assert value == [] and depth + 1 == record["value"].count("[")
    else:
        assert _floats(gojson.loads(data)) == _floats(json.loads(record["value"]))


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


@given(st.text(alphabet='{}[],:"\\ u0123456789abefnrtlsx-+.eE\n\t', max_size=24))
def test_accepts_exactly_what_strict_json_accepts(text: str) -> None:
    try:
        expected = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        with pytest.raises(InvalidJSON):
            gojson.loads(text.encode())
        return
    if "\\u" in text:
        # Python keeps lone surrogates where Go writes U+FFFD; compare acceptance only.
        gojson.loads(text.encode())
    else:
        assert gojson.loads(text.encode()) == expected


@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_invalid_json(data: bytes) -> None:
    try:
        gojson.parse(data)
    except InvalidJSON as error:
        assert error.offset is not None and 0 <= error.offset <= len(data)


def test_nesting_limit() -> None:
    assert gojson.loads(b"[" * 10_000 + b"]" * 10_000) is not None
    with pytest.raises(InvalidJSON, match="exceeded max depth") as caught:
        gojson.parse(b"[" * 10_001 + b"]" * 10_001)
    assert caught.value.offset == 10_001


# -- unquoting (spec §4.1 "Decoding") -----------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "value"),
    [
        (b'"a\xffb"', "a\ufffdb"),
        (b'"\xe2\x82A"', "\ufffd\ufffdA"),  # each bad byte on its own
        (b'"\xed\xa0\x80"', "\ufffd\ufffd\ufffd"),  # a UTF-8 encoded surrogate
        (b'"\xc0\xaf"', "\ufffd\ufffd"),  # an overlong encoding
        (b'"\xf4\x90\x80\x80"', "\ufffd" * 4),  # beyond U+10FFFF
        (b'"\\ud800"', "\ufffd"),
        (b'"\\udc00"', "\ufffd"),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\\ud800\\u0041"', "\ufffdA"),
        (b'"\\ud800\\ud800\\udc00"', "\ufffd\U00010000"),
        (b'"\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"', '\u00e9/\b\f\n\r\t"\\'),
        ('"\ufffd"'.encode(), "\ufffd"),
    ],
)
def test_strings_are_unquoted_as_go_does(token: bytes, value: str) -> None:
    assert gojson.loads(token) == value


# -- typed decoding -----------------------------------------------------------------------------

_SAMPLE = Struct(
    "Sample",
    [
        Field("foo", "a", String),
        Field("Foo", "b", String),
        Field("kind", "kind", String),
        Field("size", "size", String),
        Field("id", "id", String),
        Field("N", "n", Slice(String)),
        Field("M", "m", MapOf(String)),
        Field("P", "p", Ptr(Int("int"))),
        Field("I", "i", Int("int64")),
        Field("Sub", "sub", Ptr(Struct("Sub", [Field("x", "x", String), Field("y", "y", String)]))),
    ],
)


def _decode(text: str) -> Any:
    return gojson.unmarshal(text.encode(), _SAMPLE)


@pytest.mark.parametrize(
    ("text", "attr", "value"),
    [
        ('{"Foo":"x"}', "b", "x"),  # an exact match wins
        ('{"FOO":"x"}', "a", "x"),  # otherwise the first field that folds equal
        ('{"fOO":"x","foo":"y"}', "a", "y"),
        ('{"foo":"y","FOO":"x"}', "a", "x"),  # later duplicates win
        ('{"\u212aIND":"k"}', "kind", "k"),  # KELVIN SIGN folds to k
        ('{"\u017fize":"s"}', "size", "s"),  # LONG S folds to s
        ('{"\u0130D":"i"}', "id", ""),  # no other non-ASCII letter folds to ASCII
        ('{"\\u0069d":"i"}', "id", "i"),  # keys are unquoted before matching
        ('{"kind":"a","Kind":null}', "kind", "a"),  # null leaves a string alone
        ('{"N":["a","b"],"N":["x",null,null]}', "n", ("x", "b", "")),
        ('{"N":["a"],"N":[]}', "n", ()),
        ('{"N":["a"],"N":null}', "n", None),
        ('{"M":{"a":"1"},"m":{"b":null}}', "m", {"a": "1", "b": ""}),
        ('{"M":{"a":"1"},"M":null}', "m", None),
        ('{"P":1,"P":null}', "p", None),
        ('{"P":1,"P":2}', "p", 2),
        ('{"I":-0}', "i", 0),
        ('{"I":9223372036854775807}', "i", 9223372036854775807),
        ('{"Sub":{"x":"1"},"Sub":{"y":"2"}}', "sub", {"x": "1", "y": "2"}),
        ('{"Sub":{"x":"1"},"Sub":null,"Sub":{"y":"2"}}', "sub", {"x": "", "y": "2"}),
        ('{"zzz":[1,{"deep":1.5}]}', "a", ""),  # unknown keys are dropped unchecked
        ("null", "a", ""),
    ],
)
def test_decoding_follows_go(text: str, attr: str, value: Any) -> None:
    assert _decode(text)[attr] == value


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"I":1.0}', "I"),
        ('{"I":1e3}', "I"),
        ('{"I":9223372036854775808}', "I"),
        ('{"I":"1"}', "I"),
        ('{"P":1.5}', "P"),
        ('{"foo":1}', "foo"),
        ('{"N":"x"}', "N"),
        ('{"N":["a",1]}', "N[1]"),
        ('{"M":{"k":1}}', 'M["k"]'),
        ('{"Sub":{"x":true}}', "Sub.x"),
        ('{"Sub":[]}', "Sub"),
    ],
)
def test_type_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidJSON) as caught:
        _decode(text)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_top_level_type_error_and_syntax_error() -> None:
    with pytest.raises(InvalidJSON) as caught:
        _decode("[]")
    assert caught.value.field is None and "cannot unmarshal array" in str(caught.value)
    with pytest.raises(InvalidJSON) as syntax:
        _decode('{"I":1,"N":[1')  # syntax is checked over the whole input first
    assert syntax.value.offset == len('{"I":1,"N":[1')


def test_struct_encode_applies_omitempty_and_features() -> None:
    sample = Struct(
        "S",
        [
            Field("A", "a", String, omitempty=True),
            Field("B", "b", Slice(String), omitempty=True),
            Field("C", "c", Slice(String)),
            Field("D", "d", Int(), omitempty=True, only_with="d"),
        ],
    )
    value = {"a": "", "b": (), "c": None, "d": 5}
    assert sample.encode(value) == {"C": None}
    assert sample.encode(value, frozenset({"d"})) == {"C": None, "D": 5}
    assert gojson.dumps(sample.encode({"a": "x", "b": ("y",), "c": (), "d": 0})) == (
        b'{"A":"x","B":["y"],"C":[]}'
    )
