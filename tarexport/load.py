"""The Loader: a ``docker save`` archive into a store, in one pass, hostile-input safe.

The archive is read once, front to back, from any readable binary stream (a pipe is fine);
an outer gzip, bzip2, xz or zstd compression is recognised by its magic bytes. Because
``manifest.json`` comes near the end of an archive, nothing can be decided while members
stream by: every regular member is staged in the target store (hashed as it is written), the
small metadata members are kept in memory, and only at the end-of-archive marker is the
manifest read and every image checked. Then, and only when everything verified, images are
registered one by one; the staged blobs nobody uses are dropped.

What is checked, and the visibility rule, are described in ``docs/loading.md``.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Optional

import attrs

from .compression import Compression, DecompressingReader, PrefixedReader
from .digest import Digest, Digester
from .errors import ArchiveDigestMismatch, InvalidArchive, TarexportError, UnsafeArchive
from .progress import Progress, ProgressCallback
from .reference import Named, familiar_string
from .stores.docker_archive import (
    DEFAULT_LIMITS,
    MANIFEST,
    REPOSITORIES,
    ArchiveImage,
    Limits,
    layer_compression,
    read_archive,
)
from .stores.protocols import BlobWriter, ImageSink, LoadTransaction, ManifestLoadTransaction
from .tarread import BLOCK_SIZE, MemberIndex, MemberType, TarMember, TarReader

__all__ = ["Limits", "LoadResult", "LoadedImage", "Loader", "load"]

# Big buffers: the body of a layer goes through hashlib and the store in few calls.
_CHUNK = 1 << 20
_PROGRESS_EVERY = 16 << 20
# Top-level members that are metadata, not blobs: kept in memory, never staged.
_METADATA = frozenset({MANIFEST, REPOSITORIES, "index.json", "oci-layout"})
# Members of a v1 layer directory kept in memory (a legacy load reads every ``json``).
_V1_METADATA = frozenset({"json", "VERSION"})
_MANIFEST_TYPES = frozenset({
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
})
_INDEX_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
_MAX_INDEX_DEPTH = 4


@attrs.frozen
class LoadedImage:
    """An image a load registered: its ID, the tags it got, the parent link it got."""

    id: Digest
    references: tuple[Named, ...] = ()
    parent: Optional[Digest] = None


@attrs.frozen
class LoadResult:
    """What a load registered, in the order the archive lists the images."""

    images: tuple[LoadedImage, ...]
    legacy: bool = False

    @property
    def image_ids(self) -> tuple[Digest, ...]:
        return tuple(image.id for image in self.images)

    @property
    def references(self) -> tuple[Named, ...]:
        return tuple(ref for image in self.images for ref in image.references)

    def messages(self) -> list[str]:
        """The lines ``docker load`` prints: one per tag, or the IDs when the last had none."""
        lines: list[str] = []
        ids: list[str] = []
        tagged = 0
        for image in self.images:
            ids.append(f"Loaded image ID: {image.id}")
            tagged = len(image.references)
            lines.extend(f"Loaded image: {familiar_string(ref)}" for ref in image.references)
        return lines if tagged else lines + ids


def _is_metadata(path: str) -> bool:
    if path in _METADATA:
        return True
    parts = path.split("/")
    return len(parts) == 2 and parts[1] in _V1_METADATA


class _Staging:
    """Every member of one archive: the index, small members in memory, the rest staged.

    It is also the :class:`~tarexport.stores.docker_archive.ArchiveSource` that
    :func:`~tarexport.stores.docker_archive.read_archive` reads once the index is complete.
    """

    def __init__(self, txn: LoadTransaction, limits: Limits) -> None:
        self.txn = txn
        self.limits = limits
        self._index = MemberIndex(limits.members)
        self.memory: dict[str, bytes] = {}
        self.memory_size = 0
        self.staged: dict[str, Digest] = {}
        self._uncompressed: dict[Digest, Digest] = {}
        self._buffers = (bytearray(_CHUNK), bytearray(_CHUNK))
        self._hasher: Optional[ThreadPoolExecutor] = None

    @property
    def index(self) -> MemberIndex:
        return self._index

    # -- while the archive streams by -----------------------------------------------------

    def keep_in_memory(self, member: TarMember, reader: TarReader) -> None:
        if member.size > self.limits.json_size:
            raise UnsafeArchive(
                f"archive member {member.path!r}: {member.size} bytes is over the JSON limit "
                f"of {self.limits.json_size}"
            )
        self.memory_size += member.size
        if self.memory_size > self.limits.metadata_size:
            raise UnsafeArchive(
                f"archive metadata members are over the limit of {self.limits.metadata_size} bytes"
            )
        self.memory[member.path] = reader.read_body(member.size)

    def stage_member(self, member: TarMember, reader: TarReader, tick: _Ticker) -> None:
        writer = self.txn.stage_blob()
        try:
            digest = self._copy(reader.readinto, writer, tick.count, small=member.size <= _CHUNK)
        except BaseException:
            writer.abort()
            raise
        writer.commit(digest)
        self.staged[member.path] = digest

    def _copy(
        self,
        readinto: Callable[[memoryview], int],
        writer: BlobWriter,
        on_bytes: Optional[Callable[[int], None]] = None,
        *,
        small: bool = False,
    ) -> Digest:
        """Copy a stream into a blob writer, hashing it; returns its sha256.

        For big streams the hash runs on a worker thread while the main thread reads the next
        buffer and writes this one (hashlib and file I/O both release the GIL), so a load
        costs about one sha256 pass rather than hash + read + write one after the other.
        """
        digester = Digester()
        if small:
            view = memoryview(self._buffers[0])
            while True:
                got = readinto(view)
                if not got:
                    return digester.digest()
                digester.update(view[:got])
                writer.write(view[:got])
                if on_bytes is not None:
                    on_bytes(got)
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(1, thread_name_prefix="tarexport-hash")
        views = [memoryview(b) for b in self._buffers]
        hashing: list[Optional[Future[None]]] = [None, None]
        turn = 0
        try:
            while True:
                pending = hashing[turn]
                if pending is not None:  # this buffer's last chunk must be hashed before reuse
                    pending.result()
                    hashing[turn] = None
                got = readinto(views[turn])
                if not got:
                    break
                chunk = views[turn][:got]
                hashing[turn] = self._hasher.submit(digester.update, chunk)
                writer.write(chunk)
                if on_bytes is not None:
                    on_bytes(got)
                turn ^= 1
        finally:
            for pending in hashing:
                if pending is not None:
                    pending.result()
        return digester.digest()

    def close(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None

    # -- once the whole archive is in ----------------------------------------------------

    def blob_of(self, member: TarMember) -> Digest:
        """The staged blob of a file member (a metadata member is staged now, from memory)."""
        digest = self.staged.get(member.path)
        if digest is None:
            data = self.memory[member.path]
            writer = self.txn.stage_blob()
            writer.write(data)
            digest = Digest.from_bytes(data)
            writer.commit(digest)
            self.staged[member.path] = digest
        return digest

    def read_small(self, member: TarMember, what: str) -> bytes:
        if member.size > self.limits.json_size:
            raise UnsafeArchive(
                f"{what}: {member.size} bytes is over the JSON limit of {self.limits.json_size}"
            )
        if member.path in self.memory:
            return self.memory[member.path]
        with self.txn.open_staged(self.staged[member.path]) as stream:
            data = stream.read(member.size + 1)
        if len(data) != member.size:
            raise InvalidArchive(f"{what}: staged copy has {len(data)} bytes, not {member.size}")
        return bytes(data)

    def diff_id(self, member: TarMember, what: str) -> Digest:
        return self.uncompressed(self.blob_of(member), what)

    def compression_of(self, blob: Digest) -> Compression:
        with self.txn.open_staged(blob) as stream:
            head = stream.read(BLOCK_SIZE)
        return layer_compression(bytes(head))

    def uncompressed(self, blob: Digest, what: str) -> Digest:
        """The staged blob of the uncompressed form of ``blob`` (``blob`` itself if plain)."""
        if blob in self._uncompressed:
            return self._uncompressed[blob]
        kind = self.compression_of(blob)
        result = blob if kind is Compression.NONE else self._inflate(blob, kind, what)
        self._uncompressed[blob] = result
        return result

    def inflated_digest(self, blob: Digest, what: str) -> Digest:
        """The sha256 of the uncompressed form of a staged blob, without staging that form."""
        kind = self.compression_of(blob)
        if kind is Compression.NONE:
            return blob
        digester = Digester()
        view = memoryview(self._buffers[0])
        with self.txn.open_staged(blob) as raw:
            stream = DecompressingReader(raw, kind, limit=self.limits.decompressed_size, what=what)
            while True:
                got = stream.readinto(view)
                if not got:
                    return digester.digest()
                digester.update(view[:got])

    def _inflate(self, blob: Digest, kind: Compression, what: str) -> Digest:
        writer = self.txn.stage_blob()
        try:
            with self.txn.open_staged(blob) as raw:
                stream = DecompressingReader(
                    raw, kind, limit=self.limits.decompressed_size, what=what
                )
                digest = self._copy(stream.readinto, writer)
        except BaseException:
            writer.abort()
            raise
        writer.commit(digest)
        return digest


class _Ticker:
    """Progress reports, rate-limited for the byte counter."""

    def __init__(self, callback: Optional[ProgressCallback]) -> None:
        self.callback = callback
        self.done = 0
        self._last = 0
        self.entry = ""

    def report(self, phase: str, entry: str = "") -> None:
        if self.callback is not None:
            if entry:
                self.entry = entry
            self.callback(Progress(phase, self.done, None, self.entry))  # type: ignore[arg-type]

    def count(self, n: int) -> None:
        self.done += n
        if self.callback is not None and self.done - self._last >= _PROGRESS_EVERY:
            self._last = self.done
            self.report("bytes")


# Linux's F_SETPIPE_SZ: a pipe's buffer is 64 KiB unless asked for more.
_F_SETPIPE_SZ = 1031


def _widen_pipe(stream: BinaryIO) -> None:
    """Give a pipe a 1 MiB buffer: 16 times fewer wake-ups for the writer and the reader."""
    try:
        fd = stream.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and sys.platform.startswith("linux"):
            import fcntl

            fcntl.fcntl(fd, _F_SETPIPE_SZ, _CHUNK)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass  # not a pipe, or the system refuses: the default buffer works too


def _open_archive(stream: BinaryIO, limits: Limits) -> BinaryIO:
    """The tar stream inside ``stream``, decompressed when its first bytes say it is."""
    _widen_pipe(stream)
    head = bytearray()
    while len(head) < BLOCK_SIZE:
        chunk = stream.read(BLOCK_SIZE - len(head))
        if not chunk:
            break
        head += chunk
    rewound: BinaryIO = PrefixedReader(bytes(head), stream)  # type: ignore[assignment]
    kind = layer_compression(bytes(head))
    if kind is Compression.NONE:
        return rewound
    return DecompressingReader(  # type: ignore[return-value]
        rewound, kind, limit=limits.decompressed_size, what=f"{kind.value}-compressed archive"
    )


@attrs.frozen
class _StoredManifest:
    """An image's manifest as the archive's ``index.json`` names it, and its layer blobs."""

    media_type: str
    digest: Digest
    blobs: tuple[Digest, ...]


@attrs.frozen
class _Plan:
    """One image ready to register: its staged config and layer blobs.

    The layers are uncompressed, unless the image is kept as its manifest stored it.
    """

    image: ArchiveImage
    layers: tuple[Digest, ...]
    manifest: Optional[_StoredManifest] = None


def _index_manifests(staging: _Staging) -> list[tuple[str, Digest, bytes]]:
    """The manifests ``index.json`` reaches (through nested indexes): type, digest, bytes.

    Only manifests whose blobs are in the archive and check out count; anything else in the
    index is left to ``manifest.json``, which decides what is loaded.
    """
    raw = staging.memory.get("index.json")
    if raw is None:
        return []
    try:
        index = json.loads(raw)
    except (ValueError, RecursionError):
        return []
    found: list[tuple[str, Digest, bytes]] = []

    def walk(descriptors: object, depth: int) -> None:
        for desc in descriptors if isinstance(descriptors, list) else []:
            media_type = desc.get("mediaType") if isinstance(desc, dict) else None
            if media_type not in _MANIFEST_TYPES and media_type not in _INDEX_TYPES:
                continue
            try:
                digest = Digest.parse(str(desc.get("digest")))
                path = f"blobs/{digest.algorithm}/{digest.hex}"
                data = staging.read_small(staging.index.resolve(path, "index.json"), path)
                doc = json.loads(data)
            except (TarexportError, ValueError, RecursionError, KeyError):
                continue
            if Digest.from_bytes(data, digest.algorithm) != digest or not isinstance(doc, dict):
                continue
            if media_type in _MANIFEST_TYPES:
                found.append((str(media_type), digest, data))
            elif depth < _MAX_INDEX_DEPTH:
                walk(doc.get("manifests"), depth + 1)

    if isinstance(index, dict):
        walk(index.get("manifests"), 0)
    return found


def _stored_manifest(
    staging: _Staging, image: ArchiveImage, manifests: Sequence[tuple[str, Digest, bytes]]
) -> Optional[_StoredManifest]:
    """The manifest of ``index.json`` that describes exactly this image, if there is one.

    An image with a parent link is registered as a store records one, not kept.
    """
    if image.parent is not None:
        return None
    blobs = tuple(staging.blob_of(member) for member in image.layers)
    for media_type, digest, data in manifests:
        doc = json.loads(data)
        config = doc.get("config")
        layers = doc.get("layers") or []
        if not isinstance(config, dict) or config.get("digest") != str(image.id):
            continue
        if not isinstance(layers, list) or [
            layer.get("digest") if isinstance(layer, dict) else None for layer in layers
        ] != [str(blob) for blob in blobs]:
            continue
        return _StoredManifest(media_type, digest, blobs)
    return None


class Loader:
    """Loads ``docker save`` archives into ``into``, a store that is an
    :class:`~tarexport.stores.protocols.ImageSink`.

    ``limits`` bounds what a hostile archive can make the loader hold or write;
    ``progress`` gets :class:`~tarexport.progress.Progress` reports (``total`` is ``None``:
    a stream's length is unknown).
    """

    def __init__(
        self,
        into: ImageSink,
        *,
        limits: Limits = DEFAULT_LIMITS,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        self.into = into
        self.limits = limits
        self.progress = progress

    def load(self, stream: BinaryIO) -> LoadResult:
        """Read the archive in ``stream`` and register its images; returns what was loaded.

        Raises :class:`~tarexport.errors.UnsafeArchive` for hostile input and
        :class:`~tarexport.errors.InvalidArchive` for malformed input; either way the store is
        left as it was.
        """
        tick = _Ticker(self.progress)
        tick.report("start")
        txn = self.into.begin_load()
        staging = _Staging(txn, self.limits)
        try:
            self._stage(stream, staging, tick)
            contents = read_archive(staging)
            keeps = isinstance(txn, ManifestLoadTransaction)
            manifests = _index_manifests(staging) if keeps and not contents.legacy else []
            plans = [
                self._verify(staging, image, _stored_manifest(staging, image, manifests))
                for image in contents.images
            ]
            loaded = self._register(txn, plans)
        finally:
            staging.close()
            txn.close()
        tick.report("done")
        return LoadResult(loaded, contents.legacy)

    def _stage(self, stream: BinaryIO, staging: _Staging, tick: _Ticker) -> None:
        reader = TarReader(
            _open_archive(stream, self.limits),
            max_extension_size=self.limits.extension_size,
            max_members=self.limits.members,
        )
        index = staging.index
        while True:
            member = reader.next()
            if member is None:
                break
            index.add(member)
            tick.report("entry", member.path)
            if member.type is not MemberType.FILE:
                continue
            if _is_metadata(member.path):
                staging.keep_in_memory(member, reader)
            else:
                staging.stage_member(member, reader, tick)
            tick.done = reader.offset
        index.check_links()

    def _verify(
        self, staging: _Staging, image: ArchiveImage, kept: Optional[_StoredManifest] = None
    ) -> _Plan:
        """Check every layer of ``image`` against its diff ID; nothing is registered yet.

        A layer of an image ``kept`` as its manifest stored it is checked without staging
        its uncompressed form: the stored blob is what the store keeps.
        """
        layers = []
        for i, (member, diff_id, named, name) in enumerate(
            zip(image.layers, image.diff_ids, image.blob_digests, image.layer_names)
        ):
            what = f"layer {i} ({name!r}) of image {image.id}"
            blob = staging.blob_of(member)
            if named is not None and blob != named:
                raise ArchiveDigestMismatch(what, str(named), str(blob))
            stored = blob
            if blob != diff_id:
                if kept is not None:
                    blob = staging.inflated_digest(blob, what)
                else:
                    blob = stored = staging.uncompressed(blob, what)
            if blob != diff_id:
                raise ArchiveDigestMismatch(
                    f"invalid diffID for {what}", str(diff_id), str(blob)
                )
            layers.append(stored)
        return _Plan(image, tuple(layers), kept)

    def _register(self, txn: LoadTransaction, plans: Sequence[_Plan]) -> tuple[LoadedImage, ...]:
        """Commit the images, parents before their children.

        The result has one value per manifest entry, in archive order, as ``docker load``
        prints them: two entries with the same config and different tags are two values.
        """
        registered: set[Digest] = set()
        loaded: dict[int, LoadedImage] = {}
        pending = list(enumerate(plans))
        while pending:
            waiting = []
            for n, plan in pending:
                image = plan.image
                parent = image.parent
                if parent is not None and parent not in registered and any(
                    p.image.id == parent for _, p in pending
                ):
                    waiting.append((n, plan))
                    continue
                config = self._config_blob(txn, plan)
                kept = plan.manifest
                if kept is not None and isinstance(txn, ManifestLoadTransaction):
                    txn.commit_manifest(kept.digest, kept.media_type, config, plan.layers,
                                        image.references)
                else:
                    txn.commit_image(config, plan.layers, image.references, parent)
                registered.add(image.id)
                loaded[n] = LoadedImage(image.id, image.references, parent)
            if len(waiting) == len(pending):  # pragma: no cover - parent links are acyclic
                raise InvalidArchive("images of the archive are each other's parents")
            pending = waiting
        return tuple(loaded[n] for n in range(len(plans)))

    @staticmethod
    def _config_blob(txn: LoadTransaction, plan: _Plan) -> Digest:
        image = plan.image
        writer = txn.stage_blob()
        writer.write(image.config)
        writer.commit(image.id)
        return image.id


def load(
    stream: BinaryIO,
    into: ImageSink,
    *,
    limits: Limits = DEFAULT_LIMITS,
    progress: Optional[ProgressCallback] = None,
) -> LoadResult:
    """Load the ``docker save`` archive in ``stream`` into the store ``into``.

    See :class:`Loader`.
    """
    return Loader(into, limits=limits, progress=progress).load(stream)

