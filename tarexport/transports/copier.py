"""One ``copy`` over every place: open the source, name the images, write the destination.

A selection goes to the destination's :meth:`~.base.ImageDestination.write`. An archive
stream (a daemon's ``docker save``) is loaded straight into the destination's sink; only
when the destination has none (another daemon, an archive file) are its images staged in a
private layout first, removed when the copy ends.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import tempfile
from collections.abc import Sequence
from typing import BinaryIO, Callable, Optional, Union

from ..digest import Digest
from ..errors import InvalidTransport, StoreError
from ..load import LoadResult, load
from ..progress import ProgressCallback
from ..reference import Named, familiar_string
from ..stores.oci_layout import OCILayoutStore
from ..stores.protocols import BlobWriter, ImageSink, LoadTransaction
from .base import (
    ArchiveStream,
    CopyOptions,
    CopyResult,
    ImageDestination,
    ImageSource,
    SelectedImage,
    Selection,
)
from .names import factory, parse
from .stores import select

__all__ = ["copy", "open_destination", "open_source"]


def open_source(place: Union[str, ImageSource]) -> ImageSource:
    """The source spelt ``place`` (``oci:DIR:REF``...), or ``place`` itself."""
    if not isinstance(place, str):
        return place
    _install()
    name = parse(place)
    made = factory(name, destination=False)(name)
    assert isinstance(made, ImageSource)
    return made


def open_destination(place: Union[str, ImageDestination]) -> ImageDestination:
    """The destination spelt ``place``, or ``place`` itself."""
    if not isinstance(place, str):
        return place
    _install()
    name = parse(place)
    made = factory(name, destination=True)(name)
    assert isinstance(made, ImageDestination)
    return made


BUILTIN = ("local", "daemon", "docker_registry")
"""The transport modules of this package; each has ``install()``, registering its names.
One that is not there (a registry transport not installed) is skipped."""


def _install() -> None:
    for module_name in BUILTIN:
        qualified = f"{__package__}.{module_name}"
        if importlib.util.find_spec(qualified) is None:
            continue
        module = importlib.import_module(qualified)
        install: Callable[[], None] = module.install
        install()


def copy(
    source: Union[str, ImageSource],
    destination: Union[str, ImageDestination],
    *,
    verify: bool = True,
    progress: Optional[ProgressCallback] = None,
) -> CopyResult:
    """Copy the images ``source`` names to ``destination``, all or nothing.

    Both are places as skopeo spells them (``oci:DIR[:REF]``, ``docker-archive:PATH[:REF]``,
    ``docker-daemon:REF``, a default-store name...) or transport objects. A REF on the
    destination renames the one image copied; a source that names its image by a tag alone
    needs one. Layers stream from source to destination with their digests checked
    (``verify``); when anything fails, the destination is left as it was.
    """
    src = open_source(source)
    dst = open_destination(destination)
    options = CopyOptions(verify=verify, progress=progress)
    with contextlib.ExitStack() as stack:
        opened = src.open(stack)
        if isinstance(opened, Selection):
            return dst.write(named_for(opened, src, dst), options)
        if isinstance(opened, ArchiveStream):
            return _copy_stream(opened, src, dst, options, stack)
        return opened.copy_to(dst, options, stack)


def named_for(selection: Selection, src: ImageSource, dst: ImageDestination) -> Selection:
    """The selection under the names the destination asks for (its REF), checked."""
    if dst.reference is not None:
        if len(selection.selected) != 1:
            raise InvalidTransport(
                dst.describe(),
                f"names one image, but {src.describe()} holds {len(selection.selected)}",
            )
        return selection.renamed(dst.reference)
    if selection.bare_tag is not None:
        raise InvalidTransport(
            dst.describe(),
            f"{src.describe()} names its image by the tag {selection.bare_tag!r} alone: "
            "the destination must name a repository (add :REPOSITORY:TAG)",
        )
    if not selection.selected:
        raise StoreError(f"{src.describe()}: no image to copy")
    return selection


def _copy_stream(
    opened: ArchiveStream,
    src: ImageSource,
    dst: ImageDestination,
    options: CopyOptions,
    stack: contextlib.ExitStack,
) -> CopyResult:
    sink = dst.sink(stack)
    if sink is not None:
        into: ImageSink = sink if dst.reference is None else _Renaming(sink, dst.reference)
        loaded = load(opened.stream, into=into, progress=options.progress)
        return _result(loaded, dst.reference)
    staging = stack.enter_context(tempfile.TemporaryDirectory(prefix="tarexport-copy-"))
    layout = OCILayoutStore(staging, create=True, fsync=False)
    load(opened.stream, into=layout, progress=options.progress)
    selection = select(layout, layout, layout, None)
    return dst.write(named_for(selection, src, dst), options)


def _result(loaded: LoadResult, reference: Optional[Named]) -> CopyResult:
    images = tuple(
        SelectedImage(
            image.id,
            image.references if reference is None else (reference,),
            image.parent,
        )
        for image in loaded.images
    )
    if reference is None:
        return CopyResult(images, tuple(loaded.messages()))
    return CopyResult(images, (f"Loaded image: {familiar_string(reference)}",))


class _Renaming:
    """A sink whose one loaded image gets the destination's name instead of its own."""

    def __init__(self, sink: ImageSink, reference: Named) -> None:
        self.inner = sink
        self.reference = reference

    def begin_load(self) -> LoadTransaction:
        return _RenamingLoad(self.inner.begin_load(), self.reference)


class _RenamingLoad:
    def __init__(self, txn: LoadTransaction, reference: Named) -> None:
        self.txn = txn
        self.reference = reference
        self.committed = 0

    def stage_blob(self) -> BlobWriter:
        return self.txn.stage_blob()

    def open_staged(self, digest: Digest) -> BinaryIO:
        return self.txn.open_staged(digest)

    def commit_image(
        self,
        config: Digest,
        layers: Sequence[Digest],
        references: Sequence[Named],
        parent: Optional[Digest],
    ) -> None:
        if self.committed:
            raise InvalidTransport(str(self.reference), "names one image, the source holds more")
        self.committed += 1
        self.txn.commit_image(config, layers, [self.reference], parent)

    def close(self) -> None:
        self.txn.close()
