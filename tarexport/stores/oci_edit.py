"""Removing names and images from an OCI image layout, as ``docker rmi`` does.

A tag removed is a descriptor dropped from ``index.json``; an image whose last name goes is
deleted, and so are the blobs that only it used. A blob any remaining descriptor reaches
(another image's layer, a shared config, a nested index) is always kept; when a remaining
descriptor cannot be followed (a missing or unreadable blob), no blob is deleted at all.
``index.json`` is replaced first, by a rename, so a reader never sees a name whose blobs are
gone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import attrs

from ..digest import Digest
from ..errors import ImageNotFound, InvalidDigest, ReferenceNotFound, StoreError
from ..reference import Named, familiar_string
from .oci_layout import OCILayoutStore, _descriptor, _Entry, _image_key, _Snapshot

__all__ = ["Removal", "remove"]

_MAX_DEPTH = 8


@attrs.frozen
class Removal:
    """What :func:`remove` did: tags untagged, images and blobs deleted (Docker's lines)."""

    untagged: tuple[Named, ...] = ()
    deleted: tuple[Digest, ...] = ()
    blobs: tuple[Digest, ...] = ()

    def messages(self) -> list[str]:
        lines = [f"Untagged: {familiar_string(ref)}" for ref in self.untagged]
        return lines + [f"Deleted: {image_id}" for image_id in self.deleted]


def remove(
    store: OCILayoutStore,
    *,
    reference: Optional[Named] = None,
    image_id: Optional[Digest] = None,
    force: bool = False,
) -> Removal:
    """Untag ``reference``, or delete the image ``image_id`` with every name it has.

    Untagging an image's last name deletes it. Deleting by ID an image that has names in
    more than one repository needs ``force``, as with Docker.
    """
    with store._locked():
        snapshot = store._read_snapshot()
        if reference is not None:
            entry = snapshot.references.get(reference)
            if entry is None:
                raise ReferenceNotFound(str(reference))
            target = _image_key(entry)
            doomed = [e for e in snapshot.entries if e.reference == reference]
            others = [
                e for e in snapshot.entries
                if _image_key(e) == target and e.image is not None and e not in doomed
                and e.reference is not None
            ]
            untagged: tuple[Named, ...] = (reference,)
            if others:
                return _rewrite(store, snapshot, doomed, untagged, ())
        else:
            assert image_id is not None
            target = image_id
            doomed = [
                e for e in snapshot.entries if e.image is not None and _image_key(e) == target
            ]
            if not doomed:
                raise ImageNotFound(str(image_id))
            names = list(dict.fromkeys(e.reference for e in doomed if e.reference is not None))
            if len({ref.name for ref in names}) > 1 and not force:
                raise StoreError(
                    f"conflict: unable to delete {image_id.hex[:12]} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
            untagged = tuple(names)
        doomed = [e for e in snapshot.entries if e in doomed or (
            e.image is not None and _image_key(e) == target)]
        return _rewrite(store, snapshot, doomed, untagged, (target,))


def _rewrite(
    store: OCILayoutStore,
    snapshot: _Snapshot,
    doomed: Sequence[_Entry],
    untagged: tuple[Named, ...],
    deleted: tuple[Digest, ...],
) -> Removal:
    raw_manifests = snapshot.raw.get("manifests") or []
    kept_raw: list[Any] = []
    gone_raw: list[Any] = []
    for entry, raw in zip(snapshot.entries, raw_manifests):
        (gone_raw if entry in doomed else kept_raw).append(raw)
    index = dict(snapshot.raw)
    index["manifests"] = kept_raw
    store._write_index(index)
    if not deleted:
        return Removal(untagged)
    blobs: tuple[Digest, ...] = ()
    try:
        candidates = _reachable(store, gone_raw)
        still_used = _reachable(store, kept_raw)
    except (StoreError, InvalidDigest):
        return Removal(untagged, deleted)  # cannot tell what is shared: delete no blob
    removed = []
    for digest in sorted(candidates - still_used, key=str):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store.blob_path(digest))
            removed.append(digest)
    blobs = tuple(removed)
    return Removal(untagged, deleted, blobs)


def _reachable(store: OCILayoutStore, descriptors: Iterable[Any]) -> set[Digest]:
    """Every blob the descriptors lead to: manifests, indexes, configs, layers."""
    seen: set[Digest] = set()
    pending: list[tuple[Any, int, bool]] = [(d, 0, False) for d in descriptors]
    while pending:
        raw, depth, leaf = pending.pop()
        desc = _descriptor(raw, "descriptor")
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        if leaf:
            continue  # a config or a layer
        if depth > _MAX_DEPTH:
            raise StoreError("indexes nested too deeply")
        doc = store._read_json_blob(desc.digest, f"blob {desc.digest}")
        if not isinstance(doc, dict):
            raise StoreError(f"blob {desc.digest} is not a manifest or an index")
        for child in doc.get("manifests") or []:
            pending.append((child, depth + 1, False))
        if doc.get("config") is not None:
            pending.append((doc["config"], depth + 1, True))
        for child in doc.get("layers") or []:
            pending.append((child, depth + 1, True))
    return seen
