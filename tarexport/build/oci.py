"""Built images into OCI image layouts (gzip layers when asked), and multi-platform archives.

:func:`add_to_layout` puts images into an OCI image layout directory. Uncompressed, it is
:meth:`BuiltImage.into`; with ``compression="gzip"`` each layer is compressed as it is read
(stdlib ``zlib``, level 6, no file name, mtime 0: the same bytes on every run) into its
blob, the manifest lists the compressed digests and sizes with the ``+gzip`` media type,
and the config keeps the uncompressed diff IDs.

:func:`index_archive` plans a tar holding an OCI image layout whose ``index.json`` names
one image index over several platforms: what the containerd image store of Docker loads
(``docker load --platform`` picks one) and skopeo reads as ``oci-archive:``. It has no
``manifest.json``, so a graphdriver Docker refuses it, as it refuses any multi-platform
image. The archive is written by the Saver's writer: layers are copied from their sources.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import zlib
from collections.abc import Sequence
from typing import Any, Optional

from .. import gojson, profiles
from ..copy import copy_layer
from ..digest import Digest
from ..errors import BuildError, InvalidBuildOption, TarexportError
from ..reference import Named, familiar_string, parse_normalized_named, tag_name_only
from ..save import Entry, SavePlan
from ..stores import oci_layout
from ..stores.oci_layout import OCILayoutStore
from ..stores.protocols import Layer
from ..tarstream import DIRTYPE, END_OF_ARCHIVE, REGTYPE, TarHeader
from .builder import BuiltImage

__all__ = ["MEDIA_LAYER_GZIP", "add_to_layout", "gzip_layer", "index_archive"]

MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
GZIP_LEVEL = 6
_CHUNK = 1 << 20


def gzip_layer(layer: Layer, out: Any) -> tuple[Digest, int]:
    """Write ``layer`` gzip-compressed to ``out``; returns the blob's digest and size.

    The uncompressed bytes are checked against the layer's diff ID on the way.
    """
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip, mtime 0, no name
    blob_hash = hashlib.sha256()
    diff_hash = hashlib.sha256()
    size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        if data:
            blob_hash.update(data)
            out.write(data)
            size += len(data)

    with layer.open() as stream:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while True:
            n = stream.readinto(buffer)  # type: ignore[attr-defined]
            if not n:
                break
            diff_hash.update(view[:n])
            emit(compressor.compress(view[:n]))
    emit(compressor.flush())
    if diff_hash.hexdigest() != layer.diff_id.hex:
        raise BuildError(f"layer {layer.diff_id}: its bytes changed while being compressed")
    return Digest("sha256", blob_hash.hexdigest()), size


def add_to_layout(
    images: Sequence[BuiltImage],
    path: str,
    *,
    compression: Optional[str] = None,
) -> OCILayoutStore:
    """Add each image with its tags to the OCI layout at ``path`` (created if needed).

    A layer the layout already holds (the same diff ID in one of its images) is referred to
    as it is stored there, compressed or not; the others are written, gzip-compressed with
    ``compression="gzip"``.
    """
    if compression not in (None, "gzip"):
        raise InvalidBuildOption("compression", f"{compression!r}: only gzip (or none)")
    store = OCILayoutStore(path, create=True)
    for image in images:
        _add(store, image, compression)
    return store


def _known_layers(store: OCILayoutStore) -> dict[Digest, dict[str, Any]]:
    """diff ID -> the layer descriptor an image of the layout already uses for it."""
    known: dict[Digest, dict[str, Any]] = {}
    try:
        index = json.loads(_read(store, os.path.join(store.path, oci_layout.INDEX_FILE)))
        for descriptor in index.get("manifests") or ():
            if descriptor.get("mediaType") != oci_layout.MEDIA_MANIFEST:
                continue
            manifest = json.loads(_read(store, store.blob_path(Digest.parse(
                descriptor["digest"]))))
            config = json.loads(_read(store, store.blob_path(Digest.parse(
                manifest["config"]["digest"]))))
            diff_ids = config["rootfs"]["diff_ids"]
            for diff_id, layer in zip(diff_ids, manifest.get("layers") or ()):
                if os.path.exists(store.blob_path(Digest.parse(layer["digest"]))):
                    known.setdefault(Digest.parse(diff_id), {
                        "mediaType": layer["mediaType"], "digest": layer["digest"],
                        "size": layer["size"]})
    except (ValueError, KeyError, TypeError, AttributeError, TarexportError):
        pass  # a layout this cannot read fully: its layers are just written again
    return known


def _read(store: OCILayoutStore, path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(16 << 20)


def _plain_layer(layer: Layer, out: Any) -> tuple[Digest, int]:
    copy_layer(layer, out, name=f"layer {layer.diff_id}", verify=True)
    return layer.diff_id, layer.size


def _write_blob(store: OCILayoutStore, write: Any) -> tuple[Digest, int]:
    """A blob written through ``write(file) -> (digest, size)``, then moved into place."""
    temporary = os.path.join(store.path, f".tarexport-blob-{secrets.token_hex(8)}.part")
    try:
        with open(temporary, "xb") as f:
            digest, size = write(f)
            if store.fsync:
                f.flush()
                os.fsync(f.fileno())
        target = store.blob_path(digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target):
            os.unlink(temporary)
        else:
            os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return digest, size


def _bytes_writer(data: bytes) -> Any:
    def write(f: Any) -> tuple[Digest, int]:
        f.write(data)
        return Digest.from_bytes(data), len(data)

    return write


def _add(store: OCILayoutStore, image: BuiltImage, compression: Optional[str]) -> None:
    known = _known_layers(store)
    layers = []
    for layer in image.layers:
        descriptor = known.get(layer.diff_id)
        if descriptor is None:
            if compression == "gzip":
                digest, size = _write_blob(store, lambda f, layer=layer: gzip_layer(layer, f))
                media_type = MEDIA_LAYER_GZIP
            else:
                digest, size = _write_blob(store, lambda f, layer=layer: _plain_layer(layer, f))
                media_type = oci_layout.MEDIA_LAYER
            descriptor = {"mediaType": media_type, "digest": str(digest), "size": size}
            known[layer.diff_id] = descriptor
        layers.append(descriptor)
    _write_blob(store, _bytes_writer(image.config))
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": oci_layout.MEDIA_MANIFEST,
        "config": {"mediaType": oci_layout.MEDIA_CONFIG, "digest": str(image.id),
                   "size": len(image.config)},
        "layers": layers,
    }
    if image.base is not None and _has_config(store, image.base.id):
        manifest["annotations"] = {oci_layout.ANNOTATION_PARENT: str(image.base.id)}
    raw = gojson.dumps(manifest)
    digest, size = _write_blob(store, _bytes_writer(raw))
    descriptor_value = oci_layout._Descriptor(oci_layout.MEDIA_MANIFEST, digest, size)
    with store._locked():
        snapshot = store._read_snapshot()
        index = oci_layout._updated_index(snapshot, descriptor_value, image.id,
                                          list(image.tags))
        if index != snapshot.raw:
            store._write_index(index)
    store._snapshot_cache = None


def _has_config(store: OCILayoutStore, image_id: Digest) -> bool:
    return os.path.exists(store.blob_path(image_id))


# -- multi-platform archives ------------------------------------------------------------------


def _platform_json(image: BuiltImage) -> dict[str, Any]:
    platform: dict[str, Any] = {"architecture": image.image.architecture, "os": image.image.os}
    if image.image.variant:
        platform["variant"] = image.image.variant
    return platform


def index_archive(
    images: Sequence[BuiltImage], tags: Sequence[str] = (), *, verify: bool = False
) -> SavePlan:
    """Plan a tar of an OCI image layout with one image index over ``images``.

    Each image must be for a different platform; ``tags`` (default: the first image's)
    name the index. ``plan.write(out)`` writes it.
    """
    if not images:
        raise InvalidBuildOption("platforms", "no images to index")
    seen: set[tuple[str, str, str]] = set()
    for image in images:
        key = (image.image.os, image.image.architecture, image.image.variant)
        if key in seen:
            raise InvalidBuildOption("platforms", f"two images for {'/'.join(k for k in key if k)}")
        seen.add(key)
    names: list[Named] = [tag_name_only(parse_normalized_named(t)) for t in tags] \
        or list(images[0].tags)
    profile = profiles.DEFAULT
    created = max(image.image.created.unix_seconds if image.image.created else 0
                  for image in images)
    blobs: dict[str, Entry] = {}

    def header(name: str, size: int = 0, typeflag: str = REGTYPE) -> TarHeader:
        mode = 0o755 if typeflag == DIRTYPE else 0o644
        return TarHeader(name=name, typeflag=typeflag, size=size, mtime=created, mode=mode,
                         type_bits=profile.mode_type_bits)

    def blob(data: bytes) -> dict[str, Any]:
        digest = Digest.from_bytes(data)
        blobs.setdefault(digest.hex, Entry(header(f"blobs/sha256/{digest.hex}", len(data)), data))
        return {"digest": str(digest), "size": len(data)}

    manifests = []
    for image in images:
        layers = []
        for layer in image.layers:
            name = f"blobs/sha256/{layer.diff_id.hex}"
            blobs.setdefault(layer.diff_id.hex, Entry(header(name, layer.size), layer=layer))
            layers.append({"mediaType": oci_layout.MEDIA_LAYER, "digest": str(layer.diff_id),
                           "size": layer.size})
        config = blob(image.config)
        manifest = gojson.dumps({
            "schemaVersion": 2,
            "mediaType": oci_layout.MEDIA_MANIFEST,
            "config": {"mediaType": oci_layout.MEDIA_CONFIG, **config},
            "layers": layers,
        })
        manifests.append({"mediaType": oci_layout.MEDIA_MANIFEST, **blob(manifest),
                          "platform": _platform_json(image)})
    index_blob = blob(gojson.dumps({"schemaVersion": 2, "mediaType": oci_layout.MEDIA_INDEX,
                                    "manifests": manifests}))
    top = []
    refs: list[Optional[Named]] = list(names) or [None]
    for ref in refs:
        descriptor: dict[str, Any] = {"mediaType": oci_layout.MEDIA_INDEX, **index_blob}
        if ref is not None:
            descriptor["annotations"] = gojson.Map({
                oci_layout.ANNOTATION_IMAGE_NAME: str(ref),
                # The whole name, as the layouts of this project name images (see oci_layout).
                oci_layout.ANNOTATION_REF_NAME: familiar_string(ref),
            })
        top.append(descriptor)
    index_json = gojson.dumps({"schemaVersion": 2, "mediaType": oci_layout.MEDIA_INDEX,
                               "manifests": top})
    entries = [Entry(header("blobs/", typeflag=DIRTYPE)),
               Entry(header("blobs/sha256/", typeflag=DIRTYPE))]
    entries += [blobs[key] for key in sorted(blobs)]
    entries.append(Entry(header("index.json", len(index_json)), index_json))
    layout = b'{"imageLayoutVersion":"1.0.0"}'
    entries.append(Entry(header("oci-layout", len(layout)), layout))
    total = sum(entry.length for entry in entries) + len(END_OF_ARCHIVE)
    return SavePlan(tuple(entries), (), profile, verify, total)
