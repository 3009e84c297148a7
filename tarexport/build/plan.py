"""The layer planner: from nodes (what goes into the layer) to every tar member, before I/O.

Pure. Nodes come from :mod:`tarexport.build.sources` (the file system) or straight from the
caller; :func:`plan_layer` normalises and checks their paths, adds the missing parent
directories, sorts them, applies the :class:`LayerOptions` (owners, modes, mtimes, hard
links) and encodes every header. The :class:`LayerPlan` it returns knows the layer's exact
size; its :meth:`~LayerPlan.segments` are the layer's bytes in order, as inline bytes and
as :class:`FileSource` ranges still to be read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import Optional, Union

import attrs

from ..errors import InvalidLayerEntry, SourceChanged, TarHeaderError
from ..stores.protocols import FileRange
from ..tarstream import END_OF_ARCHIVE, padding
from .tarheader import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    MemberHeader,
)

__all__ = [
    "KINDS",
    "FileSource",
    "LayerOptions",
    "LayerPlan",
    "Member",
    "Node",
    "image_path",
    "plan_layer",
]

KINDS = frozenset(
    {"file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"}
)
WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"

_TYPEFLAG = {
    "file": REGTYPE,
    "dir": DIRTYPE,
    "symlink": SYMTYPE,
    "hardlink": LNKTYPE,
    "char": CHRTYPE,
    "block": BLKTYPE,
    "fifo": FIFOTYPE,
    "whiteout": REGTYPE,
    "opaque": REGTYPE,
}
_COALESCE = 1 << 20  # inline bytes are handed out in pieces of about this size


@attrs.frozen
class FileSource(FileRange):
    """A regular file to copy into the layer, with the identity it had when it was planned.

    :meth:`check` compares a later ``stat`` with it: a file that changed, grew or shrank
    since the plan was made raises :class:`~tarexport.errors.SourceChanged`.
    """

    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    dev: int = 0

    @classmethod
    def from_stat(cls, path: str, info: os.stat_result) -> FileSource:
        return cls(path, 0, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                   info.st_ino, info.st_dev)

    def read_error(self, exc: OSError) -> SourceChanged:
        """The error for a file that cannot be opened any more."""
        if isinstance(exc, FileNotFoundError):
            return SourceChanged(self.path, "vanished")
        return SourceChanged(self.path, f"could not be read ({exc.strerror})")

    def check(self, info: os.stat_result) -> None:
        """Raise :class:`SourceChanged` unless ``info`` is the file that was planned."""
        if not stat.S_ISREG(info.st_mode) or (info.st_ino, info.st_dev) != (self.ino, self.dev):
            raise SourceChanged(self.path, "was replaced")
        if info.st_size != self.length:
            grew = "grew" if info.st_size > self.length else "shrank"
            raise SourceChanged(self.path, f"{grew} from {self.length} to {info.st_size} bytes")
        if (info.st_mtime_ns, info.st_ctime_ns) != (self.mtime_ns, self.ctime_ns):
            raise SourceChanged(self.path, "was modified")


@attrs.frozen
class Node:
    """One thing to put into a layer, before the layer's options are applied.

    ``path`` is the path in the image (``/usr/bin/tool`` or ``usr/bin/tool``). ``mode`` holds
    the permission bits found or given; ``exact_mode`` keeps them even when the layer
    normalises modes. ``uid``/``gid``/``mtime`` of ``None`` take the layer's. A ``file`` has
    ``data`` or a ``source``; a ``symlink`` has its ``target`` verbatim; a ``hardlink``
    names another path of the same layer; ``link_key`` groups files that are one inode on
    disk (the first in layer order carries the content, the others link to it).
    """

    path: str
    kind: str
    mode: int = 0o644
    exact_mode: bool = False
    uid: Optional[int] = None
    gid: Optional[int] = None
    mtime: Optional[int] = None
    data: Optional[bytes] = None
    source: Optional[FileSource] = None
    target: str = ""
    link_key: Optional[tuple[int, int]] = None
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidLayerEntry(self.path, f"unknown entry kind {self.kind!r}")


@attrs.frozen
class LayerOptions:
    """How a layer's members are stamped.

    - ``mtime``: the time (Unix seconds) every member gets; with ``clamp_mtime`` a member
      keeps its own time unless it is later. The default, 0, makes layers reproducible.
    - ``uid``/``gid`` (and ``uname``/``gname``): the owner of every member that does not set
      its own; ``keep_owners`` keeps what the file system says instead.
    - ``exact_modes``: keep permission bits as found (setuid, setgid, sticky included). By
      default they are normalised as git does: directories 0755, files 0644, or 0755 when
      any executable bit is set, so any umask and any checkout give the same layer.
    - ``xattrs`` and ``devices``: extended attributes, and device nodes and FIFOs, are only
      taken from the file system when asked for (they are skipped otherwise).
    """

    mtime: int = 0
    clamp_mtime: bool = False
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    keep_owners: bool = False
    exact_modes: bool = False
    xattrs: bool = False
    devices: bool = False


@attrs.frozen
class Member:
    """A planned tar member: its header, its encoded bytes and its body (if any)."""

    header: MemberHeader
    encoded: bytes
    data: Optional[bytes] = None
    source: Optional[FileSource] = None

    @property
    def name(self) -> str:
        return self.header.name


@attrs.frozen
class LayerPlan:
    """Every member of a layer, in order, and the layer's exact size in bytes."""

    members: tuple[Member, ...]
    size: int

    def segments(self) -> Iterator[Union[bytes, FileSource]]:
        """The layer's bytes in order: inline bytes (coalesced) and file ranges to copy."""
        pending = bytearray()
        for member in self.members:
            pending += member.encoded
            if member.source is not None:
                if pending:
                    yield bytes(pending)
                    pending = bytearray()
                if member.source.length:
                    yield member.source
                pending += padding(member.source.length)
            elif member.data is not None:
                pending += member.data
                pending += padding(len(member.data))
            if len(pending) >= _COALESCE:
                yield bytes(pending)
                pending = bytearray()
        pending += END_OF_ARCHIVE
        yield bytes(pending)

    def sources(self) -> Iterator[FileSource]:
        """The files this layer reads."""
        return (m.source for m in self.members if m.source is not None)


