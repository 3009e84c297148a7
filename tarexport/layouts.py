"""What a save writes, entry by entry: the tar members of each archive layout, as values.

A layout turns the images a save names into :class:`Entry` values in archive order, every
header encoded and every size known. It reads configs, layers and manifests through a
:class:`StoreView` and writes nothing; the Saver's write loop copies the bodies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, BinaryIO, Optional

import attrs
from typing_extensions import Protocol

from . import gojson
from .digest import Digest
from .errors import StoreError
from .gotime import tar_mtime
from .image import Image
from .profiles import Profile
from .reference import Named, familiar_name, familiar_string
from .stores.protocols import Blob, FileRange, Layer
from .tarstream import DIRTYPE, REGTYPE, SYMTYPE, TarHeader, padded_size
from .v1 import legacy_layers

__all__ = [
    "ContainerdLayout",
    "ContainerdManifest",
    "Entry",
    "HybridLayout",
    "PlannedImage",
    "Stamper",
    "StoreView",
    "V1Layout",
    "containerd_manifest",
]

OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


class StoreView(Protocol):
    """What a layout reads of the stores, through the Saver."""

    @property
    def profile(self) -> Profile: ...

    def layers_of(self, image: Image) -> list[Layer]:
        """The image's layers bottom to top, each checked against its diff ID."""
        ...

    def parent_links(self, planned: Sequence[PlannedImage]) -> dict[Digest, Digest]:
        """Parents recorded for the saved images, only where the parent is saved too."""
        ...

    def stored_manifest(self, image_id: Digest) -> Optional[bytes]:
        """The manifest bytes the image store keeps for the image, if it keeps one."""
        ...

    def blob(self, digest: Digest) -> Blob:
        """A blob the image store keeps, as it keeps it."""
        ...


@attrs.frozen
class Entry:
    """One tar member: its header, and its body as inline bytes or as a layer to copy."""

    header: TarHeader
    data: bytes = b""
    layer: Optional[Layer] = None
    encoded: bytes = attrs.field(init=False)

    @encoded.default
    def _encode(self) -> bytes:
        return self.header.encode()

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def length(self) -> int:
        """Bytes this entry occupies in the archive: header blocks plus padded body."""
        return len(self.encoded) + padded_size(self.header.size)


@attrs.frozen
class PlannedImage:
    """An image the plan saves, with the tags written for it."""

    id: Digest
    tags: tuple[Named, ...]
    image: Image

    @property
    def repo_tags(self) -> tuple[str, ...]:
        """The tags in familiar form, as ``manifest.json`` lists them."""
        return tuple(familiar_string(tag) for tag in self.tags)




class Stamper:
    """Tar header factory for one profile: modes, owners, and the wall-clock stand-in."""

    def __init__(self, profile: Profile, planned: Sequence[PlannedImage]) -> None:
        self.profile = profile
        created = [tar_mtime(p.image.created) for p in planned]
        self.newest = max(created, default=0)

    def now(self, fallback: int) -> int:
        return self.profile.now if self.profile.now is not None else fallback

    def created(self, image: Image) -> int:
        """The mtime Docker stamps with an image's ``created``; a missing one per profile."""
        if image.created is None:
            return self.stamp(self.profile.missing_created, 0)
        return tar_mtime(image.created)

    def stamp(self, kind: str, created: int) -> int:
        if kind == "epoch":
            return 0
        if kind == "now":
            return self.now(self.newest)
        return created

    def header(
        self, name: str, typeflag: str, mtime: int, size: int = 0, linkname: str = ""
    ) -> TarHeader:
        owner = self.profile.owner_name
        return TarHeader(
            name=name,
            typeflag=typeflag,
            size=size,
            mtime=mtime,
            mode=0o755 if typeflag == DIRTYPE else (0o777 if typeflag == SYMTYPE else 0o644),
            linkname=linkname,
            uname=owner,
            gname=owner,
            type_bits=self.profile.mode_type_bits,
        )

    def file(self, name: str, data: bytes, mtime: int) -> Entry:
        return Entry(self.header(name, REGTYPE, mtime, len(data)), data)


