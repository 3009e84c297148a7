"""``docker://HOST[:PORT]/REPO[:TAG|@DIGEST]``: a registry as a copy source and destination.

As a destination, the selected image is pushed (:mod:`.push`); as a source, the manifest is
resolved when the source is opened (so a missing tag fails before anything is written), and
the image then moves straight to where it goes: pulled into the destination's store when it
has one (:mod:`.pull`), copied blob for blob — compressed as it is, the manifest verbatim,
mounted when both are on one registry — to another registry, and for a place that only
takes whole images (a Docker daemon, an archive) pulled into a private layout first.

:class:`RegistrySettings` carries what a command line can change: credentials, insecure
hosts, compression, manifest format, platform, the blob-info cache and the retry policy.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Mapping, Optional

import attrs

from ..errors import InvalidTransport, TarexportError
from ..progress import Progress, ProgressCallback
from ..reference import Named, with_tag
from ..stores.oci_layout import OCILayoutStore, Platform
from ..stores.protocols import ImageSink
from . import distribution as proto
from .base import CopyOptions, CopyResult, ImageDestination, SelectedImage, Selection
from .blobinfo import BlobInfoCache
from .credentials import CredentialLookup
from .events import RegistryEvent, RegistryProgress
from .http import Transport
from .pull import Puller
from .push import Pusher, plan_copy
from .registry import RegistryClient

__all__ = [
    "RegistryDestination",
    "RegistryImage",
    "RegistrySettings",
    "RegistrySource",
    "default_cache_path",
    "install",
]


def default_cache_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    """``$XDG_CACHE_HOME/tarexport/blob-info.json``, else ``~/.cache/tarexport/...``."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tarexport" / "blob-info.json"


@attrs.frozen
class RegistrySettings:
    """How registries are spoken to. The defaults are Docker's."""

    credentials: Optional[CredentialLookup] = None  # default: ~/.docker/config.json
    insecure: tuple[str, ...] = ()  # hosts allowed plain HTTP / unverified TLS
    compression: str = "gzip"
    manifest_format: str = "docker"
    platform: Optional[Platform] = None  # default: this machine's
    cache: Optional[BlobInfoCache] = None  # default: the cache file of default_cache_path()
    retry: proto.RetryPolicy = proto.DEFAULT_RETRIES
    transport: Optional[Transport] = None
    progress: Optional[RegistryProgress] = None  # blob events; else the copy's progress

    def client(self, registry: str, progress: Optional[RegistryProgress]) -> RegistryClient:
        def notice(message: str) -> None:
            if progress is not None:
                progress(RegistryEvent("retry", message=message))

        return RegistryClient(registry, transport=self.transport, credentials=self.credentials,
                              insecure=self.insecure, retry=self.retry, on_notice=notice)

    def blob_cache(self) -> BlobInfoCache:
        return self.cache if self.cache is not None else BlobInfoCache(default_cache_path())

    def events(self, options: CopyOptions) -> Optional[RegistryProgress]:
        if self.progress is not None:
            return self.progress
        if options.progress is not None:
            return _as_progress(options.progress)
        return None


def _as_progress(callback: ProgressCallback) -> RegistryProgress:
    """Blob events as the save/load :class:`~tarexport.progress.Progress` events."""
    moved = {"done": 0, "blob": 0}

    def on_event(event: RegistryEvent) -> None:
        if event.phase == "start":
            callback(Progress("start", 0, None))
        elif event.phase == "blob":
            moved["blob"] = 0
            callback(Progress("entry", moved["done"], None, entry=event.blob, layer=event.blob))
        elif event.phase == "bytes":
            moved["done"] += event.done - moved["blob"]
            moved["blob"] = event.done
            callback(Progress("bytes", moved["done"], None, entry=event.blob, layer=event.blob))
        elif event.phase == "done":
            callback(Progress("done", moved["done"], moved["done"]))

    return on_event


def _parse(text: str) -> proto.RegistryRef:
    try:
        return proto.RegistryRef.parse(text)
    except TarexportError as exc:
        raise InvalidTransport(text, str(exc)) from None


# -- the source ---------------------------------------------------------------------------


@attrs.frozen
class RegistryImage:
    """A registry image, resolved: what :meth:`RegistrySource.open` returns.

    It moves itself (:meth:`copy_to`), since no store can hand out a registry's layers
    without downloading them first.
    """

    source: proto.RegistryRef
    client: RegistryClient
    digest: Any  # Digest of the manifest
    manifest: proto.ImageManifest
    manifest_bytes: bytes = attrs.field(repr=False)
    settings: RegistrySettings

    def reference(self) -> Optional[Named]:
        """The name the image keeps when the destination gives none."""
        if self.source.digest is not None:
            return None
        named = self.source.named
        return named if named.tag is not None else with_tag(named, "latest")

    def copy_to(self, dst: ImageDestination, options: CopyOptions,
                stack: contextlib.ExitStack) -> CopyResult:
        """Move the image to ``dst``: into its store, to its registry, or staged for it."""
        if isinstance(dst, RegistryDestination):
            return dst.copy_from(self, options)
        events = self.settings.events(options)
        name = dst.reference if dst.reference is not None else self.reference()
        sink = dst.sink(stack)
        if sink is not None:
            return self._pull(sink, name, events)
        staging = stack.enter_context(tempfile.TemporaryDirectory(prefix="tarexport-copy-"))
        layout = OCILayoutStore(staging, create=True, fsync=False)
        result = self._pull(layout, name, events)
        selected = result.images[0]
        selection = Selection(layout, layout, layout, (selected,))
        return dst.write(selection, options)

    def _pull(self, sink: ImageSink, name: Optional[Named],
              events: Optional[RegistryProgress]) -> CopyResult:
        cache = self.settings.blob_cache()
        puller = Puller(sink, client=self.client, platform=self.settings.platform,
                        cache=cache, progress=events)
        try:
            pulled = puller.pull_manifest(self.client, self.source, self.digest, self.manifest,
                                          name)
        finally:
            cache.save()
        refs = (pulled.reference,) if pulled.reference is not None else ()
        return CopyResult((SelectedImage(pulled.image_id, refs),))


