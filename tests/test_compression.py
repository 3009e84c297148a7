"""Compression detection and bounded decompression, and the verifying stream wrappers."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys

import pytest
from craft import OnlyRead
from hypothesis import given
from hypothesis import strategies as st

from tarexport.compression import (
    Compression,
    DecompressingReader,
    RangeReader,
    VerifyingReader,
    detect,
    open_decompressed,
    zstd_available,
)
from tarexport.digest import Digest
from tarexport.errors import (
    InvalidArchive,
    LayerDigestMismatch,
    LayerSizeMismatch,
    UnsafeArchive,
    UnsupportedCompression,
)

zstandard = pytest.importorskip("zstandard") if zstd_available() else None

COMPRESSORS = {
    Compression.GZIP: lambda data: gzip.compress(data, mtime=0),
    Compression.BZIP2: bz2.compress,
    Compression.XZ: lzma.compress,
}
if zstandard is not None:
    COMPRESSORS[Compression.ZSTD] = lambda data: zstandard.ZstdCompressor().compress(data)


def inflate(data: bytes, limit=None) -> bytes:
    _, stream = open_decompressed(OnlyRead(data), limit=limit, what="test")
    return stream.read()


@pytest.mark.parametrize("kind", list(COMPRESSORS), ids=lambda k: k.value)
def test_detect_by_magic(kind: Compression) -> None:
    assert detect(COMPRESSORS[kind](b"hello")) is kind


def test_plain_bytes_are_not_compressed() -> None:
    assert detect(b"ustar or anything") is Compression.NONE
    assert detect(b"") is Compression.NONE


@pytest.mark.parametrize("kind", list(COMPRESSORS), ids=lambda k: k.value)
@given(data=st.binary(max_size=5000))
def test_round_trip(kind: Compression, data: bytes) -> None:
    compressed = COMPRESSORS[kind](data)
    assert inflate(compressed) == data


def test_uncompressed_stream_passes_through() -> None:
    assert inflate(b"plain data " * 1000) == b"plain data " * 1000


def test_concatenated_gzip_members() -> None:
    data = gzip.compress(b"one", mtime=0) + gzip.compress(b"two", mtime=0)
    assert inflate(data) == b"onetwo"


def test_zero_padding_after_gzip_is_ignored() -> None:
    assert inflate(gzip.compress(b"data", mtime=0) + bytes(512)) == b"data"


def test_garbage_after_gzip_is_invalid() -> None:
    with pytest.raises(InvalidArchive, match="corrupt gzip"):
        inflate(gzip.compress(b"data", mtime=0) + b"garbage!")


@pytest.mark.parametrize("kind", [Compression.GZIP, Compression.BZIP2, Compression.XZ],
                         ids=lambda k: k.value)
def test_truncated_stream_is_invalid(kind: Compression) -> None:
    compressed = COMPRESSORS[kind](os.urandom(20000))
    with pytest.raises(InvalidArchive, match=r"truncated|corrupt"):
        inflate(compressed[: len(compressed) // 2])


def test_corrupt_stream_is_invalid() -> None:
    compressed = bytearray(gzip.compress(os.urandom(5000), mtime=0))
    compressed[100:110] = b"\xff" * 10
    with pytest.raises(InvalidArchive):
        inflate(bytes(compressed))


@pytest.mark.parametrize("kind", list(COMPRESSORS), ids=lambda k: k.value)
def test_bomb_stops_at_the_limit(kind: Compression) -> None:
    bomb = COMPRESSORS[kind](bytes(50 << 20))
    assert len(bomb) < (1 << 20)
    reader = DecompressingReader(io.BytesIO(bomb), kind, limit=1 << 20, what="bomb")
    buffer = bytearray(1 << 16)
    with pytest.raises(UnsafeArchive, match="more than the limit"):
        while reader.readinto(buffer):
            # Output per read is bounded by the buffer, never the whole bomb at once.
            assert reader.produced <= (1 << 20) + len(buffer)


def test_exactly_the_limit_is_fine() -> None:
    assert len(inflate(gzip.compress(bytes(1000), mtime=0), limit=1000)) == 1000


def test_zstd_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    frame = b"\x28\xb5\x2f\xfd" + bytes(20)
    with pytest.raises(UnsupportedCompression, match="zstandard"):
        inflate(frame)
    assert not zstd_available()


def test_verifying_reader_passes_good_data() -> None:
    data = os.urandom(3000)
    reader = VerifyingReader(io.BytesIO(data), Digest.from_bytes(data), size=3000, what="ok")
    assert reader.read() == data


def test_verifying_reader_refuses_other_data() -> None:
    reader = VerifyingReader(io.BytesIO(b"evil"), Digest.from_bytes(b"good"), what="layer x")
    with pytest.raises(LayerDigestMismatch, match="layer x"):
        reader.read()


@pytest.mark.parametrize(("data", "size"), [(b"short", 10), (b"too long data", 4)])
def test_verifying_reader_checks_size(data: bytes, size: int) -> None:
    reader = VerifyingReader(io.BytesIO(data), Digest.from_bytes(data), size=size, what="s")
    with pytest.raises(LayerSizeMismatch):
        reader.read()


def test_range_reader(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    with RangeReader(str(path), 3, 4) as reader:
        assert reader.read() == b"3456"
    with RangeReader(str(path), 8, 5) as reader, pytest.raises(InvalidArchive, match="early"):
        reader.read()