class V1Layout:
    """Docker 1.10 to 24: ``<v1id>/{VERSION,json,layer.tar}``, ``<id>.json``, manifest."""

    def __init__(self, view: StoreView, planned: Sequence[PlannedImage]) -> None:
        self.view = view
        self.planned = planned
        self.profile = view.profile
        self.stamper = Stamper(self.profile, planned)

    def entries(self) -> list[Entry]:
        stamper = self.stamper
        groups: dict[str, list[Entry]] = {}  # top-level name -> its entries, dir first
        written_v1: set[str] = set()
        first_dir: dict[Digest, str] = {}  # diff ID -> v1 dir holding the real layer.tar
        manifest = []
        repositories: dict[str, dict[str, str]] = {}
        parents = self.view.parent_links(self.planned)

        for planned in self.planned:
            image = planned.image
            created = tar_mtime(image.created)
            legacy = legacy_layers(image, self.profile)
            layers = self.view.layers_of(image)
            for v1, layer in zip(legacy, layers):
                if v1.id in written_v1:
                    continue
                written_v1.add(v1.id)
                target = first_dir.get(v1.diff_id) if self.profile.symlink_dedupe else None
                if target is not None:
                    mtime = stamper.now(created)
                    body = Entry(stamper.header(f"{v1.id}/layer.tar", SYMTYPE, mtime,
                                                linkname=f"../{target}/layer.tar"))
                else:
                    first_dir.setdefault(v1.diff_id, v1.id)
                    mtime = created
                    body = Entry(stamper.header(f"{v1.id}/layer.tar", REGTYPE, mtime, layer.size),
                                 layer=layer)
                groups[v1.id] = [
                    Entry(stamper.header(f"{v1.id}/", DIRTYPE, mtime)),
                    stamper.file(f"{v1.id}/VERSION", b"1.0", mtime),
                    stamper.file(f"{v1.id}/json", v1.json, mtime),
                    body,
                ]
            config_name = f"{planned.id.hex}.json"
            groups[config_name] = [stamper.file(config_name, image.raw, created)]

            item: dict[str, object] = {
                "Config": config_name,
                "RepoTags": list(planned.repo_tags) or None,
                "Layers": [f"{v1.id}/layer.tar" for v1 in legacy],
            }
            if planned.id in parents:
                item["Parent"] = str(parents[planned.id])
            manifest.append(item)
            if legacy:
                for tag in planned.tags:
                    repositories.setdefault(familiar_name(tag), {})[tag.tag or ""] = legacy[-1].id

        groups["manifest.json"] = [stamper.file("manifest.json", gojson.encode(manifest), 0)]
        if repositories:
            data = gojson.encode(gojson.Map({k: gojson.Map(v) for k, v in repositories.items()}))
            groups["repositories"] = [stamper.file("repositories", data, 0)]
        return [entry for name in sorted(groups, key=_go_bytes) for entry in groups[name]]


