"""Store-backed places: choosing images from three stores, and copying them into a sink.

:func:`select` turns a REF (or none: every image) into a :class:`~.base.Selection` with
Docker's name rules. :class:`SinkDestination` writes a selection into any
:class:`~tarexport.stores.protocols.ImageSink`: every blob is staged and verified first, and
only then are the images registered, so a failure leaves the sink as it was.
:class:`SelectionStore` shows a selection to the :class:`~tarexport.Saver` as a store whose
only references are the selected ones, so an archive gets exactly the names chosen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import BinaryIO, Optional, Union

import attrs
from typing_extensions import Protocol

from ..copy import copy_layer
from ..digest import Digest, chain_ids
from ..errors import (
    ImageNotFound,
    LayerDigestMismatch,
    ReferenceNotFound,
    StoreError,
    TarexportError,
)
from ..image import Image
from ..progress import Progress
from ..reference import (
    Named,
    Reference,
    familiar_name,
    is_name_only,
    parse_any_reference,
    tag_name_only,
)
from ..save import Saver
from ..stores.protocols import (
    BlobWriter,
    ImageSink,
    ImageStore,
    Layer,
    LayerStore,
    LoadTransaction,
    ReferenceStore,
)
from .base import CopyOptions, CopyResult, SelectedImage, Selection, unique_images

__all__ = [
    "SelectionStore",
    "SinkDestination",
    "StoreSource",
    "latest_form",
    "parents_first",
    "resolve_names",
    "select",
]


class AnyStore(ImageStore, LayerStore, ReferenceStore, Protocol):
    """A store that is all three at once (every store of this package is)."""


def select(
    images: ImageStore,
    layers: LayerStore,
    references: ReferenceStore,
    name: Optional[str],
) -> Selection:
    """The images ``name`` chooses.

    ``None`` chooses every image with all its tags. A tag or digest chooses one image; a
    repository alone means its ``latest`` tag (as skopeo reads a REF), and when there is no
    such tag, Docker's rules for ``docker save`` apply (an ID or unique ID prefix chooses that
    image without a name).
    """
    if name is None:
        chosen = [
            SelectedImage(image_id, _tags(references.references(image_id)))
            for image_id in images.search("")
        ]
    else:
        latest = latest_form(name)
        if latest is not None:
            try:
                chosen = [SelectedImage(references.get(latest), (latest,))]
                return Selection(images, layers, references, parents_first(images, chosen))
            except ReferenceNotFound:
                pass  # not a name here: maybe an image ID prefix
        chosen = resolve_names(images, layers, references, [name])
    return Selection(images, layers, references, parents_first(images, chosen))


def resolve_names(
    images: ImageStore, layers: LayerStore, references: ReferenceStore, names: Sequence[str]
) -> list[SelectedImage]:
    """Docker's ``parseNames``, as the Saver applies it (one place for the rules): each image
    the names select, once, with the tags they select it by."""
    tags: dict[Digest, list[Named]] = {}
    for image_id, tag in Saver(images, layers, references)._resolve(names):
        found = tags.setdefault(image_id, [])
        if tag is not None and tag not in found:
            found.append(tag)
    return [SelectedImage(image_id, tuple(found)) for image_id, found in tags.items()]


def latest_form(name: str) -> Optional[Named]:
    """``name:latest`` when ``name`` is a repository alone (skopeo's and Docker's default tag
    for one image), else ``None`` (a tag, a digest, an ID)."""
    try:
        ref = parse_any_reference(name)
    except TarexportError:
        return None
    if not isinstance(ref, Named) or not is_name_only(ref) or familiar_name(ref) == "sha256":
        return None
    return tag_name_only(ref)


def _tags(refs: Sequence[Named]) -> tuple[Named, ...]:
    return tuple(ref for ref in refs if ref.digest is None)


def parents_first(images: ImageStore, chosen: Sequence[SelectedImage]) -> tuple[SelectedImage, ...]:
    """``chosen`` with parents recorded (when also chosen) and ordered before children."""
    ids = {image.id for image in chosen}
    linked = []
    for image in unique_images(chosen):
        parent = images.get_parent(image.id)
        linked.append(attrs.evolve(image, parent=parent if parent in ids else None))
    ordered: list[SelectedImage] = []
    placed: set[Digest] = set()
    pending = linked
    while pending:
        waiting = [i for i in pending if i.parent is not None and i.parent not in placed]
        ready = [i for i in pending if i not in waiting]
        if not ready:  # a parent loop in a hostile store: keep the links out of it
            ready = [attrs.evolve(i, parent=None) for i in waiting]
            waiting = []
        ordered.extend(ready)
        placed.update(i.id for i in ready)
        pending = waiting
    return tuple(ordered)


@attrs.frozen
class StoreSource:
    """Any store (one object with the three store protocols) as a copy source."""

    store: AnyStore
    name: Optional[str]
    text: str

    def describe(self) -> str:
        return self.text

    def open(self, stack: contextlib.ExitStack) -> Selection:
        return select(self.store, self.store, self.store, self.name)


# -- into a sink --------------------------------------------------------------------------


class _BlobOutput:
    """A :class:`BlobWriter` as the writable stream :func:`copy_layer` writes into."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self.writer.write(data)

    def flush(self) -> None:
        pass


