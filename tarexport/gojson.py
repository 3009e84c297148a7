"""Go ``encoding/json``, byte for byte, for the values Docker writes and the configs it reads.

Encoding (``json.Marshal`` and ``json.Encoder.Encode`` as Docker calls them):

- a plain ``dict`` is a Go struct: keys are written in insertion order, and the caller has
  already left out the ``omitempty`` fields that are empty;
- a :class:`Map` is a Go map: keys are sorted bytewise (by their UTF-8 bytes);
- ``None`` is ``null``; lists and tuples are arrays; ``bool``, ``int`` and ``str`` as in Go;
- :class:`Raw` is a ``json.RawMessage``: its bytes are written as they are, so they must
  already be compact JSON as Go writes it;
- strings are escaped as Go does with HTML escaping on: ``<`` ``>`` ``&`` as ``\\u003c``
  ``\\u003e`` ``\\u0026``, U+2028/U+2029 escaped, ``\\n`` ``\\r`` ``\\t`` short, other control
  characters as ``\\u00XX`` (Go 1.19) or, with ``short_escapes``, ``\\b`` and ``\\f`` short
  as Go 1.22 and later write them. DEL, ``/`` and all other characters are written raw. A
  lone surrogate (which no Go string can hold) is written ``\\ufffd``.

Decoding follows what ``json.Unmarshal`` does with Docker's image config types:

- :func:`parse` checks the syntax the way Go's scanner does (errors carry Go's byte offset)
  and builds a tree that keeps every key, duplicates included, in order;
- strings are unquoted as Go unquotes them: invalid UTF-8 and unpaired surrogate escapes
  become U+FFFD, one per bad byte;
- :func:`unmarshal` decodes into a Go type described by :class:`GoType` values (``String``,
  ``Int``, ``Struct``, ``Slice``, ``MapOf``, ``Ptr``, ``StrSlice``, ...) with Go 1.19's rules:
  keys match struct fields exactly first, then case-insensitively (the first field in struct
  order wins), unknown keys are dropped, a later duplicate overwrites or *merges into* the
  earlier value (structs and maps are decoded into what is already there, and arrays into
  the existing slice's elements), ``null`` sets pointers, slices and maps to nil and leaves
  every other kind untouched, and numbers must fit the integer type exactly.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

import attrs

from .errors import InvalidJSON

__all__ = [
    "MAX_DEPTH",
    "Bool",
    "Decoder",
    "EmptyStruct",
    "Field",
    "GoType",
    "Int",
    "JSONArray",
    "JSONNumber",
    "JSONObject",
    "JSONString",
    "Map",
    "MapOf",
    "Node",
    "Ptr",
    "Raw",
    "Slice",
    "StrSlice",
    "String",
    "Struct",
    "dumps",
    "encode",
    "loads",
    "parse",
    "unmarshal",
]

_V = TypeVar("_V")

# =========================================================================================
# Values with a Go meaning
# =========================================================================================


class Map(Mapping[str, _V]):
    """A Go map: an immutable mapping whose keys Go writes sorted by their UTF-8 bytes."""

    __slots__ = ("_items",)

    def __init__(self, items: Union[Mapping[str, _V], Any] = (), /, **kwargs: _V) -> None:
        self._items: dict[str, _V] = dict(items, **kwargs)

    def __getitem__(self, key: str) -> _V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Map({self._items!r})"


@attrs.frozen
class Raw:
    """A ``json.RawMessage``: bytes written verbatim (they must be compact, Go-written JSON)."""

    data: bytes


# =========================================================================================
# Encoding
# =========================================================================================

_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')


def _escape_table(short_escapes: bool) -> dict[str, str]:
    table = {chr(c): f"\\u{c:04x}" for c in range(0x20)}
    table.update({"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"})
    table.update({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})
    table.update({chr(c): "\\ufffd" for c in range(0xD800, 0xE000)})
    if short_escapes:
        table.update({"\b": "\\b", "\f": "\\f"})
    return table


_ESCAPES = (_escape_table(False), _escape_table(True))


def _quote(text: str, short_escapes: bool) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return '"' + text + '"'
    table = _ESCAPES[short_escapes]
    return '"' + _NEEDS_ESCAPE.sub(lambda m: table[m.group()], text) + '"'


def _append(value: Any, out: list[str], short: bool) -> None:
    if isinstance(value, str):
        out.append(_quote(value, short))
    elif value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, (dict, Map)):
        keys = sorted(value) if isinstance(value, Map) else value
        if not keys:
            out.append("{}")
            return
        sep = "{"
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            out.append(sep)
            out.append(_quote(key, short))
            out.append(":")
            _append(value[key], out, short)
            sep = ","
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        sep = "["
        for item in value:
            out.append(sep)
            _append(item, out, short)
            sep = ","
        out.append("]")
    elif isinstance(value, Raw):
        # Carried through the str join as surrogate escapes, restored by the final encode.
        out.append(value.data.decode("utf-8", "surrogateescape"))
    else:
        raise TypeError(f"gojson cannot encode a {type(value).__name__}")


def dumps(value: Any, *, short_escapes: bool = False) -> bytes:
    """What Go's ``json.Marshal`` writes for ``value`` (no trailing newline)."""
    out: list[str] = []
    _append(value, out, short_escapes)
    return "".join(out).encode("utf-8", "surrogateescape")


