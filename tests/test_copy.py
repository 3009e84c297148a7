"""Copying layer bytes into an output: real files, pipes, sockets and in-memory streams."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import socket
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tarexport import copy as copy_module
from tarexport.copy import can_zero_copy, copy_layer, output_fd
from tarexport.digest import Digest
from tarexport.errors import (
    LayerDigestMismatch,
    LayerIntegrityError,
    LayerSizeMismatch,
    OutputError,
    StoreError,
)
from tarexport.stores.protocols import FileRange, Layer

ENTRY = "0123abcd/layer.tar"
SMALL = b"small layer bytes\n" * 100
BIG = bytes(range(256)) * (9 * 4096 + 7)  # 9 MiB and a bit: several buffers, hashed aside


def sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


class TestLayer:
    """A layer as a store would hand it out: from bytes, from a file, or from a file range."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        opener: Callable[[], BinaryIO],
        size: int,
        diff_id: Digest,
        file_range: Optional[FileRange] = None,
    ) -> None:
        self._opener = opener
        self._size = size
        self._diff_id = diff_id
        self._range = file_range
        self.opened = 0

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def size(self) -> int:
        return self._size

    def open(self) -> BinaryIO:
        self.opened += 1
        return self._opener()

    def file_range(self) -> Optional[FileRange]:
        return self._range

    @classmethod
    def from_bytes(
        cls, data: bytes, *, size: Optional[int] = None, diff_id: Optional[Digest] = None
    ) -> TestLayer:
        return cls(
            lambda: io.BytesIO(data), len(data) if size is None else size, diff_id or sha256(data)
        )

    @classmethod
    def from_file(
        cls, path: Path, *, size: Optional[int] = None, diff_id: Optional[Digest] = None
    ) -> TestLayer:
        data = path.read_bytes()
        return cls(
            lambda: open(path, "rb"), len(data) if size is None else size, diff_id or sha256(data)
        )

    @classmethod
    def from_range(
        cls,
        path: Path,
        offset: int,
        length: int,
        *,
        size: Optional[int] = None,
        diff_id: Optional[Digest] = None,
    ) -> TestLayer:
        data = path.read_bytes()[offset : offset + length]

        def opener() -> BinaryIO:
            return io.BytesIO(data)  # only the buffered fallback would read this

        return cls(
            opener,
            length if size is None else size,
            diff_id or sha256(data),
            FileRange(str(path), offset, length),
        )


def test_test_layer_satisfies_the_protocol():
    assert isinstance(TestLayer.from_bytes(b""), Layer)


@pytest.fixture
def container(tmp_path: Path) -> Path:
    """A file holding BIG between two other runs of bytes, for file-range layers."""
    path = tmp_path / "blobs.bin"
    path.write_bytes(b"H" * 1000 + BIG + b"T" * 3000)
    return path


def layer_of(kind: str, data: bytes, tmp_path: Path, **kwargs: Any) -> TestLayer:
    if kind == "bytes":
        return TestLayer.from_bytes(data, **kwargs)
    if kind == "file":
        path = tmp_path / "layer.tar"
        path.write_bytes(data)
        return TestLayer.from_file(path, **kwargs)
    path = tmp_path / "container.bin"
    path.write_bytes(b"<" * 777 + data + b">" * 999)
    return TestLayer.from_range(path, 777, len(data), **kwargs)


KINDS = ["bytes", "file", "range"]


# -- outputs ----------------------------------------------------------------------------------