class HybridLayout:
    """Docker 25 and later: an OCI image layout plus ``manifest.json`` and ``repositories``.

    Written as Docker 25+ writes it with the 25.x bugs fixed: every layer is in its image's
    OCI manifest, in order, with its exact size and digest; every saved image is in
    ``index.json`` (one descriptor per tag, or one without a name when untagged); blobs are
    deduplicated across the whole save and stamped by the first image that writes them.
    Images without layers (only with ``zero_layer_images``) get ``"Layers":[]`` and
    ``"layers":[]``: an array, as the OCI image spec's schema asks, where Go would write
    ``null`` for its empty slice.
    """

    def __init__(self, view: StoreView, planned: Sequence[PlannedImage]) -> None:
        self.view = view
        self.planned = planned
        self.profile = view.profile
        self.stamper = Stamper(self.profile, planned)
        self.short_escapes = self.profile.go_short_escapes
        self.blobs: dict[str, Entry] = {}  # hex -> entry; names are sorted when written
        self.index: list[dict[str, object]] = []
        self.manifest: list[dict[str, object]] = []
        self.repositories: dict[str, dict[str, str]] = {}

    def entries(self) -> list[Entry]:
        stamper = self.stamper
        profile = self.profile
        parents = self.view.parent_links(self.planned)
        written_v1: set[str] = set()
        for planned in self.planned:
            self._add_image(planned, parents.get(planned.id), written_v1)

        entries = [
            Entry(stamper.header("blobs/", DIRTYPE, self._blobs_dir_mtime())),
            Entry(stamper.header("blobs/sha256/", DIRTYPE,
                                 stamper.stamp(profile.blobs_dir_mtime, 0))),
        ]
        entries += [self.blobs[hex_] for hex_ in sorted(self.blobs)]
        # Go marshals a list nobody appended to as null (early 25.0.x, all untagged).
        index_json = self._json(
            {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": self.index or None}
        )
        entries.append(stamper.file("index.json", index_json,
                                    stamper.stamp(profile.index_mtime, 0)))
        entries.append(stamper.file("manifest.json", self._json(self.manifest) + b"\n", 0))
        entries.append(stamper.file("oci-layout", OCI_LAYOUT, 0))
        if self.repositories:
            repositories: gojson.Map[gojson.Map[str]] = gojson.Map(
                {name: gojson.Map(tags) for name, tags in self.repositories.items()}
            )
            entries.append(stamper.file("repositories", self._json(repositories) + b"\n", 0))
        return entries

    def _add_image(
        self, planned: PlannedImage, parent: Optional[Digest], written_v1: set[str]
    ) -> None:
        image = planned.image
        created = self.stamper.created(image)
        layers = self.view.layers_of(image)

        layer_sources: dict[str, object] = {}
        for v1, layer in zip(legacy_layers(image, self.profile), layers):
            # The v1 json is written once per v1 ID, the layer once per diff ID. Nothing
            # refers to the v1 json blobs; Docker writes them anyway, so they are here too.
            if v1.id not in written_v1:
                written_v1.add(v1.id)
                self._blob(Digest.from_bytes(v1.json).hex, v1.json, created)
            self._layer_blob(layer, created)
            # distribution.Descriptor's field order: size before digest.
            layer_sources[str(layer.diff_id)] = {
                "mediaType": MEDIA_LAYER,
                "size": layer.size,
                "digest": str(layer.diff_id),
            }
        self._blob(planned.id.hex, image.raw, created)

        platform = _platform(image) if self.profile.config_platform else None
        config: dict[str, object] = {
            "mediaType": MEDIA_CONFIG,
            "digest": str(planned.id),
            "size": len(image.raw),
        }
        if platform is not None:
            config["platform"] = platform
        oci_manifest = self._json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config,
            "layers": [
                {"mediaType": MEDIA_LAYER, "digest": str(layer.diff_id), "size": layer.size}
                for layer in layers
                if self.profile.manifest_layers == "all"
            ],
        })
        manifest_digest = Digest.from_bytes(oci_manifest)
        self._blob(manifest_digest.hex, oci_manifest, 0)

        def descriptor(annotations: Optional[gojson.Map[str]]) -> dict[str, object]:
            # ocispec.Descriptor's field order: annotations, then platform.
            out: dict[str, object] = {
                "mediaType": MEDIA_MANIFEST,
                "digest": str(manifest_digest),
                "size": len(oci_manifest),
            }
            if annotations is not None:
                out["annotations"] = annotations
            if platform is not None:
                out["platform"] = platform
            return out

        for tag in planned.tags:
            self.index.append(descriptor(gojson.Map({
                ANNOTATION_IMAGE_NAME: str(tag),
                ANNOTATION_REF_NAME: tag.tag or "",
            })))
            if image.diff_ids:
                top = image.diff_ids[-1].hex
                self.repositories.setdefault(familiar_name(tag), {})[tag.tag or ""] = top
        untagged = self.profile.untagged_index
        if not planned.tags and (untagged == "each" or (untagged == "first" and not self.index)):
            self.index.append(descriptor(None))

        item: dict[str, object] = {
            "Config": f"blobs/sha256/{planned.id.hex}",
            "RepoTags": list(planned.repo_tags) or None,
            "Layers": [f"blobs/sha256/{diff_id.hex}" for diff_id in image.diff_ids],
        }
        if parent is not None:
            item["Parent"] = str(parent)
        if layer_sources:
            item["LayerSources"] = gojson.Map(layer_sources)
        self.manifest.append(item)

    def _blob(self, digest_hex: str, data: bytes, mtime: int) -> None:
        """A small blob; one already written keeps its first writer's stamp."""
        if digest_hex not in self.blobs:
            self.blobs[digest_hex] = self.stamper.file(f"blobs/sha256/{digest_hex}", data, mtime)

    def _layer_blob(self, layer: Layer, mtime: int) -> None:
        digest_hex = layer.diff_id.hex
        if digest_hex not in self.blobs:
            name = f"blobs/sha256/{digest_hex}"
            header = self.stamper.header(name, REGTYPE, mtime, layer.size)
            self.blobs[digest_hex] = Entry(header, layer=layer)

    def _blobs_dir_mtime(self) -> int:
        """``blobs/``: re-stamped with each image's ``created``, so the last one's shows.

        Docker 25 to 27 skip the stamp for an image without ``created`` (the directory keeps
        the previous image's, or the wall clock it was made at); 28 and later stamp the epoch.
        """
        mtime = self.stamper.now(self.stamper.newest)
        for planned in self.planned:
            if planned.image.created is not None or self.profile.missing_created != "now":
                mtime = self.stamper.created(planned.image)
        return mtime

    def _json(self, value: object) -> bytes:
        return gojson.dumps(value, short_escapes=self.short_escapes)


