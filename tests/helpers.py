"""Shared test helpers: where the test data lives, the golden cases, and tar comparison.

Golden tests compare whole archives byte for byte; when they differ,
:func:`tar_difference` says where in tar terms (member, header field or data offset)
instead of dumping two walls of bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Tuple, Union

import attrs
import pytest

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
GOLDENS_DIR = DATA_DIR / "goldens" / "docker-20.10"
REFERENCES_JSONL = DATA_DIR / "references.jsonl"

BLOCK_SIZE = 512
ZERO_BLOCK = bytes(BLOCK_SIZE)

# (field name, start, end) of a POSIX ustar header block; GNU headers share the first
# 345 bytes and reuse the rest for their own fields.
USTAR_FIELDS: Tuple[Tuple[str, int, int], ...] = (
    ("name", 0, 100),
    ("mode", 100, 108),
    ("uid", 108, 116),
    ("gid", 116, 124),
    ("size", 124, 136),
    ("mtime", 136, 148),
    ("chksum", 148, 156),
    ("typeflag", 156, 157),
    ("linkname", 157, 257),
    ("magic", 257, 263),
    ("version", 263, 265),
    ("uname", 265, 297),
    ("gname", 297, 329),
    ("devmajor", 329, 337),
    ("devminor", 337, 345),
    ("prefix", 345, 500),
    ("padding", 500, 512),
)
# Where GNU headers (magic "ustar  \0") differ from ustar: bytes 345..512.
GNU_FIELDS: Tuple[Tuple[str, int, int], ...] = (
    *USTAR_FIELDS[:15],
    ("atime", 345, 357),
    ("ctime", 357, 369),
    ("offset", 369, 381),
    ("longnames", 381, 385),
    ("unused", 385, 386),
    ("sparse", 386, 482),
    ("isextended", 482, 483),
    ("realsize", 483, 495),
    ("padding", 495, 512),
)

# Entry types whose size field does not announce data blocks (as Go's archive/tar reads them).
_HEADER_ONLY_TYPES = frozenset(b"123456")
# Entry types that describe the next header rather than being members themselves.
_EXTENSION_TYPES = {
    ord("x"): "PAX extended header",
    ord("g"): "PAX global header",
    ord("L"): "GNU long name",
    ord("K"): "GNU long link name",
}


# -- golden cases ---------------------------------------------------------------------------


class GoldenCase(NamedTuple):
    """One `docker save` golden: its directory, parsed `case.json`, and `save.tar` if any."""

    name: str
    dir: Path
    case: dict[str, Any]
    save_tar: Optional[Path]


def golden_cases(root: Path = GOLDENS_DIR) -> List[GoldenCase]:
    """Every golden case under ``root``, sorted by name (error cases have no ``save.tar``)."""
    cases = []
    for case_dir in sorted(p for p in root.iterdir() if (p / "case.json").is_file()):
        save_tar = case_dir / "save.tar"
        cases.append(
            GoldenCase(
                name=case_dir.name,
                dir=case_dir,
                case=json.loads((case_dir / "case.json").read_text(encoding="utf-8")),
                save_tar=save_tar if save_tar.is_file() else None,
            )
        )
    return cases


def golden_params(cases: Optional[List[GoldenCase]] = None) -> List[Any]:
    """``pytest.param`` per golden case with the case name as the test id."""
    return [pytest.param(c, id=c.name) for c in (golden_cases() if cases is None else cases)]


# -- reading tars ---------------------------------------------------------------------------


TarMember = Tuple[tarfile.TarInfo, Optional[bytes]]


def read_tar(source: Union[bytes, Path]) -> List[TarMember]:
    """The members of a tar in archive order, with the contents of regular files.

    Non-regular members (directories, links, devices) come with ``None``.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    members: List[TarMember] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            if info.isreg():
                body = archive.extractfile(info)
                assert body is not None
                members.append((info, body.read()))
            else:
                members.append((info, None))
    return members


# -- comparing tars -------------------------------------------------------------------------


@attrs.frozen
class TarSegment:
    """A byte range of a tar stream and what it is, in tar terms."""

    start: int
    end: int
    kind: str  # "header", "extension header", "extension data", "data", "end", "trailing"
    member_index: int  # 0-based index of the member it belongs to (-1 after the last one)
    member_name: str
    typeflag: int = 0