class Collector:
    """Drains the read end of a pipe or socket on a thread, as a consumer process would."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.chunks: List[bytes] = []
        self._read = read
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._read(1 << 16)
            if not chunk:
                return
            self.chunks.append(chunk)

    def result(self) -> bytes:
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()
        return b"".join(self.chunks)


class PipeOutput:
    def __init__(self) -> None:
        r, w = os.pipe()
        self._r = r
        self.out = os.fdopen(w, "wb")
        self.collector = Collector(lambda n: os.read(r, n))

    def finish(self) -> bytes:
        self.out.close()
        data = self.collector.result()
        os.close(self._r)
        return data


class SocketOutput:
    def __init__(self) -> None:
        self._a, self._b = socket.socketpair()
        self.out = self._a.makefile("wb")
        self.collector = Collector(self._b.recv)

    def finish(self) -> bytes:
        self.out.close()
        self._a.shutdown(socket.SHUT_WR)
        self._a.close()
        data = self.collector.result()
        self._b.close()
        return data


class FileOutput:
    def __init__(self, path: Path, mode: str = "wb", buffering: int = -1) -> None:
        self.path = path
        self.out = open(path, mode, buffering=buffering)  # noqa: SIM115 -- closed by finish()

    def finish(self) -> bytes:
        self.out.close()
        return self.path.read_bytes()


class BytesOutput:
    def __init__(self) -> None:
        self.out = io.BytesIO()

    def finish(self) -> bytes:
        return self.out.getvalue()


class WriteOnly:
    """Any object with a write method, returning nothing, as many hand-written sinks do."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []

    def write(self, data: Any) -> None:
        self.parts.append(bytes(data))


class WriteOnlyOutput:
    def __init__(self) -> None:
        self.out = WriteOnly()

    def finish(self) -> bytes:
        return b"".join(self.out.parts)


OUTPUTS = ["file", "raw-file", "file-w+b", "pipe", "socket", "bytesio", "write-only"]


