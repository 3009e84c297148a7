"""Copying one layer's bytes into an archive: the Saver's hot path.

Three ways, fastest first:

- **in the kernel**, when the layer lies in a regular file and the output is a real file,
  pipe or socket: ``os.copy_file_range`` (file to file), else ``os.sendfile``. No byte
  reaches user space. Used when nothing needs to see the bytes (``verify=False``).
- **through a buffer with the hashing on a second thread**, when the digest is checked:
  verifying must bring every byte into user space anyway, and once a buffer is filled,
  writing it out costs less than a second kernel copy, while reading and hashing overlap
  (``hashlib`` releases the GIL). Measured faster than hashing in parallel to a kernel copy.
- **through a buffer**, for everything else (``io.BytesIO``, wrappers, any ``.write``).

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

from .errors import (
    LayerDigestMismatch,
    LayerSizeMismatch,
    OutputError,
    StoreError,
    TarexportError,
)

if TYPE_CHECKING:
    from .stores.protocols import FileRange, Layer

__all__ = ["BUFFER_SIZE", "KERNEL_CHUNK", "can_zero_copy", "copy_layer", "output_fd"]

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


def can_zero_copy(layer: Layer, out: BinaryIO, *, verify: bool = True) -> bool:
    """Whether :func:`copy_layer` would copy this layer in the kernel."""
    return not verify and output_fd(out) is not None and layer.file_range() is not None


# -- copying ----------------------------------------------------------------------------------


def copy_layer(
    layer: Layer,
    out: BinaryIO,
    *,
    name: str,
    verify: bool = True,
    on_progress: Optional[ProgressFn] = None,
) -> None:
    """Write exactly ``layer.size`` bytes of the uncompressed layer to ``out``.

    ``name`` is the archive entry being written, for error messages. With ``verify`` the
    bytes are hashed on the way and must match ``layer.diff_id``. ``on_progress(n)`` is
    called after each chunk with the number of bytes just written.

    Raises :class:`~tarexport.errors.LayerSizeMismatch` if the layer is shorter or longer
    than declared, :class:`~tarexport.errors.LayerDigestMismatch` if its digest differs,
    :class:`~tarexport.errors.StoreError` if it cannot be read and
    :class:`~tarexport.errors.OutputError` if ``out`` cannot be written.
    """
    copier = _Copier(layer, out, name, verify, on_progress)
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
            source = self.layer.open()
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
                copied = self._kernel_copy(source.fileno(), piece.offset, fd, piece.length)
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
            try:
                info = os.fstat(source.fileno())
            except OSError as exc:
                raise self._read_error(exc) from exc
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"{self.name}: layer file {path!r} is not a regular file")
            available = max(0, info.st_size - offset)
            if available < self.expected:
                raise LayerSizeMismatch(self.name, self.expected, available)
            copied = 0
            fd = output_fd(self.out)
            if fd is not None and self.hash is None:
                copied = self._kernel_copy(source.fileno(), offset, fd)
            if copied < self.expected:
                try:
                    source.seek(offset + copied)
                except OSError as exc:
                    raise self._read_error(exc) from exc
                copied += self._pump(source, self.expected - copied)
            if copied < self.expected:  # the file shrank while it was copied
                raise LayerSizeMismatch(self.name, self.expected, copied)

    # -- in the kernel --------------------------------------------------------------------

    def _kernel_copy(self, src: int, offset: int, dst: int, length: Optional[int] = None) -> int:
        """Copy what the kernel will; return the count, the caller finishes the rest."""
        self._flush()
        wanted = self.expected if length is None else length
        methods = []
        if hasattr(os, "copy_file_range"):
            methods.append(_copy_file_range)
        if hasattr(os, "sendfile"):
            methods.append(_sendfile)
        done = 0
        while methods and done < wanted:
            count = min(KERNEL_CHUNK, wanted - done)
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
