"""Streams for reading blobs: compression detection, bounded decompression, verification.

``docker load`` accepts an archive (and, inside it, layers) that is plain, gzip, bzip2 or xz
compressed; Docker 25+ and crane add zstd. Detection looks only at the first bytes, so it
works on pipes. Decompression never holds more than one output buffer in memory and stops
with :class:`~tarexport.errors.UnsafeArchive` once a stream inflates past its limit (the
decompression bomb of CVE-2017-14992). zstd needs the optional ``zstandard`` package; without
it a zstd stream raises :class:`~tarexport.errors.UnsupportedCompression`.

The stores also read byte ranges of files (:class:`RangeReader`) and check what they serve
against a digest as it is read (:class:`VerifyingReader`).
"""

from __future__ import annotations

import enum
import io
import zlib
from typing import Any, BinaryIO, Optional, Union

from .digest import Digest, Digester
from .errors import (
    InvalidArchive,
    LayerDigestMismatch,
    LayerSizeMismatch,
    UnsafeArchive,
    UnsupportedCompression,
)

__all__ = [
    "Compression",
    "DecompressingReader",
    "PrefixedReader",
    "RangeReader",
    "VerifyingReader",
    "detect",
    "drain",
    "open_decompressed",
    "sniff",
    "zstd_available",
]

# Enough bytes to tell every supported format apart.
MAGIC_LENGTH = 6
_CHUNK = 1 << 20

Buffer = Union[bytes, bytearray, memoryview]


class Compression(enum.Enum):
    """How a stream is compressed."""

    NONE = "none"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZSTD = "zstd"


_MAGIC = (
    (b"\x1f\x8b\x08", Compression.GZIP),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
)


def detect(prefix: bytes) -> Compression:
    """The compression whose magic number ``prefix`` (the first bytes of a stream) starts with."""
    for magic, kind in _MAGIC:
        if prefix.startswith(magic):
            return kind
    return Compression.NONE


def zstd_available() -> bool:
    """Whether the optional ``zstandard`` package is installed."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


class PrefixedReader(io.RawIOBase):
    """A stream that yields ``prefix`` and then the rest of ``stream``: a peek for pipes."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return readinto(self._stream, view)

    def close(self) -> None:
        if not self.closed:
            _close(self._stream)
        super().close()


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def readinto(stream: BinaryIO, view: memoryview) -> int:
    """``stream.readinto(view)``, or a ``read`` copy for streams that only have ``read``."""
    method = getattr(stream, "readinto", None)
    if method is not None:
        n = method(view)
        return 0 if n is None else int(n)
    data = stream.read(len(view))
    if not data:
        return 0
    view[: len(data)] = data
    return len(data)


def drain(stream: BinaryIO, chunk: int = 1 << 20) -> int:
    """Read ``stream`` to its end and return how many bytes it gave (one reused buffer)."""
    view = memoryview(bytearray(chunk))
    total = 0
    while True:
        got = readinto(stream, view)
        if not got:
            return total
        total += got


def sniff(stream: BinaryIO) -> tuple[Compression, BinaryIO]:
    """Detect the compression of ``stream`` without losing its first bytes.

    Returns the compression and a stream that reads from the very first byte again.
    """
    prefix = bytearray()
    while len(prefix) < MAGIC_LENGTH:
        chunk = stream.read(MAGIC_LENGTH - len(prefix))
        if not chunk:
            break
        prefix += chunk
    return detect(bytes(prefix)), PrefixedReader(bytes(prefix), stream)  # type: ignore[return-value]


class _Inflater:
    """A one-shot decompressor with an output bound per call (zlib/bz2/lzma style)."""

    def __init__(self, kind: Compression) -> None:
        self.kind = kind
        self._obj: Any = self._new()
        self.eof = False

    def _new(self) -> Any:
        if self.kind is Compression.GZIP:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # bz2 and lzma are imported only for such streams: they cost memory in every process.
        if self.kind is Compression.BZIP2:
            import bz2

            return bz2.BZ2Decompressor()
        import lzma

        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def inflate(self, data: bytes, max_length: int) -> tuple[bytes, bytes]:
        """Up to ``max_length`` bytes of output, and the input not consumed yet."""
        obj = self._obj
        if self.kind is Compression.GZIP:
            out = obj.decompress(data, max_length)
            rest = obj.unconsumed_tail
            if obj.eof:
                self.eof = True
                rest = obj.unused_data
            return out, rest
        out = obj.decompress(data, max_length)
        if obj.eof:
            self.eof = True
            return out, obj.unused_data
        if obj.needs_input:
            return out, b""
        # bz2/lzma keep unconsumed input internally; feeding b"" drains it.
        return out, b""

    def wants_more_without_input(self) -> bool:
        """Whether the decompressor still holds output that needs no new input."""
        if self.kind is Compression.GZIP:
            return bool(self._obj.unconsumed_tail)
        return not self._obj.eof and not self._obj.needs_input

    def restart(self) -> None:
        """Start a new member (gzip, bzip2 and xz streams may be concatenated)."""
        self._obj = self._new()
        self.eof = False


