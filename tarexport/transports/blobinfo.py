"""What is known about blobs beyond one run: compressed forms of layers, and where blobs were seen.

As skopeo's blob-info cache and Docker's v2 metadata do, this remembers

- for a layer (its diff ID), the digest of its gzip-compressed form, so a second push asks
  the registry about that blob instead of compressing and uploading the layer again;
- for a blob, the ``registry/repository`` places it was pushed to or pulled from, so a push
  to another repository of the same registry mounts it instead of uploading it.

:class:`BlobInfoCache` holds this in memory; given a path it is loaded from and saved to a
small JSON file (replaced atomically; a damaged file is ignored, it is only a cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Optional, Union

from ..digest import Digest
from ..errors import InvalidDigest

__all__ = ["BlobInfoCache"]

_MAX_LOCATIONS = 16  # per blob: enough to find a mount source, bounded


class BlobInfoCache:
    """Compressed digests by diff ID and places by blob digest; optionally kept in a file."""

    def __init__(self, path: Union[str, os.PathLike[str], None] = None) -> None:
        self.path = Path(path) if path is not None else None
        self._compressed: dict[tuple[str, str], str] = {}  # (diff ID, kind) -> blob
        self._uncompressed: dict[str, str] = {}  # blob -> diff ID
        self._locations: dict[str, list[str]] = {}  # blob -> ["registry/repo", ...]
        self._lock = threading.Lock()
        self._dirty = False
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            value = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(value, dict) or value.get("version") != 1:
            return
        for entry in value.get("compressed", []):
            if isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str)
                                                                   for x in entry):
                self._compressed[(entry[0], entry[1])] = entry[2]
                self._uncompressed[entry[2]] = entry[0]
        locations = value.get("locations", {})
        if isinstance(locations, dict):
            for blob, places in locations.items():
                if isinstance(places, list):
                    self._locations[blob] = [p for p in places if isinstance(p, str)][
                        -_MAX_LOCATIONS:]

    def save(self) -> None:
        """Write the cache to its file, if it has one and something changed."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            value = {
                "version": 1,
                "compressed": [[d, k, b] for (d, k), b in sorted(self._compressed.items())],
                "locations": dict(sorted(self._locations.items())),
            }
            self._dirty = False
        data = json.dumps(value, indent=1).encode()
        with contextlib.suppress(OSError):  # a cache that cannot be written is no error
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".blob-info-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.path)
            except OSError:
                os.unlink(tmp)
                raise

    # -- compressed forms -----------------------------------------------------------------

    def record_compressed(self, diff_id: Digest, kind: str, blob: Digest) -> None:
        """``blob`` is the ``kind`` (``gzip``, ``zstd``) compression of the layer ``diff_id``."""
        with self._lock:
            key = (str(diff_id), kind)
            if self._compressed.get(key) != str(blob):
                self._compressed[key] = str(blob)
                self._uncompressed[str(blob)] = str(diff_id)
                self._dirty = True

    def compressed(self, diff_id: Digest, kind: str) -> Optional[Digest]:
        with self._lock:
            found = self._compressed.get((str(diff_id), kind))
        return _digest(found)

    def uncompressed(self, blob: Digest) -> Optional[Digest]:
        """The diff ID of a compressed blob, when it is known."""
        with self._lock:
            found = self._uncompressed.get(str(blob))
        return _digest(found)

    # -- places ---------------------------------------------------------------------------

    def record_location(self, blob: Digest, registry: str, repository: str) -> None:
        place = f"{registry}/{repository}"
        with self._lock:
            places = self._locations.setdefault(str(blob), [])
            if place in places:
                if places[-1] == place:
                    return
                places.remove(place)
            places.append(place)  # most recent last
            del places[:-_MAX_LOCATIONS]
            self._dirty = True

    def repositories(self, blob: Digest, registry: str) -> list[str]:
        """Repositories of ``registry`` where ``blob`` was seen, most recent first."""
        prefix = registry + "/"
        with self._lock:
            places = list(self._locations.get(str(blob), []))
        return [p[len(prefix):] for p in reversed(places) if p.startswith(prefix)]


def _digest(text: Optional[str]) -> Optional[Digest]:
    if text is None:
        return None
    try:
        return Digest.parse(text)
    except InvalidDigest:
        return None