@pytest.fixture(params=OUTPUTS)
def output(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    kind = request.param
    if kind == "file":
        made: Any = FileOutput(tmp_path / "out.tar")
    elif kind == "raw-file":
        made = FileOutput(tmp_path / "out.tar", buffering=0)
    elif kind == "file-w+b":
        made = FileOutput(tmp_path / "out.tar", mode="w+b")
    elif kind == "pipe":
        made = PipeOutput()
    elif kind == "socket":
        made = SocketOutput()
    elif kind == "bytesio":
        made = BytesOutput()
    else:
        made = WriteOnlyOutput()
    yield made
    if hasattr(made.out, "close"):
        made.out.close()


# -- copying ----------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
@pytest.mark.parametrize("data", [b"", SMALL, BIG], ids=["empty", "small", "big"])
@pytest.mark.parametrize("kind", KINDS)
def test_copy_to_every_kind_of_output(kind, data, verify, output, tmp_path):
    layer = layer_of(kind, data, tmp_path)
    progress: List[int] = []
    copy_layer(layer, output.out, name=ENTRY, verify=verify, on_progress=progress.append)
    assert output.finish() == data
    assert sum(progress) == len(data)
    assert all(n > 0 for n in progress)


def test_data_written_before_and_after_a_kernel_copy_lands_in_order(container, tmp_path):
    layer = TestLayer.from_range(container, 1000, len(BIG))
    path = tmp_path / "out.tar"
    with open(path, "wb") as out:
        out.write(b"HEADER")  # still in the BufferedWriter's buffer
        assert can_zero_copy(layer, out, verify=False)
        copy_layer(layer, out, name=ENTRY, verify=False)
        assert out.tell() == 6 + len(BIG)
        out.write(b"PADDING")
    assert path.read_bytes() == b"HEADER" + BIG + b"PADDING"


def test_read_write_file_keeps_its_position_after_a_kernel_copy(container, tmp_path):
    layer = TestLayer.from_range(container, 1000, len(BIG))
    path = tmp_path / "out.tar"
    path.write_bytes(b"0123456789")
    with open(path, "r+b") as out:
        assert out.read(4) == b"0123"  # the buffered reader has read ahead
        copy_layer(layer, out, name=ENTRY, verify=False)
        assert out.tell() == 4 + len(BIG)
        out.write(b"END")
    assert path.read_bytes() == b"0123" + BIG + b"END"


def test_read_write_file_seeks_right_after_a_kernel_copy(container, tmp_path):
    # A buffered file caches its position; after the kernel moved the descriptor, a read
    # and a seek back into the file must still find the right bytes.
    layer = TestLayer.from_range(container, 1000, len(BIG))
    path = tmp_path / "out.tar"
    path.write_bytes(b"0123" + bytes(len(BIG)) + b"T" * 100)
    with open(path, "r+b") as out:
        out.seek(4)
        copy_layer(layer, out, name=ENTRY, verify=False)
        assert out.read(10) == b"T" * 10
        out.seek(0)
        assert out.read(4) == b"0123"
    assert path.read_bytes() == b"0123" + BIG + b"T" * 100


class Spy:
    """Counts the calls of a real function, optionally limiting or failing them."""

    def __init__(
        self,
        real: Callable[..., int],
        *,
        max_count: Optional[int] = None,
        fail: Optional[int] = None,
        zero: bool = False,
    ) -> None:
        self.real = real
        self.calls = 0
        self.max_count = max_count
        self.fail = fail
        self.zero = zero

    def copy_file_range(self, src: int, dst: int, count: int, offset: int) -> int:
        self.calls += 1
        if self.fail is not None:
            raise OSError(self.fail, os.strerror(self.fail))
        if self.zero:
            return 0
        return self.real(src, dst, min(count, self.max_count or count), offset)

    def sendfile(self, dst: int, src: int, offset: int, count: int) -> int:
        self.calls += 1
        if self.fail is not None:
            raise OSError(self.fail, os.strerror(self.fail))
        if self.zero:
            return 0
        return self.real(dst, src, offset, min(count, self.max_count or count))


def test_file_to_file_uses_copy_file_range_and_loops_over_short_counts(
    container, tmp_path, monkeypatch
):
    spy = Spy(os.copy_file_range, max_count=100_000)
    monkeypatch.setattr(os, "copy_file_range", spy.copy_file_range)
    layer = TestLayer.from_range(container, 1000, len(BIG))
    output = FileOutput(tmp_path / "out.tar")
    copy_layer(layer, output.out, name=ENTRY, verify=False)
    assert output.finish() == BIG
    assert spy.calls >= len(BIG) // 100_000


def test_pipe_output_falls_back_to_sendfile(container, monkeypatch):
    spy = Spy(os.sendfile)
    monkeypatch.setattr(os, "sendfile", spy.sendfile)
    output = PipeOutput()
    copy_layer(
        TestLayer.from_range(container, 1000, len(BIG)), output.out, name=ENTRY, verify=False
    )
    assert output.finish() == BIG
    assert spy.calls >= 1


def test_socket_output_uses_sendfile(container, monkeypatch):
    spy = Spy(os.sendfile, max_count=12345)
    monkeypatch.setattr(os, "sendfile", spy.sendfile)
    output = SocketOutput()
    copy_layer(
        TestLayer.from_range(container, 1000, len(BIG)), output.out, name=ENTRY, verify=False
    )
    assert output.finish() == BIG
    assert spy.calls >= len(BIG) // 12345


@pytest.mark.parametrize("failure", [errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_unsupported_kernel_copies_fall_back_to_the_next_way(
    failure, container, tmp_path, monkeypatch
):
    cfr = Spy(os.copy_file_range, fail=failure)
    sendfile = Spy(os.sendfile, fail=failure)
    monkeypatch.setattr(os, "copy_file_range", cfr.copy_file_range)
    monkeypatch.setattr(os, "sendfile", sendfile.sendfile)
    output = FileOutput(tmp_path / "out.tar")
    output.out.write(b"<")
    copy_layer(
        TestLayer.from_range(container, 1000, len(BIG)), output.out, name=ENTRY, verify=False
    )
    output.out.write(b">")
    assert output.finish() == b"<" + BIG + b">"
    assert (cfr.calls, sendfile.calls) == (1, 1)


def test_a_kernel_copy_stopping_midway_is_finished_through_a_buffer(
    container, tmp_path, monkeypatch
):
    # copy_file_range does a part, then reports nothing more (as on some file systems).
    real = os.copy_file_range
    calls: List[int] = []

    def stops_after_two_calls(src: int, dst: int, count: int, offset: int) -> int:
        calls.append(count)
        return real(src, dst, min(count, 1 << 20), offset) if len(calls) <= 2 else 0

    monkeypatch.setattr(os, "copy_file_range", stops_after_two_calls)
    monkeypatch.setattr(os, "sendfile", Spy(os.sendfile, zero=True).sendfile)
    output = FileOutput(tmp_path / "out.tar")
    copy_layer(
        TestLayer.from_range(container, 1000, len(BIG)), output.out, name=ENTRY, verify=False
    )
    assert output.finish() == BIG


def test_verified_copy_of_a_file_range_is_right(container, tmp_path):
    layer = TestLayer.from_range(container, 1000, len(BIG))
    output = FileOutput(tmp_path / "out.tar")
    assert can_zero_copy(layer, output.out, verify=True)  # copied by the kernel, hashed aside
    copy_layer(layer, output.out, name=ENTRY, verify=True)
    assert output.finish() == BIG
    assert layer.opened == 0  # the range is read directly, not through open()


@pytest.mark.parametrize("kind", KINDS)
def test_big_layers_are_hashed_on_a_second_thread(kind, tmp_path):
    seen: List[bool] = []

    def on_progress(n: int) -> None:
        seen.append(any(t.name == "tarexport-hash" for t in threading.enumerate()))

    output = BytesOutput()
    copy_layer(layer_of(kind, BIG, tmp_path), output.out, name=ENTRY, on_progress=on_progress)
    assert output.finish() == BIG
    # The last call reports the withheld final block, written after the hash was checked.
    assert seen[:-1] and all(seen[:-1])
    assert not any(t.name == "tarexport-hash" for t in threading.enumerate())


class ChunkRecorder(io.RawIOBase):
    """A readable stream that records the largest read asked of it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.largest = max(self.largest, len(buffer))
        return self._data.readinto(buffer)


@pytest.mark.parametrize("verify", [True, False])
def test_memory_stays_bounded(verify):
    stream = ChunkRecorder(BIG)
    layer = TestLayer(lambda: stream, len(BIG), sha256(BIG))  # type: ignore[arg-type,return-value]
    sink = WriteOnlyOutput()
    copy_layer(layer, sink.out, name=ENTRY, verify=verify)  # type: ignore[arg-type]
    assert sink.finish() == BIG
    assert 0 < stream.largest <= copy_module.BUFFER_SIZE
    assert max(len(p) for p in sink.out.parts) <= copy_module.BUFFER_SIZE


class ReadOnlyStream:
    """A source with ``read`` and nothing else."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, 1000))

    def close(self) -> None:
        pass


def test_source_without_readinto():
    layer = TestLayer(lambda: ReadOnlyStream(BIG), len(BIG), sha256(BIG))  # type: ignore[arg-type,return-value]
    output = BytesOutput()
    copy_layer(layer, output.out, name=ENTRY)
    assert output.finish() == BIG


def test_gzip_output_is_not_bypassed(container, tmp_path):
    # GzipFile.fileno() is the compressed file's descriptor: writing there would corrupt it.
    layer = TestLayer.from_range(container, 1000, len(BIG))
    path = tmp_path / "out.tar.gz"
    with gzip.open(path, "wb") as out:
        assert output_fd(out) is None  # type: ignore[arg-type]
        copy_layer(layer, out, name=ENTRY, verify=False)  # type: ignore[arg-type]
    assert gzip.decompress(path.read_bytes()) == BIG


def test_output_fd(tmp_path):
    with open(tmp_path / "f", "wb") as f:
        assert output_fd(f) == f.fileno()
    assert output_fd(f) is None  # closed
    with open(tmp_path / "f", "rb") as f:
        assert output_fd(f) is None  # not writable
    with open(tmp_path / "f", "wb", buffering=0) as raw:
        assert output_fd(raw) == raw.fileno()  # type: ignore[arg-type]
    assert output_fd(io.BytesIO()) is None
    a, b = socket.socketpair()
    with a, b, a.makefile("wb") as out:
        assert output_fd(out) == a.fileno()


def test_can_zero_copy(container, tmp_path):
    ranged = TestLayer.from_range(container, 1000, len(BIG))
    streamed = TestLayer.from_bytes(BIG)
    with open(tmp_path / "f", "wb") as f:
        assert can_zero_copy(ranged, f, verify=False)
        assert can_zero_copy(ranged, f, verify=True)
        assert not can_zero_copy(streamed, f, verify=False)
    assert not can_zero_copy(ranged, io.BytesIO(), verify=False)


@settings(max_examples=40)
@given(
    size=st.integers(0, 20_000),
    kind=st.sampled_from(KINDS),
    buffer=st.sampled_from([7, 512, 4096]),
    verify=st.booleans(),
    kernel_chunk=st.sampled_from([1, 1000, 1 << 20]),
)
def test_any_size_with_any_buffer(size, kind, buffer, verify, kernel_chunk, tmp_path_factory):
    data = os.urandom(size)
    tmp = tmp_path_factory.mktemp("any")
    saved = (copy_module.BUFFER_SIZE, copy_module.KERNEL_CHUNK, copy_module._THREAD_THRESHOLD)
    copy_module.BUFFER_SIZE, copy_module.KERNEL_CHUNK = buffer, kernel_chunk
    copy_module._THREAD_THRESHOLD = 2 * buffer
    try:
        output = FileOutput(tmp / "out.tar")
        copy_layer(layer_of(kind, data, tmp), output.out, name=ENTRY, verify=verify)
        assert output.finish() == data
    finally:
        (copy_module.BUFFER_SIZE, copy_module.KERNEL_CHUNK, copy_module._THREAD_THRESHOLD) = saved


# -- the layer is not what it claims ----------------------------------------------------------


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "big"])
@pytest.mark.parametrize("kind", KINDS)
def test_digest_mismatch(kind, data, tmp_path):
    wrong = sha256(b"something else")
    layer = layer_of(kind, data, tmp_path, diff_id=wrong)
    output = FileOutput(tmp_path / "out.tar")
    with pytest.raises(LayerDigestMismatch) as info:
        copy_layer(layer, output.out, name=ENTRY)
    assert info.value.expected == str(wrong)
    assert info.value.actual == str(sha256(data))
    assert ENTRY in str(info.value)
    assert isinstance(info.value, LayerIntegrityError)


@pytest.mark.parametrize("kind", KINDS)
def test_digest_is_not_checked_without_verify(kind, tmp_path):
    layer = layer_of(kind, SMALL, tmp_path, diff_id=sha256(b"something else"))
    output = BytesOutput()
    copy_layer(layer, output.out, name=ENTRY, verify=False)
    assert output.finish() == SMALL


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "big"])
def test_stream_shorter_than_declared(data, verify, tmp_path):
    layer = TestLayer.from_bytes(data, size=len(data) + 10)
    with pytest.raises(LayerSizeMismatch) as info:
        copy_layer(layer, io.BytesIO(), name=ENTRY, verify=verify)
    assert (info.value.expected, info.value.actual) == (len(data) + 10, len(data))
    assert ENTRY in str(info.value)


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("data", [SMALL, BIG], ids=["small", "big"])
@pytest.mark.parametrize("kind", ["bytes", "file"])
def test_stream_longer_than_declared_writes_no_extra_byte(kind, data, verify, tmp_path):
    layer = layer_of(kind, data, tmp_path, size=len(data) - 1, diff_id=sha256(data[:-1]))
    output = BytesOutput()
    with pytest.raises(LayerSizeMismatch) as info:
        copy_layer(layer, output.out, name=ENTRY, verify=verify)
    assert info.value.expected == len(data) - 1
    assert info.value.actual == len(data)
    assert "at least" in str(info.value)
    # Every declared byte but the withheld last block: the member stays unfinished.
    assert output.finish() == data[: max(0, len(data) - 1 - 512)]


