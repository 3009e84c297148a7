"""Pulling an image from a registry into any store, every byte verified on the way.

The manifest is fetched (an index resolved to the requested platform, the machine's by
default) and checked against the digest that named it; the config is checked against the
manifest; each layer blob is streamed, hashed as it arrives (its digest and size as the
manifest says), decompressed and hashed again against the config's diff ID while it is staged
in the store. A layer the store already holds is not downloaded. The image is registered
only when all of it verified; on any error nothing of it is visible in the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, Optional, Union

import attrs

from ..compression import Compression, DecompressingReader, VerifyingReader, detect
from ..digest import Digest
from ..errors import (
    ConnectionFailed,
    LayerDigestMismatch,
    PlatformNotFound,
    RegistryError,
    RegistryRejected,
    StoreError,
    TarexportError,
)
from ..image import Image
from ..reference import Named, with_tag
from ..stores.oci_layout import Platform
from ..stores.protocols import ImageSink, LoadTransaction
from . import distribution as proto
from .blobinfo import BlobInfoCache
from .events import RegistryEvent, RegistryProgress
from .registry import RegistryClient
from .streams import prefetch

__all__ = ["PullResult", "Puller", "pull", "select_platform"]

CONFIG_LIMIT = 16 << 20
DECOMPRESSED_LIMIT = 1 << 40  # a layer that inflates past 1 TiB is a bomb, not an image
_CHUNK = 1 << 20
_RESUMES = 3


@attrs.frozen
class PullResult:
    """What a pull registered: the image ID, the manifest digest and the tag it was given."""

    source: proto.RegistryRef
    image_id: Digest
    manifest_digest: Digest
    reference: Optional[Named]
    downloaded_bytes: int
    layers: tuple[tuple[str, str], ...]  # (blob digest, status) per layer


def _platform_of(value: Mapping[str, Any]) -> Optional[Platform]:
    os_, arch = value.get("os"), value.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    variant = value.get("variant")
    return Platform.normalized(os_, arch, variant if isinstance(variant, str) else None)


def select_platform(index: proto.ImageIndex, wanted: Platform) -> proto.Descriptor:
    """The index's first image manifest for ``wanted`` (containerd's matching rules)."""
    offered = []
    for desc in index.manifests:
        platform = _platform_of(desc.platform or {})
        if platform is None or desc.media_type in proto.INDEX_TYPES:
            continue
        offered.append(str(platform))
        if wanted.matches(platform):
            return desc
    raise PlatformNotFound(
        f"no image for platform {wanted} in the index (it has: "
        f"{', '.join(sorted(set(offered))) or 'none'})"
    )


def _manifest_digest(data: bytes, named: Optional[Digest], header: Optional[str],
                     what: str) -> Digest:
    algorithm = named.algorithm if named is not None else "sha256"
    actual = Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
    if named is not None and actual != named:
        raise LayerDigestMismatch(f"{what}: manifest", str(named), str(actual))
    if header:
        try:
            claimed = Digest.parse(header)
        except TarexportError:
            claimed = None
        if claimed is not None and claimed.algorithm == "sha256" and claimed.algorithm == (
            actual.algorithm) and claimed != actual:
            raise LayerDigestMismatch(f"{what}: manifest (Docker-Content-Digest)", str(claimed),
                                      str(actual))
    return actual


def _kind_of(media_type: str, head: bytes) -> Compression:
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return Compression.ZSTD
    if media_type.endswith("gzip"):
        return Compression.GZIP
    return detect(head)


class _BlobReader:
    """A blob's body, re-requested from where it broke off when the connection drops."""

    def __init__(self, client: RegistryClient, repository: str, digest: Digest) -> None:
        self.client = client
        self.repository = repository
        self.digest = digest
        self.offset = 0
        self.resumes = 0
        self.response = client.open_blob(repository, digest)

    def readinto(self, buffer: Any) -> int:
        return int(self._resuming(lambda: self.response.readinto(buffer)))

    def read(self, n: int = -1) -> bytes:
        return bytes(self._resuming(lambda: self.response.read(n if n >= 0 else _CHUNK)))

    def _resuming(self, read: Any) -> Any:
        while True:
            try:
                got = read()
            except ConnectionFailed as exc:
                self.response.close()
                self.resumes += 1
                if self.resumes > _RESUMES:
                    raise RegistryError(f"pull blob {self.digest.short()}: {exc}") from exc
                self.response = self.client.open_blob(self.repository, self.digest,
                                                      offset=self.offset)
                if self.offset and self.response.status != 206:
                    self.response.close()
                    raise RegistryError(
                        f"pull blob {self.digest.short()}: the connection dropped and the "
                        "registry cannot resume the download") from exc
                continue
            self.offset += got if isinstance(got, int) else len(got)
            return got

    def close(self) -> None:
        self.response.close()