@attrs.frozen
class RegistrySource:
    """``docker://HOST/REPO[:TAG|@DIGEST]`` as a copy source."""

    ref: proto.RegistryRef
    text: str
    settings: RegistrySettings = RegistrySettings()

    @classmethod
    def parse(cls, text: str, settings: RegistrySettings = RegistrySettings()) -> RegistrySource:
        return cls(_parse(text), text, settings)

    def describe(self) -> str:
        return self.text

    def open(self, stack: contextlib.ExitStack) -> RegistryImage:
        client = self.settings.client(self.ref.registry, self.settings.progress)
        stack.callback(client.close)
        platform = self.settings.platform or Platform.host()
        resolver = Puller(_NoSink(), client=client, platform=platform)
        digest, manifest, data = resolver.resolve(client, self.ref)
        return RegistryImage(self.ref, client, digest, manifest, data,
                             attrs.evolve(self.settings, platform=platform))


class _NoSink:
    def begin_load(self) -> Any:  # pragma: no cover - never loaded into
        raise AssertionError("resolving only")


# -- the destination ----------------------------------------------------------------------


@attrs.frozen
class RegistryDestination:
    """``docker://HOST/REPO[:TAG|@DIGEST]`` as a copy destination (no tag: ``latest``)."""

    ref: proto.RegistryRef
    text: str
    settings: RegistrySettings = RegistrySettings()

    @classmethod
    def parse(cls, text: str,
              settings: RegistrySettings = RegistrySettings()) -> RegistryDestination:
        ref = _parse(text)
        if ref.tag is None and ref.digest is None:
            ref = proto.RegistryRef(with_tag(ref.named, "latest"))
        return cls(ref, text, settings)

    @property
    def reference(self) -> Optional[Named]:
        return self.ref.named

    def describe(self) -> str:
        return self.text

    def sink(self, stack: contextlib.ExitStack) -> Optional[ImageSink]:
        return None

    def _pusher(self, selection: Any, options: CopyOptions, client: RegistryClient,
                cache: BlobInfoCache, mount_from: Sequence[str] = ()) -> Pusher:
        images, layers, references = selection
        return Pusher(images, layers, references, client=client, cache=cache,
                      compression=self.settings.compression,
                      manifest_format=self.settings.manifest_format, mount_from=mount_from,
                      progress=self.settings.events(options))

    def write(self, selection: Selection, options: CopyOptions) -> CopyResult:
        if len(selection.selected) != 1:
            raise InvalidTransport(self.text, f"names one image, the source holds "
                                              f"{len(selection.selected)}")
        image = selection.selected[0]
        events = self.settings.events(options)
        client = self.settings.client(self.ref.registry, events)
        cache = self.settings.blob_cache()
        try:
            pusher = self._pusher((selection.images, selection.layers, selection.references),
                                  options, client, cache)
            pusher.push(str(image.id), self.ref)
        finally:
            cache.save()
            client.close()
        return CopyResult((SelectedImage(image.id, (self.ref.named,)),),
                          (f"Pushed {self.ref.named}",))

    def copy_from(self, image: RegistryImage, options: CopyOptions) -> CopyResult:
        """Copy a registry image here blob for blob (mounted when on the same registry)."""
        events = self.settings.events(options)
        same = image.source.registry == self.ref.registry
        client = image.client if same else self.settings.client(self.ref.registry, events)
        cache = self.settings.blob_cache()
        try:
            plan = plan_copy(image.client, image.source, image.manifest, image.manifest_bytes,
                             self.ref)
            mount = (image.source.repository,) if same else ()
            pusher = Pusher(_NoStore(), client=client,  # type: ignore[arg-type]
                            cache=cache, mount_from=mount, progress=events)
            pusher.run(plan)
        finally:
            cache.save()
            if not same:
                client.close()
        return CopyResult((SelectedImage(image.manifest.config.digest, (self.ref.named,)),),
                          (f"Pushed {self.ref.named}",))


class _NoStore:
    """No store: a copy between registries reads from the source registry only."""


# -- installing ---------------------------------------------------------------------------


def _source(name: Any) -> RegistrySource:
    return RegistrySource.parse(name.text)


def _destination(name: Any) -> RegistryDestination:
    return RegistryDestination.parse(name.text)


def install() -> None:
    """Register ``docker://`` (idempotent)."""
    from .names import register

    register("docker", source=_source, destination=_destination)

