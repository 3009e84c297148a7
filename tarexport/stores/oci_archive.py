"""An OCI image layout inside a tar (``oci-archive:``), as the archive model sees it.

skopeo, buildah and Docker 25+'s containerd store write archives that are only an OCI layout
(``oci-layout``, ``index.json``, ``blobs/``), with no ``manifest.json``. :func:`oci_images`
reads their images the way :func:`~tarexport.stores.docker_archive.read_archive` reads a
``manifest.json``: every manifest and config checked against its digest, layers as members,
names from the descriptors' annotations. :func:`ref_names` maps each
``org.opencontainers.image.ref.name`` to the images it names, for ``oci-archive:PATH:REF``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from ..digest import Digest
from ..errors import InvalidArchive, InvalidDigest, NameConflict, StoreError
from ..reference import Named

if TYPE_CHECKING:
    from .docker_archive import ArchiveImage, ArchiveSource

__all__ = ["INDEX", "oci_images", "ref_names"]

INDEX = "index.json"
_MANIFEST_TYPES = frozenset({
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
})
_INDEX_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
_MAX_DEPTH = 8


def _blob(source: ArchiveSource, digest: Digest, what: str) -> bytes:
    from .docker_archive import _check_blob

    path = f"blobs/{digest.algorithm}/{digest.hex}"
    member = source.index.resolve(path, what)
    data = source.read_small(member, what)
    _check_blob(data, digest, what)
    return data


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidArchive(f"{what}: not JSON: {exc}") from None


def _descriptors(source: ArchiveSource) -> list[Any]:
    index = _json(source.read_small(source.index.resolve(INDEX, INDEX), INDEX), INDEX)
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise InvalidArchive(f"{INDEX}: no manifests list")
    return manifests


def _digest(desc: Any, what: str) -> Digest:
    try:
        return Digest.parse(desc["digest"])
    except (InvalidDigest, KeyError, TypeError):
        raise InvalidArchive(f"{what}: a descriptor has no valid digest") from None


def _manifest_of(source: ArchiveSource, desc: Any, what: str, depth: int = 0) -> tuple[Digest, Any]:
    """The image manifest a descriptor leads to (an index resolved for this host)."""
    from .oci_layout import Platform

    digest = _digest(desc, what)
    doc = _json(_blob(source, digest, what), f"{what}: manifest {digest}")
    if not isinstance(doc, dict):
        raise InvalidArchive(f"{what}: manifest {digest} is not a JSON object")
    media_type = desc.get("mediaType") or doc.get("mediaType") or (
        "application/vnd.oci.image.index.v1+json" if "manifests" in doc else
        "application/vnd.oci.image.manifest.v1+json"
    )
    if media_type in _MANIFEST_TYPES:
        return digest, doc
    if media_type not in _INDEX_TYPES or depth >= _MAX_DEPTH:
        raise InvalidArchive(f"{what}: unsupported media type {media_type!r}")
    host = Platform.host()
    for child in doc.get("manifests") or []:
        platform = child.get("platform") if isinstance(child, dict) else None
        if isinstance(platform, dict) and host.matches(Platform.normalized(
                str(platform.get("os", "")), str(platform.get("architecture", "")),
                platform.get("variant") if isinstance(platform.get("variant"), str) else None)):
            return _manifest_of(source, child, what, depth + 1)
    raise InvalidArchive(f"{what}: index {digest} has no manifest for {host}")


def _name_of(desc: Any, what: str) -> Optional[Named]:
    from .oci_layout import _reference_of

    annotations = desc.get("annotations") if isinstance(desc, dict) else None
    if not isinstance(annotations, dict):
        return None
    clean = {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}
    try:
        return _reference_of(clean, what)
    except NameConflict as exc:
        raise InvalidArchive(str(exc)) from None


def oci_images(source: ArchiveSource) -> list[ArchiveImage]:
    """Every image ``index.json`` lists, once each, with every name its descriptors give it."""
    import attrs

    from .docker_archive import ArchiveImage, _decode_image, blob_digest

    images: dict[Digest, ArchiveImage] = {}
    for n, desc in enumerate(_descriptors(source)):
        what = f"{INDEX} manifests[{n}]"
        _, manifest = _manifest_of(source, desc, what)
        config_digest = _digest(manifest.get("config"), f"{what} config")
        name = _name_of(desc, what)
        if config_digest in images:
            known = images[config_digest]
            if name is not None and name not in known.references:
                images[config_digest] = attrs.evolve(known, references=(*known.references, name))
            continue
        config = _blob(source, config_digest, f"{what} config")
        image = _decode_image(config, f"config {config_digest}")
        layer_descs = manifest.get("layers") or []
        if not isinstance(layer_descs, list) or len(layer_descs) != len(image.diff_ids):
            raise InvalidArchive(
                f"{what}: manifest has {len(layer_descs) if isinstance(layer_descs, list) else 0}"
                f" layers, its config {len(image.diff_ids)}"
            )
        paths = []
        for i, layer in enumerate(layer_descs):
            digest = _digest(layer, f"{what} layer {i}")
            paths.append(f"blobs/{digest.algorithm}/{digest.hex}")
        members = tuple(source.index.resolve(p, f"{what} layer {i}") for i, p in enumerate(paths))
        images[config_digest] = ArchiveImage(
            config=config,
            image=image,
            layers=members,
            layer_names=tuple(paths),
            blob_digests=tuple(blob_digest(p) for p in paths),
            references=(name,) if name is not None else (),
            parent=None,
            config_name=f"blobs/{config_digest.algorithm}/{config_digest.hex}",
        )
    return list(images.values())


def ref_names(source: ArchiveSource) -> dict[str, list[tuple[Digest, Optional[Named]]]]:
    """``org.opencontainers.image.ref.name`` -> the images (config, full name) it is given to."""
    from .oci_layout import ANNOTATION_REF_NAME

    found: dict[str, list[tuple[Digest, Optional[Named]]]] = {}
    try:
        descriptors = _descriptors(source)
    except (InvalidArchive, StoreError):
        return found
    for n, desc in enumerate(descriptors):
        annotations = desc.get("annotations") if isinstance(desc, dict) else None
        if not isinstance(annotations, dict):
            continue
        ref_name = annotations.get(ANNOTATION_REF_NAME)
        if not isinstance(ref_name, str):
            continue
        what = f"{INDEX} manifests[{n}]"
        _, manifest = _manifest_of(source, desc, what)
        config = _digest(manifest.get("config"), f"{what} config")
        found.setdefault(ref_name, []).append((config, _name_of(desc, what)))
    return found
