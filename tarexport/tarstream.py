"""Tar headers byte-identical to those Go's ``archive/tar`` writes for ``docker save``.

moby asks Go for a PAX-capable header, and Go then writes a plain USTAR block whenever USTAR
can hold every field; only a field USTAR cannot hold (a size or mtime of 8^11 or more, a long
or non-ASCII name that has no USTAR prefix split, a long link name or owner name) makes it
write a PAX ``x`` header first. Both paths are reproduced here field by field, including
Go's quirks: the ``PaxHeaders.0`` naming, zero-filled overflow fields, the device fields
written as octal zero on every normal header, and the two-block end of archive without
record padding. Pure: no I/O.
"""

from __future__ import annotations

from typing import Optional

import attrs

from .errors import TarHeaderError

__all__ = [
    "BLOCK_SIZE",
    "DIRTYPE",
    "END_OF_ARCHIVE",
    "HEADER_FIELDS",
    "REGTYPE",
    "SYMTYPE",
    "XHDTYPE",
    "TarHeader",
    "header_difference",
    "header_fields",
    "padded_size",
    "padding",
]

BLOCK_SIZE = 512

REGTYPE = "0"
DIRTYPE = "5"
SYMTYPE = "2"
XHDTYPE = "x"  # a PAX extended header; written by encode(), never requested

END_OF_ARCHIVE = bytes(2 * BLOCK_SIZE)
"""Go's trailer: exactly two zero blocks, not padded to a 10 KiB record as Python pads."""

# (field, offset, length) of a USTAR header block.
HEADER_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("name", 0, 100),
    ("mode", 100, 8),
    ("uid", 108, 8),
    ("gid", 116, 8),
    ("size", 124, 12),
    ("mtime", 136, 12),
    ("chksum", 148, 8),
    ("typeflag", 156, 1),
    ("linkname", 157, 100),
    ("magic", 257, 6),
    ("version", 263, 2),
    ("uname", 265, 32),
    ("gname", 297, 32),
    ("devmajor", 329, 8),
    ("devminor", 337, 8),
    ("prefix", 345, 155),
    ("pad", 500, 12),
)
_FIELD = {name: (offset, length) for name, offset, length in HEADER_FIELDS}

_NAME_SIZE = 100
_PREFIX_SIZE = 155
_OWNER_SIZE = 32
_NUMERIC_LIMIT = 8**11  # the 12-byte size and mtime fields hold 11 octal digits
_INT64 = 2**63

_TYPE_BITS = {REGTYPE: 0o100000, DIRTYPE: 0o040000, SYMTYPE: 0o120000}
_PAX_DIR = "PaxHeaders.0"
_PAX_LIMIT = 1 << 20  # Go refuses extended headers larger than this