def image_path(path: str) -> str:
    """``path`` as a layer names it: relative, clean, no ``.`` or ``..``; ``""`` is the root.

    Raises :class:`InvalidLayerEntry` for a path that would escape the image root, or that
    cannot be written in a tar header (NUL, not UTF-8).
    """
    if not isinstance(path, str):
        raise InvalidLayerEntry(repr(path), "an image path must be a str")
    if (  # already clean, the common case: nothing to split
        path.isascii() and path and path[0] != "/" and path[-1] != "/" and "//" not in path
        and "/." not in path and path[0] != "." and "\x00" not in path
    ):
        return path
    if "\x00" in path:
        raise InvalidLayerEntry(path, "NUL byte in path")
    _check_utf8(path, path)
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidLayerEntry(path, "escapes the image root ('..')")
        parts.append(part)
    return "/".join(parts)


def _check_utf8(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidLayerEntry(
            path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
            "name cannot be encoded as UTF-8 in a tar header",
        ) from None


def _sort_key(path: str) -> tuple[bytes, ...]:
    # Component-wise, so that a directory always comes right before what it holds.
    return tuple(part.encode("utf-8") for part in path.split("/"))


def plan_layer(nodes: Iterable[Node], options: LayerOptions = LayerOptions()) -> LayerPlan:
    """Plan a layer: every header and the exact size, without any I/O."""
    by_path = _collect(nodes)
    ordered = sorted(by_path.values(), key=lambda node: _sort_key(node.path))
    content: dict[_Key, Node] = {}  # one inode: the file node that has its content
    for node in ordered:
        if node.kind == "file":
            content.setdefault(_key(node, by_path), node)
    first_of: dict[_Key, str] = {}  # one inode: the member name that carries the content
    members: list[Member] = []
    size = len(END_OF_ARCHIVE)
    for node in ordered:
        member = _member(node, options, by_path, content, first_of)
        members.append(member)
        body = member.header.size
        size += len(member.encoded) + body + len(padding(body))
    return LayerPlan(tuple(members), size)


_Key = tuple[object, ...]


def _key(node: Node, by_path: dict[str, Node]) -> _Key:
    """What makes files one inode: the same ``link_key``, or a hard link naming the file."""
    if node.kind == "hardlink":
        node = by_path[image_path(node.target)]
    if node.link_key is not None:
        return ("inode", *node.link_key)
    return ("path", node.path)


def _collect(nodes: Iterable[Node]) -> dict[str, Node]:
    """Nodes by clean path, parents added; duplicates and paths under non-directories refused."""
    by_path: dict[str, Node] = {}
    for node in nodes:
        path = image_path(node.path)
        if node.kind == "whiteout":
            parent, _, base = path.rpartition("/")
            if not base:
                raise InvalidLayerEntry(node.path, "the image root cannot be whited out")
            path = f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
        elif node.kind == "opaque":
            path = f"{path}/{OPAQUE}" if path else OPAQUE
        elif not path:
            continue  # the root itself: layers do not carry it
        else:
            base = path.rpartition("/")[2]
            if base.startswith(WHITEOUT_PREFIX):
                raise InvalidLayerEntry(node.path, "names starting with '.wh.' are whiteouts")
        if node.kind == "symlink":
            if not node.target or "\x00" in node.target:
                raise InvalidLayerEntry(node.path, "a symlink needs a target without NUL")
            _check_utf8(node.target, node.path)
        if node.kind == "file" and (node.data is None) == (node.source is None):
            raise InvalidLayerEntry(node.path, "a file needs either data or a source")
        if path != node.path:
            node = attrs.evolve(node, path=path)
        if path in by_path:
            previous = by_path[path]
            if not (previous.kind == node.kind == "dir"):
                raise InvalidLayerEntry(node.path, "is given twice")
            if previous.exact_mode or not node.exact_mode:
                continue  # one directory; an explicit one wins over one found on the way
        by_path[path] = node
    for path in list(by_path):
        parent = path.rpartition("/")[0]
        while parent:
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = Node(parent, "dir", 0o755)
            elif existing.kind != "dir":
                raise InvalidLayerEntry(path, f"its parent {parent!r} is not a directory")
            else:
                break  # its parents were added when it was
            parent = parent.rpartition("/")[0]
    for node in by_path.values():
        if node.kind == "hardlink":
            target = by_path.get(image_path(node.target))
            if target is None or target.kind != "file":
                raise InvalidLayerEntry(node.path, f"hard link target {node.target!r} is not "
                                        "a file of this layer")
    return by_path


def _member_name(node: Node) -> str:
    return node.path + "/" if node.kind == "dir" else node.path


def _mode(node: Node, options: LayerOptions) -> int:
    if node.kind == "symlink":
        return 0o777
    if node.kind in ("whiteout", "opaque"):
        return 0
    if node.exact_mode or options.exact_modes:
        return node.mode & 0o7777
    if node.kind == "dir":
        return 0o755
    return 0o755 if node.mode & 0o111 else 0o644


def _member(
    node: Node,
    options: LayerOptions,
    by_path: dict[str, Node],
    content: dict[_Key, Node],
    first_of: dict[_Key, str],
) -> Member:
    typeflag = _TYPEFLAG[node.kind]
    linkname = node.target if node.kind == "symlink" else ""
    data: Optional[bytes] = None
    source: Optional[FileSource] = None
    if node.kind in ("file", "hardlink"):
        key = _key(node, by_path)
        first = first_of.get(key)
        if first is None:  # the first name of this inode in layer order carries the content
            first_of[key] = node.path
            typeflag, data, source = REGTYPE, content[key].data, content[key].source
        else:
            typeflag, linkname = LNKTYPE, first
    if node.kind in ("whiteout", "opaque"):
        data = b""
    mtime = options.mtime
    if options.clamp_mtime and node.mtime is not None:
        mtime = min(node.mtime, options.mtime)
    size = 0
    if typeflag == REGTYPE:
        size = len(data) if data is not None else (source.length if source is not None else 0)
    if source is not None and source.length == 0:
        source, data = None, b""
    try:
        header = MemberHeader(
            name=_member_name(node),
            typeflag=typeflag,
            mode=_mode(node, options),
            uid=options.uid if node.uid is None else node.uid,
            gid=options.gid if node.gid is None else node.gid,
            size=size,
            mtime=mtime,
            linkname=linkname,
            uname=options.uname if node.uid is None else "",
            gname=options.gname if node.gid is None else "",
            devmajor=node.devmajor,
            devminor=node.devminor,
            xattrs=node.xattrs,
        )
        encoded = header.encode()
    except TarHeaderError as exc:
        raise InvalidLayerEntry(node.path, str(exc)) from None
    return Member(header, encoded, data, source)
