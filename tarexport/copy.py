"""Copying one layer's bytes into an archive: the Saver's hot path.

Three ways, fastest first:

- **in the kernel**, when the layer lies in a regular file and the output is a real file,
  pipe or socket: ``os.copy_file_range`` (file to file), else ``os.sendfile``. No byte
  reaches user space. When the digest is checked, a second thread reads the same byte range
  with ``pread`` and hashes it while the kernel copies. Of all the ways measured this costs
  the least CPU (a kernel copy is a third of the CPU of a read and a write through a
  buffer), so it keeps hash speed also when the other core is busy. ``mmap`` would spare the
  ``pread`` copy but turns a file truncated under it into a ``SIGBUS`` that kills the process.
- **through a buffer with the hashing on a second thread**, when the output has no
  descriptor a kernel copy can use, or the layer is only a stream.
- **through a buffer**, for everything else (``io.BytesIO``, wrappers, any ``.write``).

Copying and hashing apart opens a gap: the bytes copied and the bytes hashed are two reads
of the file. It is closed by ``fstat`` (device, inode, size, mtime, ctime) of the open
source before and after, compared with what the plan saw: a file replaced or written in
between raises :class:`~tarexport.errors.LayerChanged`. The layer's last block is emitted
from the hashed read, and only after the digest and the file state checked out, so a bad
layer never gets a complete tar member, let alone the end-of-archive blocks.

A layer whose store checks it on every read (``verification = "on-read"``) is copied
through its own stream and not hashed again; one its store verified when it took it in
(``"at-ingest"``) is copied unhashed only when the caller trusts the store.

Memory stays bounded (a few MiB) whatever the layer size, and the byte count is exact: a
layer that is shorter or longer than declared raises without writing anything past it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import queue
import select
import socket
import stat
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Optional, Union

import attrs

from .errors import (
    LayerChanged,
    LayerDigestMismatch,
    LayerSizeMismatch,
    OutputError,
    StoreError,
    TarexportError,
)
from .stores.protocols import layer_verification, open_unverified

if TYPE_CHECKING:
    from .stores.protocols import FileRange, Layer

__all__ = [
    "BUFFER_SIZE",
    "KERNEL_CHUNK",
    "FileState",
    "can_zero_copy",
    "copy_layer",
    "needs_hash",
    "output_fd",
    "source_state",
]

_WITHHELD = 512  # one tar block

BUFFER_SIZE = 1 << 20
"""Bytes per read and write when copying through user space."""

KERNEL_CHUNK = 64 << 20
"""Bytes per ``copy_file_range`` / ``sendfile`` call: large enough to run at ``cp`` speed,
small enough to report progress a few times a second."""

_BUFFERS_IN_FLIGHT = 4  # buffers shared by the copying and the hashing thread
_THREAD_THRESHOLD = 4 << 20  # smaller layers hash inline: a thread would cost more than it saves
_KERNEL_PIECE = 256 << 10  # smaller pieces of a layer go through the buffer: fewer syscalls

# Errors that mean the output itself failed; any other error of a kernel copy only means
# "not for this pair of files", and the next, more general way is tried.
_OUTPUT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EPIPE", "ENOSPC", "EDQUOT", "EFBIG", "ECONNRESET", "ENOTCONN", "ESHUTDOWN")
    if hasattr(errno, name)
)

ProgressFn = Callable[[int], None]
_Buffer = Union[bytearray, memoryview]


# -- deciding ---------------------------------------------------------------------------------


def output_fd(out: BinaryIO) -> Optional[int]:
    """The file descriptor a kernel copy may write to on behalf of ``out``, or ``None``.

    Only plain files and sockets qualify (``io.FileIO``, ``socket.SocketIO``, or a buffered
    writer directly over one). Having a ``fileno()`` is not enough: a ``gzip.GzipFile``
    reports its underlying file's descriptor, and bytes written there would skip the
    compression.
    """
    raw: object = out
    if isinstance(out, (io.BufferedWriter, io.BufferedRandom)):
        raw = out.raw
    if not isinstance(raw, (io.FileIO, socket.SocketIO)):
        return None
    try:
        if raw.closed or not raw.writable():
            return None
        return raw.fileno()
    except (OSError, ValueError):
        return None


def needs_hash(layer: Layer, *, verify: bool = True, trust_ingested: bool = False) -> bool:
    """Whether :func:`copy_layer` hashes this layer itself (else its store checks it, or
    nothing does)."""
    if not verify:
        return False
    verification = layer_verification(layer)
    if verification == "at-ingest":
        return not trust_ingested
    if verification == "on-read":
        # The check is in the layer's stream: only a copy through it is checked by it.
        return layer.file_range() is not None
    return True


def can_zero_copy(
    layer: Layer, out: BinaryIO, *, verify: bool = True, trust_ingested: bool = False
) -> bool:
    """Whether :func:`copy_layer` would copy this layer's bytes in the kernel."""
    return output_fd(out) is not None and layer.file_range() is not None


