"""Pushing an image from any store to a registry, as ``docker push`` does, manifest last.

Plan first: the image is resolved in the store and every blob decided (the config; each layer
as a blob already compressed in the store, sent as it is, or the layer gzip-compressed on the
fly, or sent uncompressed with ``compression="none"``) before a request is made. Then each
blob is settled in turn — already in the repository (``HEAD``), mounted from another
repository of the registry where it was seen, or uploaded, streamed in one ``PATCH`` and
resumed from the registry's offset after a dropped connection — and only when every blob is
in place is the manifest put under its tag. A failed push therefore leaves no tag pointing
at a partial image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Callable, Optional, Union

import attrs

from ..digest import Digest, chain_ids
from ..errors import (
    ImageNotFound,
    LayerDigestMismatch,
    RegistryError,
    RegistryNotFound,
    RegistryRejected,
    RegistryUnavailable,
)
from ..image import Image
from ..stores.protocols import ImageStore, LayerStore, ReferenceStore
from . import distribution as proto
from .blobinfo import BlobInfoCache
from .events import RegistryEvent, RegistryProgress
from .registry import RegistryClient, UploadSession
from .streams import GzipStream, prefetch

__all__ = ["BlobPlan", "PushPlan", "PushResult", "Pusher", "plan_copy", "push"]

MONOLITHIC_LIMIT = 4 << 20
"""Blobs up to this size whose digest is known go up in a single ``PUT``."""

_MOUNT_TRIES = 3  # repositories to try mounting a blob from before uploading it


Opener = Callable[[], BinaryIO]


@attrs.frozen
class BlobPlan:
    """One blob to put in place.

    ``digest`` and ``size`` are ``None`` for a layer compressed on the fly whose compressed
    form is not known yet. ``diff_id`` is the layer's (``None`` for the config).
    """

    what: str
    media_type: str
    open: Opener = attrs.field(repr=False)
    digest: Optional[Digest]
    size: Optional[int]
    diff_id: Optional[Digest] = None
    compression: str = "none"


@attrs.frozen
class PushPlan:
    """Everything a push will send, decided before the first request."""

    destination: proto.RegistryRef
    image_id: Digest
    config: BlobPlan
    layers: tuple[BlobPlan, ...]
    manifest_type: str
    manifest: Optional[bytes] = attrs.field(default=None, repr=False)
    """The manifest to put as it is (a copy between registries keeps its digest)."""


@attrs.frozen
class PushResult:
    """What a push did: the manifest's digest and the bytes that actually went up."""

    destination: proto.RegistryRef
    digest: Digest
    manifest: bytes = attrs.field(repr=False)
    uploaded_bytes: int
    blobs: tuple[tuple[str, str], ...]  # (digest, status) per blob, config first


def _layer_media_type(kind: str, oci: bool) -> str:
    if kind == "gzip":
        return proto.OCI_LAYER_GZIP if oci else proto.DOCKER_LAYER_GZIP
    if kind == "zstd":
        return proto.OCI_LAYER_ZSTD
    return proto.OCI_LAYER if oci else proto.DOCKER_LAYER


def _compressed_form(layer: Any) -> Optional[tuple[str, Digest, int, Opener]]:
    """The blob a layer is stored as, when the store keeps it compressed (never recompressed)."""
    method = getattr(layer, "compressed_blob", None)
    if method is None:
        return None
    found = method()
    if found is None:
        return None
    return found.kind, found.digest, found.size, found.open