class Puller:
    """Pulls images from registries into a store (anything with ``begin_load``)."""

    def __init__(
        self,
        into: ImageSink,
        *,
        client: Optional[RegistryClient] = None,
        platform: Optional[Union[str, Platform]] = None,
        cache: Optional[BlobInfoCache] = None,
        progress: Optional[RegistryProgress] = None,
    ) -> None:
        self.into = into
        self.client = client
        self.platform = (Platform.parse(platform) if isinstance(platform, str)
                         else platform or Platform.host())
        self.cache = cache if cache is not None else BlobInfoCache()
        self.progress = progress
        self.downloaded = 0

    def _emit(self, event: RegistryEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    def pull(self, source: Union[str, proto.RegistryRef], *,
             tag: Optional[Named] = None) -> PullResult:
        """Pull ``source`` and register it in the store under ``tag`` (default: the source's
        name and tag; a pull by digest only is registered untagged unless ``tag`` is given)."""
        ref = source if isinstance(source, proto.RegistryRef) else proto.RegistryRef.parse(
            source)
        client = self.client or RegistryClient(ref.registry, on_notice=self._notice)
        try:
            return self._pull(client, ref, tag)
        finally:
            self.cache.save()
            if self.client is None:
                client.close()

    def _notice(self, message: str) -> None:
        self._emit(RegistryEvent("retry", message=message))

    def resolve(self, client: RegistryClient, ref: proto.RegistryRef
                ) -> tuple[Digest, proto.ImageManifest, bytes]:
        """The image manifest ``ref`` names for this puller's platform, verified: its digest,
        the manifest and its bytes."""
        what = str(ref.named)
        data, ctype, header = client.get_manifest(ref.repository, ref.reference)
        digest = _manifest_digest(data, ref.digest, header, what)
        manifest = proto.parse_manifest(data, ctype, what)
        if isinstance(manifest, proto.ImageIndex):
            child = select_platform(manifest, self.platform)
            data, ctype, header = client.get_manifest(ref.repository, str(child.digest))
            digest = _manifest_digest(data, child.digest, header, what)
            manifest = proto.parse_manifest(data, ctype, what)
            if not isinstance(manifest, proto.ImageManifest):
                raise RegistryRejected(f"{what}: the index's manifest for {self.platform} is "
                                       "itself an index")
        return digest, manifest, data

    def _pull(self, client: RegistryClient, ref: proto.RegistryRef,
              tag: Optional[Named]) -> PullResult:
        digest, manifest, _ = self.resolve(client, ref)
        return self.pull_manifest(client, ref, digest, manifest, tag)

    def pull_manifest(self, client: RegistryClient, ref: proto.RegistryRef, digest: Digest,
                      manifest: proto.ImageManifest, tag: Optional[Named]) -> PullResult:
        """Pull the image of a manifest already resolved (see :meth:`resolve`)."""
        config = self._config(client, ref, manifest)
        image = Image.from_bytes(config)
        if len(image.diff_ids) != len(manifest.layers):
            raise RegistryRejected(
                f"{ref.named}: the manifest lists {len(manifest.layers)} layers, the config "
                f"{len(image.diff_ids)}")
        reference = tag
        if reference is None and ref.digest is None:
            reference = ref.named if ref.tag is not None else with_tag(ref.named, "latest")
        self._emit(RegistryEvent("start", total=1 + len(manifest.layers)))
        statuses = []
        txn = self.into.begin_load()
        try:
            for desc, diff_id in zip(manifest.layers, image.diff_ids):
                statuses.append((str(desc.digest), self._layer(client, ref, txn, desc, diff_id)))
            writer = txn.stage_blob()
            writer.write(config)
            writer.commit(image.id)
            txn.commit_image(image.id, list(image.diff_ids),
                             [reference] if reference is not None else [], None)
        finally:
            txn.close()
        self._emit(RegistryEvent("done", done=self.downloaded))
        return PullResult(ref, image.id, digest, reference, self.downloaded, tuple(statuses))

    def _config(self, client: RegistryClient, ref: proto.RegistryRef,
                manifest: proto.ImageManifest) -> bytes:
        desc = manifest.config
        if desc.size > CONFIG_LIMIT:
            raise RegistryRejected(f"{ref.named}: the config is {desc.size} bytes, over the "
                                   f"limit of {CONFIG_LIMIT}")
        with client.open_blob(ref.repository, desc.digest) as response:
            data = response.read_limited(desc.size)
        actual = Digest(desc.digest.algorithm,
                        hashlib.new(desc.digest.algorithm, data).hexdigest())
        if actual != desc.digest or len(data) != desc.size:
            raise LayerDigestMismatch(f"{ref.named}: config", str(desc.digest), str(actual))
        self.downloaded += len(data)
        return data

    def _layer(self, client: RegistryClient, ref: proto.RegistryRef, txn: LoadTransaction,
               desc: proto.Descriptor, diff_id: Digest) -> str:
        self.cache.record_location(desc.digest, ref.registry, ref.repository)
        if desc.digest != diff_id:
            kind = "zstd" if desc.media_type.endswith("zstd") else "gzip"
            self.cache.record_compressed(diff_id, kind, desc.digest)
        self._emit(RegistryEvent("blob", blob=str(desc.digest), total=desc.size))
        if _holds(txn, diff_id):
            self._emit(RegistryEvent("blob-done", blob=str(desc.digest), status="present"))
            return "present"
        what = f"{ref.named}: layer {desc.digest}"
        raw = _BlobReader(client, ref.repository, desc.digest)
        counted = _Counting(raw, self, str(desc.digest), desc.size)
        verifying = VerifyingReader(counted, desc.digest, size=desc.size,  # type: ignore[arg-type]
                                    what=what)
        # The download (and its hashing) runs on a thread ahead of the decompression and the
        # writing, as far as a few MiB.
        checked = _Chunks(prefetch(verifying), verifying)  # type: ignore[arg-type]
        try:
            first = bytearray(_CHUNK)
            got = checked.readinto(first)
            head = first[:got]
            compression = _kind_of(desc.media_type, bytes(head[:8]))
            stream: Any = _Prefixed(bytes(head), checked)
            if compression is not Compression.NONE:
                stream = DecompressingReader(stream, compression, limit=DECOMPRESSED_LIMIT,
                                             what=what)
            verified = VerifyingReader(stream, diff_id, what=what)
            writer = txn.stage_blob()
            try:
                buffer = bytearray(_CHUNK)
                while True:
                    n = verified.readinto(buffer)
                    if not n:
                        break
                    writer.write(memoryview(buffer)[:n])
            except BaseException:
                writer.abort()
                raise
            writer.commit(diff_id)
        finally:
            checked.close()
        self._emit(RegistryEvent("blob-done", blob=str(desc.digest), done=desc.size,
                                 total=desc.size, status="pulled"))
        return "pulled"


def _holds(txn: LoadTransaction, diff_id: Digest) -> bool:
    try:
        txn.open_staged(diff_id).close()
    except (StoreError, OSError, KeyError, LookupError):
        return False
    return True


class _Counting:
    def __init__(self, source: _BlobReader, puller: Puller, blob: str, total: int) -> None:
        self.source = source
        self.puller = puller
        self.blob = blob
        self.total = total
        self.done = 0

    def _count(self, got: int) -> None:
        if got:
            self.done += got
            self.puller.downloaded += got
            self.puller._emit(RegistryEvent("bytes", blob=self.blob, done=self.done,
                                            total=self.total))

    def readinto(self, buffer: Any) -> int:
        got = self.source.readinto(buffer)
        self._count(got)
        return got

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self._count(len(data))
        return data

    def close(self) -> None:
        self.source.close()


class _Chunks:
    """An iterator of chunks as a readable stream."""

    def __init__(self, chunks: Iterator[bytes], source: Any) -> None:
        self.chunks = chunks
        self.source = source
        self.rest = memoryview(b"")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self.rest:
            self.rest = memoryview(next(self.chunks, b""))
        n = min(len(view), len(self.rest))
        view[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n

    def read(self, n: int = -1) -> bytes:
        if not self.rest:
            self.rest = memoryview(next(self.chunks, b""))
        size = len(self.rest) if n < 0 else min(n, len(self.rest))
        data = bytes(self.rest[:size])
        self.rest = self.rest[size:]
        return data

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        self.source.close()


class _Prefixed:
    """``head`` then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.head = memoryview(head)
        self.rest = rest

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return int(self.rest.readinto(view))

    def read(self, n: int = -1) -> bytes:
        if self.head:
            size = len(self.head) if n < 0 else min(n, len(self.head))
            data = bytes(self.head[:size])
            self.head = self.head[size:]
            return data
        return bytes(self.rest.read(n))

    def close(self) -> None:
        self.rest.close()


def pull(source: Union[str, proto.RegistryRef], into: ImageSink, **options: Any) -> PullResult:
    """Pull ``source`` (``docker://HOST/REPO[:TAG|@DIGEST]``) into ``into``; see :class:`Puller`."""
    tag = options.pop("tag", None)
    return Puller(into, **options).pull(source, tag=tag)