@attrs.frozen
class FileState:
    """What a write or a replacement of a file changes: ``fstat``'s identity and times."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileState:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def describe_change(self, now: FileState) -> str:
        """Which fields differ, for an error message."""
        fields = ("device", "inode", "size", "mtime_ns", "ctime_ns")
        return ", ".join(f for f in fields if getattr(self, f) != getattr(now, f))


def source_state(layer: Layer) -> Optional[FileState]:
    """The state of the file a layer's bytes lie in, or ``None`` for a layer that is a stream.

    A plan records it, and :func:`copy_layer` refuses a file whose state moved on since.
    """
    file_range = layer.file_range()
    if file_range is None:
        return None
    try:
        return FileState.of(os.stat(file_range.path))
    except OSError as exc:
        raise StoreError(
            f"layer {layer.diff_id}: cannot stat {file_range.path!r}: {exc.strerror or exc}"
        ) from exc


# -- copying ----------------------------------------------------------------------------------


def copy_layer(
    layer: Layer,
    out: BinaryIO,
    *,
    name: str,
    verify: bool = True,
    trust_ingested: bool = False,
    planned_state: Optional[FileState] = None,
    on_progress: Optional[ProgressFn] = None,
) -> None:
    """Write exactly ``layer.size`` bytes of the uncompressed layer to ``out``.

    ``name`` is the archive entry being written, for error messages. With ``verify`` the
    bytes must match ``layer.diff_id``: hashed on the way, or checked by the layer's own
    stream when it says it does; with ``trust_ingested`` too, a layer its store verified
    when it took it in is not hashed. ``planned_state`` is the :func:`source_state` the
    plan saw; the source file must still be in it, before and after the copy.
    ``on_progress(n)`` is called after each chunk with the number of bytes just written.

    Raises :class:`~tarexport.errors.LayerSizeMismatch` if the layer is shorter or longer
    than declared, :class:`~tarexport.errors.LayerDigestMismatch` if its digest differs,
    :class:`~tarexport.errors.LayerChanged` if its file changed since the plan or during
    the copy, :class:`~tarexport.errors.StoreError` if it cannot be read and
    :class:`~tarexport.errors.OutputError` if ``out`` cannot be written.
    """
    hashing = needs_hash(layer, verify=verify, trust_ingested=trust_ingested)
    copier = _Copier(layer, out, name, hashing, on_progress)
    copier.planned_state = planned_state
    copier.checked_by_stream = verify and not hashing
    copier.run()


class _Copier:
    """One layer copy: the source chosen, the byte count and the digest kept."""

    def __init__(
        self,
        layer: Layer,
        out: BinaryIO,
        name: str,
        verify: bool,
        on_progress: Optional[ProgressFn],
    ) -> None:
        self.layer = layer
        self.out = out
        self.name = name
        self.on_progress = on_progress
        self.expected = layer.size
        self.hash: Optional[Any] = hashlib.new(layer.diff_id.algorithm) if verify else None
        # The layer's last bytes are held back until its size and digest are checked, so a
        # bad layer leaves its tar member visibly unfinished for every reader of the stream.
        self.sent = 0
        self.hold_from = max(0, self.expected - _WITHHELD)
        self.tail = bytearray()
        self.planned_state: Optional[FileState] = None
        self.checked_by_stream = False  # a verifying copy that leaves the check to open()

    # -- the two kinds of source --------------------------------------------------------------

    def run(self) -> None:
        if self.expected < 0:
            raise StoreError(f"{self.name}: layer {self.layer.diff_id} has a negative size")
        segments = getattr(self.layer, "segments", None)
        try:
            file_range = None if segments is not None else self.layer.file_range()
        except OSError as exc:
            raise self._read_error(exc) from exc
        if segments is not None:
            self._copy_segments(segments())
        elif file_range is not None:
            if file_range.length != self.expected:
                raise LayerSizeMismatch(self.name, self.expected, file_range.length)
            self._copy_file_range(file_range.path, file_range.offset)
        else:
            self._copy_stream()
        self._check_digest()
        if self.tail:
            self._emit(memoryview(self.tail))

    def _copy_stream(self) -> None:
        try:
            source = self.layer.open() if self.checked_by_stream else open_unverified(self.layer)
        except OSError as exc:
            raise self._read_error(exc) from exc
        try:
            copied = self._pump(source, self.expected)
            if copied < self.expected:
                raise LayerSizeMismatch(self.name, self.expected, copied)
            # One byte more would mean the store's size is wrong; it is not written.
            if self._read_into(source, bytearray(1)):
                raise LayerSizeMismatch(self.name, self.expected, self.expected + 1, at_least=True)
        finally:
            source.close()

    def _copy_segments(self, segments: Iterable[Union[bytes, FileRange]]) -> None:
        """A layer made of pieces: inline bytes, and ranges of files (a built layer's).

        A range may carry ``check(stat_result)``: it is called before and after the range is
        read, so that a file that changed since the layer was planned raises.
        """
        fd = output_fd(self.out) if self.hash is None else None
        copied = 0
        for segment in segments:
            if isinstance(segment, (bytes, bytearray, memoryview)):
                view = memoryview(segment)
                if copied + len(view) > self.expected:
                    raise LayerSizeMismatch(self.name, self.expected, copied + len(view),
                                            at_least=True)
                if self.hash is not None:
                    self.hash.update(view)
                self._write(view)
                copied += len(view)
                continue
            if copied + segment.length > self.expected:
                raise LayerSizeMismatch(self.name, self.expected, copied + segment.length,
                                        at_least=True)
            copied += self._copy_piece(segment, fd)
        if copied != self.expected:
            raise LayerSizeMismatch(self.name, self.expected, copied)

    def _copy_piece(self, piece: FileRange, fd: Optional[int]) -> int:
        if piece.length < _KERNEL_PIECE:
            return self._copy_small_piece(piece)
        check = getattr(piece, "check", None)
        try:
            source = open(piece.path, "rb", buffering=0)  # noqa: SIM115 -- closed below
        except OSError as exc:
            read_error = getattr(piece, "read_error", None)  # the piece's own error, if any
            raise (read_error(exc) if read_error is not None else self._read_error(exc)) \
                from None
        with source:
            if check is not None:
                check(os.fstat(source.fileno()))
            copied = 0
            if fd is not None and piece.length >= _KERNEL_PIECE:
                # The layer's last block is held back as for any layer (``_write``).
                room = max(0, self.hold_from - self.sent)
                copied = self._kernel_copy(source.fileno(), piece.offset, fd,
                                           min(piece.length, room))
            if copied < piece.length:
                try:
                    source.seek(piece.offset + copied)
                except OSError as exc:
                    raise self._read_error(exc) from exc
                copied += self._pump(source, piece.length - copied)
            if check is not None:
                check(os.fstat(source.fileno()))
            if copied < piece.length:
                raise LayerSizeMismatch(f"{self.name}: {piece.path}", piece.length, copied)
        return copied

    def _copy_small_piece(self, piece: FileRange) -> int:
        """A small piece in one read: fewer calls per file for layers of many small files."""
        check = getattr(piece, "check", None)
        try:
            src = os.open(piece.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            read_error = getattr(piece, "read_error", None)
            raise (read_error(exc) if read_error is not None else self._read_error(exc)) \
                from None
        try:
            data = os.pread(src, piece.length, piece.offset)
            while len(data) < piece.length:
                more = os.pread(src, piece.length - len(data), piece.offset + len(data))
                if not more:
                    break
                data += more
            if check is not None:  # once, after the read: a change before or during it shows
                check(os.fstat(src))
        except OSError as exc:
            raise self._read_error(exc) from exc
        finally:
            os.close(src)
        if len(data) < piece.length:
            raise LayerSizeMismatch(f"{self.name}: {piece.path}", piece.length, len(data))
        view = memoryview(data)
        if self.hash is not None:
            self.hash.update(view)
        self._write(view)
        return len(data)

    def _copy_file_range(self, path: str, offset: int) -> None:
        try:
            source = open(path, "rb", buffering=0)  # noqa: SIM115 -- closed below
        except OSError as exc:
            raise self._read_error(exc) from exc
        with source:
            before = self._state(source, path)
            if self.planned_state is not None and before != self.planned_state:
                raise self._changed(path, self.planned_state, before, "since the save was planned")
            available = max(0, before.size - offset)
            if available < self.expected:
                raise LayerSizeMismatch(self.name, self.expected, available)
            fd = output_fd(self.out)
            if fd is not None and self.hash is not None and self.expected >= _THREAD_THRESHOLD:
                self._kernel_copy_hashing_aside(source, offset, fd)
            else:
                copied = 0
                if fd is not None and self.hash is None:
                    copied = self._kernel_copy(source.fileno(), offset, fd, self.hold_from)
                    if copied == self.hold_from:  # the last block waits for the check below
                        self.tail = self._read_tail(source, offset + copied)
                        copied += len(self.tail)
                if copied < self.expected:
                    self._seek(source, offset + copied)
                    copied += self._pump(source, self.expected - copied)
                if copied < self.expected:  # the file shrank while it was copied
                    raise LayerSizeMismatch(self.name, self.expected, copied)
            after = self._state(source, path)
            if after != before:
                raise self._changed(path, before, after, "while it was copied")

    def _kernel_copy_hashing_aside(self, source: BinaryIO, offset: int, dst: int) -> None:
        """The kernel copies all but the last block; a thread reads and hashes all of it.

        The withheld last block is the one the hashing thread read: what is emitted after the
        checks is exactly what was hashed, and the rest is covered by the file-state check.
        """
        assert self.hash is not None
        src = source.fileno()
        hasher = _RangeHasher(src, offset, self.expected, self.hash, self.hold_from)
        try:
            copied = self._kernel_copy(src, offset, dst, self.hold_from)
            if copied < self.hold_from:  # the kernel would not: a plain copy, unhashed here
                self._seek(source, offset + copied)
                hash_, self.hash = self.hash, None
                try:
                    copied += self._pump(source, self.hold_from - copied)
                finally:
                    self.hash = hash_
        except BaseException:
            hasher.stop(abandon=True)
            raise
        hasher.stop()
        try:
            hasher.check()
        except OSError as exc:
            raise self._read_error(exc) from exc
        if copied < self.hold_from or hasher.count < self.expected:
            raise LayerSizeMismatch(self.name, self.expected, min(copied, hasher.count))
        self.tail = hasher.tail

    def _read_tail(self, source: BinaryIO, position: int) -> bytearray:
        tail = bytearray(self.expected - self.hold_from)
        view = memoryview(tail)
        got = 0
        try:
            while got < len(tail):
                n = _pread_into(source.fileno(), view[got:], position + got)
                if not n:
                    break
                got += n
        except OSError as exc:
            raise self._read_error(exc) from exc
        del view
        del tail[got:]
        return tail

    def _state(self, source: BinaryIO, path: str) -> FileState:
        try:
            info = os.fstat(source.fileno())
        except OSError as exc:
            raise self._read_error(exc) from exc
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{self.name}: layer file {path!r} is not a regular file")
        return FileState.of(info)

    def _seek(self, source: BinaryIO, position: int) -> None:
        try:
            source.seek(position)
        except OSError as exc:
            raise self._read_error(exc) from exc

    def _changed(self, path: str, was: FileState, now: FileState, when: str) -> LayerChanged:
        return LayerChanged(
            f"{self.name}: layer file {path!r} changed {when} ({was.describe_change(now)})"
        )

    # -- in the kernel --------------------------------------------------------------------

    def _kernel_copy(self, src: int, offset: int, dst: int, length: int) -> int:
        """Copy up to ``length`` bytes as the kernel will; return the count, the caller
        finishes the rest."""
        self._flush()
        methods = []
        if hasattr(os, "copy_file_range"):
            methods.append(_copy_file_range)
        if hasattr(os, "sendfile"):
            methods.append(_sendfile)
        done = 0
        while methods and done < length:
            count = min(KERNEL_CHUNK, length - done)
            try:
                n = methods[0](src, dst, offset + done, count)
            except BlockingIOError:
                select.select([], [dst], [])  # a non-blocking pipe or socket is full
                continue
            except OSError as exc:
                if exc.errno in _OUTPUT_ERRNOS:
                    raise self._write_error(exc) from exc
                methods.pop(0)  # not supported for these two files: try the next way
                continue
            if n == 0:
                # Some file systems report 0 instead of an error; a file that really ended
                # early is caught by the buffered copy that follows.
                methods.pop(0)
                continue
            done += n
            self.sent += n
            if self.on_progress is not None:
                self.on_progress(n)
        return done

    def _flush(self) -> None:
        """Push buffered bytes out first: the kernel writes at the descriptor's position."""
        try:
            self.out.flush()
        except (OSError, ValueError) as exc:
            raise self._write_error(exc) from exc

    # -- through user space ---------------------------------------------------------------

    def _pump(self, source: BinaryIO, length: int) -> int:
        """Copy up to ``length`` bytes from ``source``; return how many there were."""
        if self.hash is not None and length >= _THREAD_THRESHOLD:
            return self._pump_hashing_aside(source, length)
        buffer = bytearray(min(BUFFER_SIZE, length))
        view = memoryview(buffer)
        copied = 0
        while copied < length:
            n = self._read_into(source, view[: min(len(view), length - copied)])
            if not n:
                break
            chunk = view[:n]
            self._write(chunk)
            if self.hash is not None:
                self.hash.update(chunk)
            copied += n
        return copied

    def _pump_hashing_aside(self, source: BinaryIO, length: int) -> int:
        """Like :meth:`_pump`, with the hashing on a thread working on the same buffers."""
        assert self.hash is not None
        hasher = _HashThread(self.hash)
        copied = 0
        try:
            while copied < length:
                buffer = hasher.free_buffer()
                n = self._read_into(source, buffer[: min(len(buffer), length - copied)])
                if not n:
                    hasher.give_back(buffer)
                    break
                self._write(buffer[:n])
                hasher.hash(buffer, n)
                copied += n
        finally:
            hasher.stop()
        hasher.check()
        return copied

    def _read_into(self, source: BinaryIO, view: _Buffer) -> int:
        try:
            readinto = getattr(source, "readinto", None)
            if readinto is not None:
                return readinto(view) or 0
            data = source.read(len(view))
            view[: len(data)] = data
            return len(data)
        except OSError as exc:
            raise self._read_error(exc) from exc

    def _write(self, chunk: memoryview) -> None:
        """Write a chunk of the layer, keeping back whatever lies past ``hold_from``."""
        split = max(0, min(len(chunk), self.hold_from - self.sent))
        if split < len(chunk):
            self.tail += chunk[split:]
        if split:
            self._emit(chunk[:split])
            self.sent += split

    def _emit(self, chunk: memoryview) -> None:
        size = len(chunk)
        try:
            while chunk:
                n = self.out.write(chunk)
                if n is None:  # a duck-typed writer that returns nothing wrote it all
                    break
                if n <= 0:
                    raise OSError(errno.EIO, "the output accepted no bytes")
                chunk = chunk[n:]
        except (OSError, ValueError) as exc:
            raise self._write_error(exc) from exc
        if self.on_progress is not None:
            self.on_progress(size)

    # -- checks and errors ----------------------------------------------------------------

    def _check_digest(self) -> None:
        if self.hash is None:
            return
        diff_id = self.layer.diff_id
        actual = self.hash.hexdigest()
        if actual != diff_id.hex:
            raise LayerDigestMismatch(self.name, str(diff_id), f"{diff_id.algorithm}:{actual}")

    def _read_error(self, exc: Exception) -> TarexportError:
        return StoreError(f"{self.name}: cannot read layer {self.layer.diff_id}: {exc}")

    def _write_error(self, exc: Exception) -> OutputError:
        error = OutputError(f"{self.name}: cannot write to the output: {exc}")
        if isinstance(exc, OSError):
            error.errno = exc.errno  # lets callers tell EPIPE from ENOSPC
        return error


def _copy_file_range(src: int, dst: int, offset: int, count: int) -> int:
    # No output offset: the kernel writes at, and advances, the descriptor's position.
    return os.copy_file_range(src, dst, count, offset)


def _sendfile(src: int, dst: int, offset: int, count: int) -> int:
    return os.sendfile(dst, src, offset, count)


class _HashThread:
    """A thread hashing buffers in order, handing each back once it is done with it."""

    def __init__(self, hash_: Any) -> None:
        self._hash = hash_
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[Optional[tuple[memoryview, int]]] = queue.SimpleQueue()
        self._error: Optional[BaseException] = None
        for _ in range(_BUFFERS_IN_FLIGHT):
            self._free.put(memoryview(bytearray(BUFFER_SIZE)))
        self._thread = threading.Thread(target=self._run, name="tarexport-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            buffer, n = item
            if self._error is None:
                try:
                    self._hash.update(buffer[:n])
                except BaseException as exc:  # handed to the copying thread by check()
                    self._error = exc
            self._free.put(buffer)

    def free_buffer(self) -> memoryview:
        return self._free.get()

    def give_back(self, buffer: memoryview) -> None:
        self._free.put(buffer)

    def hash(self, buffer: memoryview, n: int) -> None:
        self._work.put((buffer, n))

    def stop(self) -> None:
        """Hash what is queued, then end the thread."""
        self._work.put(None)
        self._thread.join()

    def check(self) -> None:
        """Raise what the hashing raised, if anything (after :meth:`stop`)."""
        if self._error is not None:
            raise self._error


class _RangeHasher:
    """A thread reading ``length`` bytes at ``offset`` of a file with ``pread``, hashing them.

    It keeps what lies past ``hold_from`` (the withheld last block) and counts what it read:
    a file that ends early ends the read, and the caller compares the count.
    """

    def __init__(self, fd: int, offset: int, length: int, hash_: Any, hold_from: int) -> None:
        self._fd = fd
        self._offset = offset
        self._length = length
        self._hash = hash_
        self._hold_from = hold_from
        self._abandoned = False
        self._error: Optional[BaseException] = None
        self.count = 0
        self.tail = bytearray()
        self._thread = threading.Thread(target=self._run, name="tarexport-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            view = memoryview(bytearray(min(BUFFER_SIZE, self._length)))
            while self.count < self._length and not self._abandoned:
                want = view[: min(len(view), self._length - self.count)]
                n = _pread_into(self._fd, want, self._offset + self.count)
                if not n:
                    return
                chunk = want[:n]
                self._hash.update(chunk)
                if self.count + n > self._hold_from:
                    self.tail += chunk[max(0, self._hold_from - self.count):]
                self.count += n
        except BaseException as exc:  # handed to the copying thread by check()
            self._error = exc

    def stop(self, *, abandon: bool = False) -> None:
        """Wait for the thread; with ``abandon``, make it stop at its next chunk."""
        self._abandoned = abandon
        self._thread.join()

    def check(self) -> None:
        """Raise what the reading or hashing raised, if anything (after :meth:`stop`)."""
        if self._error is not None:
            raise self._error


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)  # pragma: no cover - platforms without preadv
    view[: len(data)] = data
    return len(data)
