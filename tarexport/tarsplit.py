"""tar-split metadata: decoding its JSON lines, and rebuilding the tar stream it describes.

Docker keeps, for every layer it applied, a ``tar-split.json.gz`` next to the layer's
metadata: one JSON object per line, in stream order. A *segment* entry (``type`` 2) holds raw
bytes of the original tar (headers, padding, the end-of-archive blocks); a *file* entry
(``type`` 1) names a member whose ``size`` bytes of content live in the storage driver's
directory, with a CRC-64 (ISO polynomial) of that content. Writing the segments and the file
contents in order gives back the original tar byte for byte.

This module is pure: it decodes lines, computes sizes and checksums, plans a stream (every
name, header and file checked through a callback, before a byte is produced) and reassembles
it given a callback that opens a file's content by its cleaned, relative name.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Callable, Optional, Union

import attrs

from .errors import InvalidArchive, LayerIntegrityError, StoreError
from .tarread import BLOCK_SIZE, looks_like_tar

__all__ = [
    "CRC64",
    "FILE",
    "SEGMENT",
    "Entry",
    "ReassemblingReader",
    "clean_name",
    "crc64_iso",
    "decode_entries",
    "go_clean",
    "plan_stream",
    "stream_size",
]

FILE = 1
SEGMENT = 2

# -- CRC-64/ISO ---------------------------------------------------------------------------
#
# Go's hash/crc64 with the ISO table is a reflected CRC: the register starts at all ones, each
# byte is consumed least significant bit first, and the result is inverted. In polynomial
# terms, with every byte's bits reversed, the register is the remainder of the message (times
# x^64) modulo P = x^64 + x^4 + x^3 + x + 1. Python integers do carry-less arithmetic only
# through shifts and XOR, but those run in C over the whole integer, so a chunk is reduced by
# folding it in halves: H*x^k + L == H*(x^k mod P) + L, each fold costing one shift-and-XOR of
# H per set bit of x^k mod P. That is tens of MB/s where a loop over bytes is a few.

_MASK64 = (1 << 64) - 1
_POLY_LOW = 0x1B  # P without its x^64 term
_REVERSED_BYTES = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reflect64(value: int) -> int:
    return int(f"{value:064b}"[::-1], 2)


def _clmul(a: int, b: int) -> int:
    """Carry-less product of ``a`` (any size) and ``b`` (small)."""
    result = 0
    shift = 0
    while b:
        if b & 1:
            result ^= a << shift
        b >>= 1
        shift += 1
    return result


def _mod_small(value: int) -> int:
    """``value mod P`` for a value of at most 128 bits, bit by bit from the top."""
    while value.bit_length() > 64:
        high = value >> 64
        value = (value & _MASK64) ^ _clmul(high, _POLY_LOW)
    return value


# x^(64 * 2^j) mod P, for folding an integer in halves whose width is a power of two words.
_FOLDS: list[int] = [_POLY_LOW]
for _ in range(40):
    _FOLDS.append(_mod_small(_clmul(_FOLDS[-1], _FOLDS[-1])))


def _mod(value: int) -> int:
    """``value mod P`` for a value of any size."""
    while True:
        bits = value.bit_length()
        if bits <= 128:
            return _mod_small(value)
        j = (bits - 1) // 64
        j = j.bit_length() - 1  # largest 64 * 2^j below ``bits``
        k = 64 << j
        value = (value & ((1 << k) - 1)) ^ _clmul(value >> k, _FOLDS[j])


class CRC64:
    """An incremental CRC-64/ISO, with the value Go's ``crc64.Checksum(data, ISO table)`` gives."""

    __slots__ = ("_register",)

    def __init__(self) -> None:
        self._register = _MASK64  # the reflected register in normal (non-reflected) form

    def update(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if not data:
            return
        chunk = bytes(data).translate(_REVERSED_BYTES)
        message = int.from_bytes(chunk, "big")
        self._register = _mod((self._register << (8 * len(chunk))) ^ (message << 64))

    def value(self) -> int:
        return _reflect64(self._register) ^ _MASK64

    def digest(self) -> bytes:
        """The 8-byte big-endian checksum, as tar-split stores it."""
        return self.value().to_bytes(8, "big")


def crc64_iso(data: Union[bytes, bytearray, memoryview]) -> int:
    """The CRC-64/ISO of ``data`` (Go's ``crc64.Checksum(data, crc64.MakeTable(crc64.ISO))``)."""
    crc = CRC64()
    crc.update(data)
    return crc.value()


# -- entries ------------------------------------------------------------------------------


@attrs.frozen
class Entry:
    """One tar-split line: a raw segment, or a file whose content is stored elsewhere.

    ``name`` is the member name as bytes (from ``name``, or ``name_raw`` when the name is not
    UTF-8); ``payload`` is the segment's bytes, or a file's 8-byte CRC-64 (empty when size 0).
    """

    type: int
    position: int
    name: bytes = b""
    size: int = 0
    payload: bytes = b""


def _decode_b64(value: object, what: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise StoreError(f"{what}: base64 field is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StoreError(f"{what}: invalid base64") from None


def decode_entries(lines: Iterable[bytes], what: str) -> Iterator[Entry]:
    """Decode tar-split JSON lines (blank lines skipped); ``what`` names the source in errors."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{what} line {number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise StoreError(f"{where}: invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise StoreError(f"{where}: not a JSON object")
        kind = obj.get("type")
        position = obj.get("position", 0)
        if not isinstance(position, int) or isinstance(position, bool):
            raise StoreError(f"{where}: position is not an integer")
        payload = _decode_b64(obj.get("payload"), where)
        if kind == SEGMENT:
            yield Entry(SEGMENT, position, payload=payload)
        elif kind == FILE:
            size = obj.get("size", 0)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise StoreError(f"{where}: size is not a non-negative integer")
            if obj.get("name_raw") is not None:
                name = _decode_b64(obj["name_raw"], where)
            else:
                text = obj.get("name", "")
                if not isinstance(text, str):
                    raise StoreError(f"{where}: name is not a string")
                name = text.encode("utf-8", "surrogateescape")
            if size and len(payload) != 8:
                raise StoreError(f"{where}: file {name!r} has no 8-byte CRC-64")
            yield Entry(FILE, position, name=name, size=size, payload=payload)
        else:
            raise StoreError(f"{where}: unknown entry type {kind!r}")


def stream_size(entries: Iterable[Entry]) -> int:
    """Length of the reassembled tar: segment bytes plus file sizes."""
    return sum(len(e.payload) if e.type == SEGMENT else e.size for e in entries)


def clean_name(name: bytes) -> bytes:
    """A member name as a relative path inside the layer root, or ``StoreError``.

    Leading slashes and ``.`` components go (the name is joined under the root, as Docker
    does); ``b""`` is the root itself (``./``, what ``tar -C DIR -cf - .`` writes first). A
    ``..`` component or a NUL byte is refused.
    """
    if b"\x00" in name:
        raise StoreError(f"tar-split name {name!r} contains a NUL byte")
    parts = [p for p in name.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise StoreError(f"tar-split name {name!r} escapes the layer directory")
    return b"/".join(parts)


def go_clean(name: bytes) -> bytes:
    """Go's ``filepath.Clean``: the key under which tar-split refuses duplicate names."""
    rooted = name.startswith(b"/")
    parts: list[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b".." and parts and parts[-1] != b"..":
            parts.pop()
        elif part == b".." and rooted:
            continue
        else:
            parts.append(part)
    cleaned = b"/".join(parts)
    if rooted:
        return b"/" + cleaned
    return cleaned or b"."


# -- planning -----------------------------------------------------------------------------

# Typeflags Go's reader hands out as members with data, and as members without.
_REGULAR = frozenset({b"0", b"\x00", b"7"})
_HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_EXTENSIONS = frozenset({b"x", b"L", b"K"})


def _padding(size: int) -> int:
    return -size % BLOCK_SIZE


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """PAX records as Go's reader takes them (a repeated key: the last wins), linearly."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        if space < 0 or not data[pos:space].isdigit():
            raise InvalidArchive("malformed PAX record")
        end = pos + int(data[pos:space])
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if end > len(data) or end <= space or data[end - 1 : end] != b"\n" or not eq:
            raise InvalidArchive("malformed PAX record")
        records[key] = value
        pos = end
    return records


def _header_fields(block: bytes, pos: int) -> tuple[bytes, int]:
    """The typeflag and size field of a header block, read as leniently as Go's reader does.

    Only the checksum and the size field must be valid: the magic, names and modes are not
    looked at, so no layer the daemon could read is refused here.
    """
    if not looks_like_tar(block):
        raise InvalidArchive(f"no valid tar header at {pos}")
    field = block[124:136]
    if field[0] & 0x80:  # base-256; a negative size is no size
        if field[0] & 0x40:
            raise InvalidArchive(f"negative size in the header at {pos}")
        size = int.from_bytes(bytes([field[0] & 0x3F]) + field[1:], "big")
    else:
        digits = field.strip(b" \x00")
        if digits.translate(None, b"01234567"):
            raise InvalidArchive(f"invalid size field {field!r} in the header at {pos}")
        size = int(digits, 8) if digits else 0
    return block[156:157], size


def _member_header(segment: bytes, skip: int, entry: Entry, what: str) -> tuple[bytes, int]:
    """The typeflag and data size the headers in ``segment`` declare for ``entry``.

    ``segment`` is every raw byte between the previous member's data and this member's data:
    the previous member's padding (``skip`` bytes), extension headers, and the member's header
    (plus, for a PAX global header, its records). Anything else there is a corrupt tar-split.
    """
    pos = skip
    pax: dict[bytes, bytes] = {}
    try:
        while True:
            flag, size = _header_fields(segment[pos : pos + BLOCK_SIZE], pos)
            pos += BLOCK_SIZE
            if flag in _EXTENSIONS or flag == b"g":
                data = segment[pos : pos + size]
                if len(data) != size:
                    raise InvalidArchive(f"extension header at {pos} is cut short")
                pos += size + _padding(size)
                if flag == b"x":
                    pax = _pax_records(data)
                if flag != b"g":
                    continue
            if pos != len(segment):
                raise InvalidArchive(f"{len(segment) - pos} stray bytes after the header")
            if any(key.startswith(b"GNU.sparse.") for key in pax):
                raise InvalidArchive("a sparse file, which Docker cannot export either")
            pax_size = pax.get(b"size")
            return flag, int(pax_size) if pax_size is not None and pax_size.isdigit() else size
    except InvalidArchive as exc:
        raise StoreError(f"{what}: tar-split header of {entry.name!r}: {exc}") from None


def plan_stream(
    entries: Iterable[Entry], check_file: Callable[[bytes, Entry], None], what: str
) -> int:
    """Check every entry of a tar-split stream, before any of it is written; its length.

    Names are cleaned and refused as :func:`clean_name` and the reassembly refuse them,
    duplicates (as tar-split's unpacker compares them) are refused, each member's headers are
    decoded from the raw segments and must declare the size tar-split recorded (a sparse file
    or a hardlink with data, which Docker cannot export either, fails here), and
    ``check_file(cleaned_name, entry)`` is called for every entry with content.
    """
    total = 0
    seen: set[bytes] = set()
    segment = bytearray()
    skip = 0  # the padding after the previous member's data, at the start of ``segment``
    for entry in entries:
        if entry.type == SEGMENT:
            segment += entry.payload
            total += len(entry.payload)
            continue
        total += entry.size
        key = go_clean(entry.name)
        if key in seen:
            raise StoreError(f"{what}: duplicate tar-split name {entry.name!r}")
        seen.add(key)
        name = clean_name(entry.name)
        flag, declared = _member_header(bytes(segment), skip, entry, what)
        if flag in _HEADER_ONLY and entry.size:
            raise StoreError(
                f"{what}: {entry.name!r} has {entry.size} bytes of data but is not a regular "
                "file; Docker cannot export it either"
            )
        if flag in _REGULAR and declared != entry.size:
            raise StoreError(
                f"{what}: {entry.name!r} has {declared} bytes in its tar header but "
                f"{entry.size} in tar-split"
            )
        if entry.size:
            if not name:
                raise StoreError(f"{what}: tar-split name {entry.name!r} names no file")
            check_file(name, entry)
        segment.clear()
        skip = _padding(entry.size)
    return total


# -- reassembly ---------------------------------------------------------------------------

_CHUNK = 1 << 20


class ReassemblingReader(io.RawIOBase):
    """A raw reader of the tar rebuilt from tar-split ``entries``.

    ``open_file(cleaned_name)`` returns a readable binary stream of a file's content; the
    reader reads exactly ``size`` bytes of it, refuses a file that is shorter or longer, and
    (when ``verify``) checks each file's CRC-64 right after its bytes have been handed out.
    A mismatch raises :class:`~tarexport.errors.LayerIntegrityError`.
    """

    def __init__(
        self,
        entries: Iterable[Entry],
        open_file: Callable[[bytes], BinaryIO],
        *,
        verify: bool = True,
        what: str = "layer",
    ) -> None:
        super().__init__()
        self._entries = iter(entries)
        self._open_file = open_file
        self._verify = verify
        self._what = what
        self._pending = memoryview(b"")
        self._file: Optional[BinaryIO] = None
        self._entry: Optional[Entry] = None
        self._left = 0
        self._crc: Optional[CRC64] = None
        self._seen: set[bytes] = set()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while view:
            if self._pending:
                n = min(len(view), len(self._pending))
                view[:n] = self._pending[:n]
                self._pending = self._pending[n:]
                return n
            if self._file is not None:
                return self._read_file(view)
            if not self._next():
                return 0
        return 0

    def _next(self) -> bool:
        entry = next(self._entries, None)
        if entry is None:
            return False
        if entry.type == SEGMENT:
            self._pending = memoryview(entry.payload)
            return True
        name = clean_name(entry.name)
        # tar-split's unpacker refuses a name seen before (as filepath.Clean spells it).
        key = go_clean(entry.name)
        if key in self._seen:
            raise StoreError(f"{self._what}: duplicate tar-split name {entry.name!r}")
        self._seen.add(key)
        if entry.size:
            if not name:
                raise StoreError(f"{self._what}: tar-split name {entry.name!r} names no file")
            self._file = self._open_file(name)
            self._entry = entry
            self._left = entry.size
            self._crc = CRC64() if self._verify else None
        return True

    def _read_file(self, view: memoryview) -> int:
        assert self._file is not None and self._entry is not None
        entry = self._entry
        if self._left:
            want = min(len(view), self._left, _CHUNK)
            got = self._file.readinto(view[:want])  # type: ignore[attr-defined]
            if not got:
                raise LayerIntegrityError(
                    f"{self._what}: file {entry.name!r} is shorter than its "
                    f"{entry.size} bytes in tar-split"
                )
            self._left -= got
            if self._crc is not None:
                self._crc.update(view[:got])
            return int(got)
        extra = self._file.read(1)
        self._file.close()
        self._file = None
        if extra:
            raise LayerIntegrityError(
                f"{self._what}: file {entry.name!r} is longer than its "
                f"{entry.size} bytes in tar-split"
            )
        if self._crc is not None and self._crc.digest() != entry.payload:
            raise LayerIntegrityError(
                f"{self._what}: file integrity checksum failed for {entry.name!r}"
            )
        return self.readinto(view)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()
