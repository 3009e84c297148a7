"""Layer tar headers: every member type a layer may hold, encoded as Go's ``archive/tar`` does.

:class:`~tarexport.tarstream.TarHeader` covers the few member kinds of a ``docker save``
archive (root-owned files, directories, symlinks). A layer needs the rest: owners, hard
links, device nodes, FIFOs and extended attributes. Encoding follows the same rules (a USTAR
block whenever every field fits, else a PAX ``x`` header first, records sorted by key), so a
layer built here reads like one Docker wrote. Pure: no I/O.
"""

from __future__ import annotations

from typing import Optional

import attrs

from ..errors import TarHeaderError
from ..tarstream import (
    _FIELD,
    _NAME_SIZE,
    _OWNER_SIZE,
    _PAX_DIR,
    _PAX_LIMIT,
    BLOCK_SIZE,
    XHDTYPE,
    _finish,
    _go_join,
    _go_split,
    _put_octal,
    _put_string,
    _split_ustar_path,
    _to_ascii,
    padding,
)

__all__ = [
    "BLKTYPE",
    "CHRTYPE",
    "DIRTYPE",
    "FIFOTYPE",
    "LNKTYPE",
    "REGTYPE",
    "SYMTYPE",
    "MemberHeader",
]

REGTYPE = "0"
LNKTYPE = "1"
SYMTYPE = "2"
CHRTYPE = "3"
BLKTYPE = "4"
DIRTYPE = "5"
FIFOTYPE = "6"