def encode(value: Any, *, short_escapes: bool = False) -> bytes:
    """What Go's ``json.NewEncoder(w).Encode(value)`` writes: ``Marshal`` plus ``\\n``."""
    return dumps(value, short_escapes=short_escapes) + b"\n"


# =========================================================================================
# Parsing: Go's scanner and unquoting
# =========================================================================================

MAX_DEPTH = 10_000
"""Go's limit on nested arrays and objects."""


class JSONObject:
    """An object with every key as written (unquoted), duplicates included, in order."""

    __slots__ = ("pairs", "start")

    def __init__(self, start: int) -> None:
        self.pairs: list[tuple[str, Node]] = []
        self.start = start


class JSONArray:
    """An array and its items."""

    __slots__ = ("items", "start")

    def __init__(self, start: int) -> None:
        self.items: list[Node] = []
        self.start = start


class JSONString:
    """A string as Go unquotes it; ``start``/``end`` delimit the token, quotes included."""

    __slots__ = ("end", "start", "value")

    def __init__(self, value: str, start: int, end: int) -> None:
        self.value = value
        self.start = start
        self.end = end


class JSONNumber:
    """A number token, kept as written."""

    __slots__ = ("start", "text")

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.start = start


Node = Union[JSONObject, JSONArray, JSONString, JSONNumber, bool, None]
"""A parsed JSON value; ``true``/``false``/``null`` are ``True``/``False``/``None``."""