@pytest.mark.parametrize("verify", [True, False])
def test_file_range_past_the_end_of_its_file(verify, container, tmp_path):
    file_size = container.stat().st_size
    layer = TestLayer.from_range(container, file_size - 100, 500, size=500)
    output = FileOutput(tmp_path / "out.tar")
    with pytest.raises(LayerSizeMismatch) as info:
        copy_layer(layer, output.out, name=ENTRY, verify=verify)
    assert (info.value.expected, info.value.actual) == (500, 100)
    assert output.finish() == b""  # checked before a byte is copied


@pytest.mark.parametrize("length", [99, 101])
def test_file_range_of_another_length_than_the_layer(length, container, tmp_path):
    layer = TestLayer.from_range(container, 0, length, size=100)
    output = FileOutput(tmp_path / "out.tar")
    with pytest.raises(LayerSizeMismatch) as info:
        copy_layer(layer, output.out, name=ENTRY, verify=False)
    assert (info.value.expected, info.value.actual) == (100, length)
    assert output.finish() == b""


def test_file_range_shrinking_during_a_kernel_copy(container, tmp_path, monkeypatch):
    real = os.copy_file_range

    def shrink_then_copy(src: int, dst: int, count: int, offset: int) -> int:
        os.truncate(container, 1000 + 5000)
        return real(src, dst, min(count, 4096), offset)

    monkeypatch.setattr(os, "copy_file_range", shrink_then_copy)
    layer = TestLayer.from_range(container, 1000, len(BIG))
    output = FileOutput(tmp_path / "out.tar")
    with pytest.raises(LayerSizeMismatch) as info:
        copy_layer(layer, output.out, name=ENTRY, verify=False)
    assert info.value.actual == 5000
    output.finish()


