"""The three store protocols. A store is anything that has these few methods.

They mirror the daemon's own stores: images by ID, layers by chain ID, references by name.
Everything else a writer needs (prefix search semantics, zero-copy ranges, sizes) is derived
from these by the Saver, so a new store stays an afternoon's work. A layer may add two
optional members, ``verification`` and ``open_unverified()``, to spare a save a second hash
of bytes it already checks; :func:`layer_verification` and :func:`open_unverified` derive them
when absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO, Literal, Optional, Union

import attrs
from typing_extensions import Protocol, runtime_checkable

from ..digest import Digest
from ..reference import Named, Reference

__all__ = [
    "Blob",
    "BlobWriter",
    "FileRange",
    "ImageSink",
    "ImageStore",
    "Layer",
    "LayerStore",
    "LoadTransaction",
    "ManifestLoadTransaction",
    "ManifestStore",
    "ReferenceStore",
    "Verification",
    "layer_verification",
    "open_unverified",
]


@attrs.frozen
class FileRange:
    """``length`` bytes at ``offset`` of the regular file at ``path``.

    A layer that offers one can be copied by the kernel instead of through Python.
    """

    path: str
    offset: int
    length: int


@runtime_checkable
class Layer(Protocol):
    """One uncompressed layer tar."""

    @property
    def diff_id(self) -> Digest:
        """sha256 of the uncompressed tar, as the image config lists it."""
        ...

    @property
    def size(self) -> int:
        """Length in bytes of the uncompressed tar."""
        ...

    def open(self) -> BinaryIO:
        """A fresh readable stream of the uncompressed tar, from its first byte."""
        ...

    def file_range(self) -> Optional[FileRange]:
        """Where the uncompressed bytes lie in a regular file, if they do; else ``None``."""
        ...


# -- what a layer may add: optional, derived when absent ------------------------------------

Verification = Literal["on-read", "at-ingest"]
"""How a layer's bytes are already checked against its diff ID, as ``Layer.verification``:

- ``"on-read"``: every stream from ``open()`` checks itself. The read that reaches the end
  raises :class:`~tarexport.errors.LayerDigestMismatch` (or ``LayerSizeMismatch``) unless
  the bytes were exactly ``size`` bytes hashing to ``diff_id``. A verifying Saver copies such
  a layer through ``open()`` and does not hash it again.
- ``"at-ingest"``: the bytes at ``file_range()`` were hashed when the store took them in,
  and the file is content-addressed. A Saver hashes them anyway, unless its caller opted in
  to trusting the store (``Saver(trust_ingested=True)``).
"""


def layer_verification(layer: Layer) -> Optional[Verification]:
    """The layer's optional ``verification`` attribute; ``None`` (not verified) if absent."""
    value = getattr(layer, "verification", None)
    return value if value in ("on-read", "at-ingest") else None


def open_unverified(layer: Layer) -> BinaryIO:
    """The layer's bytes without its own check, for a save that does not verify.

    A layer verifying on read may offer ``open_unverified()``; without it this is ``open()``.
    """
    opener = getattr(layer, "open_unverified", None)
    if callable(opener):
        stream: BinaryIO = opener()
        return stream
    return layer.open()


@runtime_checkable
class ImageStore(Protocol):
    """Image configs by image ID (the sha256 of the config bytes)."""

    def get_config(self, image_id: Digest) -> bytes:
        """The raw config bytes; raises :class:`~tarexport.errors.ImageNotFound`."""
        ...

    def search(self, prefix: str) -> Sequence[Digest]:
        """Every image ID whose hex starts with ``prefix`` (``""`` lists all images)."""
        ...

    def get_parent(self, image_id: Digest) -> Optional[Digest]:
        """The image this one was built from, when the store records one."""
        ...


@runtime_checkable
class LayerStore(Protocol):
    """Layers by chain ID."""

    def get_layer(self, chain_id: Digest) -> Layer:
        """The layer on top of this chain; raises :class:`~tarexport.errors.LayerNotFound`."""
        ...