def _parse_number(field: bytes) -> int:
    """A numeric header field: NUL/space-terminated octal, or GNU base-256."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] & 0x40 else value
    digits = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        return 0


def _c_string(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_path(records: bytes) -> Optional[str]:
    """The ``path`` record of PAX extended header data, if it has one."""
    pos = 0
    path = None
    while pos < len(records):
        space = records.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(records[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        key, _, value = records[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            path = value.decode("utf-8", "surrogateescape")
        pos += length
    return path


def _padded(size: int) -> int:
    return -(-size // BLOCK_SIZE) * BLOCK_SIZE


def tar_segments(data: bytes) -> List[TarSegment]:
    """Split a tar stream into headers, extension records, data, and end blocks.

    Only the structure is read (sizes and type flags), so it also walks archives that
    :mod:`tarfile` would reject; a truncated last segment ends at the end of ``data``.
    Extension records (PAX, GNU long names) carry the name of the member they describe.
    """
    segments: List[TarSegment] = []
    pos = 0
    index = 0
    pending_name: Optional[str] = None
    while pos < len(data):
        block = data[pos : pos + BLOCK_SIZE]
        if len(block) < BLOCK_SIZE:
            segments.append(TarSegment(pos, len(data), "trailing", -1, ""))
            break
        if block == ZERO_BLOCK:
            segments.append(TarSegment(pos, pos + BLOCK_SIZE, "end", -1, ""))
            pos += BLOCK_SIZE
            continue
        typeflag = block[156]
        size = _parse_number(block[124:136])
        if typeflag in _EXTENSION_TYPES:
            body = data[pos + BLOCK_SIZE : pos + BLOCK_SIZE + size]
            segments.append(
                TarSegment(pos, pos + BLOCK_SIZE, "extension header", index, "", typeflag)
            )
            if typeflag == ord("x"):
                pending_name = _pax_path(body) or pending_name
            elif typeflag == ord("L"):
                pending_name = _c_string(body)
            data_end = min(len(data), pos + BLOCK_SIZE + _padded(size))
            if size:
                segments.append(
                    TarSegment(pos + BLOCK_SIZE, data_end, "extension data", index, "", typeflag)
                )
            pos = data_end
            continue
        name = _c_string(block[0:100])
        if block[257:263] == b"ustar\0":
            prefix = _c_string(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        if pending_name is not None:
            name = pending_name
            pending_name = None
        segments.append(TarSegment(pos, pos + BLOCK_SIZE, "header", index, name, typeflag))
        pos += BLOCK_SIZE
        if typeflag not in _HEADER_ONLY_TYPES and size > 0:
            data_end = min(len(data), pos + _padded(size))
            segments.append(TarSegment(pos, data_end, "data", index, name, typeflag))
            pos = data_end
        index += 1
    names = {s.member_index: s.member_name for s in segments if s.kind == "header"}
    return [
        attrs.evolve(s, member_name=names.get(s.member_index, ""))
        if s.kind.startswith("extension")
        else s
        for s in segments
    ]


def _segment_at(data: bytes, offset: int) -> Optional[TarSegment]:
    for segment in tar_segments(data):
        if segment.start <= offset < segment.end:
            return segment
    return None


def _field_at(block: bytes, offset_in_block: int) -> Tuple[str, int, int]:
    """The header field at an offset, read with the layout the block's magic names."""
    fields = GNU_FIELDS if block[257:265] == b"ustar  \0" else USTAR_FIELDS
    for field in fields:
        if field[1] <= offset_in_block < field[2]:
            return field
    raise AssertionError(f"offset {offset_in_block} is outside a header block")


def _member_data(data: bytes, header_start: int) -> bytes:
    """The data of the member whose header block starts at ``header_start``."""
    size = _parse_number(data[header_start + 124 : header_start + 136])
    return data[header_start + BLOCK_SIZE : header_start + BLOCK_SIZE + size]


def _show_field(value: bytes) -> str:
    """A header field's bytes, with its run of trailing NULs counted rather than shown."""
    text = value.rstrip(b"\0")
    padding = len(value) - len(text)
    return f"{text!r} + {padding} NUL" if padding else repr(text)


