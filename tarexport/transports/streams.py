"""Streams a push reads from: deterministic gzip, and a prefetching pipe between threads.

The gzip stream is what ``docker push`` would send, made reproducible: a fixed level, no file
name, modification time 0, so the same layer always compresses to the same bytes with the same
zlib and its digest, once recorded, finds the blob again.
"""

from __future__ import annotations

import io
import queue
import threading
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = ["GZIP_LEVEL", "GzipStream", "prefetch"]

GZIP_LEVEL = 6
"""zlib's default level, as Go's ``gzip.DefaultCompression`` used by ``docker push`` is."""

_CHUNK = 1 << 20


class GzipStream(io.RawIOBase):
    """The gzip compression of ``source``, read as a stream (header: no name, mtime 0)."""

    def __init__(self, source: BinaryIO, *, level: int = GZIP_LEVEL) -> None:
        super().__init__()
        self._source = source
        # wbits 31: a gzip wrapper with zero mtime and no name, i.e. the same bytes every time.
        self._zlib: Any = zlib.compressobj(level, zlib.DEFLATED, 31, 8)
        self._pending = b""
        self._eof = False
        self.consumed = 0  # uncompressed bytes read from the source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._eof:
            data = self._source.read(_CHUNK)
            if data:
                self.consumed += len(data)
                self._pending = self._zlib.compress(data)
            else:
                self._pending = self._zlib.flush()
                self._eof = True
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
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