_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_PLAIN_STRING = re.compile(rb'[^"\\\x00-\x1f]*')
_DIGIT_RUN = re.compile(rb"[0-9]*")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {
    ord('"'): '"',
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_GO_REPLACE = "tarexport.gojson.replace"


def _replace_one_byte(error: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune rejects one byte at a time: each bad byte becomes one U+FFFD.
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\ufffd", error.start + 1


try:
    codecs.lookup_error(_GO_REPLACE)
except LookupError:
    codecs.register_error(_GO_REPLACE, _replace_one_byte)


def _go_utf8(raw: bytes) -> str:
    """Bytes as a Go string unquoted from JSON holds them: invalid UTF-8 becomes U+FFFD."""
    return raw.decode("utf-8", _GO_REPLACE)


def _unquote(raw: bytes) -> str:
    """The body of a syntactically valid JSON string (between the quotes), as Go unquotes it."""
    if b"\\" not in raw:
        return _go_utf8(raw)
    out: list[str] = []
    i = 0
    while True:
        j = raw.find(b"\\", i)
        if j < 0:
            out.append(_go_utf8(raw[i:]))
            return "".join(out)
        out.append(_go_utf8(raw[i:j]))
        kind = raw[j + 1]
        if kind != ord("u"):
            out.append(_SIMPLE_ESCAPES[kind])
            i = j + 2
            continue
        code = int(raw[j + 2 : j + 6], 16)
        i = j + 6
        if 0xD800 <= code < 0xE000:
            # A high surrogate pairs only with an escaped low surrogate right after it;
            # anything else (including a lone low surrogate) is U+FFFD.
            if code < 0xDC00 and raw[i : i + 2] == b"\\u":
                low = int(raw[i + 2 : i + 6], 16)
                if 0xDC00 <= low < 0xE000:
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 6
                    continue
            out.append("\ufffd")
        else:
            out.append(chr(code))


def _quote_char(byte: int) -> str:
    """Go's ``quoteChar``: how its syntax errors show the offending byte."""
    if byte == ord("'"):
        return "'\\''"
    if byte == ord('"'):
        return "'\"'"
    named = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 92: "\\\\"}
    if byte in named:
        return f"'{named[byte]}'"
    if byte < 0x20 or byte == 0x7F:
        return f"'\\x{byte:02x}'"
    if 0x80 <= byte <= 0xA0 or byte == 0xAD:
        return f"'\\u{byte:04x}'"
    return f"'{chr(byte)}'"


class _Scanner:
    """A single pass over the input that builds the tree or stops where Go's scanner stops."""

    __slots__ = ("data", "n")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)

    def error(self, at: int, context: str) -> InvalidJSON:
        if at >= self.n:
            # Go ends the input by feeding its scanner a space: inside a number, literal or
            # escape that space is the offending character.
            inside_token = context.startswith(("in ", "after decimal point"))
            if not inside_token or context == "in string literal":
                return InvalidJSON("unexpected end of JSON input", offset=self.n)
            return InvalidJSON(f"invalid character ' ' {context}", offset=self.n)
        char = _quote_char(self.data[at])
        return InvalidJSON(f"invalid character {char} {context}", offset=at + 1)

    def ws(self, pos: int) -> int:
        match = _WHITESPACE.match(self.data, pos)
        assert match is not None
        return match.end()

    def string(self, pos: int, context: str) -> tuple[JSONString, int]:
        """The string starting at ``pos`` (which must be a quote) and the index after it."""
        data, n = self.data, self.n
        if pos >= n or data[pos] != 0x22:
            raise self.error(pos, context)
        match = _PLAIN_STRING.match(data, pos + 1)
        assert match is not None
        i = match.end()
        if i < n and data[i] == 0x22:
            return JSONString(_go_utf8(data[pos + 1 : i]), pos, i + 1), i + 1
        while True:
            if i >= n:
                raise self.error(i, "")
            c = data[i]
            if c == 0x22:
                break
            if c == 0x5C:
                if i + 1 >= n:
                    raise self.error(n, "in string escape code")
                kind = data[i + 1]
                if kind == ord("u"):
                    for k in range(i + 2, i + 6):
                        if k >= n or data[k] not in _HEX:
                            raise self.error(k, "in \\u hexadecimal character escape")
                    i += 6
                elif kind in _SIMPLE_ESCAPES:
                    i += 2
                else:
                    raise self.error(i + 1, "in string escape code")
            elif c < 0x20:
                raise self.error(i, "in string literal")
            else:
                match = _PLAIN_STRING.match(data, i + 1)
                assert match is not None
                i = match.end()
        return JSONString(_unquote(data[pos + 1 : i]), pos, i + 1), i + 1

    def number(self, pos: int) -> tuple[JSONNumber, int]:
        data, n = self.data, self.n
        i = pos
        if data[i] == ord("-"):
            i += 1
            if i >= n or not 0x30 <= data[i] <= 0x39:
                raise self.error(i, "in numeric literal")
        if data[i] == ord("0"):
            i += 1
        else:
            i = self.digits(i + 1)
        if i < n and data[i] == ord("."):
            i += 1
            if i >= n or not 0x30 <= data[i] <= 0x39:
                raise self.error(i, "after decimal point in numeric literal")
            i = self.digits(i + 1)
        if i < n and data[i] in b"eE":
            i += 1
            if i < n and data[i] in b"+-":
                i += 1
            if i >= n or not 0x30 <= data[i] <= 0x39:
                raise self.error(i, "in exponent of numeric literal")
            i = self.digits(i + 1)
        return JSONNumber(data[pos:i].decode("ascii"), pos), i

    def digits(self, pos: int) -> int:
        match = _DIGIT_RUN.match(self.data, pos)
        assert match is not None
        return match.end()

    def literal(self, pos: int, word: bytes) -> int:
        if self.data.startswith(word, pos):
            return pos + len(word)
        for k in range(1, len(word)):
            if pos + k >= self.n or self.data[pos + k] != word[k]:
                expecting = _quote_char(word[k])
                raise self.error(pos + k, f"in literal {word.decode()} (expecting {expecting})")
        raise AssertionError("unreachable")  # pragma: no cover

    def key(self, pos: int, context: str) -> tuple[str, int]:
        node, pos = self.string(pos, context)
        pos = self.ws(pos)
        if pos >= self.n or self.data[pos] != ord(":"):
            raise self.error(pos, "after object key")
        return node.value, self.ws(pos + 1)

    def run(self) -> Node:
        data, n = self.data, self.n
        stack: list[list[Any]] = []  # [container, pending key] per open container
        pos = self.ws(0)
        while True:
            # A value starts at pos.
            if pos >= n:
                raise self.error(pos, "")
            c = data[pos]
            value: Node
            if c == 0x22:
                value, pos = self.string(pos, "looking for beginning of value")
            elif c == ord("{") or c == ord("["):
                if len(stack) >= MAX_DEPTH:
                    raise self.error(pos, "exceeded max depth")
                container: Union[JSONObject, JSONArray]
                if c == ord("{"):
                    container = JSONObject(pos)
                    pos = self.ws(pos + 1)
                    if pos < n and data[pos] == ord("}"):
                        value, pos = container, pos + 1
                    else:
                        key, pos = self.key(pos, "looking for beginning of object key string")
                        stack.append([container, key])
                        continue
                else:
                    container = JSONArray(pos)
                    pos = self.ws(pos + 1)
                    if pos < n and data[pos] == ord("]"):
                        value, pos = container, pos + 1
                    else:
                        stack.append([container, None])
                        continue
            elif c == ord("-") or 0x30 <= c <= 0x39:
                value, pos = self.number(pos)
            elif c == ord("t"):
                value, pos = True, self.literal(pos, b"true")
            elif c == ord("f"):
                value, pos = False, self.literal(pos, b"false")
            elif c == ord("n"):
                value, pos = None, self.literal(pos, b"null")
            else:
                raise self.error(pos, "looking for beginning of value")
            # A value ended just before pos: store it and close what it completes.
            while True:
                pos = self.ws(pos)
                if not stack:
                    if pos < n:
                        raise self.error(pos, "after top-level value")
                    return value
                frame = stack[-1]
                parent = frame[0]
                c = data[pos] if pos < n else -1
                if isinstance(parent, JSONObject):
                    parent.pairs.append((frame[1], value))
                    if c == ord(","):
                        frame[1], pos = self.key(
                            self.ws(pos + 1), "looking for beginning of object key string"
                        )
                        break
                    if c != ord("}"):
                        raise self.error(pos, "after object key:value pair")
                else:
                    parent.items.append(value)
                    if c == ord(","):
                        pos = self.ws(pos + 1)
                        break
                    if c != ord("]"):
                        raise self.error(pos, "after array element")
                stack.pop()
                value, pos = parent, pos + 1