@attrs.frozen
class _Planned:
    image: SelectedImage
    diff_ids: tuple[Digest, ...]


def copy_into(selection: Selection, sink: ImageSink, options: CopyOptions) -> CopyResult:
    """Copy every selected image into ``sink``; all blobs staged and checked before any commit."""
    txn = sink.begin_load()
    try:
        staged: set[Digest] = set()
        planned = [_stage_image(selection, image, txn, staged, options) for image in
                   selection.selected]
        for plan in planned:
            txn.commit_image(plan.image.id, plan.diff_ids, plan.image.references,
                             plan.image.parent)
    finally:
        txn.close()
    return CopyResult(selection.selected)


def _stage_image(
    selection: Selection,
    selected: SelectedImage,
    txn: LoadTransaction,
    staged: set[Digest],
    options: CopyOptions,
) -> _Planned:
    config = selection.images.get_config(selected.id)
    image = Image.from_bytes(config)
    if image.id != selected.id:
        raise LayerDigestMismatch(f"config of image {selected.id}", str(selected.id),
                                  str(image.id))
    _stage_bytes(txn, config, image.id)
    for chain, diff_id in zip(chain_ids(image.diff_ids), image.diff_ids):
        if diff_id in staged:
            continue
        layer = selection.layers.get_layer(chain)
        if layer.diff_id != diff_id:
            raise LayerDigestMismatch(f"layer {chain} of image {image.id}", str(diff_id),
                                      str(layer.diff_id))
        if not _present(txn, diff_id):
            _stage_layer(txn, layer, f"layer {diff_id} of image {image.id}", options)
        staged.add(diff_id)
    return _Planned(selected, tuple(image.diff_ids))


def _present(txn: LoadTransaction, digest: Digest) -> bool:
    """Whether the sink holds this blob already (then it is not copied again)."""
    try:
        stream = txn.open_staged(digest)
    except (TarexportError, OSError):
        return False
    stream.close()
    return True


def _stage_bytes(txn: LoadTransaction, data: bytes, digest: Digest) -> None:
    writer = txn.stage_blob()
    try:
        writer.write(data)
    except BaseException:
        writer.abort()
        raise
    writer.commit(digest)


def _stage_layer(txn: LoadTransaction, layer: Layer, what: str, options: CopyOptions) -> None:
    writer = txn.stage_blob()
    progress = options.progress
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(Progress("bytes", done, layer.size, what, str(layer.diff_id)))

    try:
        output: BinaryIO = _BlobOutput(writer)  # type: ignore[assignment]
        copy_layer(layer, output, name=what, verify=options.verify, on_progress=on_bytes)
    except BaseException:
        writer.abort()
        raise
    writer.commit(layer.diff_id)


@attrs.frozen
class SinkDestination:
    """A store images are loaded into, as a copy destination."""

    store: ImageSink
    reference: Optional[Named]
    text: str

    def describe(self) -> str:
        return self.text

    def sink(self, stack: contextlib.ExitStack) -> Optional[ImageSink]:
        return self.store

    def write(self, selection: Selection, options: CopyOptions) -> CopyResult:
        return copy_into(selection, self.store, options)


# -- a selection as a store, for the Saver ------------------------------------------------


class SelectionStore:
    """The selected images of a selection, with only their selected names.

    Saving every name of :meth:`names` from it writes each image once, under exactly the
    names the selection gives it.
    """

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self._ids = {image.id: image for image in selection.selected}
        self._refs: dict[Named, Digest] = {}
        for image in selection.selected:
            for ref in image.references:
                self._refs[ref] = image.id

    def names(self) -> list[str]:
        """What to save: every reference, and the ID of each image that has none."""
        names: list[str] = []
        for image in self.selection.selected:
            names.extend(str(ref) for ref in image.references)
            if not image.references:
                names.append(str(image.id))
        return names

    def get_config(self, image_id: Digest) -> bytes:
        if image_id not in self._ids:
            raise ImageNotFound(str(image_id))
        return self.selection.images.get_config(image_id)

    def search(self, prefix: str) -> Sequence[Digest]:
        return sorted(d for d in self._ids if d.hex.startswith(prefix))

    def get_parent(self, image_id: Digest) -> Optional[Digest]:
        if image_id not in self._ids:
            raise ImageNotFound(str(image_id))
        return self._ids[image_id].parent

    def get_layer(self, chain_id: Digest) -> Layer:
        return self.selection.layers.get_layer(chain_id)

    def get(self, reference: Reference) -> Digest:
        found = self._refs.get(reference) if isinstance(reference, Named) else None
        if found is None:
            raise ReferenceNotFound(str(reference))
        return found

    def references_by_name(self, name: Named) -> Sequence[tuple[Named, Digest]]:
        return [(ref, d) for ref, d in self._refs.items() if ref.name == name.name]

    def references(self, image_id: Digest) -> Sequence[Named]:
        image = self._ids.get(image_id)
        return image.references if image is not None else ()


def need_store(what: str, exc: Exception) -> StoreError:
    """A store that cannot be opened, as one error naming the place."""
    return StoreError(f"{what}: {exc}")
