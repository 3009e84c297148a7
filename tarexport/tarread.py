"""A strict tar reader for archives that may be hostile.

:func:`parse_header` and :func:`parse_pax_records` are pure functions over header bytes.
:class:`TarReader` pulls blocks from a stream the caller hands it and yields one
:class:`TarMember` per archive member, with PAX and GNU long-name extensions already applied
and every field validated; the caller reads (or skips) each member's body. :class:`MemberIndex`
collects the members of one archive and resolves paths inside it the way a careful extractor
would: symlinks are followed within the archive only, and anything that would leave it is an
:class:`~tarexport.errors.UnsafeArchive`.

Strictness is deliberate. Where tar readers disagree (two PAX headers for one member, a size on
a symlink, a global header that renames things, a name used twice) two tools can see two
different archives in the same bytes, so such archives are rejected rather than interpreted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Optional

import attrs

from .errors import InvalidArchive, UnsafeArchive

__all__ = [
    "BLOCK_SIZE",
    "MemberIndex",
    "MemberType",
    "RawHeader",
    "TarMember",
    "TarReader",
    "clean_member_path",
    "iter_members",
    "looks_like_tar",
    "parse_header",
    "parse_pax_records",
]

BLOCK_SIZE = 512
ZERO_BLOCK = bytes(BLOCK_SIZE)

# Extension headers (PAX records, GNU long names) are read into memory: bound them.
MAX_EXTENSION_SIZE = 1 << 20
# Real PAX headers carry a few records (times, ids, names, a file's xattrs); each record costs
# a step of Python, so their number is bounded too, and the work per byte stays small.
MAX_PAX_RECORDS = 1000
# Go's archive/tar (and the file offsets of every system) hold sizes in a signed 64-bit int.
MAX_TAR_OFFSET = (1 << 63) - 1
# Linux gives up on a path after this many symlinks (ELOOP); so do we.
MAX_SYMLINK_HOPS = 40

_USTAR_MAGIC = b"ustar\x00"
_GNU_MAGIC = b"ustar  \x00"


class MemberType(enum.Enum):
    """What a tar member is."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR_DEVICE = "character device"
    BLOCK_DEVICE = "block device"
    FIFO = "fifo"


_TYPES = {
    b"0": MemberType.FILE,
    b"\x00": MemberType.FILE,
    b"7": MemberType.FILE,  # "contiguous file": a regular file everywhere that matters
    b"1": MemberType.HARDLINK,
    b"2": MemberType.SYMLINK,
    b"3": MemberType.CHAR_DEVICE,
    b"4": MemberType.BLOCK_DEVICE,
    b"5": MemberType.DIRECTORY,
    b"6": MemberType.FIFO,
}
_HEADER_ONLY = frozenset(
    {
        MemberType.DIRECTORY,
        MemberType.SYMLINK,
        MemberType.HARDLINK,
        MemberType.CHAR_DEVICE,
        MemberType.BLOCK_DEVICE,
        MemberType.FIFO,
    }
)
_PAX_LOCAL = b"x"
_PAX_GLOBAL = b"g"
_GNU_LONGNAME = b"L"
_GNU_LONGLINK = b"K"
# Keys that change what a member is; a global header setting them is refused (see module doc).
_PAX_MEMBER_KEYS = frozenset({"path", "linkpath", "size"})


def _padded(size: int) -> int:
    return -(-size // BLOCK_SIZE) * BLOCK_SIZE


# -- header blocks -------------------------------------------------------------------------


@attrs.frozen
class RawHeader:
    """The fields of one 512-byte header block, decoded but not yet merged with extensions."""

    name: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    typeflag: bytes
    linkname: str
    uname: str
    gname: str
    format: str  # "ustar", "gnu" or "v7"


def _c_string(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes, what: str, offset: int) -> int:
    """A numeric field: octal (space/NUL padded) or GNU base-256 (non-negative only)."""
    if field and field[0] & 0x80:
        if field[0] & 0x40:
            raise InvalidArchive(f"tar header at offset {offset}: negative {what}")
        return int.from_bytes(bytes([field[0] & 0x3F]) + field[1:], "big")
    digits = field.strip(b" \x00")
    if not digits:
        return 0
    if digits.translate(None, _OCTAL_DIGITS):
        raise InvalidArchive(f"tar header at offset {offset}: invalid {what} field {field!r}")
    return int(digits, 8)


# Byte-wise work is done by bytes methods in C: a header costs the same few steps of Python
# whatever its content, so a stream of headers is read at a bounded cost per byte.
_OCTAL_DIGITS = b"01234567"
_HIGH_BYTES = bytes(range(0x80, 0x100))


def _checksum_ok(block: bytes) -> bool:
    """Whether the stored checksum matches the unsigned (or, as old tars had it, signed) sum."""
    digits = block[148:156].strip(b" \x00")
    if not digits or digits.translate(None, _OCTAL_DIGITS):
        return False
    stored = int(digits, 8)
    blanked = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blanked)
    if stored == unsigned:
        return True
    high = len(blanked) - len(blanked.translate(None, _HIGH_BYTES))
    return stored == unsigned - 256 * high