def parse(data: bytes) -> Node:
    """The JSON tree of ``data``, or :class:`InvalidJSON` with Go's message and ``offset``.

    The offset is Go's ``SyntaxError.Offset``: the number of bytes read when the error was
    found, i.e. one past the offending byte, or the input length at an unexpected end.
    """
    return _Scanner(bytes(data)).run()


def _scalar(node: Node) -> Any:
    if isinstance(node, JSONString):
        return node.value
    if isinstance(node, JSONNumber):
        text = node.text
        return float(text) if any(c in text for c in ".eE") else int(text)
    return node


def _plain(root: Node) -> Any:
    """Python values for a tree, without recursion (Go allows 10 000 levels of nesting)."""
    if not isinstance(root, (JSONObject, JSONArray)):
        return _scalar(root)
    result: Any = {} if isinstance(root, JSONObject) else []
    todo: list[tuple[Union[JSONObject, JSONArray], Any]] = [(root, result)]
    while todo:
        node, target = todo.pop()
        entries = node.pairs if isinstance(node, JSONObject) else enumerate(node.items)
        for key, child in entries:
            if isinstance(child, (JSONObject, JSONArray)):
                value: Any = {} if isinstance(child, JSONObject) else []
                todo.append((child, value))
            else:
                value = _scalar(child)
            if isinstance(target, dict):
                target[key] = value
            else:
                target.append(value)
    return result


