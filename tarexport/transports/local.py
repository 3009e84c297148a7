"""The places on this machine: OCI layouts, archives, Docker data roots, the default store.

Factories for ``oci:``, ``oci-archive:``, ``docker-archive:``, ``docker-root:`` and
``store:`` (and bare names), registered by :func:`install`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Mapping, Optional

import attrs

from .. import profiles
from ..errors import InvalidTransport, NameConflict, StoreError, TarexportError
from ..reference import Named, parse_normalized_named, tag_name_only, with_tag
from ..stores.docker_archive import DockerArchiveStore
from ..stores.docker_root import DockerRootStore
from ..stores.memory import MemoryStore
from ..stores.oci_layout import ANNOTATION_REF_NAME, OCILayoutStore
from ..stores.protocols import ImageSink
from .archive import ArchiveDestination
from .base import CopyOptions, CopyResult, SelectedImage, Selection
from .names import DEFAULT_STORE, TransportName, parse, register
from .stores import AnyStore, SinkDestination, StoreSource, parents_first, select

__all__ = [
    "LayoutDestination",
    "LayoutSource",
    "OCIArchiveSource",
    "by_ref_name",
    "default_store_path",
    "destination_reference",
    "install",
    "open_default_store",
    "open_layout",
    "open_store",
]


def default_store_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    """Where the embedded default store lives.

    ``$TAREXPORT_STORE``, else ``$XDG_DATA_HOME/tarexport``, else ``~/.local/share/tarexport``.
    A relative ``XDG_DATA_HOME`` is ignored, as the XDG base directory spec says.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("TAREXPORT_STORE", "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "tarexport"
    return Path.home() / ".local" / "share" / "tarexport"


def open_default_store(*, create: bool = False) -> AnyStore:
    """The default store; when it does not exist yet and ``create`` is false, an empty one."""
    path = default_store_path()
    if not create and not (path / "oci-layout").exists():
        try:
            empty = not any(path.iterdir())
        except FileNotFoundError:
            empty = True
        except OSError:
            empty = False
        if empty:
            return MemoryStore()
    store: AnyStore = OCILayoutStore(str(path), create=create)
    return store


def destination_reference(name: TransportName) -> Optional[Named]:
    """The destination's REF as a tagged name (a name alone gets ``:latest``)."""
    if name.reference is None:
        return None
    try:
        ref = parse_normalized_named(name.reference)
    except TarexportError as exc:
        raise InvalidTransport(name.text, str(exc)) from None
    if ref.digest is not None:
        raise InvalidTransport(name.text, "a destination is named by a tag, not by a digest")
    return tag_name_only(ref)


def _opened(name: TransportName, make: type, *args: object, **kwargs: object) -> AnyStore:
    try:
        store: AnyStore = make(*args, **kwargs)
    except StoreError as exc:
        if name.path and name.path in str(exc):
            raise
        raise StoreError(f"{name.path or name.text}: {exc}") from exc
    return store


# -- OCI layouts: names are ref.name annotations ---------------------------------------


@attrs.frozen
class LayoutSource:
    """``oci:DIR[:REF]``: REF is an ``org.opencontainers.image.ref.name`` (maybe a bare tag)."""

    path: str
    name: Optional[str]
    text: str

    def describe(self) -> str:
        return self.text

    def open(self, stack: contextlib.ExitStack) -> Selection:
        store = OCILayoutStore(self.path)
        if self.name is not None:
            found = by_ref_name(store, self.name, self.text)
            if found is not None:
                return found
        return select(store, store, store, self.name)


def by_ref_name(store: OCILayoutStore, ref_name: str, text: str) -> Optional[Selection]:
    """The one image whose descriptors carry exactly this ``ref.name``, if any does.

    Several images under one ``ref.name`` is an error naming them. An image found by a bare
    tag but also named in full (``io.containerd.image.name``) keeps that full name.
    """
    snapshot = store._snapshot()
    matches = [
        e for e in snapshot.entries
        if e.descriptor.annotations.get(ANNOTATION_REF_NAME) == ref_name
    ]
    if not matches:
        return None
    for entry in matches:
        if entry.error is not None:
            raise entry.error
        if entry.reference is not None and entry.reference in snapshot.conflicts:
            raise snapshot.conflicts[entry.reference]
    ids = list(dict.fromkeys(e.image.config for e in matches if e.image is not None))
    if len(ids) > 1:
        listed = ", ".join(str(e.descriptor.digest) for e in matches)
        raise NameConflict(
            f"{text}: {ANNOTATION_REF_NAME} {ref_name!r} names {len(ids)} different images "
            f"(manifests {listed})"
        )
    refs = tuple(dict.fromkeys(e.reference for e in matches if e.reference is not None))
    chosen = [SelectedImage(ids[0], refs)]
    bare = None if refs else ref_name
    return Selection(store, store, store, parents_first(store, chosen), bare_tag=bare)


@attrs.frozen
class LayoutDestination:
    """``oci:DIR[:REF]``, created when missing.

    A REF that is a bare tag (``oci:DIR:latest``, as skopeo users write it) is ``tag``: the
    image keeps its repository and gets that tag (``app:1`` becomes ``app:latest``).
    """

    path: str
    reference: Optional[Named]
    text: str
    tag: Optional[str] = None

    def describe(self) -> str:
        return self.text

    def _store(self) -> OCILayoutStore:
        return OCILayoutStore(self.path, create=True)

    def sink(self, stack: contextlib.ExitStack) -> Optional[ImageSink]:
        if self.tag is not None:
            return None  # the repository is known only once the archive is read
        existed = os.path.exists(self.path)

        def forget_on_failure(failed: Optional[type], *rest: object) -> None:
            if failed is not None and not existed:  # a layout made for nothing goes again
                shutil.rmtree(self.path, ignore_errors=True)

        store = self._store()
        stack.push(forget_on_failure)
        return store

    def write(self, selection: Selection, options: CopyOptions) -> CopyResult:
        if self.tag is not None:
            selection = self._retagged(selection)
        existed = os.path.exists(self.path)
        try:
            return SinkDestination(self._store(), self.reference, self.text).write(
                selection, options
            )
        except BaseException:
            if not existed:  # a layout this copy made for nothing goes again
                shutil.rmtree(self.path, ignore_errors=True)
            raise


    def _retagged(self, selection: Selection) -> Selection:
        assert self.tag is not None
        if len(selection.selected) != 1:
            raise InvalidTransport(
                self.text, f"names one image, but the source holds {len(selection.selected)}"
            )
        names = selection.selected[0].references
        if not names:
            raise InvalidTransport(
                self.text, f"the image has no repository to tag {self.tag!r}: name one "
                "(oci:DIR:REPOSITORY:TAG)"
            )
        return selection.renamed(with_tag(names[0], self.tag))


# -- factories ----------------------------------------------------------------------------


def _oci_source(name: TransportName) -> LayoutSource:
    return LayoutSource(name.path, name.reference, name.text)


def _oci_destination(name: TransportName) -> LayoutDestination:
    ref = name.reference
    if ref is not None and not any(c in ref for c in ":/@"):
        try:  # a bare tag: checked by the tag grammar
            with_tag(parse_normalized_named("x"), ref)
        except TarexportError as exc:
            raise InvalidTransport(name.text, str(exc)) from None
        return LayoutDestination(name.path, None, name.text, tag=ref)
    return LayoutDestination(name.path, destination_reference(name), name.text)


def _archive_source(name: TransportName) -> StoreSource:
    return StoreSource(_opened(name, DockerArchiveStore, name.path), name.reference, name.text)


@attrs.frozen
class OCIArchiveSource:
    """``oci-archive:PATH[:REF]``: REF is a ``ref.name`` of the archive's ``index.json`` first,
    as skopeo reads it, else a name as Docker resolves it."""

    path: str
    name: Optional[str]
    text: str

    def describe(self) -> str:
        return self.text

    def open(self, stack: contextlib.ExitStack) -> Selection:
        store = DockerArchiveStore(self.path)
        if self.name is not None:
            named = store.ref_names().get(self.name)
            if named:
                ids = list(dict.fromkeys(image_id for image_id, _ in named))
                if len(ids) > 1:
                    raise NameConflict(
                        f"{self.text}: {ANNOTATION_REF_NAME} {self.name!r} names {len(ids)} "
                        f"different images ({', '.join(str(i) for i in ids)})"
                    )
                refs = tuple(dict.fromkeys(ref for _, ref in named if ref is not None))
                chosen = [SelectedImage(ids[0], refs)]
                return Selection(store, store, store, parents_first(store, chosen),
                                 bare_tag=None if refs else self.name)
        return select(store, store, store, self.name)


def _oci_archive_source(name: TransportName) -> OCIArchiveSource:
    return OCIArchiveSource(name.path, name.reference, name.text)


def _archive_destination(name: TransportName) -> ArchiveDestination:
    return ArchiveDestination(name.path, destination_reference(name), name.text, profiles.DEFAULT)


def _root_source(name: TransportName) -> StoreSource:
    return StoreSource(_opened(name, DockerRootStore, name.path), name.reference, name.text)


def _store_source(name: TransportName) -> StoreSource:
    return StoreSource(open_default_store(), name.reference, name.text)


def _store_destination(name: TransportName) -> LayoutDestination:
    return LayoutDestination(str(default_store_path()), destination_reference(name), name.text)


def install() -> None:
    """Register the local transports (idempotent)."""
    register("oci", source=_oci_source, destination=_oci_destination)
    register("oci-archive", source=_oci_archive_source, destination=_archive_destination)
    register("docker-archive", source=_archive_source, destination=_archive_destination)
    register("docker-root", source=_root_source)
    register(DEFAULT_STORE, source=_store_source, destination=_store_destination)



def open_store(place: Optional[str]) -> AnyStore:
    """The store a store command reads: ``oci:DIR``, ``docker-archive:PATH``,
    ``oci-archive:PATH``, ``docker-root:DIR``, or (``None``, ``store:``) the default store."""
    if place is None:
        return open_default_store()
    name = parse(place)
    if name.reference is not None and name.transport != DEFAULT_STORE:
        raise InvalidTransport(place, "name a store here, without an image reference")
    if name.transport == "oci":
        return _opened(name, OCILayoutStore, name.path)
    if name.transport in ("docker-archive", "oci-archive"):
        return _opened(name, DockerArchiveStore, name.path)
    if name.transport == "docker-root":
        return _opened(name, DockerRootStore, name.path)
    if name.transport == DEFAULT_STORE and name.reference is None:
        return open_default_store()
    raise InvalidTransport(place, "expected oci:DIR, docker-archive:FILE or docker-root:DIR")


def open_layout(place: Optional[str]) -> OCILayoutStore:
    """The OCI layout a store edit (tag, rmi) changes: ``oci:DIR`` or the default store."""
    if place is None:
        return OCILayoutStore(str(default_store_path()), create=True)
    name = parse(place)
    if name.transport == "oci" and name.reference is None:
        return OCILayoutStore(name.path)
    if name.transport == DEFAULT_STORE and name.reference is None:
        return OCILayoutStore(str(default_store_path()), create=True)
    raise InvalidTransport(place, "only an OCI layout (oci:DIR) or the default store is edited")
