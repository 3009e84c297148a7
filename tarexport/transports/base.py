"""The transport seam: what a place images live must offer for ``copy`` to move images.

A *source* is opened into one of two things:

- a :class:`Selection`: the three store protocols plus the images chosen from them, with the
  names they carry at the source (every store-backed place: OCI layouts, docker-archives read
  in place, Docker data roots, the default store, a registry seen as stores);
- an :class:`ArchiveStream`: a ``docker save`` archive being read (a Docker daemon's
  ``GET /images/get``).

A *destination* takes a :class:`Selection` (:meth:`ImageDestination.write`) and, when it is
a store a load can go into, also offers that store as an
:class:`~tarexport.stores.protocols.ImageSink` (:meth:`ImageDestination.sink`), so an
archive stream is loaded straight into it.

Both are small :class:`typing.Protocol` classes; a new transport implements one or both and
registers a factory by name with :func:`tarexport.transports.names.register`. Every method
that can fail on bad input raises a :class:`~tarexport.errors.TarexportError` before the
destination is changed; a destination is never left half-written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import BinaryIO, Optional, Union

import attrs
from typing_extensions import Protocol, runtime_checkable

from ..digest import Digest
from ..progress import ProgressCallback
from ..reference import Named
from ..stores.protocols import ImageSink, ImageStore, LayerStore, ReferenceStore

__all__ = [
    "ArchiveStream",
    "CopyOptions",
    "CopyResult",
    "DirectCopy",
    "ImageDestination",
    "ImageSource",
    "Opened",
    "SelectedImage",
    "Selection",
]


@attrs.frozen
class SelectedImage:
    """One image a copy moves: its ID, the names it gets, its parent (if recorded)."""

    id: Digest
    references: tuple[Named, ...] = ()
    parent: Optional[Digest] = None


@attrs.frozen
class Selection:
    """Images chosen from a source, and the stores their parts are read from.

    ``images`` are in copy order, parents before their children when both are selected.
    ``bare_tag`` is set when the source named the image by a tag alone (``oci:DIR:latest``):
    the destination must then supply a repository, or the copy fails saying so.
    """

    images: ImageStore
    layers: LayerStore
    references: ReferenceStore
    selected: tuple[SelectedImage, ...]
    bare_tag: Optional[str] = None

    def renamed(self, reference: Named) -> Selection:
        """The same one image under the single name ``reference``."""
        if len(self.selected) != 1:
            raise ValueError("only a selection of one image can be renamed")
        image = attrs.evolve(self.selected[0], references=(reference,))
        return attrs.evolve(self, selected=(image,), bare_tag=None)


@attrs.frozen
class ArchiveStream:
    """A ``docker save`` archive (plain or compressed) read front to back.

    ``stream`` is closed by whoever opened the source (through the ``ExitStack`` given to
    :meth:`ImageSource.open`). ``names`` are the names the source asked for, for messages.
    """

    stream: BinaryIO
    names: tuple[str, ...] = ()


class DirectCopy(Protocol):
    """A source's images that move themselves (a registry's: pulled, or copied blob for blob)."""

    def copy_to(
        self, destination: ImageDestination, options: CopyOptions, stack: contextlib.ExitStack
    ) -> CopyResult:
        """Write the images to ``destination``, all or nothing, as ``write`` would."""
        ...


Opened = Union[Selection, ArchiveStream, DirectCopy]


@attrs.frozen
class CopyOptions:
    """How a copy runs. ``verify`` checks every layer digest on the way (the default)."""

    verify: bool = True
    progress: Optional[ProgressCallback] = None


@attrs.frozen
class CopyResult:
    """What a copy wrote: the images at the destination, with the names they got there.

    ``messages`` are lines a command shows (``Loaded image: ...``), when the destination
    reports any.
    """

    images: tuple[SelectedImage, ...]
    messages: tuple[str, ...] = ()

    @property
    def image_ids(self) -> tuple[Digest, ...]:
        return tuple(image.id for image in self.images)


@runtime_checkable
class ImageSource(Protocol):
    """A place images are read from."""

    def describe(self) -> str:
        """The place as the user spelt it (``oci:out:app``), for messages."""
        ...

    def open(self, stack: contextlib.ExitStack) -> Opened:
        """Open the place and choose its images; resources go on ``stack``.

        Raises :class:`~tarexport.errors.ImageNotFound` (and the like) when the name matches
        nothing; nothing is written anywhere before this returns.
        """
        ...


@runtime_checkable
class ImageDestination(Protocol):
    """A place images are written to."""

    @property
    def reference(self) -> Optional[Named]:
        """The name the destination gives the image (``docker-archive:x.tar:app:1``), if any."""
        ...

    def describe(self) -> str:
        """The place as the user spelt it, for messages."""
        ...

    def sink(self, stack: contextlib.ExitStack) -> Optional[ImageSink]:
        """The store to load an :class:`ArchiveStream` into, or ``None`` if there is none.

        A destination that returns a sink takes archives straight into it; the others get
        the archive's images as a :class:`Selection` through :meth:`write`.
        """
        ...

    def write(self, selection: Selection, options: CopyOptions) -> CopyResult:
        """Write every selected image with its references, all or nothing.

        When this raises, the destination is as it was (no file appears, no image is
        registered, no tag moves).
        """
        ...


def unique_images(selected: Sequence[SelectedImage]) -> tuple[SelectedImage, ...]:
    """``selected`` with one entry per image ID, references merged, first order kept."""
    merged: dict[Digest, SelectedImage] = {}
    for image in selected:
        seen = merged.get(image.id)
        if seen is None:
            merged[image.id] = image
            continue
        refs = seen.references + tuple(r for r in image.references if r not in seen.references)
        merged[image.id] = attrs.evolve(seen, references=refs, parent=seen.parent or image.parent)
    return tuple(merged.values())