def padded_size(size: int) -> int:
    """``size`` rounded up to a whole number of 512-byte blocks."""
    return -(-size // BLOCK_SIZE) * BLOCK_SIZE


def padding(size: int) -> bytes:
    """The NULs that follow ``size`` bytes of entry data up to the next block boundary."""
    return bytes(-size % BLOCK_SIZE)


# -- validation ---------------------------------------------------------------------------


def _check_text(header: TarHeader, field: str, value: object) -> None:
    if not isinstance(value, str):
        raise TarHeaderError(f"tar header {header.name!r}: {field} must be a str")
    if "\x00" in value:
        raise TarHeaderError(f"tar header {header.name!r}: NUL byte in {field} {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise TarHeaderError(
            f"tar header {header.name!r}: {field} {value!r} is not valid UTF-8"
        ) from None


def _check_int(header: TarHeader, field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TarHeaderError(f"tar header {header.name!r}: {field} must be an int")
    if not low <= value < high:
        raise TarHeaderError(f"tar header {header.name!r}: {field} {value} out of range")


@attrs.frozen
class TarHeader:
    """One tar member's header as moby's ``archive.Tar`` fills it in; uid and gid are 0."""

    name: str  # directories end with "/"
    typeflag: str  # REGTYPE, DIRTYPE or SYMTYPE
    size: int = 0
    mtime: int = 0  # whole seconds since the epoch
    mode: int = 0o644  # permission bits; encode() adds the file-type bits if type_bits
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    type_bits: bool = True  # mode carries S_IFMT bits, as Docker 17.07 to 23 writes it

    def __attrs_post_init__(self) -> None:
        for field in ("name", "linkname", "uname", "gname"):
            _check_text(self, field, getattr(self, field))
        if self.typeflag not in _TYPE_BITS:
            raise TarHeaderError(f"tar header {self.name!r}: unknown typeflag {self.typeflag!r}")
        if not self.name:
            raise TarHeaderError("tar header: empty name")
        if self.typeflag == DIRTYPE and not self.name.endswith("/"):
            raise TarHeaderError(f"tar header {self.name!r}: a directory name must end in '/'")
        if self.typeflag == REGTYPE and self.name.endswith("/"):
            raise TarHeaderError(f"tar header {self.name!r}: a file name may not end in '/'")
        if self.typeflag == SYMTYPE and not self.linkname:
            raise TarHeaderError(f"tar header {self.name!r}: a symlink needs a linkname")
        if self.typeflag != SYMTYPE and self.linkname:
            raise TarHeaderError(f"tar header {self.name!r}: only a symlink has a linkname")
        _check_int(self, "size", self.size, 0, _INT64)
        if self.typeflag != REGTYPE and self.size:
            raise TarHeaderError(
                f"tar header {self.name!r}: size {self.size} on a header-only type"
            )
        _check_int(self, "mtime", self.mtime, -_INT64, _INT64)
        _check_int(self, "mode", self.mode, 0, 0o10000)
        if not isinstance(self.type_bits, bool):
            raise TarHeaderError(f"tar header {self.name!r}: type_bits must be a bool")

    @property
    def mode_field(self) -> int:
        """The value of the mode field: permissions, plus the type bits when asked for."""
        return self.mode | (_TYPE_BITS[self.typeflag] if self.type_bits else 0)

    def pax_records(self) -> dict[str, str]:
        """The PAX records Go would collect for this header (sorted by key).

        A long or non-ASCII name is recorded even when a USTAR prefix split could hold it;
        the records are only written when some field rules USTAR out (see :meth:`needs_pax`).
        """
        records: dict[str, str] = {}
        for key, value, size in (
            ("path", self.name, _NAME_SIZE),
            ("linkpath", self.linkname, _NAME_SIZE),
            ("uname", self.uname, _OWNER_SIZE),
            ("gname", self.gname, _OWNER_SIZE),
        ):
            if not value.isascii() or len(value) > size:
                records[key] = value
        if self.size >= _NUMERIC_LIMIT:
            records["size"] = str(self.size)
        if not 0 <= self.mtime < _NUMERIC_LIMIT:
            records["mtime"] = str(self.mtime)
        return dict(sorted(records.items()))

    def needs_pax(self) -> bool:
        """Whether Go must write a PAX header: some field does not fit a USTAR block."""
        for key in self.pax_records():
            if key != "path" or _split_ustar_path(self.name) is None:
                return True
        return False

    def encode(self) -> bytes:
        """The header block(s): one USTAR block, or a PAX ``x`` header, its records and a block."""
        if not self.needs_pax():
            return self._ustar_block()
        records = "".join(
            _pax_record(key, value) for key, value in self.pax_records().items()
        ).encode("utf-8")
        if len(records) > _PAX_LIMIT:
            raise TarHeaderError(f"tar header {self.name[:64]!r}...: PAX records over 1 MiB")
        dir_, base = _go_split(self.name)
        pax_name = _go_join(dir_, _PAX_DIR, base)
        pax_name = _to_ascii(pax_name)[:_NAME_SIZE].rstrip("/")
        block = bytearray(BLOCK_SIZE)
        _put_string(block, "name", pax_name)
        _put_octal(block, "mode", 0)
        _put_octal(block, "uid", 0)
        _put_octal(block, "gid", 0)
        _put_octal(block, "size", len(records))
        _put_octal(block, "mtime", 0)
        block[_FIELD["typeflag"][0]] = ord(XHDTYPE)
        # uname, gname, devmajor, devminor and prefix stay NUL in Go's extended header.
        _finish(block)
        return bytes(block) + records + padding(len(records)) + self._pax_main_block()

    # -- the two shapes of main block -------------------------------------------------------

    def _template(self, name: str, ascii_only: bool) -> bytearray:
        """The fields shared by Go's USTAR and PAX main blocks (``templateV7Plus``)."""

        def text(value: str) -> str:
            return _to_ascii(value) if ascii_only else value

        block = bytearray(BLOCK_SIZE)
        block[_FIELD["typeflag"][0]] = ord(self.typeflag)
        _put_string(block, "name", text(name))
        _put_string(block, "linkname", text(self.linkname))
        _put_octal(block, "mode", self.mode_field)
        _put_octal(block, "uid", 0)
        _put_octal(block, "gid", 0)
        _put_octal(block, "size", self.size)
        _put_octal(block, "mtime", self.mtime)
        _put_string(block, "uname", text(self.uname))
        _put_string(block, "gname", text(self.gname))
        _put_octal(block, "devmajor", 0)
        _put_octal(block, "devminor", 0)
        return block

    def _ustar_block(self) -> bytes:
        prefix, name = "", self.name
        split = _split_ustar_path(self.name)
        if split is not None:
            prefix, name = split
        block = self._template(name, ascii_only=False)
        _put_string(block, "prefix", prefix)
        _finish(block)
        return bytes(block)

    def _pax_main_block(self) -> bytes:
        # Fields the records carry are cut or zeroed here; the prefix is never used.
        block = self._template(self.name, ascii_only=True)
        _finish(block)
        return bytes(block)


# -- Go's field formatting ----------------------------------------------------------------


def _put_string(block: bytearray, field: str, value: str) -> None:
    """Go's ``formatString``: copy what fits, NUL-terminate if there is room.

    When a value is cut and the cut ends in ``/``, Go writes one NUL over the first of the
    trailing slashes, so that readers do not take a cut file name for a directory.
    """
    offset, length = _FIELD[field]
    data = value.encode("utf-8")
    cut = data[:length]
    block[offset : offset + len(cut)] = cut
    if len(data) < length:
        block[offset + len(data)] = 0
    if len(data) > length and cut.endswith(b"/"):
        block[offset + len(cut.rstrip(b"/"))] = 0


def _put_octal(block: bytearray, field: str, value: int) -> None:
    """Go's ``formatOctal``: zero-padded digits and a NUL; a value that does not fit is 0."""
    _, length = _FIELD[field]
    if not 0 <= value < 8 ** (length - 1):
        value = 0
    _put_string(block, field, format(value, "o").zfill(length - 1))


def _finish(block: bytearray) -> None:
    """Set the USTAR magic and version, then the checksum (``%06o``, NUL, space)."""
    offset, _ = _FIELD["magic"]
    block[offset : offset + 8] = b"ustar\x0000"
    offset, length = _FIELD["chksum"]
    block[offset : offset + length] = b" " * length
    block[offset : offset + length] = b"%06o\x00 " % sum(block)


def _to_ascii(value: str) -> str:
    """Go's ``toASCII``: drop every non-ASCII character."""
    if value.isascii():
        return value
    return "".join(c for c in value if c < "\x80")


def _split_ustar_path(name: str) -> Optional[tuple[str, str]]:
    """Go's ``splitUSTARPath``: split at the last ``/`` of the first 156 bytes, if valid."""
    length = len(name)
    if length <= _NAME_SIZE or not name.isascii():
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name.endswith("/"):
        length -= 1
    i = name.rfind("/", 0, length)
    suffix_length = len(name) - i - 1
    if i <= 0 or suffix_length > _NAME_SIZE or suffix_length == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1 :]


def _pax_record(key: str, value: str) -> str:
    """``"<len> key=value\\n"`` where ``len`` counts the whole record, its own digits too."""
    body = len(key.encode("utf-8")) + len(value.encode("utf-8")) + 3  # " ", "=", "\n"
    size = body + len(str(body))
    if len(str(size)) != len(str(body)):
        size = body + len(str(size))
    return f"{size} {key}={value}\n"


def _go_split(path: str) -> tuple[str, str]:
    """Go's ``path.Split``: everything up to and including the last ``/``, and the rest."""
    i = path.rfind("/") + 1
    return path[:i], path[i:]


def _go_join(*parts: str) -> str:
    """Go's ``path.Join``: the non-empty parts joined by ``/``, then cleaned."""
    joined = "/".join(part for part in parts if part)
    return _go_clean(joined) if joined else ""


def _go_clean(path: str) -> str:
    """Go's ``path.Clean`` (unlike ``posixpath.normpath``, ``//a`` becomes ``/a``)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


# -- comparing headers --------------------------------------------------------------------


def header_fields(block: bytes) -> dict[str, bytes]:
    """The raw bytes of each USTAR field of one 512-byte header block."""
    if len(block) != BLOCK_SIZE:
        raise TarHeaderError(f"a tar header block is {BLOCK_SIZE} bytes, not {len(block)}")
    return {name: bytes(block[o : o + n]) for name, o, n in HEADER_FIELDS}


def header_difference(expected: bytes, actual: bytes) -> Optional[str]:
    """Where two runs of header blocks first differ, as ``block N field F: ...``; else None.

    Blocks that are PAX record data rather than headers are compared as a whole.
    """
    if expected == actual:
        return None
    for index in range(0, max(len(expected), len(actual)), BLOCK_SIZE):
        want = expected[index : index + BLOCK_SIZE]
        got = actual[index : index + BLOCK_SIZE]
        if want == got:
            continue
        block = index // BLOCK_SIZE
        if len(want) != BLOCK_SIZE or len(got) != BLOCK_SIZE:
            return f"block {block}: expected {len(want)} bytes, got {len(got)}"
        for name, offset, length in HEADER_FIELDS:
            a, b = want[offset : offset + length], got[offset : offset + length]
            if a != b:
                return f"block {block} field {name}: expected {a!r}, got {b!r}"
    return f"lengths differ: expected {len(expected)} bytes, got {len(actual)}"