def _platform(image: Image) -> dict[str, object]:
    """The OCI platform of an image config, in image-spec field order.

    ``architecture`` and ``os`` are always written; the rest only when set.
    """
    platform: dict[str, object] = {"architecture": image.architecture, "os": image.os}
    if image.os_version:
        platform["os.version"] = image.os_version
    if image.os_features:
        platform["os.features"] = list(image.os_features)
    if image.variant:
        platform["variant"] = image.variant
    return platform


def _go_bytes(name: str) -> bytes:
    return name.encode("utf-8")


# -- containerd's exporter --------------------------------------------------------------------

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
CONTAINERD_OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, MEDIA_DOCKER_MANIFEST})
_MANIFEST_LIMIT = 4 << 20


@attrs.frozen
class ContainerdManifest:
    """An image as the containerd image store holds it: its manifest and the blobs it names.

    ``bodies`` are the layer blobs in manifest order, as stored (or, for a derived manifest,
    the layer tars themselves), each as a body to copy whose ``diff_id`` is its digest.
    """

    digest: Digest
    media_type: str
    raw: bytes
    bodies: tuple[Layer, ...]


def containerd_manifest(view: StoreView, image_id: Digest, image: Image) -> ContainerdManifest:
    """The manifest the containerd store keeps for an image, from the store or derived.

    A store that keeps manifests supplies the bytes; each blob it names is checked to exist
    with the size the manifest gives. Otherwise the manifest is the Docker schema 2 one that
    containerd writes when it loads an archive of config and layer tars.
    """
    raw = view.stored_manifest(image_id)
    if raw is None:
        return _derived_manifest(view, image_id, image)
    what = f"manifest of image {image_id}"
    doc = _manifest_document(raw, what)
    config = doc.get("config")
    if not isinstance(config, dict) or config.get("digest") != str(image_id):
        raise StoreError(f"{what}: its config is not {image_id}")
    bodies = []
    for n, desc in enumerate(doc.get("layers") or []):
        digest, size = _descriptor_digest_size(desc, f"{what} layer {n}")
        blob = view.blob(digest)
        if blob.size != size:
            raise StoreError(
                f"{what}: blob {digest} has {blob.size} bytes, the manifest says {size}"
            )
        bodies.append(_BlobBody(blob))
    if len(bodies) != len(image.diff_ids):
        raise StoreError(
            f"{what} lists {len(bodies)} layers, the config {len(image.diff_ids)} diff IDs"
        )
    media_type = doc.get("mediaType") or MEDIA_MANIFEST
    return ContainerdManifest(Digest.from_bytes(raw), str(media_type), raw, tuple(bodies))


