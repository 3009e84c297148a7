"""What a layer is made of, as the caller names it, and the file-system walk that reads it.

The entry values (:class:`Tree`, :class:`File`, :class:`Bytes`, :class:`Directory`,
:class:`Symlink`, :class:`Hardlink`, :class:`Whiteout`, :class:`OpaqueWhiteout`) are plain
frozen values; :func:`resolve` stats what they name (``lstat`` only, no file is read) and
turns them into the planner's :class:`~tarexport.build.plan.Node` values.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional, Union

import attrs

from ..errors import InvalidLayerEntry
from .plan import FileSource, LayerOptions, Node, image_path

__all__ = [
    "Bytes",
    "Directory",
    "Entry",
    "File",
    "Hardlink",
    "OpaqueWhiteout",
    "Symlink",
    "Tree",
    "Whiteout",
    "resolve",
]

PathLike = Union[str, "os.PathLike[str]"]


def _fspath(value: PathLike) -> str:
    return os.fspath(value)


@attrs.frozen
class Tree:
    """Everything under the directory ``source``, placed at ``at`` in the image."""

    source: str = attrs.field(converter=_fspath)
    at: str = "/"


@attrs.frozen
class File:
    """The regular file ``source`` at ``path``; ``mode`` given is kept exactly."""

    path: str
    source: str = attrs.field(converter=_fspath)
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None


@attrs.frozen
class Bytes:
    """A regular file at ``path`` holding ``data``."""

    path: str
    data: bytes
    mode: int = 0o644
    uid: Optional[int] = None
    gid: Optional[int] = None


@attrs.frozen
class Directory:
    """A directory at ``path``."""

    path: str
    mode: int = 0o755
    uid: Optional[int] = None
    gid: Optional[int] = None


@attrs.frozen
class Symlink:
    """A symbolic link at ``path`` pointing at ``target``, written verbatim."""

    path: str
    target: str
    uid: Optional[int] = None
    gid: Optional[int] = None


@attrs.frozen
class Hardlink:
    """A second name, ``path``, for the file at ``target`` in the same layer."""

    path: str
    target: str


@attrs.frozen
class Whiteout:
    """Deletes ``path`` of the layers below (``.wh.NAME``)."""

    path: str


@attrs.frozen
class OpaqueWhiteout:
    """Hides everything the layers below have under the directory ``path``."""

    path: str


Entry = Union[Tree, File, Bytes, Directory, Symlink, Hardlink, Whiteout, OpaqueWhiteout]


def resolve(entries: Iterable[Entry], options: LayerOptions) -> list[Node]:
    """The nodes of ``entries``, after ``lstat`` of every file they name."""
    nodes: list[Node] = []
    for entry in entries:
        if isinstance(entry, Tree):
            nodes.extend(_walk(entry, options))
        elif isinstance(entry, File):
            info = _lstat(entry.source, entry.path)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidLayerEntry(entry.path, f"source {entry.source!r} is not a "
                                        "regular file")
            nodes.append(Node(
                entry.path, "file",
                mode=stat.S_IMODE(info.st_mode) if entry.mode is None else entry.mode,
                exact_mode=entry.mode is not None,
                uid=entry.uid, gid=entry.gid, mtime=int(info.st_mtime),
                source=FileSource.from_stat(entry.source, info),
            ))
        elif isinstance(entry, Bytes):
            nodes.append(Node(entry.path, "file", mode=entry.mode, exact_mode=True,
                              uid=entry.uid, gid=entry.gid, data=bytes(entry.data)))
        elif isinstance(entry, Directory):
            nodes.append(Node(entry.path, "dir", mode=entry.mode, exact_mode=True,
                              uid=entry.uid, gid=entry.gid))
        elif isinstance(entry, Symlink):
            nodes.append(Node(entry.path, "symlink", target=entry.target,
                              uid=entry.uid, gid=entry.gid))
        elif isinstance(entry, Hardlink):
            nodes.append(Node(entry.path, "hardlink", target=entry.target))
        elif isinstance(entry, Whiteout):
            nodes.append(Node(entry.path, "whiteout"))
        elif isinstance(entry, OpaqueWhiteout):
            nodes.append(Node(entry.path, "opaque"))
        else:
            raise InvalidLayerEntry(repr(entry), "not a layer entry")
    return nodes


def _lstat(source: str, path: str) -> os.stat_result:
    try:
        return os.lstat(source)
    except OSError as exc:
        raise InvalidLayerEntry(path, f"cannot read {source!r}: {exc.strerror}") from None


def _walk(tree: Tree, options: LayerOptions) -> Iterator[Node]:
    """Every node under ``tree.source``, parents first; nothing is opened but directories."""
    at = image_path(tree.at)
    root = _lstat(tree.source, tree.at)
    if not stat.S_ISDIR(root.st_mode):
        raise InvalidLayerEntry(tree.at, f"source {tree.source!r} is not a directory")
    if at:
        top = _node(at, tree.source, root, options)
        assert top is not None
        yield top
    pending: list[tuple[str, str]] = [(tree.source, at)]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as scan:
                children: Sequence[os.DirEntry[str]] = list(scan)
        except OSError as exc:
            raise InvalidLayerEntry(prefix or "/", f"cannot list {directory!r}: "
                                    f"{exc.strerror}") from None
        for child in children:
            path = f"{prefix}/{child.name}" if prefix else child.name
            try:
                info = child.stat(follow_symlinks=False)
            except OSError as exc:
                raise InvalidLayerEntry(path, f"cannot stat {child.path!r}: "
                                        f"{exc.strerror}") from None
            node = _node(path, child.path, info, options)
            if node is None:
                continue
            yield node
            if node.kind == "dir":
                pending.append((child.path, path))


def _node(path: str, source: str, info: os.stat_result, options: LayerOptions) -> Optional[Node]:
    mode = info.st_mode
    uid = gid = None
    if options.keep_owners:
        uid, gid = info.st_uid, info.st_gid
    perm = stat.S_IMODE(mode)
    mtime = int(info.st_mtime)
    xattrs = _xattrs(source, path) if options.xattrs else ()
    if stat.S_ISREG(mode):
        link_key = (info.st_dev, info.st_ino) if info.st_nlink > 1 else None
        return Node(path, "file", perm, False, uid, gid, mtime, None,
                    FileSource.from_stat(source, info), "", link_key, 0, 0, xattrs)
    if stat.S_ISDIR(mode):
        return Node(path, "dir", perm, False, uid, gid, mtime, xattrs=xattrs)
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(source)
        except OSError as exc:
            raise InvalidLayerEntry(path, f"cannot read link {source!r}: {exc.strerror}") \
                from None
        return Node(path, "symlink", perm, False, uid, gid, mtime, target=target,
                    xattrs=xattrs)
    if not options.devices or stat.S_ISSOCK(mode):
        return None  # sockets never go into layers; devices and FIFOs only when asked
    kind = "char" if stat.S_ISCHR(mode) else "block" if stat.S_ISBLK(mode) else "fifo"
    major = os.major(info.st_rdev) if kind != "fifo" else 0
    minor = os.minor(info.st_rdev) if kind != "fifo" else 0
    return Node(path, kind, perm, False, uid, gid, mtime, devmajor=major, devminor=minor,
                xattrs=xattrs)


def _xattrs(source: str, path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(source, follow_symlinks=False)
        return tuple(sorted(
            (name, os.getxattr(source, name, follow_symlinks=False)) for name in names
        ))
    except OSError as exc:
        if exc.errno in (95,):  # EOPNOTSUPP: the file system has none
            return ()
        raise InvalidLayerEntry(path, f"cannot read extended attributes: {exc.strerror}") \
            from None
