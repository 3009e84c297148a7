"""``ImageBuilder``: an image from a base (or nothing), layers and config edits.

The builder collects steps; :meth:`ImageBuilder.build` plans and hashes every new layer (one
read-only pass over its files), writes the config and returns a :class:`BuiltImage`. A
built image *is* a store (all three protocols), so the Saver saves it like any image, and
:meth:`BuiltImage.into` adds it to any :class:`~tarexport.stores.ImageSink`. Base layers stay
in their store and are read from there, never copied anywhere first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, Optional, Union

import attrs

from .. import profiles
from ..digest import Digest, chain_ids
from ..errors import (
    ImageNotFound,
    InvalidBuildOption,
    LayerDigestMismatch,
    LayerNotFound,
    StoreError,
)
from ..gotime import GoTime
from ..image import ContainerConfig, Image
from ..profiles import Profile
from ..progress import ProgressCallback
from ..reference import Named, parse_normalized_named, tag_name_only
from ..save import SavePlan, Saver
from ..stores.protocols import ImageSink, ImageStore, Layer, LayerStore, ReferenceStore
from ..stores.tables import StoreTables
from .config import (
    ConfigEdit,
    HistoryStep,
    Platform,
    apply_edit,
    config_bytes,
    parse_platform,
)
from .layer import BuiltLayer, TarLayer
from .plan import LayerOptions, plan_layer
from .sources import Entry, Tree, resolve

__all__ = ["BuiltImage", "ImageBuilder", "source_date_epoch"]

_CHUNK = 1 << 20


def source_date_epoch(environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """``$SOURCE_DATE_EPOCH`` as Unix seconds, ``None`` when unset or empty."""
    env = os.environ if environ is None else environ
    text = env.get("SOURCE_DATE_EPOCH", "")
    if not text:
        return None
    if not text.isdigit():
        raise InvalidBuildOption("SOURCE_DATE_EPOCH", f"{text!r} is not a count of seconds")
    return int(text)


class ImageBuilder:
    """Builds one image. Steps run in the order they are added.

    ``base`` is an image in a store: ``ImageBuilder(base=(store, "alpine:3.19"))`` with one
    object holding all three protocols, or :meth:`from_stores` with three. ``platform``
    (``"linux/arm64/v8"``) defaults to the base's, else ``linux/amd64``: never the host's,
    so that a build gives the same bytes on every machine. ``created`` (Unix seconds, or an
    RFC 3339 string) defaults to ``$SOURCE_DATE_EPOCH``, else the Unix epoch; it is the
    image's ``created``, every new history entry's, and the default mtime of new layers.
    """

    def __init__(
        self,
        base: Optional[tuple[Any, str]] = None,
        *,
        platform: Union[str, Platform, None] = None,
        created: Union[int, str, GoTime, None] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._base_stores: Optional[tuple[ImageStore, LayerStore]] = None
        self._base: Optional[Image] = None
        if base is not None:
            store, name = base
            self._set_base(store, store, store, name)
        self._created = _created(created, environ)
        self._platform = self._initial_platform(platform)
        self._config = self._base.config if self._base and self._base.config else ContainerConfig()
        self._layers: list[Layer] = []
        self._history: list[HistoryStep] = []

    @classmethod
    def from_stores(
        cls,
        images: ImageStore,
        layers: LayerStore,
        references: ReferenceStore,
        name: str,
        **kwargs: Any,
    ) -> ImageBuilder:
        """A builder over the image ``name`` of a store given as its three protocols."""
        builder = cls(**kwargs)
        builder._set_base(images, layers, references, name)
        if "platform" not in kwargs:
            builder._platform = builder._initial_platform(None)
        builder._config = builder._base.config if builder._base and builder._base.config \
            else ContainerConfig()
        return builder

    def _set_base(
        self, images: ImageStore, layers: LayerStore, references: ReferenceStore, name: str
    ) -> None:
        # The Saver resolves names exactly as Docker does; its plan knows the image.
        plan = Saver(images, layers, references, profile=_RESOLVE_ONLY).plan([name])
        if len(plan.images) != 1:
            raise InvalidBuildOption("base", f"{name!r} names {len(plan.images)} images, "
                                     "not one")
        self._base = plan.images[0].image
        self._base_stores = (images, layers)

    def _initial_platform(self, platform: Union[str, Platform, None]) -> Platform:
        if isinstance(platform, Platform):
            return platform
        if platform is not None:
            return parse_platform(platform)
        if self._base is not None and self._base.os and self._base.architecture:
            return Platform(self._base.os, self._base.architecture, self._base.variant)
        return Platform()

    @property
    def created(self) -> GoTime:
        return self._created

    @property
    def platform(self) -> Platform:
        return self._platform

    @property
    def base(self) -> Optional[Image]:
        return self._base

    # -- steps ----------------------------------------------------------------------------

    def add_layer(
        self,
        entries: Iterable[Entry],
        *,
        options: Optional[LayerOptions] = None,
        created_by: str = "",
        comment: str = "",
    ) -> BuiltLayer:
        """Add a layer of ``entries``; planned now (``lstat`` only), hashed by :meth:`build`.

        ``options`` default to :class:`LayerOptions` with ``mtime`` set to this build's time.
        """
        if options is None:
            options = LayerOptions(mtime=self._created.unix_seconds)
        layer = BuiltLayer(plan_layer(resolve(entries, options), options))
        self._layers.append(layer)
        self._history.append(HistoryStep(created_by, comment))
        return layer

    def add_tree(
        self,
        source: Union[str, os.PathLike[str]],
        at: str = "/",
        *,
        options: Optional[LayerOptions] = None,
        created_by: Optional[str] = None,
        comment: str = "",
    ) -> BuiltLayer:
        """Add a layer holding the directory tree ``source`` at ``at`` in the image."""
        if created_by is None:
            created_by = f"COPY . {at}"
        return self.add_layer([Tree(os.fspath(source), at)], options=options,
                              created_by=created_by, comment=comment)

    def add_layer_tar(
        self,
        path: Union[str, os.PathLike[str], Layer],
        *,
        created_by: Optional[str] = None,
        comment: str = "",
    ) -> Layer:
        """Add an existing layer tar (a file, plain or gzip), or any store :class:`Layer`."""
        layer: Layer = path if isinstance(path, Layer) else TarLayer(path)
        if created_by is None:
            created_by = "ADD layer.tar /"
        self._layers.append(layer)
        self._history.append(HistoryStep(created_by, comment))
        return layer

    def configure(
        self,
        *,
        env: Union[Sequence[str], Mapping[str, str]] = (),
        entrypoint: Optional[Sequence[str]] = None,
        cmd: Optional[Sequence[str]] = None,
        working_dir: Optional[str] = None,
        user: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        exposed_ports: Sequence[str] = (),
        volumes: Sequence[str] = (),
        stop_signal: Optional[str] = None,
        created_by: Optional[str] = None,
        comment: str = "",
        history: bool = True,
    ) -> None:
        """Change the config; recorded as one ``empty_layer`` history entry unless
        ``history=False``. ``created_by`` defaults to a Dockerfile-like description."""
        if isinstance(env, Mapping):
            env = [f"{k}={v}" for k, v in env.items()]
        edit = ConfigEdit(env=tuple(env), entrypoint=entrypoint, cmd=cmd,
                          working_dir=working_dir, user=user, labels=dict(labels or {}),
                          exposed_ports=tuple(exposed_ports), volumes=tuple(volumes),
                          stop_signal=stop_signal)
        self._config = apply_edit(self._config, edit)
        if history:
            if created_by is None:
                created_by = _describe(edit)
            self._history.append(HistoryStep(created_by, comment, empty_layer=True))

    def set_platform(self, platform: Union[str, Platform]) -> None:
        self._platform = self._initial_platform(platform)

    # -- the image ------------------------------------------------------------------------

    def build(self, tags: Iterable[str] = ()) -> BuiltImage:
        """Hash the new layers, write the config: the image, tagged with ``tags``."""
        base_layers: list[Layer] = []
        base_diff_ids: list[Digest] = []
        if self._base is not None:
            assert self._base_stores is not None
            base_diff_ids = list(self._base.diff_ids)
            layer_store = self._base_stores[1]
            for chain in chain_ids(base_diff_ids):
                base_layers.append(layer_store.get_layer(chain))
        diff_ids = base_diff_ids + [layer.diff_id for layer in self._layers]
        raw = config_bytes(
            base=self._base,
            config=self._config,
            platform=self._platform,
            created=self._created,
            diff_ids=diff_ids,
            history=self._history,
        )
        refs = [tag_name_only(parse_normalized_named(tag)) for tag in tags]
        return BuiltImage(raw, base_layers + self._layers, refs, self._base,
                          self._base_stores[0] if self._base_stores else None)


def _describe(edit: ConfigEdit) -> str:
    parts = []
    if edit.env:
        parts.append("ENV " + " ".join(edit.env))
    if edit.entrypoint is not None:
        parts.append("ENTRYPOINT " + _json_list(edit.entrypoint))
    if edit.cmd is not None:
        parts.append("CMD " + _json_list(edit.cmd))
    if edit.working_dir is not None:
        parts.append(f"WORKDIR {edit.working_dir}")
    if edit.user is not None:
        parts.append(f"USER {edit.user}")
    if edit.labels:
        parts.append("LABEL " + " ".join(f"{k}={v}" for k, v in edit.labels.items()))
    if edit.exposed_ports:
        parts.append("EXPOSE " + " ".join(edit.exposed_ports))
    if edit.volumes:
        parts.append("VOLUME " + _json_list(edit.volumes))
    if edit.stop_signal is not None:
        parts.append(f"STOPSIGNAL {edit.stop_signal}")
    return "; ".join(parts)


def _json_list(items: Sequence[str]) -> str:
    from .. import gojson

    return gojson.dumps(list(items)).decode("utf-8")


def _created(value: Union[int, str, GoTime, None], environ: Optional[Mapping[str, str]]) -> GoTime:
    if isinstance(value, GoTime):
        return value
    if isinstance(value, str):
        return GoTime.parse(value)
    if value is None:
        value = source_date_epoch(environ) or 0
    if value < 0:
        raise InvalidBuildOption("created", f"{value} is before the Unix epoch")
    return GoTime.from_unix(int(value))


# The base is resolved with the Saver's rules; no archive is written with this profile, and
# a base without layers (a config-only image) is as good a base as any.
_RESOLVE_ONLY = attrs.evolve(profiles.DEFAULT, zero_layer_images=True)


class BuiltImage(StoreTables[Layer]):
    """A built image: its config, layers and tags, as a store of one image (and its base).

    ``id`` is the image ID, ``config`` the raw config bytes, ``image`` the decoded config,
    ``layers`` every layer bottom to top (the base's first, served by the base's store).
    """

    def __init__(
        self,
        config: bytes,
        layers: Sequence[Layer],
        tags: Sequence[Named],
        base: Optional[Image],
        base_images: Optional[ImageStore],
    ) -> None:
        super().__init__()
        self.config = config
        self.image = Image.from_bytes(config)
        self.id = self.image.id
        self.layers = tuple(layers)
        self.tags = tuple(tags)
        self.base = base
        self._configs[self.id] = config
        if base is not None:
            self._configs[base.id] = base.raw
            self._parents[self.id] = base.id
        for chain, layer in zip(chain_ids(self.image.diff_ids), self.layers):
            self._layers[chain] = layer
        for tag in tags:
            self._point(tag, self.id)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.image.diff_ids

    def names(self) -> list[str]:
        """What to hand the Saver: the tags, or the image ID when there are none."""
        return [str(tag) for tag in self.tags] or [str(self.id)]

    def saver(self, *, profile: Profile = profiles.DEFAULT, verify: bool = False) -> Saver:
        """A Saver over this image. ``verify`` re-hashes every layer while writing (the new
        layers were hashed by the build, and their files are checked by ``stat``)."""
        return Saver(self, self, self, profile=profile, verify=verify)

    def plan(self, *, profile: Profile = profiles.DEFAULT, verify: bool = False) -> SavePlan:
        return self.saver(profile=profile, verify=verify).plan(self.names())

    def save(
        self,
        out: BinaryIO,
        *,
        profile: Profile = profiles.DEFAULT,
        verify: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> SavePlan:
        """Write this image as a ``docker save`` archive to ``out``; returns the plan."""
        plan = self.plan(profile=profile, verify=verify)
        plan.write(out, progress)
        return plan

    def into(self, sink: ImageSink) -> Digest:
        """Add this image, its layers and tags to ``sink`` (any store that loads).

        Layers the sink already holds (when it is also a :class:`LayerStore`) are not copied
        again; the base is recorded as the parent when the sink holds it.
        """
        from ..stores.oci_layout import OCILayoutStore

        if isinstance(sink, OCILayoutStore):  # keeps the layout's compressed blobs in use
            from .oci import add_to_layout

            add_to_layout([self], sink.path)
            return self.id
        txn = sink.begin_load()
        try:
            for chain, layer in zip(chain_ids(self.diff_ids), self.layers):
                if _has_layer(sink, chain):
                    continue
                _stage_layer(txn, layer)
            writer = txn.stage_blob()
            writer.write(self.config)
            writer.commit(self.id)
            parent = None
            if self.base is not None and isinstance(sink, ImageStore):
                try:
                    sink.get_config(self.base.id)
                    parent = self.base.id
                except ImageNotFound:
                    parent = None
            txn.commit_image(self.id, list(self.diff_ids), list(self.tags), parent)
        finally:
            txn.close()
        return self.id

    def __repr__(self) -> str:
        tags = ", ".join(str(t) for t in self.tags)
        return f"BuiltImage({self.id.short()}, [{tags}], {len(self.layers)} layers)"


def _has_layer(sink: object, chain: Digest) -> bool:
    if not isinstance(sink, LayerStore):
        return False
    try:
        sink.get_layer(chain)
    except (LayerNotFound, StoreError):
        return False
    return True


def _stage_layer(txn: Any, layer: Layer) -> None:
    import hashlib

    writer = txn.stage_blob()
    hash_ = hashlib.sha256()
    try:
        with layer.open() as stream:
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            while True:
                n = stream.readinto(buffer)  # type: ignore[attr-defined]
                if not n:
                    break
                hash_.update(view[:n])
                writer.write(view[:n])
        actual = Digest("sha256", hash_.hexdigest())
        if actual != layer.diff_id:
            raise LayerDigestMismatch(f"layer {layer.diff_id}", str(layer.diff_id), str(actual))
    except BaseException:
        writer.abort()
        raise
    writer.commit(actual)