def test_missing_layer_file(tmp_path):
    layer = TestLayer.from_bytes(b"x")
    layer._range = FileRange(str(tmp_path / "gone"), 0, 1)
    with pytest.raises(StoreError, match="gone"):
        copy_layer(layer, io.BytesIO(), name=ENTRY)


def test_file_range_on_a_device():
    layer = TestLayer.from_bytes(b"")
    layer._range = FileRange(os.devnull, 0, 0)
    with pytest.raises(StoreError, match="regular file"):
        copy_layer(layer, io.BytesIO(), name=ENTRY)


class FailingReader(io.RawIOBase):
    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._left:
            raise OSError(errno.EIO, "Input/output error")
        n = min(len(buffer), self._left)
        buffer[:n] = b"r" * n
        self._left -= n
        return n


@pytest.mark.parametrize("size", [100, len(BIG)])
def test_read_errors_are_store_errors(size):
    layer = TestLayer(lambda: FailingReader(size // 2), size, sha256(b""))  # type: ignore[arg-type,return-value]
    with pytest.raises(StoreError, match="Input/output error") as info:
        copy_layer(layer, io.BytesIO(), name=ENTRY)
    assert ENTRY in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_open_errors_are_store_errors(tmp_path):
    missing = tmp_path / "missing.tar"
    layer = TestLayer(lambda: open(missing, "rb"), 1, sha256(b"x"))  # noqa: SIM115
    with pytest.raises(StoreError) as info:
        copy_layer(layer, io.BytesIO(), name=ENTRY)
    assert isinstance(info.value.__cause__, FileNotFoundError)


# -- the output fails -------------------------------------------------------------------------


class FullDisk:
    """Accepts ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.written = 0

    def write(self, data: Any) -> int:
        if self.written + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return len(data)


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_output_failing_midway(kind, verify, tmp_path):
    layer = layer_of(kind, BIG, tmp_path)
    out = FullDisk(room=3 << 20)
    with pytest.raises(OutputError) as info:
        copy_layer(layer, out, name=ENTRY, verify=verify)  # type: ignore[arg-type]
    message = str(info.value)
    assert ENTRY in message and "No space left" in message and "\n" not in message
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value, OSError)


def test_closed_output(tmp_path):
    with open(tmp_path / "out.tar", "wb") as out:
        pass
    with pytest.raises(OutputError, match=ENTRY):
        copy_layer(TestLayer.from_bytes(SMALL), out, name=ENTRY)


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_broken_pipe(kind, verify, tmp_path):
    layer = layer_of(kind, BIG, tmp_path)
    r, w = os.pipe()
    os.close(r)  # the consumer went away
    with os.fdopen(w, "wb") as out:
        with pytest.raises(OutputError) as info:
            copy_layer(layer, out, name=ENTRY, verify=verify)
        assert info.value.errno == errno.EPIPE


def test_writer_that_accepts_nothing():
    class Stuck:
        def write(self, data: Any) -> int:
            return 0

    with pytest.raises(OutputError, match="accepted no bytes"):
        copy_layer(TestLayer.from_bytes(SMALL), Stuck(), name=ENTRY)  # type: ignore[arg-type]


def test_partial_writes_are_completed():
    class Dribble:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: Any) -> int:
            self.data += bytes(data[:333])
            return min(len(data), 333)

    out = Dribble()
    copy_layer(TestLayer.from_bytes(BIG), out, name=ENTRY)  # type: ignore[arg-type]
    assert bytes(out.data) == BIG
