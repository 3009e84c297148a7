"""An in-memory store: image configs and references in dicts, layers as bytes or files on disk."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Optional, Union

import attrs

from ..digest import Digest, chain_ids
from ..errors import (
    ImageNotFound,
    LayerDigestMismatch,
    LayerSizeMismatch,
    StoreError,
    UnsafeArchive,
)
from ..image import Image
from ..reference import Named, parse_normalized_named, tag_name_only
from .protocols import FileRange
from .tables import StoreTables

__all__ = [
    "DEFAULT_LOAD_LIMIT",
    "BytesLayer",
    "FileLayer",
    "LayerSource",
    "MemoryLoad",
    "MemoryStore",
]

DEFAULT_LOAD_LIMIT = 1 << 30
"""Bytes one load into a :class:`MemoryStore` may hold: 1 GiB, unless the store says otherwise."""

LayerSource = Union[bytes, str, "os.PathLike[str]"]
"""What ``MemoryStore.add_image`` takes as a layer: its bytes, or the path of a layer tar."""


@attrs.frozen
class BytesLayer:
    """A layer held in memory."""

    diff_id: Digest
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def file_range(self) -> Optional[FileRange]:
        return None


@attrs.frozen
class FileLayer:
    """A layer tar file on disk, read only when saved (and copied by the kernel when it can)."""

    diff_id: Digest
    path: str
    size: int

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def file_range(self) -> Optional[FileRange]:
        # The whole file is the layer: one that changed size since it was added is corrupt,
        # and a byte range alone could not tell.
        try:
            actual = os.stat(self.path).st_size
        except OSError as exc:
            raise StoreError(f"layer file {self.path!r}: {exc.strerror}") from exc
        if actual != self.size:
            raise LayerSizeMismatch(f"layer file {self.path!r}", self.size, actual)
        return FileRange(self.path, 0, self.size)


class MemoryStore(StoreTables[Union[BytesLayer, FileLayer]]):
    """Images, layers and references held in this process; satisfies all three store protocols.

    Layers given as paths stay on disk: only their size is taken when added. Their content is
    checked against the diff ID when an archive is written with ``verify=True``.

    As the target of a load, everything arrives in memory: the archive's blobs and the layers
    inflated from compressed ones. ``load_limit`` bounds the bytes one load may hold (default
    :data:`DEFAULT_LOAD_LIMIT`, 1 GiB; ``None`` for no bound). It is checked as each chunk is
    written, so a layer that inflates past it is stopped there with
    :class:`~tarexport.errors.UnsafeArchive`, whatever the loader's own limits allow.
    """

    def __init__(self, *, load_limit: Optional[int] = DEFAULT_LOAD_LIMIT) -> None:
        super().__init__()
        self.load_limit = load_limit


    # -- adding -----------------------------------------------------------------------

    def add_image(
        self,
        config: bytes,
        layers: Sequence[LayerSource] = (),
        references: Iterable[Union[str, Named]] = (),
        parent: Optional[Union[str, Digest]] = None,
    ) -> Digest:
        """Add an image from its raw config bytes and its layer tars, bottom to top.

        ``references`` are tags (``app:1``; a bare name means ``:latest``) or digest references
        (``app@sha256:...``). ``parent`` is the image ID this one was built from. Returns the
        image ID, the sha256 of ``config``.
        """
        image = Image.from_bytes(bytes(config))
        image.check_layer_count(len(layers))
        parsed_refs = [self._parse_reference(ref) for ref in references]
        parent_id = Digest.coerce(parent) if parent is not None else None
        new_layers = [self._make_layer(d, src) for d, src in zip(image.diff_ids, layers)]
        self._register(image, new_layers, parsed_refs, parent_id)
        return image.id

    def _register(
        self,
        image: Image,
        layers: Sequence[Union[BytesLayer, FileLayer]],
        references: Sequence[Named],
        parent: Optional[Digest],
    ) -> None:
        """Make a fully checked image visible; nothing here can fail half-way."""
        for chain, layer in zip(chain_ids(image.diff_ids), layers):
            self._layers.setdefault(chain, layer)
        self._configs[image.id] = image.raw
        if parent is not None:
            self._parents[image.id] = parent
        for ref in references:
            self._point(ref, image.id)

    def begin_load(self) -> MemoryLoad:
        """Start a load into this store (the :class:`~tarexport.stores.ImageSink` protocol).

        Staged blobs are held in memory, like everything else this store holds.
        """
        return MemoryLoad(self)

    def _find_blob(self, digest: Digest) -> Optional[Union[bytes, BytesLayer, FileLayer]]:
        if digest in self._configs:
            return self._configs[digest]
        for layer in self._layers.values():
            if layer.diff_id == digest:
                return layer
        return None

    def add_reference(self, reference: Union[str, Named], image_id: Union[str, Digest]) -> None:
        """Point a tag or digest reference at an image already in the store."""
        target = Digest.coerce(image_id)
        if target not in self._configs:
            raise ImageNotFound(str(target))
        self._point(self._parse_reference(reference), target)

    @staticmethod
    def _parse_reference(reference: Union[str, Named]) -> Named:
        ref = parse_normalized_named(reference) if isinstance(reference, str) else reference
        if ref.tag is not None and ref.digest is not None:
            raise StoreError(f"{ref}: a reference is stored with a tag or a digest, not both")
        return tag_name_only(ref)

    @staticmethod
    def _make_layer(diff_id: Digest, source: LayerSource) -> Union[BytesLayer, FileLayer]:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            actual = Digest.from_bytes(data)
            if actual != diff_id:
                raise LayerDigestMismatch("layer given as bytes", str(diff_id), str(actual))
            return BytesLayer(diff_id, data)
        path = os.fspath(source)
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise StoreError(f"layer file {path!r}: {exc.strerror}") from exc
        return FileLayer(diff_id, path, size)


class _StagedBlob:
    """A blob being written by a load into a MemoryStore."""

    def __init__(self, load: MemoryLoad) -> None:
        self._load = load
        # BytesIO grows in place and hands its buffer over without a copy: one copy in memory.
        self._buffer = io.BytesIO()

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self._load._hold(len(data))
        self._buffer.write(data)

    def commit(self, digest: Digest) -> None:
        data = self._buffer.getvalue()
        self._buffer = io.BytesIO()
        if digest in self._load._staged:
            self._load._held -= len(data)  # the same blob twice is held once
        else:
            self._load._staged[digest] = data

    def abort(self) -> None:
        self._load._held -= self._buffer.tell()
        self._buffer = io.BytesIO()


class MemoryLoad:
    """One load into a :class:`MemoryStore`: staged blobs, then images registered whole."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._staged: dict[Digest, bytes] = {}
        self._held = 0

    def _hold(self, n: int) -> None:
        self._held += n
        limit = self._store.load_limit
        if limit is not None and self._held > limit:
            raise UnsafeArchive(
                f"loading into memory: more than the MemoryStore's limit of {limit} bytes "
                "(MemoryStore(load_limit=...) sets it)"
            )

    def stage_blob(self) -> _StagedBlob:
        return _StagedBlob(self)

    def open_staged(self, digest: Digest) -> BinaryIO:
        if digest in self._staged:
            return io.BytesIO(self._staged[digest])
        found = self._store._find_blob(digest)
        if found is None:
            raise StoreError(f"blob {digest} is neither staged nor stored")
        return io.BytesIO(found) if isinstance(found, bytes) else found.open()

    def _bytes(self, digest: Digest) -> bytes:
        with self.open_staged(digest) as blob:
            return blob.read()

    def commit_image(
        self,
        config: Digest,
        layers: Sequence[Digest],
        references: Sequence[Named],
        parent: Optional[Digest],
    ) -> None:
        image = Image.from_bytes(self._bytes(config))
        if list(image.diff_ids) != list(layers):
            raise StoreError(f"image {image.id}: layers do not match the config's diff IDs")
        store = self._store
        new_layers: list[Union[BytesLayer, FileLayer]] = []
        for diff_id in layers:
            existing = store._find_blob(diff_id)
            if isinstance(existing, (BytesLayer, FileLayer)):
                new_layers.append(existing)
            else:
                new_layers.append(BytesLayer(diff_id, self._staged_or_fail(diff_id)))
        refs = [store._parse_reference(ref) for ref in references]
        store._register(image, new_layers, refs, parent)

    def _staged_or_fail(self, digest: Digest) -> bytes:
        try:
            return self._staged[digest]
        except KeyError:
            raise StoreError(f"blob {digest} is neither staged nor stored") from None

    def close(self) -> None:
        self._staged.clear()
        self._held = 0
