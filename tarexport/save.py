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

from . import profiles
from .copy import FileState, copy_layer, source_state
from .digest import Digest, chain_ids
from .errors import (
    AmbiguousReference,
    EmptyExport,
    ImageNotFound,
    LayerChanged,
    LayerDigestMismatch,
    OutputError,
    PlatformNotFound,
    ReferenceNotFound,
    TarexportError,
)
from .image import Image
from .layouts import (
    ContainerdLayout,
    ContainerdManifest,
    Entry,
    HybridLayout,
    PlannedImage,
    V1Layout,
    containerd_manifest,
)
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
from .stores.oci_layout import Platform
from .stores.protocols import Blob, ImageStore, Layer, LayerStore, ManifestStore, ReferenceStore
from .tarstream import END_OF_ARCHIVE, padding

__all__ = ["Association", "Entry", "PlannedImage", "SavePlan", "Saver"]

# Small entries are gathered and written together; layers are flushed around.
_COALESCE_LIMIT = 1 << 20

Association = tuple[Digest, Optional[Named]]
"""An image ID and the tag a name gave it (``None`` for an ID or a digest), in name order."""


@attrs.frozen
class SavePlan:
    """Everything a save will write, decided before the first byte.

    ``entries`` are the tar members in archive order; ``total_size`` is the exact length of
    the archive, end-of-archive blocks included. ``file_states`` holds, by entry name, the
    state of each file a layer is copied from, as planning saw it: the write refuses a file
    that changed since (:class:`~tarexport.errors.LayerChanged`).
    """

    entries: tuple[Entry, ...]
    images: tuple[PlannedImage, ...]
    profile: Profile
    verify: bool
    total_size: int
    trust_ingested: bool = False
    file_states: tuple[tuple[str, FileState], ...] = ()

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
        self.states = dict(plan.file_states)

    def run(self) -> None:
        total = self.plan.total_size
        self._check_sources()
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

        copy_layer(
            layer,
            self.out,
            name=entry.name,
            verify=self.plan.verify,
            trust_ingested=self.plan.trust_ingested,
            planned_state=self.states.get(entry.name),
            on_progress=on_bytes,
        )
        self.done = start + layer.size

    def _check_sources(self) -> None:
        """Before byte 0: every layer file is still as planned (each copy checks it again)."""
        for entry in self.plan.entries:
            planned = self.states.get(entry.name)
            if planned is None or entry.layer is None:
                continue
            now = source_state(entry.layer)
            if now != planned:
                changes = planned.describe_change(now) if now is not None else "no longer a file"
                raise LayerChanged(
                    f"{entry.name}: layer file of {entry.layer.diff_id} changed since the save "
                    f"was planned ({changes})"
                )

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
    copying it, hashing each byte once: a layer whose store checks it as it is read is not
    hashed again. ``trust_ingested`` (off by default) also skips the hash of layers their
    store verified when it took them in (``verification = "at-ingest"``), trusting that no
    one wrote the store's files since; see docs/saving.md for that trust model.
    ``platform`` (``"linux/arm64"`` or a :class:`~tarexport.stores.Platform`) saves only
    images of that platform and refuses the rest before writing, as ``docker save
    --platform`` does.
    """

    def __init__(
        self,
        images: ImageStore,
        layers: LayerStore,
        references: ReferenceStore,
        *,
        profile: Profile = profiles.DEFAULT,
        verify: bool = True,
        platform: Union[str, Platform, None] = None,
        trust_ingested: bool = False,
    ) -> None:
        self.images = images
        self.layers = layers
        self.references = references
        self.profile = profile
        self.verify = verify
        self.platform = Platform.parse(platform) if isinstance(platform, str) else platform
        self._manifest_ids: Optional[dict[Digest, Digest]] = None
        self.trust_ingested = trust_ingested

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
        self._manifest_ids = None
        associations = self._resolve(names)
        resolved = _group(associations)
        order = self.profile.image_order
        if self.profile.layout == "containerd":
            order = tuple(self._config_id(text) for text in order)
        ordered = _apply_order(resolved, order)
        planned = [self._load(image_id, tags) for image_id, tags in ordered]
        entries: list[Entry]
        if self.profile.layout == "containerd":
            manifests = {p.id: self._manifest(p.id, p.image) for p in planned}
            entries = ContainerdLayout(self, planned, manifests, associations).entries()
        elif self.profile.layout == "oci-hybrid":
            entries = HybridLayout(self, planned).entries()
        else:
            entries = V1Layout(self, planned).entries()
        total = sum(entry.length for entry in entries) + len(END_OF_ARCHIVE)
        states = []
        for entry in entries:
            state = source_state(entry.layer) if entry.layer is not None else None
            if state is not None:
                states.append((entry.name, state))
        return SavePlan(
            tuple(entries),
            tuple(planned),
            self.profile,
            self.verify,
            total,
            trust_ingested=self.trust_ingested,
            file_states=tuple(states),
        )

    # -- resolving names ------------------------------------------------------------------

    def _resolve(self, names: Iterable[str]) -> list[Association]:
        """Every (image, tag) a name selects, in name order, without repeats (parseNames)."""
        found: list[Association] = []
        known: set[Digest] = set()
        legacy = self.profile.legacy_references

        def add(image_id: Digest, ref: Optional[Named]) -> None:
            if image_id not in known:
                self.images.get_config(image_id)  # raises ImageNotFound
                known.add(image_id)
            # Digest references select an image but never name it.
            tagged = None if ref is None or ref.digest is not None else tag_name_only(ref)
            if (image_id, tagged) not in found:
                found.append((image_id, tagged))

        for name in names:
            ref = parse_any_reference(name, legacy=legacy)
            if self.profile.layout == "containerd":
                for image_id, tagged in self._resolve_containerd(name, ref):
                    add(image_id, tagged)
            elif isinstance(ref, DigestReference):
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

    def _resolve_containerd(
        self, name: str, ref: Union[Named, DigestReference]
    ) -> list[tuple[Digest, Optional[Named]]]:
        """The containerd image store's lookup: IDs are manifest digests; one error text."""
        try:
            if isinstance(ref, DigestReference):
                return [(self._by_manifest(ref.digest.hex, name), None)]
            if familiar_name(ref) == "sha256":
                return [(self._by_manifest(name.partition(":")[2], name), None)]
            if is_name_only(ref):
                associations = sorted(
                    self.references.references_by_name(ref), key=lambda pair: str(pair[0])
                )
                if associations:
                    return [(image_id, associated) for associated, image_id in associations]
                return [(self._by_manifest(name, name), None)]
            if ref.digest is not None:
                image_id = self._by_manifest(ref.digest.hex, name)
                if not any(r.name == ref.name for r in self.references.references(image_id)):
                    raise ImageNotFound(name)
                return [(image_id, None)]
            return [(self.references.get(tag_name_only(ref)), ref)]
        except (ImageNotFound, ReferenceNotFound, AmbiguousReference):
            shown = name if isinstance(ref, DigestReference) or "@" in name or \
                familiar_name(ref) == "sha256" else familiar_string(tag_name_only(ref))
            raise ImageNotFound(name, f"No such image: {shown}") from None

    def _by_manifest(self, prefix: str, name: str) -> Digest:
        """The image whose manifest digest starts with ``prefix`` (the containerd image ID)."""
        ids = self._manifest_index()
        matches = [m for m in ids if m.hex.startswith(prefix)]
        exact = [m for m in matches if m.hex == prefix]
        if len(exact) == 1 or len(matches) == 1:
            return ids[(exact or matches)[0]]
        raise ImageNotFound(name)

    def _manifest_index(self) -> dict[Digest, Digest]:
        """Manifest digest -> image ID, for every image of the store (made once a plan)."""
        if self._manifest_ids is None:
            index = {}
            for image_id in self.images.search(""):
                try:
                    image = Image.from_bytes(self.images.get_config(image_id))
                    index[self._manifest(image_id, image).digest] = image_id
                except TarexportError:
                    continue  # a broken image cannot be named by its manifest
            self._manifest_ids = index
        return self._manifest_ids

    def _config_id(self, text: str) -> str:
        """An ``image_order`` entry: a manifest digest names its image's config digest."""
        digest = Digest.coerce(text)
        return str(self._manifest_index().get(digest, digest))

    def _manifest(self, image_id: Digest, image: Image) -> ContainerdManifest:
        return containerd_manifest(self, image_id, image)

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
        self._check_platform(image, tags)
        if not image.diff_ids and not self.profile.zero_layer_images:
            raise EmptyExport(str(image_id))
        return PlannedImage(image_id, tuple(tags), image)

    def _check_platform(self, image: Image, tags: Sequence[Named]) -> None:
        wanted = self.platform
        if wanted is None:
            return
        have = Platform.normalized(image.os or "", image.architecture or "", image.variant)
        if wanted.matches(have):
            return
        if self.profile.layout != "containerd":
            raise PlatformNotFound(f"no suitable export target found for platform {wanted}")
        named = familiar_string(tags[0]) if tags else str(image.id)
        raise PlatformNotFound(
            f"no suitable export target found: image with reference {named} was found but "
            f"does not provide the specified platform ({wanted})"
        )

    # -- what the layouts read (the StoreView protocol) -------------------------------------

    def layers_of(self, image: Image) -> list[Layer]:
        """The image's layers bottom to top, each checked against its diff ID."""
        layers = []
        for chain, diff_id in zip(chain_ids(image.diff_ids), image.diff_ids):
            layer = self.layers.get_layer(chain)
            if layer.diff_id != diff_id:
                raise LayerDigestMismatch(f"layer {chain} of image {image.id}", str(diff_id),
                                          str(layer.diff_id))
            layers.append(layer)
        return layers

    def parent_links(self, planned: Sequence[PlannedImage]) -> dict[Digest, Digest]:
        """Parents recorded for the saved images, kept only when the parent is saved too."""
        ids = {p.id for p in planned}
        links = {}
        for p in planned:
            parent = self.images.get_parent(p.id)
            if parent is not None and parent in ids:
                links[p.id] = parent
        return links

    def stored_manifest(self, image_id: Digest) -> Optional[bytes]:
        """The manifest the image store keeps for an image, if it is a manifest store."""
        if isinstance(self.images, ManifestStore):
            return self.images.get_manifest(image_id)
        return None

    def blob(self, digest: Digest) -> Blob:
        """A blob the image store keeps (only asked of a manifest store)."""
        assert isinstance(self.images, ManifestStore)
        return self.images.get_blob(digest)


def _lookup_form(ref: Named) -> Named:
    """The key Docker's reference store looks up: digest wins over tag; no tag means latest."""
    if ref.digest is not None:
        return with_digest(trim_named(ref), ref.digest) if ref.tag is not None else ref
    return tag_name_only(ref)


def _group(associations: Sequence[Association]) -> dict[Digest, list[Named]]:
    """Image IDs in order of first appearance, each with its tags."""
    grouped: dict[Digest, list[Named]] = {}
    for image_id, tag in associations:
        tags = grouped.setdefault(image_id, [])
        if tag is not None:
            tags.append(tag)
    return grouped


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