def _manifest_document(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > _MANIFEST_LIMIT:
        raise StoreError(f"{what} is over {_MANIFEST_LIMIT} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise StoreError(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise StoreError(f"{what} is not a JSON object")
    media_type = doc.get("mediaType", MEDIA_MANIFEST)
    if media_type not in _MANIFEST_TYPES:
        raise StoreError(f"{what}: unsupported media type {media_type!r}")
    return doc


def _descriptor_digest_size(desc: Any, what: str) -> tuple[Digest, int]:
    if not isinstance(desc, dict):
        raise StoreError(f"{what}: not a descriptor")
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StoreError(f"{what}: no valid size")
    try:
        return Digest.parse(str(desc.get("digest"))), size
    except ValueError:
        raise StoreError(f"{what}: no valid digest") from None


def _derived_manifest(view: StoreView, image_id: Digest, image: Image) -> ContainerdManifest:
    layers = view.layers_of(image)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_DOCKER_MANIFEST,
        "config": {"mediaType": MEDIA_DOCKER_CONFIG, "digest": str(image_id),
                   "size": len(image.raw)},
        # Go marshals the nil slice of a layerless image as null.
        "layers": [
            {"mediaType": MEDIA_DOCKER_LAYER, "digest": str(layer.diff_id), "size": layer.size}
            for layer in layers
        ] or None,
    }
    raw = gojson.dumps(doc)
    return ContainerdManifest(Digest.from_bytes(raw), MEDIA_DOCKER_MANIFEST, raw, tuple(layers))


class _BlobBody:
    """A stored blob seen as the body to copy: its digest stands in for the diff ID."""

    def __init__(self, blob: Blob) -> None:
        self.blob = blob
        # How the store checked the stored bytes, so that a trusting save need not hash again.
        self.verification = getattr(blob, "verification", None)

    @property
    def diff_id(self) -> Digest:
        return self.blob.digest

    @property
    def size(self) -> int:
        return self.blob.size

    def open(self) -> BinaryIO:
        return self.blob.open()

    def file_range(self) -> Optional[FileRange]:
        return self.blob.file_range()


class ContainerdLayout:
    """What containerd's exporter writes: an OCI layout of the blobs as stored, and
    ``manifest.json``; every stamp 0, blobs read-only (0444).

    ``index.json`` has a descriptor per name in the order the names resolved (an unnamed
    one for an image saved only by ID or digest); ``manifest.json`` one item per image, in
    the plan's image order.
    """

    def __init__(
        self,
        view: StoreView,
        planned: Sequence[PlannedImage],
        manifests: dict[Digest, ContainerdManifest],
        names: Sequence[tuple[Digest, Optional[Named]]],
    ) -> None:
        self.view = view
        self.planned = planned
        self.manifests = manifests
        self.names = names
        self.profile = view.profile
        self.blobs: dict[str, Entry] = {}

    def entries(self) -> list[Entry]:
        manifest_json: list[dict[str, object]] = []
        for planned in self.planned:
            stored = self.manifests[planned.id]
            self._inline_blob(planned.id, planned.image.raw)
            self._inline_blob(stored.digest, stored.raw)
            for body in stored.bodies:
                self._layer_blob(body)
            paths = [f"blobs/sha256/{body.diff_id.hex}" for body in stored.bodies]
            manifest_json.append({
                "Config": f"blobs/sha256/{planned.id.hex}",
                "RepoTags": list(planned.repo_tags) or None,
                "Layers": paths or None,
            })
        entries = [self._header("blobs/", DIRTYPE, 0o755), self._header("blobs/sha256/", DIRTYPE,
                                                                          0o755)]
        entries += [self.blobs[hex_] for hex_ in sorted(self.blobs)]
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": self._index()}
        entries.append(self._file("index.json", self._json(index), 0o644))
        entries.append(self._file("manifest.json", self._json(manifest_json), 0o644))
        entries.append(self._file("oci-layout", CONTAINERD_OCI_LAYOUT, 0o444))
        return entries

    def _index(self) -> list[dict[str, object]]:
        tagged = {planned.id for planned in self.planned if planned.tags}
        descriptors: list[dict[str, object]] = []
        unnamed_written: set[Digest] = set()
        for image_id, ref in self.names:
            stored = self.manifests[image_id]
            desc: dict[str, object] = {
                "mediaType": stored.media_type,
                "digest": str(stored.digest),
                "size": len(stored.raw),
            }
            if ref is not None:
                desc["annotations"] = gojson.Map({
                    ANNOTATION_IMAGE_NAME: str(ref),
                    ANNOTATION_REF_NAME: ref.tag or "",
                })
            elif image_id in tagged or image_id in unnamed_written:
                continue
            else:
                unnamed_written.add(image_id)
            descriptors.append(desc)
        return descriptors

    def _header(self, name: str, typeflag: str, mode: int, size: int = 0) -> Entry:
        return Entry(TarHeader(name=name, typeflag=typeflag, size=size, mtime=0, mode=mode,
                               type_bits=False))

    def _file(self, name: str, data: bytes, mode: int) -> Entry:
        header = TarHeader(name=name, typeflag=REGTYPE, size=len(data), mtime=0, mode=mode,
                           type_bits=False)
        return Entry(header, data)

    def _inline_blob(self, digest: Digest, data: bytes) -> None:
        if digest.hex not in self.blobs:
            self.blobs[digest.hex] = self._file(f"blobs/sha256/{digest.hex}", data, 0o444)

    def _layer_blob(self, body: Layer) -> None:
        hex_ = body.diff_id.hex
        if hex_ not in self.blobs:
            header = TarHeader(name=f"blobs/sha256/{hex_}", typeflag=REGTYPE, size=body.size,
                               mtime=0, mode=0o444, type_bits=False)
            self.blobs[hex_] = Entry(header, layer=body)

    def _json(self, value: object) -> bytes:
        return gojson.dumps(value, short_escapes=self.profile.go_short_escapes)