class Pusher:
    """Pushes images from a store (its three protocols in one object, or three objects)."""

    def __init__(
        self,
        images: ImageStore,
        layers: Optional[LayerStore] = None,
        references: Optional[ReferenceStore] = None,
        *,
        client: Optional[RegistryClient] = None,
        cache: Optional[BlobInfoCache] = None,
        compression: str = "gzip",
        manifest_format: str = "docker",
        mount_from: Sequence[str] = (),
        progress: Optional[RegistryProgress] = None,
    ) -> None:
        if compression not in ("gzip", "none"):
            raise ValueError(f"unknown compression {compression!r}: expected gzip or none")
        if manifest_format not in ("docker", "oci"):
            raise ValueError(f"unknown manifest format {manifest_format!r}: expected docker or oci")
        self.images = images
        self.layers: LayerStore = layers if layers is not None else images  # type: ignore[assignment]
        self.references: ReferenceStore = (
            references if references is not None else images  # type: ignore[assignment]
        )
        self.client = client
        self.cache = cache if cache is not None else BlobInfoCache()
        self.compression = compression
        self.manifest_format = manifest_format
        self.mount_from = tuple(mount_from)
        self.progress = progress

    # -- planning -------------------------------------------------------------------------

    def plan(self, name: str, destination: Union[str, proto.RegistryRef]) -> PushPlan:
        """Resolve ``name`` and decide every blob; no request is made."""
        from .stores import resolve_names  # the one resolver of names over the stores

        dest = destination if isinstance(destination, proto.RegistryRef) else (
            proto.RegistryRef.parse(destination))
        resolved = resolve_names(self.images, self.layers, self.references, [name])
        if len(resolved) != 1:
            raise ImageNotFound(name, f"{name} names {len(resolved)} images; push one at a time")
        image_id = resolved[0].id
        raw = self.images.get_config(image_id)
        image = Image.from_bytes(raw)
        if image.id != image_id:
            raise LayerDigestMismatch(f"config of image {image_id}", str(image_id), str(image.id))
        planned = []
        kinds = []
        for chain, diff_id in zip(chain_ids(image.diff_ids), image.diff_ids):
            layer = self.layers.get_layer(chain)
            if layer.diff_id != diff_id:
                raise LayerDigestMismatch(f"layer {chain} of image {image_id}", str(diff_id),
                                          str(layer.diff_id))
            planned.append((layer, diff_id, _compressed_form(layer)))
            kinds.append(planned[-1][2][0] if planned[-1][2] else self.compression)
        oci = self.manifest_format == "oci" or "zstd" in kinds
        layer_plans = []
        for (layer, diff_id, stored), kind in zip(planned, kinds):
            media_type = _layer_media_type(kind, oci)
            what = f"layer {diff_id.short()}"
            if stored is not None:
                _, digest, size, opener = stored
                layer_plans.append(BlobPlan(what, media_type, opener, digest, size, diff_id, kind))
            elif kind == "gzip":
                layer_plans.append(BlobPlan(
                    what, media_type, _gzip_opener(layer.open),
                    self.cache.compressed(diff_id, "gzip"), None, diff_id, "gzip"))
            else:
                layer_plans.append(BlobPlan(what, media_type, layer.open, diff_id, layer.size,
                                            diff_id, "none"))
        config = BlobPlan("config", proto.OCI_CONFIG if oci else proto.DOCKER_CONFIG,
                          _bytes_opener(raw), image_id, len(raw))
        return PushPlan(dest, image_id, config, tuple(layer_plans),
                        proto.OCI_MANIFEST if oci else proto.DOCKER_MANIFEST)

    # -- pushing --------------------------------------------------------------------------

    def push(self, name: str, destination: Union[str, proto.RegistryRef]) -> PushResult:
        """Push the image ``name`` to ``destination`` (``docker://HOST/REPO[:TAG]``)."""
        return self.run(self.plan(name, destination))

    def run(self, plan: PushPlan) -> PushResult:
        """Carry out a plan: the blobs settled in order, then the manifest put."""
        client = self.client or RegistryClient(plan.destination.registry,
                                               on_notice=self._retry_notice)
        try:
            return _Push(self, client, plan).run()
        finally:
            self.cache.save()
            if self.client is None:
                client.close()

    def _retry_notice(self, message: str) -> None:
        self._emit(RegistryEvent("retry", message=message))

    def _emit(self, event: RegistryEvent) -> None:
        if self.progress is not None:
            self.progress(event)


def _bytes_opener(data: bytes) -> Opener:
    import io

    return lambda: io.BytesIO(data)


def _gzip_opener(open_layer: Opener) -> Opener:
    return lambda: GzipStream(open_layer())  # type: ignore[return-value]