_TYPES = frozenset({REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE})
_NUMERIC_LIMIT = 8**11  # size, mtime: 11 octal digits
_ID_LIMIT = 8**7  # uid, gid: 7 octal digits
_DEV_LIMIT = 8**7


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"<len> key=value\\n"``, the length counting the whole record, its own digits too."""
    body = len(key) + len(value) + 3
    size = body + len(str(body))
    if len(str(size)) != len(str(body)):
        size = body + len(str(size))
    return b"%d %s=%s\n" % (size, key, value)


@attrs.frozen
class MemberHeader:
    """One layer member's header. ``xattrs`` maps attribute names to their raw values."""

    name: str
    typeflag: str
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.typeflag not in _TYPES:
            raise TarHeaderError(f"tar header {self.name!r}: unknown typeflag {self.typeflag!r}")
        for field in ("name", "linkname", "uname", "gname"):
            value = getattr(self, field)
            if "\x00" in value:
                raise TarHeaderError(f"tar header {self.name!r}: NUL byte in {field}")
        if self.size and self.typeflag != REGTYPE:
            raise TarHeaderError(f"tar header {self.name!r}: size on a header-only type")
        if not 0 <= self.mode < 0o10000:
            raise TarHeaderError(f"tar header {self.name!r}: mode {self.mode:o} out of range")
        for field in ("uid", "gid", "size", "devmajor", "devminor"):
            if getattr(self, field) < 0:
                raise TarHeaderError(f"tar header {self.name!r}: negative {field}")

    def pax_records(self) -> list[tuple[bytes, bytes]]:
        """The PAX records this header needs, sorted by key (empty: USTAR holds it all)."""
        records: dict[bytes, bytes] = {}
        path_fits = self.name.isascii() and (
            len(self.name) <= _NAME_SIZE or _split_ustar_path(self.name) is not None
        )
        if not path_fits:
            records[b"path"] = self.name.encode("utf-8", "surrogateescape")
        if not self.linkname.isascii() or len(self.linkname) > _NAME_SIZE:
            records[b"linkpath"] = self.linkname.encode("utf-8", "surrogateescape")
        for key, value in (("uname", self.uname), ("gname", self.gname)):
            if not value.isascii() or len(value) > _OWNER_SIZE:
                records[key.encode()] = value.encode("utf-8")
        for key, number in (("uid", self.uid), ("gid", self.gid)):
            if number >= _ID_LIMIT:
                records[key.encode()] = str(number).encode()
        if self.size >= _NUMERIC_LIMIT:
            records[b"size"] = str(self.size).encode()
        if not 0 <= self.mtime < _NUMERIC_LIMIT:
            records[b"mtime"] = str(self.mtime).encode()
        if self.devmajor >= _DEV_LIMIT or self.devminor >= _DEV_LIMIT:
            raise TarHeaderError(f"tar header {self.name!r}: device number out of range")
        for xattr, raw in self.xattrs:
            records[b"SCHILY.xattr." + xattr.encode("utf-8", "surrogateescape")] = raw
        return sorted(records.items())

    def encode(self) -> bytes:
        """The header block(s): a USTAR block, or a PAX ``x`` header, its records and a block."""
        fast = self._plain_ustar()
        if fast is not None:
            return fast
        records = self.pax_records()
        if not records:
            return self._block(self.name, self.linkname, ustar=True)
        data = b"".join(_pax_record(key, value) for key, value in records)
        if len(data) > _PAX_LIMIT:
            raise TarHeaderError(f"tar header {self.name[:64]!r}...: PAX records over 1 MiB")
        dir_, base = _go_split(self.name)
        pax_name = _to_ascii(_go_join(dir_, _PAX_DIR, base))[:_NAME_SIZE].rstrip("/")
        block = bytearray(BLOCK_SIZE)
        _put_string(block, "name", pax_name)
        for field in ("mode", "uid", "gid", "mtime"):
            _put_octal(block, field, 0)
        _put_octal(block, "size", len(data))
        block[_FIELD["typeflag"][0]] = ord(XHDTYPE)
        _finish(block)
        main = self._block(_to_ascii(self.name), _to_ascii(self.linkname), ustar=False)
        return bytes(block) + data + padding(len(data)) + main

    def _plain_ustar(self) -> Optional[bytes]:
        """The common case in one go: short ASCII names, small numbers, no xattrs.

        The same bytes as :meth:`_block` writes (a test holds the two side by side), built
        without a per-field loop: a layer of many small files has one header per file.
        """
        name, linkname = self.name, self.linkname
        if (
            self.xattrs
            or len(name) > _NAME_SIZE
            or len(linkname) > _NAME_SIZE
            or len(self.uname) > _OWNER_SIZE
            or len(self.gname) > _OWNER_SIZE
            or not (name + linkname + self.uname + self.gname).isascii()
            or self.uid >= _ID_LIMIT
            or self.gid >= _ID_LIMIT
            or self.size >= _NUMERIC_LIMIT
            or not 0 <= self.mtime < _NUMERIC_LIMIT
            or self.devmajor >= _DEV_LIMIT
            or self.devminor >= _DEV_LIMIT
        ):
            return None
        block = b"".join((
            name.encode().ljust(100, b"\0"),
            b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (
                self.mode, self.uid, self.gid, self.size, self.mtime),
            self.typeflag.encode(),
            linkname.encode().ljust(100, b"\0"),
            b"ustar\x0000",
            self.uname.encode().ljust(32, b"\0"),
            self.gname.encode().ljust(32, b"\0"),
            b"%07o\0%07o\0" % (self.devmajor, self.devminor),
            bytes(167),  # prefix (155) and padding (12)
        ))
        return b"%s%06o\0 %s" % (block[:148], sum(block), block[156:])

    def _block(self, name: str, linkname: str, *, ustar: bool) -> bytes:
        block = bytearray(BLOCK_SIZE)
        prefix = ""
        if ustar:
            split = _split_ustar_path(name)
            if split is not None:
                prefix, name = split
        block[_FIELD["typeflag"][0]] = ord(self.typeflag)
        _put_string(block, "name", name)
        _put_string(block, "linkname", linkname)
        _put_octal(block, "mode", self.mode)
        _put_octal(block, "uid", self.uid)
        _put_octal(block, "gid", self.gid)
        _put_octal(block, "size", self.size)
        _put_octal(block, "mtime", self.mtime)
        _put_string(block, "uname", _to_ascii(self.uname) if not ustar else self.uname)
        _put_string(block, "gname", _to_ascii(self.gname) if not ustar else self.gname)
        _put_octal(block, "devmajor", self.devmajor)
        _put_octal(block, "devminor", self.devminor)
        if prefix:
            _put_string(block, "prefix", prefix)
        _finish(block)
        return bytes(block)