class DecompressingReader(io.RawIOBase):
    """A readable stream of the decompressed bytes of ``source``.

    ``limit`` bounds the decompressed size; past it reading raises
    :class:`~tarexport.errors.UnsafeArchive`. Corrupt or truncated input raises
    :class:`~tarexport.errors.InvalidArchive` naming ``what``.
    """

    def __init__(
        self, source: BinaryIO, kind: Compression, *, limit: Optional[int], what: str
    ) -> None:
        super().__init__()
        if kind is Compression.NONE:
            raise ValueError("DecompressingReader needs a compressed stream")
        self.kind = kind
        self.what = what
        self.limit = limit
        self.produced = 0
        self._source = source
        self._pending = b""
        self._source_done = False
        self._finished = False
        self._zstd: Any = None
        self._inflater: Optional[_Inflater] = None
        if kind is Compression.ZSTD:
            try:
                import zstandard
            except ImportError:
                raise UnsupportedCompression(
                    f"{what} is zstd-compressed; install the optional 'zstandard' package "
                    "(pip install 'tarexport[zstd]') to read it"
                ) from None
            self._zstd_error: type[Exception] = zstandard.ZstdError
            self._zstd = zstandard.ZstdDecompressor().stream_reader(
                source, read_size=_CHUNK, read_across_frames=True, closefd=False
            )
        else:
            try:
                self._inflater = _Inflater(kind)
            except ImportError:
                raise UnsupportedCompression(
                    f"{what} is {kind.value}-compressed and this Python has no {kind.value} module"
                ) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            _close(self._source)
        super().close()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        n = self._read_zstd(view) if self._zstd is not None else self._read_inflate(view)
        self.produced += n
        if self.limit is not None and self.produced > self.limit:
            raise UnsafeArchive(
                f"{self.what}: decompresses to more than the limit of {self.limit} bytes"
            )
        return n

    def _read_zstd(self, view: memoryview) -> int:
        try:
            return int(self._zstd.readinto(view))
        except self._zstd_error as exc:
            raise InvalidArchive(f"{self.what}: corrupt zstd stream: {exc}") from None

    def _fill(self) -> None:
        if self._pending or self._source_done:
            return
        chunk = self._source.read(_CHUNK)
        if not chunk:
            self._source_done = True
        else:
            self._pending = bytes(chunk)

    def _read_inflate(self, view: memoryview) -> int:
        inflater = self._inflater
        assert inflater is not None
        while not self._finished:
            if inflater.eof:
                # A finished member: more members may follow, or zero padding, or nothing.
                self._fill()
                if not self._pending:
                    self._finished = True
                    break
                if not self._pending.strip(b"\0"):
                    self._pending = b""
                    continue
                inflater.restart()
            if not self._pending and not inflater.wants_more_without_input():
                self._fill()
                if not self._pending and not inflater.wants_more_without_input():
                    raise InvalidArchive(
                        f"{self.what}: truncated {self.kind.value} stream (ends before its end "
                        "marker)"
                    )
            try:
                out, self._pending = inflater.inflate(self._pending, len(view))
            except (zlib.error, OSError, EOFError, ValueError) as exc:
                raise InvalidArchive(
                    f"{self.what}: corrupt {self.kind.value} stream: {exc}"
                ) from None
            except Exception as exc:  # lzma.LZMAError is not importable without lzma
                if type(exc).__name__ == "LZMAError":
                    raise InvalidArchive(f"{self.what}: corrupt xz stream: {exc}") from None
                raise
            if out:
                view[: len(out)] = out
                return len(out)
        return 0


def open_decompressed(
    stream: BinaryIO, *, limit: Optional[int], what: str
) -> tuple[Compression, BinaryIO]:
    """Detect the compression of ``stream`` and return a stream of its decompressed bytes.

    An uncompressed stream is returned as it is (behind a one-block peek).
    """
    kind, rewound = sniff(stream)
    if kind is Compression.NONE:
        return kind, rewound
    reader = DecompressingReader(rewound, kind, limit=limit, what=what)
    return kind, io.BufferedReader(reader, _CHUNK)


class RangeReader(io.RawIOBase):
    """``length`` bytes at ``offset`` of the file at ``path``, as a readable stream."""

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        self._left = length
        self.what = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left <= 0 or not view:
            return 0
        got = self._file.readinto(view[: min(len(view), self._left)])
        if not got:
            raise InvalidArchive(f"{self.what}: file ends {self._left} bytes early")
        self._left -= got
        return got

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class VerifyingReader(io.RawIOBase):
    """Passes ``source`` through, and at its end checks the digest (and size) of what passed.

    A mismatch raises :class:`~tarexport.errors.LayerDigestMismatch` (or
    :class:`~tarexport.errors.LayerSizeMismatch`) from the read that reached the end, so a
    consumer never sees a clean end of a stream that was not what it claimed to be.
    """

    def __init__(
        self, source: BinaryIO, digest: Digest, *, size: Optional[int] = None, what: str
    ) -> None:
        super().__init__()
        self._source = source
        self._expected = digest
        self._size = size
        self._digester = Digester(digest.algorithm)
        self._checked = False
        self.what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        got = readinto(self._source, view)
        if got:
            self._digester.update(view[:got])
            if self._size is not None and self._digester.size > self._size:
                raise LayerSizeMismatch(self.what, self._size, self._digester.size, at_least=True)
            return got
        if not self._checked:
            self._checked = True
            if self._size is not None and self._digester.size != self._size:
                raise LayerSizeMismatch(self.what, self._size, self._digester.size)
            actual = self._digester.digest()
            if actual != self._expected:
                raise LayerDigestMismatch(self.what, str(self._expected), str(actual))
        return 0

    def close(self) -> None:
        if not self.closed:
            _close(self._source)
        super().close()