class _Push:
    """One push: the blobs settled in order, then the manifest."""

    def __init__(self, pusher: Pusher, client: RegistryClient, plan: PushPlan) -> None:
        self.pusher = pusher
        self.client = client
        self.plan = plan
        self.repo = plan.destination.repository
        self.registry = plan.destination.registry
        self.scopes = [plan.destination.scope("pull", "push")]
        self.uploaded = 0
        self.statuses: list[tuple[str, str]] = []

    def run(self) -> PushResult:
        plan = self.plan
        self.pusher._emit(RegistryEvent("start", total=1 + len(plan.layers)))
        layers = [self._settle(blob) for blob in plan.layers]
        config = self._settle(plan.config)
        manifest = plan.manifest or proto.image_manifest_bytes(plan.manifest_type, config, layers)
        digest = Digest.from_bytes(manifest)
        dest = plan.destination
        if dest.digest is not None and dest.digest != digest:
            raise RegistryRejected(
                f"{dest}: the image's manifest is {digest}, not the digest named"
            )
        self.client.put_manifest(self.repo, dest.reference, manifest, plan.manifest_type)
        self.pusher._emit(RegistryEvent("manifest", blob=str(digest), status="pushed"))
        self.pusher._emit(RegistryEvent("done", done=self.uploaded))
        return PushResult(dest, digest, manifest, self.uploaded, tuple(self.statuses))

    # -- one blob -------------------------------------------------------------------------

    def _settle(self, blob: BlobPlan) -> proto.Descriptor:
        label = str(blob.digest or blob.diff_id)
        self.pusher._emit(RegistryEvent("blob", blob=label, total=blob.size))
        status, digest, size = self._place(blob)
        cache = self.pusher.cache
        cache.record_location(digest, self.registry, self.repo)
        if blob.diff_id is not None and blob.compression != "none":
            cache.record_compressed(blob.diff_id, blob.compression, digest)
        self.statuses.append((str(digest), status))
        self.pusher._emit(RegistryEvent("blob-done", blob=str(digest), done=size, total=size,
                                        status=status))
        return proto.Descriptor(blob.media_type, digest, size)

    def _place(self, blob: BlobPlan) -> tuple[str, Digest, int]:
        session: Optional[UploadSession] = None
        if blob.digest is not None:
            size = self.client.blob_size(self.repo, blob.digest, scopes=self.scopes)
            if size is not None:
                return "exists", blob.digest, blob.size if blob.size is not None else size
            session, mounted = self._mount(blob.digest)
            if mounted is not None:
                size = blob.size
                if size is None:
                    size = self.client.blob_size(self.repo, blob.digest, scopes=self.scopes) or 0
                return f"mounted from {mounted}", blob.digest, size
        if session is None:
            session = self.client.start_upload(self.repo, scopes=self.scopes)
        digest, size = self._upload(blob, session)
        return "pushed", digest, size

    def _mount(self, digest: Digest) -> tuple[Optional[UploadSession], Optional[str]]:
        """Try the repositories the blob was seen in; the upload a refusal started, if any."""
        seen = self.pusher.cache.repositories(digest, self.registry)
        sources = [r for r in (*self.pusher.mount_from, *seen) if r != self.repo]
        session = None
        for source in list(dict.fromkeys(sources))[:_MOUNT_TRIES]:
            try:
                started = self.client.mount_blob(self.repo, digest, source, scopes=self.scopes)
            except (RegistryNotFound, RegistryRejected):
                continue
            if started is None:
                return None, source
            if session is not None:
                self.client.cancel_upload(session, scopes=self.scopes)
            session = started
        return session, None

    def _upload(self, blob: BlobPlan, session: UploadSession) -> tuple[Digest, int]:
        if blob.digest is not None and blob.size is not None and blob.size <= MONOLITHIC_LIMIT:
            return self._monolithic(blob, session)
        policy = self.client.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._stream(blob, session)
            except RegistryUnavailable as exc:
                delay = policy.delay(attempt)
                if attempt >= policy.attempts:
                    raise
                self.pusher._emit(RegistryEvent(
                    "retry", blob=str(blob.digest or blob.diff_id),
                    message=f"{blob.what}: {exc}; resuming in {delay:.1f}s"))
                self.client.sleep(delay)
                session = self._resume(session)

    def _resume(self, session: UploadSession) -> UploadSession:
        """The upload where the registry stands, or a fresh one if it kept nothing usable."""
        try:
            return self.client.upload_status(session, scopes=self.scopes)
        except (RegistryNotFound, RegistryRejected):
            return self.client.start_upload(self.repo, scopes=self.scopes)

    def _monolithic(self, blob: BlobPlan, session: UploadSession) -> tuple[Digest, int]:
        assert blob.digest is not None and blob.size is not None
        with blob.open() as stream:
            data = stream.read(blob.size + 1)
        actual = Digest.from_bytes(data, blob.digest.algorithm)
        if actual != blob.digest or len(data) != blob.size:
            raise LayerDigestMismatch(blob.what, str(blob.digest), str(actual))
        self.client.finish_upload(session, blob.digest, scopes=self.scopes,
                                  body=lambda: data, length=len(data))
        self.uploaded += len(data)
        self.pusher._emit(RegistryEvent("bytes", blob=str(blob.digest), done=len(data),
                                        total=blob.size))
        return blob.digest, len(data)

    def _stream(self, blob: BlobPlan, session: UploadSession) -> tuple[Digest, int]:
        """Send the blob from the session's offset in one streamed ``PATCH``, then ``PUT``."""
        algorithm = blob.digest.algorithm if blob.digest is not None else "sha256"
        hashers: list[Any] = []
        label = str(blob.digest or blob.diff_id)
        counted = [0]

        def body() -> Iterator[bytes]:
            # Every try reads from the first byte: the registry's part is hashed, not sent.
            hasher_local = hashlib.new(algorithm)
            with blob.open() as stream:
                skipped = _skip_hashing(stream, session.offset, hasher_local)
                if skipped is not None:
                    raise RegistryRejected(
                        f"{blob.what}: the registry holds {session.offset} bytes of an upload "
                        f"of {skipped}")
                sent = session.offset
                for chunk in prefetch(stream):
                    hasher_local.update(chunk)
                    sent += len(chunk)
                    self.uploaded += len(chunk)
                    counted[0] = sent
                    self.pusher._emit(RegistryEvent("bytes", blob=label, done=sent,
                                                    total=blob.size))
                    yield chunk
            hashers[:] = [hasher_local]

        session = self.client.upload_chunk(session, body, None, scopes=self.scopes)
        if not hashers:  # the body was never read to its end
            raise RegistryError(f"{blob.what}: the registry accepted an unfinished upload")
        size = counted[0] if counted[0] else session.offset
        digest = Digest(algorithm, hashers[0].hexdigest())
        if blob.digest is not None and digest != blob.digest:
            raise LayerDigestMismatch(blob.what, str(blob.digest), str(digest))
        if session.offset and session.offset != size:
            raise RegistryError(
                f"{blob.what}: the registry received {session.offset} bytes of {size}")
        self.client.finish_upload(session, digest, scopes=self.scopes)
        return digest, size


