"""Built layers as store layers: planned, hashed once, then streamed from the source files.

A :class:`BuiltLayer` satisfies :class:`~tarexport.stores.protocols.Layer`, so the Saver and
every store take it like any other layer. Its diff ID has to be known before the first byte
of an archive (the config that lists it, and the names derived from it, come first), so it
is computed by one read-only pass over the sources (:func:`hash_plan`). Writing then reads
each file a second time, straight into the output: :meth:`BuiltLayer.segments` lets
:func:`~tarexport.copy.copy_layer` copy large files in the kernel. Every file is checked
against the ``stat`` it had when planned, before and after each read, so a file that
changes, grows, shrinks or vanishes raises :class:`~tarexport.errors.SourceChanged`.

:class:`TarLayer` is an existing layer tar (plain or gzip) used as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any, BinaryIO, Optional, Union

from ..compression import Compression, DecompressingReader, detect
from ..copy import _HashThread
from ..digest import Digest
from ..errors import BuildError, SourceChanged
from ..stores.protocols import FileRange
from .plan import FileSource, LayerPlan

__all__ = ["BuiltLayer", "TarLayer", "hash_plan"]

_THREAD_FROM = 4 << 20  # larger files are read and hashed on two threads
_READ = 1 << 20


def _open_source(source: FileSource) -> BinaryIO:
    try:
        f = open(source.path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise source.read_error(exc) from None
    try:
        source.check(os.fstat(f.fileno()))
    except BaseException:
        f.close()
        raise
    return f


def _hash_file(source: FileSource, hash_: Any) -> None:
    try:
        fd = os.open(source.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise source.read_error(exc) from None
    try:
        if source.length >= _THREAD_FROM:
            read = _hash_large(fd, source, hash_)
        else:
            data = os.read(fd, source.length + 1)
            while len(data) < source.length + 1:
                more = os.read(fd, source.length + 1 - len(data))
                if not more:
                    break
                data += more
            read = len(data)
            if read == source.length:
                hash_.update(data)
        # One check, after the read: whatever changed before or during it shows then.
        source.check(os.fstat(fd))
        if read != source.length:
            raise SourceChanged(source.path, f"has {read} bytes, not {source.length}")
    finally:
        os.close(fd)


def _hash_large(fd: int, source: FileSource, hash_: Any) -> int:
    """Read on this thread, hash on another (``hashlib`` releases the GIL): both cores work.

    Not through a memory mapping: a file truncated while mapped would kill the process
    with SIGBUS instead of raising.
    """
    hasher = _HashThread(hash_)
    done = 0
    try:
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while done <= source.length:
                buffer = hasher.free_buffer()
                n = f.readinto(buffer)
                if not n:
                    hasher.give_back(buffer)
                    break
                hasher.hash(buffer, n)
                done += n
    finally:
        hasher.stop()
    hasher.check()
    return done


def hash_plan(plan: LayerPlan) -> Digest:
    """The diff ID of a planned layer: one read-only pass over its sources."""
    hash_ = hashlib.sha256()
    for segment in plan.segments():
        if isinstance(segment, bytes):
            hash_.update(segment)
        else:
            _hash_file(segment, hash_)
    return Digest("sha256", hash_.hexdigest())


class BuiltLayer:
    """A planned layer: :class:`~tarexport.stores.protocols.Layer` plus ``segments()``."""

    def __init__(self, plan: LayerPlan, diff_id: Optional[Digest] = None) -> None:
        self.plan = plan
        self._diff_id = diff_id

    @property
    def diff_id(self) -> Digest:
        if self._diff_id is None:
            self._diff_id = hash_plan(self.plan)
        return self._diff_id

    @property
    def size(self) -> int:
        return self.plan.size

    def segments(self) -> Iterator[Union[bytes, FileRange]]:
        return self.plan.segments()

    def file_range(self) -> Optional[FileRange]:
        return None

    def open(self) -> BinaryIO:
        return _PlanReader(self.plan)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"BuiltLayer({len(self.plan.members)} members, {self.plan.size} bytes)"


class _PlanReader(io.RawIOBase):
    """The layer's bytes as a stream: inline pieces, then each file read and re-checked."""

    def __init__(self, plan: LayerPlan) -> None:
        self._segments = plan.segments()
        self._current: Optional[BinaryIO] = None
        self._source: Optional[FileSource] = None
        self._left = 0
        self._inline = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._inline:
                n = min(len(view), len(self._inline))
                view[:n] = self._inline[:n]
                self._inline = self._inline[n:]
                return n
            if self._current is not None:
                n = self._current.readinto(view[: min(len(view), self._left)]) or 0  # type: ignore[attr-defined]
                assert self._source is not None
                if n == 0 and self._left:
                    raise SourceChanged(self._source.path,
                                        f"shrank by {self._left} bytes")
                self._left -= n
                if self._left == 0:
                    self._source.check(os.fstat(self._current.fileno()))
                    self._current.close()
                    self._current = None
                if n:
                    return n
                continue
            segment = next(self._segments, None)
            if segment is None:
                return 0
            if isinstance(segment, bytes):
                self._inline = memoryview(segment)
            else:
                assert isinstance(segment, FileSource)
                self._source = segment
                self._current = _open_source(segment)
                self._left = segment.length

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class TarLayer:
    """An existing layer tar file, uncompressed or gzip, used where it lies.

    An uncompressed tar is served as a byte range of its file (the kernel copies it); a
    gzip one is decompressed as it is read. The diff ID is the sha256 of the uncompressed
    bytes, measured with the size by one pass when the layer is made.
    """

    def __init__(self, path: Union[str, os.PathLike[str]]) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                self.compression = detect(f.read(8))
            info = os.stat(self.path)
        except OSError as exc:
            raise BuildError(f"{self.path!r}: cannot read layer tar: {exc.strerror}") from None
        if self.compression not in (Compression.NONE, Compression.GZIP):
            raise BuildError(f"{self.path!r}: a layer tar must be uncompressed or gzip, "
                             f"not {self.compression.value}")
        self._stat = (info.st_size, info.st_mtime_ns, info.st_ino)
        hash_ = hashlib.sha256()
        size = 0
        with self.open() as stream:
            buffer = bytearray(_READ)
            while True:
                n = stream.readinto(buffer)  # type: ignore[attr-defined]
                if not n:
                    break
                hash_.update(memoryview(buffer)[:n])
                size += n
        self._diff_id = Digest("sha256", hash_.hexdigest())
        self._size = size
        _check_tar(self.path, size)

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def size(self) -> int:
        return self._size

    def file_range(self) -> Optional[FileRange]:
        if self.compression is Compression.NONE:
            return FileRange(self.path, 0, self._size)
        return None

    def open(self) -> BinaryIO:
        f = open(self.path, "rb")  # noqa: SIM115 - handed to the caller
        if self.compression is Compression.NONE:
            return f
        with contextlib.ExitStack() as stack:
            stack.callback(f.close)
            reader = DecompressingReader(f, self.compression, limit=None, what=self.path)
            stack.pop_all()
        return reader  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"TarLayer({self.path!r})"


def _check_tar(path: str, size: int) -> None:
    if size % 512 or size < 1024:
        raise BuildError(f"{path!r}: not a tar archive (size {size} is not whole blocks)")
