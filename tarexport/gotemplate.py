"""The subset of Go's ``text/template`` that ``docker ... --format`` is used with.

Supported: literal text; ``{{.}}``; field paths ``{{.Config.Env}}``; the functions
``json``, ``join LIST SEP``, ``upper``, ``lower``, ``title``, ``index VALUE KEY...``,
``len`` and ``println``, with field paths, ``"quoted"`` strings or integers as arguments;
and the ``table`` prefix with ``\\t`` / ``\\n`` escapes as the docker CLI reads them.
Values print as Go's ``fmt`` prints them (``[a b]``, ``map[k:v]``, ``<nil>``; a missing key is
``<no value>``). Anything else (``if``, ``range``, pipelines) raises :class:`TemplateError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Callable

import attrs

from .errors import TarexportError

__all__ = ["Template", "TemplateError", "go_string"]


class TemplateError(TarexportError, ValueError):
    """A ``--format`` template uses something outside the supported subset."""


_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
_MISSING = object()


def go_string(value: Any) -> str:
    """``value`` as Go's ``fmt.Sprint`` prints the decoded JSON value."""
    if value is _MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, Mapping):
        items = " ".join(f"{k}:{go_string(v)}" for k, v in sorted(value.items()))
        return f"map[{items}]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    return str(value)


def _json(value: Any) -> str:
    if value is _MISSING:
        value = None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _join(value: Any, sep: Any) -> str:
    if not isinstance(value, (list, tuple)):
        raise TemplateError("join: the first argument is not a list")
    return str(sep).join(go_string(v) for v in value)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[int(key)] if isinstance(value, (list, tuple)) else value[key]
        except (KeyError, IndexError, TypeError, ValueError):
            raise TemplateError(f"index: no entry {key!r}") from None
    return value


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "join": _join,
    "upper": lambda v: go_string(v).upper(),
    "lower": lambda v: go_string(v).lower(),
    "title": lambda v: go_string(v).title(),
    "index": _index,
    "len": lambda v: len(v) if isinstance(v, (list, tuple, dict, str)) else 0,
    "println": lambda *v: " ".join(go_string(x) for x in v) + "\n",
}


@attrs.frozen
class _Action:
    function: str
    arguments: tuple[str, ...]


def _field(data: Any, path: str) -> Any:
    if path == ".":
        return data
    value = data
    for part in path[1:].split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _argument(data: Any, token: str) -> Any:
    if token.startswith('"'):
        return json.loads(token)
    if token.startswith("."):
        return _field(data, token)
    if token.lstrip("-").isdigit():
        return int(token)
    raise TemplateError(f"unsupported template argument {token!r}")


@attrs.frozen
class Template:
    """A parsed ``--format`` string; :meth:`render` fills it from a dict."""

    pieces: tuple[Any, ...]
    table: bool

    @classmethod
    def parse(cls, text: str) -> Template:
        table = text.startswith("table")
        if table:
            text = text[len("table"):].strip()
        text = text.replace("\\t", "\t").replace("\\n", "\n")
        pieces: list[Any] = []
        position = 0
        for match in _ACTION.finditer(text):
            pieces.append(text[position : match.start()])
            pieces.append(cls._action(match.group(1)))
            position = match.end()
        rest = text[position:]
        if "{{" in rest or "}}" in rest:
            raise TemplateError(f"template: unclosed action in {text!r}")
        pieces.append(rest)
        return cls(tuple(pieces), table)

    @staticmethod
    def _action(source: str) -> _Action:
        tokens = _TOKEN.findall(source)
        if not tokens:
            raise TemplateError("template: empty action {{}}")
        if "|" in tokens or any(t in ("if", "range", "with", "end", "else") for t in tokens):
            raise TemplateError(f"template: {{{{{source}}}}} is outside the supported subset")
        if tokens[0].startswith((".", '"')):
            if len(tokens) != 1:
                raise TemplateError(f"template: {{{{{source}}}}}: a value takes no arguments")
            return _Action("", tuple(tokens))
        if tokens[0] not in _FUNCTIONS:
            raise TemplateError(f'template: function "{tokens[0]}" not defined')
        return _Action(tokens[0], tuple(tokens[1:]))

    def render(self, data: Any) -> str:
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            args = [_argument(data, token) for token in piece.arguments]
            if not piece.function:
                out.append(go_string(args[0]))
                continue
            try:
                result = _FUNCTIONS[piece.function](*args)
            except TypeError:
                raise TemplateError(
                    f"template: wrong number of arguments for {piece.function}"
                ) from None
            out.append(go_string(result))
        return "".join(out)

    def headers(self, names: Mapping[str, str]) -> str:
        """The header row of a table: each field path replaced by its column name."""
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
            elif piece.arguments and piece.arguments[-1].startswith("."):
                key = piece.arguments[-1][1:]
                out.append(names.get(key, key.upper()))
        return "".join(out)