def _window(data: bytes, start: int, end: int) -> bytes:
    return data[max(0, start) : min(len(data), end)]


def _describe(segment: Optional[TarSegment]) -> str:
    if segment is None:
        return "nothing (the archive has ended)"
    if segment.kind in ("end", "trailing"):
        return f"{segment.kind} block at byte {segment.start}"
    what = f"member #{segment.member_index} {segment.member_name!r}"
    if segment.kind.startswith("extension"):
        what += f" ({_EXTENSION_TYPES[segment.typeflag]})"
    return what


def first_difference(actual: bytes, expected: bytes) -> Optional[int]:
    """Offset of the first byte where the two differ (or where the shorter one ends)."""
    if actual == expected:
        return None
    common = min(len(actual), len(expected))
    # Compare in chunks first: archives run to megabytes.
    chunk = 1 << 16
    base = 0
    while base < common and actual[base : base + chunk] == expected[base : base + chunk]:
        base += chunk
    for offset in range(base, min(common, base + chunk)):
        if actual[offset] != expected[offset]:
            return offset
    return common


def tar_difference(actual: bytes, expected: bytes) -> Optional[str]:
    """``None`` when equal, else one paragraph naming where the two tars first differ.

    It names the member (by index and name in each archive), and for a header block the
    field and both raw values, for data the offset within the member and the bytes around it.
    """
    offset = first_difference(actual, expected)
    if offset is None:
        return None
    sizes = f"(actual {len(actual)} bytes, expected {len(expected)} bytes)"
    seg_a = _segment_at(actual, offset)
    seg_e = _segment_at(expected, offset)
    if seg_a is None or seg_e is None:
        longer, seg, label = (
            (actual, seg_a, "actual") if seg_e is None else (expected, seg_e, "expected")
        )
        return (
            f"tars differ at byte {offset} {sizes}: only the {label} archive goes on, "
            f"with {_describe(seg)}: {_window(longer, offset, offset + 32)!r}"
        )
    where = f"tars differ at byte {offset} {sizes}"
    if seg_a.member_index != -1 and (seg_a.kind, seg_a.start) == (seg_e.kind, seg_e.start):
        who = _describe(seg_e)
        if seg_a.member_name != seg_e.member_name:
            who = f"expected {_describe(seg_e)}, actual {_describe(seg_a)}"
        if seg_a.kind in ("header", "extension header"):
            name, lo, hi = _field_at(expected[seg_e.start : seg_e.end], offset - seg_a.start)
            a_field = actual[seg_a.start + lo : seg_a.start + hi]
            e_field = expected[seg_e.start + lo : seg_e.start + hi]
            return (
                f"{where}: {who}, {seg_a.kind} field {name!r}: "
                f"actual {_show_field(a_field)}, expected {_show_field(e_field)}"
            )
        rel = offset - seg_a.start
        lo, hi = max(seg_a.start, offset - 8), offset + 24
        message = (
            f"{where}: {who}, {seg_a.kind} at offset {rel} "
            f"(bytes {lo - seg_a.start}..{hi - seg_a.start} shown): "
            f"actual {_window(actual, lo, hi)!r}, expected {_window(expected, lo, hi)!r}"
        )
        if seg_a.kind == "data" and seg_a.member_name.endswith(".tar"):
            # A layer is itself a tar: say where inside it the difference is.
            inner = tar_difference(
                _member_data(actual, seg_a.start - BLOCK_SIZE),
                _member_data(expected, seg_e.start - BLOCK_SIZE),
            )
            if inner is not None:
                message += f"; inside {seg_a.member_name!r}: {inner}"
        return message
    return (
        f"{where}: actual has {_describe(seg_a)}, expected has {_describe(seg_e)}: "
        f"actual {_window(actual, offset, offset + 32)!r}, "
        f"expected {_window(expected, offset, offset + 32)!r}"
    )


def assert_tar_equal(actual: bytes, expected: bytes) -> None:
    """Fail with :func:`tar_difference`'s message unless the two tars are byte-identical."""
    message = tar_difference(actual, expected)
    if message is not None:
        pytest.fail(message, pytrace=False)