def plan_copy(
    client: RegistryClient,
    source: proto.RegistryRef,
    manifest: proto.ImageManifest,
    manifest_bytes: bytes,
    destination: proto.RegistryRef,
) -> PushPlan:
    """A push of a registry's image as it is (blobs streamed across, manifest verbatim)."""

    def opener(digest: Digest) -> Opener:
        return lambda: client.open_blob(source.repository, digest)  # type: ignore[return-value]

    config = manifest.config
    layers = tuple(
        BlobPlan(f"layer {d.digest.short()}", d.media_type, opener(d.digest), d.digest, d.size)
        for d in manifest.layers
    )
    return PushPlan(destination, config.digest,
                    BlobPlan("config", config.media_type, opener(config.digest), config.digest,
                             config.size),
                    layers, manifest.media_type, manifest_bytes)


def _skip_hashing(stream: BinaryIO, count: int, hasher: Any) -> Optional[int]:
    left = count
    while left > 0:
        data = stream.read(min(1 << 20, left))
        if not data:
            return count - left
        hasher.update(data)
        left -= len(data)
    return None


def push(
    source: Any,
    name: str,
    destination: Union[str, proto.RegistryRef],
    **options: Any,
) -> PushResult:
    """Push the image ``name`` of ``source`` (a store) to ``destination``; see :class:`Pusher`."""
    return Pusher(source, **options).push(name, destination)

