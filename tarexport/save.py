"""The Saver: resolve names, plan every tar entry, then write the archive in one pass.

Planning does all the work that can fail on bad input: names are resolved, configs loaded and
decoded, layers looked up and their sizes taken, every header encoded. The resulting
:class:`SavePlan` is a plain value; :meth:`SavePlan.write` is a short loop that emits headers
and copies layer bytes straight from the store into the output. Nothing is staged on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import BinaryIO, Optional, Union

import attrs

from . import gojson, profiles
from .copy import copy_layer
from .digest import Digest, chain_ids
from .errors import (
    AmbiguousReference,
    EmptyExport,
    ImageNotFound,
    LayerDigestMismatch,
    OutputError,
    TarexportError,
)
from .gotime import tar_mtime
from .image import Image
from .profiles import Profile
from .progress import Progress, ProgressCallback
from .reference import (
    DigestReference,
    Named,
    familiar_name,
    familiar_string,
    is_name_only,
    parse_any_reference,
    tag_name_only,
    trim_named,
    with_digest,
)
from .stores.protocols import ImageStore, Layer, LayerStore, ReferenceStore
from .tarstream import DIRTYPE, END_OF_ARCHIVE, REGTYPE, SYMTYPE, TarHeader, padded_size, padding
from .v1 import legacy_layers

__all__ = ["Entry", "PlannedImage", "SavePlan", "Saver"]

# Small entries are gathered and written together; layers are flushed around.
_COALESCE_LIMIT = 1 << 20

OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


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


@attrs.frozen
class SavePlan:
    """Everything a save will write, decided before the first byte.

    ``entries`` are the tar members in archive order; ``total_size`` is the exact length of
    the archive, end-of-archive blocks included.
    """

    entries: tuple[Entry, ...]
    images: tuple[PlannedImage, ...]
    profile: Profile
    verify: bool
    total_size: int

    def write(self, out: BinaryIO, progress: Optional[ProgressCallback] = None) -> None:
        """Write the archive to ``out``, any writable binary stream.

        On any error the end-of-archive blocks are never written, so no consumer can take
        what was written for a complete archive.
        """
        _Writer(self, out, progress).run()


class _Writer:
    """The write loop of one plan: small entries coalesced, layers copied between them."""

    def __init__(self, plan: SavePlan, out: BinaryIO, progress: Optional[ProgressCallback]):
        self.plan = plan
        self.out = out
        self.progress = progress
        self.pending = bytearray()
        self.done = 0
        self.entry = ""

    def run(self) -> None:
        total = self.plan.total_size
        self._report("start")
        for entry in self.plan.entries:
            self.entry = entry.name
            if self.progress is not None:
                self._report("entry")
            self.pending += entry.encoded
            if entry.layer is None:
                self.pending += entry.data
                self.pending += padding(len(entry.data))
                if len(self.pending) >= _COALESCE_LIMIT:
                    self._flush()
            else:
                self._flush()
                self._copy(entry, entry.layer)
                self.pending += padding(entry.header.size)
        self.pending += END_OF_ARCHIVE
        self._flush()
        try:
            flush = getattr(self.out, "flush", None)
            if flush is not None:
                flush()
        except (OSError, ValueError) as exc:
            raise OutputError(f"writing the archive: {exc}") from exc
        if self.done != total:  # pragma: no cover - a planning bug, not an input error
            raise TarexportError(f"internal error: wrote {self.done} bytes of {total}")
        self._report("done")

    def _copy(self, entry: Entry, layer: Layer) -> None:
        progress = self.progress
        start = self.done
        on_bytes = None
        if progress is not None:
            diff_id = str(layer.diff_id)
            total = self.plan.total_size
            copied = 0

            def on_bytes(n: int) -> None:
                nonlocal copied
                copied += n
                progress(Progress("bytes", start + copied, total, entry.name, diff_id))

        copy_layer(layer, self.out, name=entry.name, verify=self.plan.verify, on_progress=on_bytes)
        self.done = start + layer.size

    def _flush(self) -> None:
        if not self.pending:
            return
        try:
            self.out.write(self.pending)
        except (OSError, ValueError) as exc:
            raise OutputError(f"writing {self.entry or 'the archive'}: {exc}") from exc
        self.done += len(self.pending)
        self.pending = bytearray()

    def _report(self, phase: str) -> None:
        if self.progress is not None:
            self.progress(Progress(phase, self.done, self.plan.total_size, self.entry))  # type: ignore[arg-type]


class Saver:
    """Writes images from stores as a ``docker save`` archive.

    ``images``, ``layers`` and ``references`` are the three stores (one object may be all
    three, as :class:`~tarexport.MemoryStore` is). ``profile`` picks the Docker generation
    whose output is reproduced; ``verify`` checks every layer against its diff ID while
    copying it.
    """

    def __init__(
        self,
        images: ImageStore,
        layers: LayerStore,
        references: ReferenceStore,
        *,
        profile: Profile = profiles.DEFAULT,
        verify: bool = True,
    ) -> None:
        self.images = images
        self.layers = layers
        self.references = references
        self.profile = profile
        self.verify = verify

    def save(
        self,
        names: Union[str, Sequence[str]],
        out: BinaryIO,
        progress: Optional[ProgressCallback] = None,
    ) -> SavePlan:
        """Plan and write the archive of ``names`` to ``out``; returns the plan written."""
        plan = self.plan(names)
        plan.write(out, progress)
        return plan

    def plan(self, names: Union[str, Sequence[str]]) -> SavePlan:
        """Resolve ``names`` and decide every byte of the archive, without writing any."""
        if isinstance(names, str):
            names = [names]
        resolved = self._resolve(names)
        ordered = _apply_order(resolved, self.profile.image_order)
        planned = [self._load(image_id, tags) for image_id, tags in ordered]
        if self.profile.layout == "oci-hybrid":
            entries = _HybridLayout(self, planned).entries()
        else:
            entries = _V1Layout(self, planned).entries()
        total = sum(entry.length for entry in entries) + len(END_OF_ARCHIVE)
        return SavePlan(tuple(entries), tuple(planned), self.profile, self.verify, total)

    # -- resolving names ------------------------------------------------------------------

    def _resolve(self, names: Iterable[str]) -> dict[Digest, list[Named]]:
        """Image IDs in order of first appearance, each with its tags (Docker's parseNames)."""
        found: dict[Digest, list[Named]] = {}
        legacy = self.profile.legacy_references

        def add(image_id: Digest, ref: Optional[Named]) -> None:
            if image_id not in found:
                self.images.get_config(image_id)  # raises ImageNotFound
                found[image_id] = []
            if ref is None or ref.digest is not None:
                return  # digest references select an image but never name it
            tagged = tag_name_only(ref)
            if tagged not in found[image_id]:
                found[image_id].append(tagged)

        for name in names:
            ref = parse_any_reference(name, legacy=legacy)
            if isinstance(ref, DigestReference):
                add(self._full_id(ref.digest), None)
            elif familiar_name(ref) == "sha256":
                # `sha256:<short>` parses as repository "sha256" with a tag: an ID prefix.
                add(self._search(name), None)
            elif is_name_only(ref):
                associations = sorted(
                    self.references.references_by_name(ref), key=lambda pair: str(pair[0])
                )
                for associated, image_id in associations:
                    add(image_id, associated)
                if not associations:
                    add(self._search(name), None)
            else:
                add(self.references.get(_lookup_form(ref)), ref)
        return found

    def _full_id(self, digest: Digest) -> Digest:
        try:
            self.images.get_config(digest)
        except ImageNotFound:
            raise ImageNotFound(
                str(digest), f"failed to get digest {digest}: No such image: {digest}"
            ) from None
        return digest

    def _search(self, term: str) -> Digest:
        """An image ID from a short prefix, with or without ``sha256:`` (Docker's digest set)."""
        algorithm, _, prefix = term.rpartition(":")
        if algorithm not in ("", "sha256") or not prefix:
            raise ImageNotFound(term)
        matches = [m for m in self.images.search(prefix) if m.algorithm == "sha256"]
        exact = [m for m in matches if m.hex == prefix]
        if exact:
            return exact[0]
        if not matches:
            raise ImageNotFound(term)
        if len(matches) > 1:
            raise AmbiguousReference(term)
        return matches[0]

    # -- loading --------------------------------------------------------------------------

    def _load(self, image_id: Digest, tags: Sequence[Named]) -> PlannedImage:
        image = Image.from_bytes(self.images.get_config(image_id))
        if image.id != image_id:
            raise LayerDigestMismatch(f"config of image {image_id}", str(image_id), str(image.id))
        if not image.diff_ids and not self.profile.zero_layer_images:
            raise EmptyExport(str(image_id))
        return PlannedImage(image_id, tuple(tags), image)

    def _layers_of(self, image: Image) -> list[Layer]:
        layers = []
        for chain, diff_id in zip(chain_ids(image.diff_ids), image.diff_ids):
            layer = self.layers.get_layer(chain)
            if layer.diff_id != diff_id:
                raise LayerDigestMismatch(f"layer {chain} of image {image.id}", str(diff_id),
                                          str(layer.diff_id))
            layers.append(layer)
        return layers

    def _parent_links(self, planned: Sequence[PlannedImage]) -> dict[Digest, Digest]:
        """Parents recorded for the saved images, kept only when the parent is saved too."""
        ids = {p.id for p in planned}
        links = {}
        for p in planned:
            parent = self.images.get_parent(p.id)
            if parent is not None and parent in ids:
                links[p.id] = parent
        return links


def _lookup_form(ref: Named) -> Named:
    """The key Docker's reference store looks up: digest wins over tag; no tag means latest."""
    if ref.digest is not None:
        return with_digest(trim_named(ref), ref.digest) if ref.tag is not None else ref
    return tag_name_only(ref)


def _apply_order(
    resolved: dict[Digest, list[Named]], first: Sequence[str]
) -> list[tuple[Digest, list[Named]]]:
    """The profile's ``image_order`` first, then order of first appearance."""
    ranked: list[Digest] = []
    for text in first:
        digest = Digest.coerce(text)
        if digest in resolved and digest not in ranked:
            ranked.append(digest)
    ranked += [d for d in resolved if d not in ranked]
    return [(d, resolved[d]) for d in ranked]


class _Stamper:
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


class _V1Layout:
    """Docker 1.10 to 24: ``<v1id>/{VERSION,json,layer.tar}``, ``<id>.json``, manifest."""

    def __init__(self, saver: Saver, planned: Sequence[PlannedImage]) -> None:
        self.saver = saver
        self.planned = planned
        self.profile = saver.profile
        self.stamper = _Stamper(self.profile, planned)

    def entries(self) -> list[Entry]:
        stamper = self.stamper
        groups: dict[str, list[Entry]] = {}  # top-level name -> its entries, dir first
        written_v1: set[str] = set()
        first_dir: dict[Digest, str] = {}  # diff ID -> v1 dir holding the real layer.tar
        manifest = []
        repositories: dict[str, dict[str, str]] = {}
        parents = self.saver._parent_links(self.planned)

        for planned in self.planned:
            image = planned.image
            created = tar_mtime(image.created)
            legacy = legacy_layers(image, self.profile)
            layers = self.saver._layers_of(image)
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


class _HybridLayout:
    """Docker 25 and later: an OCI image layout plus ``manifest.json`` and ``repositories``.

    Written as Docker 25+ writes it with the 25.x bugs fixed: every layer is in its image's
    OCI manifest, in order, with its exact size and digest; every saved image is in
    ``index.json`` (one descriptor per tag, or one without a name when untagged); blobs are
    deduplicated across the whole save and stamped by the first image that writes them.
    Images without layers (only with ``zero_layer_images``) get ``"Layers":[]`` and
    ``"layers":[]``: an array, as the OCI image spec's schema asks, where Go would write
    ``null`` for its empty slice.
    """

    def __init__(self, saver: Saver, planned: Sequence[PlannedImage]) -> None:
        self.saver = saver
        self.planned = planned
        self.profile = saver.profile
        self.stamper = _Stamper(self.profile, planned)
        self.short_escapes = self.profile.go_short_escapes
        self.blobs: dict[str, Entry] = {}  # hex -> entry; names are sorted when written
        self.index: list[dict[str, object]] = []
        self.manifest: list[dict[str, object]] = []
        self.repositories: dict[str, dict[str, str]] = {}

    def entries(self) -> list[Entry]:
        stamper = self.stamper
        profile = self.profile
        parents = self.saver._parent_links(self.planned)
        written_v1: set[str] = set()
        for planned in self.planned:
            self._add_image(planned, parents.get(planned.id), written_v1)

        entries = [
            Entry(stamper.header("blobs/", DIRTYPE, self._blobs_dir_mtime())),
            Entry(stamper.header("blobs/sha256/", DIRTYPE,
                                 stamper.stamp(profile.blobs_dir_mtime, 0))),
        ]
        entries += [self.blobs[hex_] for hex_ in sorted(self.blobs)]
        index_json = self._json(
            {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": self.index}
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
        layers = self.saver._layers_of(image)

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
        if not planned.tags:
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