def looks_like_tar(block: bytes) -> bool:
    """Whether ``block`` is a tar header block (its checksum holds): a cheap format sniff."""
    return len(block) == BLOCK_SIZE and block != ZERO_BLOCK and _checksum_ok(block)


def parse_header(block: bytes, offset: int = 0) -> RawHeader:
    """Decode and validate one header block (not a zero block); ``offset`` is for messages."""
    if len(block) != BLOCK_SIZE:
        raise InvalidArchive(f"tar header at offset {offset}: short block")
    if not _checksum_ok(block):
        raise InvalidArchive(f"tar header at offset {offset}: bad checksum (not a tar archive?)")
    magic = block[257:265]
    if magic[:6] == _USTAR_MAGIC:
        fmt = "ustar"
    elif magic == _GNU_MAGIC:
        fmt = "gnu"
    elif not magic.strip(b"\x00"):
        fmt = "v7"
    else:
        raise InvalidArchive(f"tar header at offset {offset}: unknown magic {magic!r}")
    name = _c_string(block[0:100])
    if fmt == "ustar":
        prefix = _c_string(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    typeflag = block[156:157]
    return RawHeader(
        name=name,
        mode=_number(block[100:108], "mode", offset),
        uid=_number(block[108:116], "uid", offset),
        gid=_number(block[116:124], "gid", offset),
        size=_number(block[124:136], "size", offset),
        mtime=_number(block[136:148], "mtime", offset),
        typeflag=typeflag,
        linkname=_c_string(block[157:257]),
        uname=_c_string(block[265:297]) if fmt != "v7" else "",
        gname=_c_string(block[297:329]) if fmt != "v7" else "",
        format=fmt,
    )


def parse_pax_records(
    data: bytes, offset: int = 0, *, max_records: int = MAX_PAX_RECORDS
) -> dict[str, str]:
    """Decode PAX extended header records (``"<len> <key>=<value>\\n"`` each).

    Every record is checked: its length, the separator, a non-empty key, a final newline, and
    no NUL in a path. A key given twice is refused (readers disagree on which one wins), and
    so is a header of more than ``max_records`` records. The work is linear in ``data``.
    """
    records: dict[str, str] = {}
    pos = 0
    where = f"PAX header at offset {offset}"
    while pos < len(data):
        if data[pos] == 0 and data.count(0, pos) == len(data) - pos:
            break  # NUL padding some writers leave after the last record
        if len(records) >= max_records:
            raise UnsafeArchive(f"{where}: more than {max_records} records")
        space = data.find(b" ", pos, pos + 20)
        length_text = data[pos:space] if space > 0 else b""
        if not length_text.isdigit() or length_text.startswith(b"0"):
            raise InvalidArchive(f"{where}: malformed record length")
        length = int(length_text)
        end = pos + length
        if length < 5 or end > len(data) or data[end - 1 : end] != b"\n":
            raise InvalidArchive(f"{where}: malformed record")
        key_bytes, eq, value_bytes = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key_bytes:
            raise InvalidArchive(f"{where}: malformed record")
        key = key_bytes.decode("utf-8", "surrogateescape")
        value = value_bytes.decode("utf-8", "surrogateescape")
        if key in records:
            raise UnsafeArchive(f"{where}: record {key!r} given twice")
        if key in ("path", "linkpath", "uname", "gname") and "\x00" in value:
            raise UnsafeArchive(f"{where}: NUL byte in {key!r}")
        if key.startswith("GNU.sparse."):
            raise InvalidArchive(f"{where}: sparse files are not supported")
        records[key] = value
        pos = end
    return records


def _pax_int(records: Mapping[str, str], key: str, where: str) -> Optional[int]:
    text = records.get(key)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise InvalidArchive(f"{where}: invalid PAX {key} {text!r}")
    return int(text)


def _pax_time(records: Mapping[str, str], key: str, where: str) -> Optional[int]:
    text = records.get(key)
    if text is None:
        return None
    whole, _, fraction = text.lstrip("-").partition(".")
    if not (text.isascii() and whole.isdigit()) or (fraction and not fraction.isdigit()):
        raise InvalidArchive(f"{where}: invalid PAX {key} {text!r}")
    return -int(whole) if text.startswith("-") else int(whole)


# -- members -------------------------------------------------------------------------------


def clean_member_path(name: str, what: str = "member") -> str:
    """A member name as a clean archive-relative path (``""`` for the root ``./``).

    Absolute names, ``..`` components and NUL bytes are refused with
    :class:`~tarexport.errors.UnsafeArchive`; ``.`` components, repeated and trailing slashes
    are dropped.
    """
    if "\x00" in name:
        raise UnsafeArchive(f"{what} {name!r}: NUL byte in path")
    if name.startswith("/"):
        raise UnsafeArchive(f"{what} {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{what} {name!r}: '..' in path")
    return "/".join(parts)


@attrs.frozen
class TarMember:
    """One archive member, extensions applied.

    ``path`` is the cleaned name (see :func:`clean_member_path`); ``data_offset`` is where its
    body starts in the (uncompressed) tar stream and ``size`` how long it is (0 for members
    that carry no data). ``header_offset`` is the first block of the member, extensions
    included.
    """

    name: str
    path: str
    type: MemberType
    size: int
    mode: int
    mtime: int
    linkname: str
    uid: int
    gid: int
    uname: str
    gname: str
    header_offset: int
    data_offset: int

    @property
    def is_file(self) -> bool:
        return self.type is MemberType.FILE


Source = Any  # a binary stream with read() (readinto() used when present)


class TarReader:
    """Members of a tar stream, one at a time, with every header checked.

    ``source`` is any readable binary stream. When ``seekable`` is true, unread bodies are
    skipped with ``seek`` (a zero-copy index of a file); otherwise they are read and dropped.
    The archive must end with its two zero blocks: a stream that stops before them is
    truncated, not complete. ``max_members`` bounds the members and PAX global headers read
    (each costs work, and a global header belongs to no member a caller could count).
    """

    def __init__(
        self,
        source: Source,
        *,
        seekable: bool = False,
        max_extension_size: int = MAX_EXTENSION_SIZE,
        max_members: Optional[int] = None,
    ) -> None:
        self._source = source
        self._seekable = seekable
        self._max_extension = max_extension_size
        self._max_members = max_members
        self._entries = 0  # members and global headers
        self.offset = 0  # bytes of the tar stream consumed so far
        self._body_left = 0  # unread body bytes of the current member
        self._pad_left = 0
        self._done = False
        self._members = 0

    # -- raw input ---------------------------------------------------------------------

    def _read_some(self, n: int) -> bytes:
        data = self._source.read(n)
        return b"" if data is None else bytes(data)

    def _read_exact(self, n: int, what: str) -> bytes:
        parts = []
        left = n
        while left:
            chunk = self._read_some(min(left, 1 << 20))
            if not chunk:
                raise InvalidArchive(
                    f"truncated tar stream: it ends inside {what} at offset {self.offset}"
                )
            parts.append(chunk)
            left -= len(chunk)
            self.offset += len(chunk)
        return b"".join(parts)

    def _skip(self, n: int, what: str) -> None:
        if n <= 0:
            return
        if self._seekable:
            self._source.seek(n, 1)
            self.offset += n
            return
        buffer = bytearray(min(n, 1 << 20))
        view = memoryview(buffer)
        while n:
            got = self._readinto(view[: min(n, len(view))])
            if not got:
                raise InvalidArchive(
                    f"truncated tar stream: it ends inside {what} at offset {self.offset}"
                )
            n -= got
            self.offset += got

    def _readinto(self, view: memoryview) -> int:
        method = getattr(self._source, "readinto", None)
        if method is not None:
            got = method(view)
            return 0 if got is None else int(got)
        data = self._read_some(len(view))
        view[: len(data)] = data
        return len(data)

    # -- bodies -------------------------------------------------------------------------

    def readinto(self, view: memoryview) -> int:
        """Read the current member's body into ``view``; 0 once the body is exhausted."""
        if self._body_left <= 0:
            return 0
        want = min(len(view), self._body_left)
        got = self._readinto(view[:want])
        if not got:
            raise InvalidArchive(
                f"truncated tar stream: it ends inside a member's data at offset {self.offset}"
            )
        self._body_left -= got
        self.offset += got
        return got

    def read_body(self, limit: int) -> bytes:
        """The whole remaining body of the current member (at most ``limit`` bytes)."""
        if self._body_left > limit:
            raise UnsafeArchive(f"tar member at offset {self.offset} is over {limit} bytes")
        data = self._read_exact(self._body_left, "a member's data")
        self._body_left = 0
        return data

    def _finish_member(self) -> None:
        self._skip(self._body_left, "a member's data")
        self._body_left = 0
        self._skip(self._pad_left, "padding")
        self._pad_left = 0

    # -- headers ------------------------------------------------------------------------

    def _read_extension(self, header: RawHeader, start: int) -> bytes:
        if header.size > self._max_extension:
            raise UnsafeArchive(
                f"tar extension header at offset {start} is {header.size} bytes "
                f"(limit {self._max_extension})"
            )
        data = self._read_exact(header.size, "an extension header")
        self._skip(_padded(header.size) - header.size, "padding")
        return data

    def next(self) -> Optional[TarMember]:
        """The next member, or ``None`` at the end-of-archive marker.

        Whatever the caller did not read of the previous member's body is skipped first.
        """
        if self._done:
            return None
        self._finish_member()
        start = self.offset
        pax: Optional[dict[str, str]] = None
        long_name: Optional[str] = None
        long_link: Optional[str] = None
        while True:
            block_offset = self.offset
            block = self._read_block(first=(self._members == 0 and block_offset == start))
            if block is None:
                if pax is not None or long_name is not None or long_link is not None:
                    raise InvalidArchive(
                        f"tar extension header at offset {start} is not followed by a member"
                    )
                self._done = True
                return None
            header = parse_header(block, block_offset)
            flag = header.typeflag
            if flag not in (_PAX_LOCAL, _GNU_LONGNAME, _GNU_LONGLINK):
                self._count_entry(block_offset)
            if flag == _PAX_LOCAL:
                if pax is not None:
                    raise UnsafeArchive(f"two PAX headers for one member at offset {start}")
                pax = parse_pax_records(self._read_extension(header, block_offset), block_offset)
                continue
            if flag == _PAX_GLOBAL:
                records = parse_pax_records(
                    self._read_extension(header, block_offset), block_offset
                )
                changed = _PAX_MEMBER_KEYS & records.keys()
                if changed:
                    raise UnsafeArchive(
                        f"PAX global header at offset {block_offset} sets {sorted(changed)}"
                    )
                continue
            if flag in (_GNU_LONGNAME, _GNU_LONGLINK):
                text = self._read_extension(header, block_offset).rstrip(b"\x00")
                value = text.decode("utf-8", "surrogateescape")
                if "\x00" in value:
                    raise UnsafeArchive(f"GNU long name at offset {block_offset} has a NUL byte")
                if flag == _GNU_LONGNAME:
                    if long_name is not None:
                        raise UnsafeArchive(f"two GNU long names for one member at offset {start}")
                    long_name = value
                else:
                    if long_link is not None:
                        raise UnsafeArchive(f"two GNU long links for one member at offset {start}")
                    long_link = value
                continue
            return self._member(header, pax or {}, long_name, long_link, start, block_offset)

    def _count_entry(self, offset: int) -> None:
        if self._max_members is not None and self._entries >= self._max_members:
            raise UnsafeArchive(
                f"archive has more than {self._max_members} members (at offset {offset})"
            )
        self._entries += 1

    def _read_block(self, first: bool) -> Optional[bytes]:
        """One header block; ``None`` at a proper end-of-archive marker (two zero blocks)."""
        block = self._read_some(BLOCK_SIZE)
        while 0 < len(block) < BLOCK_SIZE:
            more = self._read_some(BLOCK_SIZE - len(block))
            if not more:
                break
            block += more
        if not block:
            if first and self.offset == 0:
                raise InvalidArchive("not a tar archive: the stream is empty")
            raise InvalidArchive(
                f"truncated tar stream: no end-of-archive marker at offset {self.offset}"
            )
        if len(block) < BLOCK_SIZE:
            raise InvalidArchive(f"truncated tar stream: partial block at offset {self.offset}")
        self.offset += BLOCK_SIZE
        if block != ZERO_BLOCK:
            if first and not _checksum_ok(block):
                raise InvalidArchive("not a tar archive: the first block is not a tar header")
            return block
        second = self._read_exact(BLOCK_SIZE, "the end-of-archive marker")
        if second != ZERO_BLOCK:
            raise InvalidArchive(
                f"tar stream has a lone zero block at offset {self.offset - 2 * BLOCK_SIZE}"
            )
        return None

    def _member(
        self,
        header: RawHeader,
        pax: Mapping[str, str],
        long_name: Optional[str],
        long_link: Optional[str],
        start: int,
        block_offset: int,
    ) -> TarMember:
        where = f"tar member at offset {start}"
        kind = _TYPES.get(header.typeflag)
        if kind is None:
            raise InvalidArchive(f"{where}: unsupported entry type {header.typeflag!r}")
        name = pax.get("path", long_name if long_name is not None else header.name)
        linkname = pax.get("linkpath", long_link if long_link is not None else header.linkname)
        if kind is MemberType.FILE and header.typeflag == b"\x00" and name.endswith("/"):
            kind = MemberType.DIRECTORY  # pre-POSIX tars mark directories with a slash only
        size = _pax_int(pax, "size", where)
        if size is None:
            size = header.size
        if size + self.offset + BLOCK_SIZE > MAX_TAR_OFFSET:
            raise InvalidArchive(f"{where} ({name!r}): size {size} is beyond what a tar can hold")
        if kind in _HEADER_ONLY and size:
            raise UnsafeArchive(f"{where} ({name!r}): a {kind.value} with {size} bytes of data")
        mtime = _pax_time(pax, "mtime", where)
        uid = _pax_int(pax, "uid", where)
        gid = _pax_int(pax, "gid", where)
        if not name:
            raise InvalidArchive(f"{where}: empty name")
        path = clean_member_path(name)
        if not path and kind is not MemberType.DIRECTORY:
            raise UnsafeArchive(f"{where}: {name!r} names the archive root")
        self._members += 1
        self._body_left = size
        self._pad_left = _padded(size) - size
        return TarMember(
            name=name,
            path=path,
            type=kind,
            size=size,
            mode=header.mode,
            mtime=header.mtime if mtime is None else mtime,
            linkname=linkname,
            uid=header.uid if uid is None else uid,
            gid=header.gid if gid is None else gid,
            uname=pax.get("uname", header.uname),
            gname=pax.get("gname", header.gname),
            header_offset=start,
            data_offset=self.offset,
        )

    def __iter__(self) -> Iterator[TarMember]:
        while True:
            member = self.next()
            if member is None:
                return
            yield member


# -- the members of one archive ----------------------------------------------------------


def _link_target(link_path: str, target: str) -> str:
    """Where a relative symlink target points, lexically, from the link's directory."""
    parts = link_path.split("/")[:-1]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeArchive(
                    f"symlink {link_path!r} -> {target!r} points outside the archive"
                )
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class MemberIndex:
    """The members of one archive by path, checked as they are added.

    Refused on :meth:`add` (:class:`~tarexport.errors.UnsafeArchive`): device and fifo
    members, a second non-directory member with a path already used, symlinks with an
    absolute target or one that climbs out of the archive, hardlinks whose target is not an
    earlier regular file of the archive. :meth:`check_links` (once every member is in) also
    refuses symlink loops. ``max_members`` bounds the index.
    """

    def __init__(self, max_members: Optional[int] = None) -> None:
        self._members: dict[str, TarMember] = {}
        self._order: list[str] = []
        self._max = max_members
        self._added = 0  # every member, a directory repeated included: each one costs work

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, path: object) -> bool:
        return path in self._members

    def get(self, path: str) -> Optional[TarMember]:
        return self._members.get(path)

    def members(self) -> list[TarMember]:
        """Every member in archive order (a directory listed twice appears once)."""
        return [self._members[p] for p in self._order]

    def add(self, member: TarMember) -> None:
        kind = member.type
        if kind in (MemberType.CHAR_DEVICE, MemberType.BLOCK_DEVICE, MemberType.FIFO):
            raise UnsafeArchive(f"archive member {member.name!r} is a {kind.value}")
        if self._max is not None and self._added >= self._max:
            raise UnsafeArchive(f"archive has more than {self._max} members")
        self._added += 1
        previous = self._members.get(member.path)
        if previous is not None:
            if previous.type is MemberType.DIRECTORY and kind is MemberType.DIRECTORY:
                return
            raise UnsafeArchive(f"archive member {member.path!r} appears more than once")
        if kind is MemberType.SYMLINK:
            if not member.linkname:
                raise InvalidArchive(f"symlink {member.path!r} has an empty target")
            if member.linkname.startswith("/"):
                raise UnsafeArchive(
                    f"symlink {member.path!r} -> {member.linkname!r} points outside the archive"
                )
            if "\x00" in member.linkname:
                raise UnsafeArchive(f"symlink {member.path!r}: NUL byte in target")
            _link_target(member.path, member.linkname)
        elif kind is MemberType.HARDLINK:
            target_path = clean_member_path(member.linkname, f"hardlink {member.path!r} target")
            target = self._members.get(target_path)
            if target is None:
                raise UnsafeArchive(
                    f"hardlink {member.path!r} -> {member.linkname!r}: no earlier member "
                    "of that name in the archive"
                )
            if target.type not in (MemberType.FILE, MemberType.HARDLINK):
                raise UnsafeArchive(
                    f"hardlink {member.path!r} -> {member.linkname!r} is not a link to a file"
                )
        self._members[member.path] = member
        self._order.append(member.path)

    def check_links(self) -> None:
        """Resolve every symlink once: loops and escapes are refused, dangling links are not."""
        for member in self._members.values():
            if member.type is MemberType.SYMLINK:
                self._walk(member.path, member.path)

    def _walk(self, path: str, what: str) -> Optional[str]:
        """The path ``path`` leads to with every symlink followed (``None`` if it goes nowhere)."""
        pending = [p for p in reversed(path.split("/")) if p]
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise UnsafeArchive(f"{what!r} resolves outside the archive")
                resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            member = self._members.get(candidate)
            if member is not None and member.type is MemberType.SYMLINK:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise UnsafeArchive(
                        f"{what!r}: symlink loop (more than {MAX_SYMLINK_HOPS} hops)"
                    )
                if member.linkname.startswith("/"):
                    raise UnsafeArchive(f"{what!r} resolves outside the archive")
                pending.extend(p for p in reversed(member.linkname.split("/")) if p)
                continue
            if pending and member is not None and member.type is not MemberType.DIRECTORY:
                return None  # a file used as a directory: nothing there
            resolved.append(part)
        return "/".join(resolved)

    def resolve(self, path: str, what: str) -> TarMember:
        """The regular-file member that archive path ``path`` (from a manifest) leads to.

        Symlinks are followed inside the archive and hardlinks to their target. Escapes and
        loops raise :class:`~tarexport.errors.UnsafeArchive`; a missing member, a directory or
        an empty path raises :class:`~tarexport.errors.InvalidArchive`.
        """
        if not path:
            raise InvalidArchive(f"{what}: empty path")
        if "\x00" in path:
            raise UnsafeArchive(f"{what} {path!r}: NUL byte in path")
        if path.startswith("/"):
            raise UnsafeArchive(f"{what} {path!r}: absolute path")
        target = self._walk(path, path)
        member = self._members.get(target) if target else None
        if member is None:
            raise InvalidArchive(f"{what} {path!r}: no such file in the archive")
        seen = 0
        while member.type is MemberType.HARDLINK:
            seen += 1
            if seen > len(self._members):
                raise UnsafeArchive(f"{what} {path!r}: hardlink loop")
            next_member = self._members.get(clean_member_path(member.linkname))
            if next_member is None:
                raise InvalidArchive(f"{what} {path!r}: dangling hardlink")
            member = next_member
        if member.type is MemberType.DIRECTORY:
            raise InvalidArchive(f"{what} {path!r} is a directory, not a file")
        if member.type is not MemberType.FILE:
            raise UnsafeArchive(f"{what} {path!r} is a {member.type.value}, not a file")
        return member


def iter_members(source: BinaryIO, **kwargs: Any) -> Iterator[TarMember]:
    """Shorthand: every member of the tar stream ``source``."""
    return iter(TarReader(source, **kwargs))