@runtime_checkable
class ReferenceStore(Protocol):
    """Tags (``name:tag``) and digests (``name@sha256:...``) pointing at image IDs."""

    def get(self, reference: Reference) -> Digest:
        """The image a tagged or digested reference names; raises ``ReferenceNotFound``."""
        ...

    def references_by_name(self, name: Named) -> Sequence[tuple[Named, Digest]]:
        """Every reference of the repository ``name`` (tag and digest ignored), with its image."""
        ...

    def references(self, image_id: Digest) -> Sequence[Named]:
        """Every reference that points at ``image_id``, in the order they were added."""
        ...


@runtime_checkable
class Blob(Protocol):
    """One content-addressed blob exactly as a store keeps it (a layer may be compressed)."""

    @property
    def digest(self) -> Digest:
        """sha256 of the stored bytes."""
        ...

    @property
    def size(self) -> int:
        """Length in bytes of the stored blob."""
        ...

    def open(self) -> BinaryIO:
        """A fresh readable stream of the stored bytes, from the first."""
        ...

    def file_range(self) -> Optional[FileRange]:
        """Where the bytes lie in a regular file, if they do; else ``None``."""
        ...


@runtime_checkable
class ManifestStore(Protocol):
    """An image store that also keeps what a content store keeps: manifests and blobs as stored.

    Optional: the containerd exporter's profile writes an image's manifest and layer blobs as
    such a store holds them (compressed layers stay compressed); without it, the manifest
    containerd records for a loaded archive is derived from the config and layer tars.
    """

    def get_manifest(self, image_id: Digest) -> Optional[bytes]:
        """The raw manifest kept for the image with this config digest, or ``None``."""
        ...

    def get_blob(self, digest: Digest) -> Blob:
        """A kept blob; raises :class:`~tarexport.errors.StoreError` when it is missing."""
        ...


# -- loading into a store ------------------------------------------------------------------


@runtime_checkable
class BlobWriter(Protocol):
    """A blob being staged by a :class:`LoadTransaction`; invisible to every reader."""

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Append bytes to the blob."""
        ...

    def commit(self, digest: Digest) -> None:
        """Finish the blob and keep it staged under ``digest``.

        ``digest`` is the sha256 the loader computed over every byte written; the sink files
        the blob under it without hashing again. Staging the same digest twice is fine.
        """
        ...

    def abort(self) -> None:
        """Drop the blob."""
        ...


@runtime_checkable
class LoadTransaction(Protocol):
    """One load into a store: staged blobs, then images registered one at a time."""

    def stage_blob(self) -> BlobWriter:
        """A writer for a new staged blob."""
        ...

    def open_staged(self, digest: Digest) -> BinaryIO:
        """A readable stream of a blob staged in this transaction (or already in the store)."""
        ...

    def commit_image(
        self,
        config: Digest,
        layers: Sequence[Digest],
        references: Sequence[Named],
        parent: Optional[Digest],
    ) -> None:
        """Register an image, atomically.

        ``config`` holds the raw config (its digest is the image ID); ``layers`` are the
        uncompressed layer tars bottom to top (each digest is that layer's diff ID). Each must
        be staged in this transaction or already be in the store. ``references`` are tags to
        point at the image, moved from any image that had them; ``parent`` is an image ID
        already in the store, or ``None``. When this returns, the image and its references are
        visible; when it raises, nothing of this image is visible and no blob it added remains.
        """
        ...

    def close(self) -> None:
        """Discard every staged blob that no committed image uses; idempotent."""
        ...


@runtime_checkable
class ManifestLoadTransaction(LoadTransaction, Protocol):
    """A load transaction that can also keep an image as its archive stored it.

    Optional. The loader uses it for an image that the archive's ``index.json`` describes
    by a manifest, so that the manifest's bytes and its (compressed) layer blobs are kept as
    they came, as a content store keeps them.
    """

    def commit_manifest(
        self,
        manifest: Digest,
        media_type: str,
        config: Digest,
        blobs: Sequence[Digest],
        references: Sequence[Named],
    ) -> None:
        """Register an image by its staged manifest; otherwise as :meth:`commit_image`.

        ``blobs`` are the manifest's layer blobs as staged (each verified against its diff
        ID by the loader), bottom to top.
        """
        ...


@runtime_checkable
class ImageSink(Protocol):
    """A store the loader can write into."""

    def begin_load(self) -> LoadTransaction:
        """Start a load; the caller must :meth:`LoadTransaction.close` it, also on failure."""
        ...
