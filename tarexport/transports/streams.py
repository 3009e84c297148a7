"""Streams a push reads from: deterministic gzip, and a prefetching pipe between threads.

The gzip stream is what ``docker push`` would send, made reproducible: a fixed level, no file
name, modification time 0, pieces cut at fixed offsets, so the same layer always compresses
to the same bytes with the same zlib and its digest, once recorded, finds the blob again.
"""

from __future__ import annotations

import collections
import io
import os
import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Optional

__all__ = ["GZIP_LEVEL", "GzipStream", "prefetch"]

GZIP_LEVEL = 6
"""zlib's default level, as Go's ``gzip.DefaultCompression`` used by ``docker push`` is."""

_CHUNK = 1 << 20


_BLOCK = 1 << 20  # input bytes per independently compressed piece
_WINDOW = 32 << 10  # deflate's window: each piece is primed with the 32 KiB before it
# The gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (as Go).
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _workers() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(4, count))


_PROBE = 64 << 10  # bytes of a piece tried first, to tell incompressible data
_INCOMPRESSIBLE = 0.97  # a probe that shrinks less than this is stored, not deflated


def _deflate(data: bytes, primer: bytes, last: bool, level: int) -> bytes:
    """One piece as raw deflate, ending byte-aligned (or final), primed with ``primer``.

    A piece whose first 64 KiB do not compress (already-compressed or random data) is stored
    instead: zlib spends as long failing to compress such data as compressing text, and the
    result would be no smaller. The choice depends on the bytes only, so it is deterministic.
    """
    probe = data[:_PROBE]
    if probe and len(zlib.compress(probe, 1)) >= _INCOMPRESSIBLE * len(probe):
        level = 0
    if primer and level:
        z = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, primer)
    else:
        z = zlib.compressobj(level, zlib.DEFLATED, -15, 8)
    return z.compress(data) + z.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class GzipStream(io.RawIOBase):
    """The gzip compression of ``source``, read as a stream: one gzip member, no name,
    mtime 0, OS unknown.

    The input is cut into 1 MiB pieces compressed in parallel (as pigz does: each piece
    primed with the 32 KiB before it, flushed to a byte boundary), so the bytes depend only
    on the input and the level, never on the number of threads, and compression runs on
    every core there is.
    """

    def __init__(self, source: BinaryIO, *, level: int = GZIP_LEVEL,
                 workers: Optional[int] = None) -> None:
        super().__init__()
        self._source = source
        self._level = level
        self._pool = ThreadPoolExecutor(workers or _workers(), thread_name_prefix="tarexport-gzip")
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self._depth = 2 * (workers or _workers())
        self._out = memoryview(_HEADER)
        self._crc = 0
        self.consumed = 0  # uncompressed bytes read from the source
        self._next = self._read_piece()
        self._primer = b""
        self._finished = False
        self._trailer_sent = False

    def _read_piece(self) -> bytes:
        data = self._source.read(_BLOCK)
        return bytes(data) if data else b""

    def _submit(self) -> None:
        """Queue pieces until ``depth`` are in flight or the input is all queued."""
        while not self._finished and len(self._pending) < self._depth:
            piece = self._next
            self._next = self._read_piece() if piece else b""
            last = not self._next
            self._crc = zlib.crc32(piece, self._crc)
            self.consumed += len(piece)
            self._pending.append(self._pool.submit(_deflate, piece, self._primer, last,
                                                   self._level))
            self._primer = piece[-_WINDOW:] if len(piece) >= _WINDOW else (
                (self._primer + piece)[-_WINDOW:])
            if last:
                self._finished = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            self._submit()
            if self._pending:
                self._out = memoryview(self._pending.popleft().result())
            elif not self._trailer_sent:
                self._trailer_sent = True
                self._out = memoryview(struct.pack("<II", self._crc & 0xFFFFFFFF,
                                                   self.consumed & 0xFFFFFFFF))
            else:
                return 0
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._source.close()
        super().close()


_DONE = object()


def prefetch(stream: BinaryIO, *, chunk: int = _CHUNK, depth: int = 8) -> Iterator[bytes]:
    """The chunks of ``stream``, read (and compressed, for a :class:`GzipStream`) on a thread
    ahead of the consumer, at most ``depth`` chunks ahead. Errors of the reading side are
    raised to the consumer; a consumer that stops early stops the reader."""
    chunks: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()
    error: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                data = stream.read(chunk)
                if not data:
                    break
                while not stop.is_set():
                    try:
                        chunks.put(data, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the consumer
            error.append(exc)
        finally:
            while not stop.is_set():
                try:
                    chunks.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=reader, name="tarexport-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                break
            yield item
        if error:
            raise error[0]
    finally:
        stop.set()
        thread.join()