def loads(data: bytes) -> Any:
    """Plain Python values (``dict``, ``list``, ``str``, ``int``/``float``, ...) from ``data``.

    Go's syntax and string rules; a later duplicate key wins.
    """
    return _plain(parse(data))


# =========================================================================================
# Typed decoding with Go's reflection rules
# =========================================================================================


def _kind(node: Node) -> str:
    """The JSON kind Go names in ``cannot unmarshal X into ...``."""
    if isinstance(node, JSONString):
        return "string"
    if isinstance(node, JSONNumber):
        return f"number {node.text}"
    if isinstance(node, JSONObject):
        return "object"
    if isinstance(node, JSONArray):
        return "array"
    return "bool"


class Decoder:
    """What a :class:`GoType` needs while decoding: the input and a way to fail."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def raw(self, node: Node) -> bytes:
        """The token bytes of a string node, quotes included."""
        assert isinstance(node, JSONString)
        return self.data[node.start : node.end]

    def type_error(self, node: Node, gotype: GoType, path: str) -> InvalidJSON:
        where = f"Go struct field {path}" if path else "Go value"
        return InvalidJSON(
            f"json: cannot unmarshal {_kind(node)} into {where} of type {gotype.name}",
            field=path or None,
        )

    def error(self, message: str, path: str) -> InvalidJSON:
        return InvalidJSON(f"{path}: {message}" if path else message, field=path or None)


class GoType:
    """A Go type as ``json.Unmarshal`` fills it, and as ``json.Marshal`` writes it.

    ``decode`` returns the new value of a Go variable holding ``current`` after decoding
    ``node`` into it (mutable values may be updated in place, as Go does); ``freeze`` turns
    the finished value into an immutable Python value; ``encode`` turns a frozen value into
    what :func:`dumps` writes; ``is_empty`` is Go's ``omitempty`` test.
    """

    name = "?"

    def zero(self) -> Any:
        return None

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        raise NotImplementedError

    def freeze(self, value: Any) -> Any:
        return value

    def encode(self, value: Any, features: frozenset[str] = frozenset()) -> Any:
        return value

    def is_empty(self, value: Any) -> bool:
        return not value


class _String(GoType):
    name = "string"

    def zero(self) -> Any:
        return ""

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if isinstance(node, JSONString):
            return node.value
        if node is None:
            return current
        raise dec.type_error(node, self, path)


class _Bool(GoType):
    name = "bool"

    def zero(self) -> Any:
        return False

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is True or node is False:
            return node
        if node is None:
            return current
        raise dec.type_error(node, self, path)


class Int(GoType):
    """A signed Go integer of ``bits`` bits: only integer literals in range are accepted."""

    def __init__(self, name: str = "int64", bits: int = 64) -> None:
        self.name = name
        self.low = -(1 << (bits - 1))
        self.high = (1 << (bits - 1)) - 1

    def zero(self) -> Any:
        return 0

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None:
            return current
        if isinstance(node, JSONNumber):
            text = node.text
            if "." not in text and "e" not in text and "E" not in text:
                value = int(text)
                if self.low <= value <= self.high:
                    return value
        raise dec.type_error(node, self, path)


String = _String()
"""Go ``string``."""
Bool = _Bool()
"""Go ``bool``."""


class Ptr(GoType):
    """A Go pointer: ``null`` makes it nil; anything else decodes into the pointee."""

    def __init__(self, elem: GoType) -> None:
        self.elem = elem
        self.name = "*" + elem.name

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None:
            return None
        if current is None:
            current = self.elem.zero()
        return self.elem.decode(node, current, dec, path)

    def freeze(self, value: Any) -> Any:
        return None if value is None else self.elem.freeze(value)

    def encode(self, value: Any, features: frozenset[str] = frozenset()) -> Any:
        return None if value is None else self.elem.encode(value, features)

    def is_empty(self, value: Any) -> bool:
        return value is None


class _GoSlice:
    """A Go slice header: a backing array and a length (the capacity is the array's size)."""

    __slots__ = ("backing", "length")

    def __init__(self, backing: list[Any], length: int) -> None:
        self.backing = backing
        self.length = length


class Slice(GoType):
    """A Go slice, decoded as Go 1.19 decodes arrays: into the existing elements.

    Go keeps the backing array of a slice that is decoded again (a duplicate key), decodes
    each JSON element into the element already there (so a ``null`` element keeps the old
    value), grows the capacity by half (at least 4) and reuses elements past the old length.
    """

    def __init__(self, elem: GoType) -> None:
        self.elem = elem
        self.name = "[]" + elem.name

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None:
            return None
        if not isinstance(node, JSONArray):
            raise dec.type_error(node, self, path)
        if not node.items:
            return _GoSlice([], 0)
        elem = self.elem
        if current is None:
            current = _GoSlice([], 0)
        backing, length = current.backing, current.length
        for i, item in enumerate(node.items):
            if i >= len(backing):
                capacity = max(len(backing) + len(backing) // 2, 4)
                backing = backing[:length] + [elem.zero() for _ in range(capacity - length)]
            length = max(length, i + 1)
            backing[i] = elem.decode(item, backing[i], dec, f"{path}[{i}]")
        return _GoSlice(backing, len(node.items))

    def freeze(self, value: Any) -> Any:
        if value is None:
            return None
        freeze = self.elem.freeze
        return tuple(freeze(item) for item in value.backing[: value.length])

    def encode(self, value: Any, features: frozenset[str] = frozenset()) -> Any:
        if value is None:
            return None
        return [self.elem.encode(item, features) for item in value]


class _StrSlice(GoType):
    """Docker's ``strslice.StrSlice``: a list of strings, or one bare string meaning ``[s]``."""

    name = "strslice.StrSlice"

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None:
            return None
        if isinstance(node, JSONString):
            return (node.value,)
        if isinstance(node, JSONArray):
            # A fresh []string each time; a null element is the empty string.
            values = []
            for item in node.items:
                if isinstance(item, JSONString):
                    values.append(item.value)
                elif item is None:
                    values.append("")
                else:
                    raise dec.type_error(item, self, path)
            return tuple(values)
        raise dec.type_error(node, self, path)

    def is_empty(self, value: Any) -> bool:
        return not value


StrSlice = _StrSlice()
"""Docker's ``strslice.StrSlice`` (``Cmd``, ``Entrypoint``, ``Shell``), frozen as a tuple."""


class MapOf(GoType):
    """A Go ``map[string]T``: entries are added to the existing map; a later key wins."""

    def __init__(self, elem: GoType) -> None:
        self.elem = elem
        self.name = "map[string]" + elem.name

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None:
            return None
        if not isinstance(node, JSONObject):
            raise dec.type_error(node, self, path)
        result: dict[str, Any] = {} if current is None else current
        elem = self.elem
        for key, item in node.pairs:
            result[key] = elem.decode(item, elem.zero(), dec, f"{path}[{json.dumps(key)}]")
        return result

    def freeze(self, value: Any) -> Any:
        if value is None:
            return None
        freeze = self.elem.freeze
        return Map({key: freeze(item) for key, item in value.items()})

    def encode(self, value: Any, features: frozenset[str] = frozenset()) -> Any:
        if value is None:
            return None
        encode = self.elem.encode
        return Map({key: encode(item, features) for key, item in value.items()})


_EMPTY_MAP: Map[Any] = Map()


class _EmptyStruct(GoType):
    """Go ``struct{}`` (the values of Docker's sets): any object, written ``{}``."""

    name = "struct {}"

    def zero(self) -> Any:
        return _EMPTY_MAP

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None or isinstance(node, JSONObject):
            return current
        raise dec.type_error(node, self, path)

    def is_empty(self, value: Any) -> bool:
        return False


EmptyStruct = _EmptyStruct()
"""Go ``struct{}``; decoded and frozen as an empty :class:`Map`."""


@attrs.frozen
class Field:
    """One struct field: its JSON name, the attribute that holds it, its type, ``omitempty``.

    ``only_with`` names a feature the field exists with (e.g. a field added in a later
    release): :meth:`Struct.encode` writes it only when that feature is enabled.
    """

    json: str
    attr: str
    type: GoType
    omitempty: bool = False
    only_with: Optional[str] = None


_FOLD = str.maketrans(
    {**{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}, "\u212a": "k", "\u017f": "s"}
)


def _fold(key: str) -> str:
    """A key folded as Go's ``bytes.EqualFold`` compares it with an ASCII field name.

    Only two non-ASCII letters fold to ASCII ones: KELVIN SIGN to k and LONG S to s.
    """
    return key.translate(_FOLD)


class Struct(GoType):
    """A Go struct; decoding matches keys to fields as Go does and merges into the value."""

    def __init__(
        self, name: str, fields: list[Field], build: Optional[Callable[..., Any]] = None
    ) -> None:
        self.name = name
        self.fields = tuple(fields)
        self.build = build
        self.exact = {f.json: f for f in self.fields}
        self.folded: dict[str, Field] = {}
        for f in self.fields:
            self.folded.setdefault(f.json.lower(), f)

    def zero(self) -> Any:
        return {f.attr: f.type.zero() for f in self.fields}

    def field_for(self, key: str) -> Optional[Field]:
        """The field a key fills: an exact name first, else the first that folds equal."""
        found = self.exact.get(key)
        if found is None:
            found = self.folded.get(_fold(key))
        return found

    def decode(self, node: Node, current: Any, dec: Decoder, path: str) -> Any:
        if node is None:
            return current
        if not isinstance(node, JSONObject):
            raise dec.type_error(node, self, path)
        for key, item in node.pairs:
            f = self.field_for(key)
            if f is not None:
                where = f"{path}.{f.json}" if path else f.json
                current[f.attr] = f.type.decode(item, current[f.attr], dec, where)
        return current

    def freeze(self, value: Any) -> Any:
        frozen = {f.attr: f.type.freeze(value[f.attr]) for f in self.fields}
        return self.build(**frozen) if self.build is not None else frozen

    def encode(self, value: Any, features: frozenset[str] = frozenset()) -> Any:
        """The ordered dict :func:`dumps` writes, ``omitempty`` fields left out when empty."""
        out: dict[str, Any] = {}
        is_dict = isinstance(value, dict)
        for f in self.fields:
            if f.only_with is not None and f.only_with not in features:
                continue
            item = value[f.attr] if is_dict else getattr(value, f.attr)
            if f.omitempty and f.type.is_empty(item):
                continue
            out[f.json] = f.type.encode(item, features)
        return out

    def is_empty(self, value: Any) -> bool:
        return False


def unmarshal(data: bytes, gotype: GoType) -> Any:
    """Decode ``data`` into a fresh ``gotype`` value as ``json.Unmarshal`` would, frozen.

    Raises :class:`InvalidJSON`: with ``offset`` for a syntax error (checked over the whole
    input first, as Go does), with ``field`` for a value Go cannot store in its field.
    """
    data = bytes(data)
    node = parse(data)
    decoded = gotype.decode(node, gotype.zero(), Decoder(data), "")
    return gotype.freeze(decoded)
