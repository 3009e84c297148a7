"""An OCI image layout on disk as a store: read, and written atomically.

A layout is a directory with ``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>``. Images
are the image manifests ``index.json`` lists, directly or through nested indexes (a
multi-platform index is resolved to one manifest by a platform, the host's by default). Names
come from the ``io.containerd.image.name`` annotation (a full reference) or, failing that,
``org.opencontainers.image.ref.name`` when it holds a whole reference.

Layers are served as they are stored: an uncompressed blob as a byte range of its file (so a
save copies it in the kernel), a gzip or zstd blob decompressed on the fly and checked against
its diff ID.

Writes never show a half-done state. Blobs are written under a staging directory inside the
layout and renamed into ``blobs/`` once complete; ``index.json`` is replaced by a rename, last;
writers take an advisory lock on the layout directory. An image written here gets one OCI
manifest (uncompressed layers, config as-is) and one ``index.json`` descriptor per tag with
both annotations, like ``docker save`` 25+; an untagged image gets a descriptor without a
name. The parent of an image, when there is one, is recorded in its manifest's annotations
under ``org.tarexport.image.parent``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform as _platform
import secrets
import shutil
import stat
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Callable, Optional, Union

import attrs

from .. import gojson
from ..compression import Compression, DecompressingReader, VerifyingReader, drain
from ..digest import Digest, Digester, chain_ids
from ..errors import (
    ImageNotFound,
    InvalidDigest,
    InvalidImageConfig,
    InvalidReference,
    LayerDigestMismatch,
    LayerNotFound,
    NameConflict,
    PlatformNotFound,
    ReferenceNotFound,
    StoreError,
    StoreWriteError,
    TarexportError,
)
from ..image import Image
from ..leftovers import (
    STAGING_PREFIX,
    Leftover,
    find_leftovers,
    hold_staging_directory,
    lock_directory,
    remove_leftovers,
)
from ..reference import (
    Named,
    Reference,
    familiar_string,
    parse_normalized_named,
    tag_name_only,
)
from ..tarread import BLOCK_SIZE
from ._files import intact_blob, open_regular
from .docker_archive import DEFAULT_LIMITS, Limits, layer_compression
from .protocols import BlobWriter, FileRange, LoadTransaction

try:  # advisory locks between processes; POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_PARENT",
    "ANNOTATION_REF_NAME",
    "BrokenEntry",
    "LayoutBlob",
    "OCILayoutStore",
    "Platform",
]

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
LAYOUT_BYTES = b'{"imageLayoutVersion": "1.0.0"}'

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_PARENT = "org.tarexport.image.parent"

_MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, DOCKER_MANIFEST})
_INDEX_TYPES = frozenset({MEDIA_INDEX, DOCKER_MANIFEST_LIST})
_INDEX_LIMIT = 64 << 20
_MAX_INDEX_DEPTH = 8
_CHUNK = 1 << 20


# -- platforms ----------------------------------------------------------------------------

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
}
# The variant an architecture has when none is written (containerd's normalisation).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}


@attrs.frozen
class Platform:
    """An ``os/architecture[/variant]`` triple, normalised as containerd does."""

    os: str
    architecture: str
    variant: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64``, ``linux/arm/v7``, ``windows/amd64``; aliases (``aarch64``) work."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls.normalized(*parts)

    @classmethod
    def normalized(cls, os_: str, architecture: str, variant: Optional[str] = None) -> Platform:
        arch = architecture.lower()
        if arch in ("armv7l", "armhf") and not variant:
            variant = "v7"
        elif arch in ("armv6l", "armel") and not variant:
            variant = "v6"
        arch = _ARCH_ALIASES.get(arch, arch)
        if variant is not None:
            variant = variant.lower() or None
        if variant is not None and arch == "arm64" and variant == "8":
            variant = "v8"
        return cls(os_.lower(), arch, variant)

    @classmethod
    def host(cls) -> Platform:
        """The platform images run on here: Linux (Windows on Windows) and this CPU."""
        os_ = "windows" if sys.platform.startswith("win") else "linux"
        return cls.normalized(os_, _platform.machine() or "amd64")

    def matches(self, other: Platform) -> bool:
        """Whether ``other`` (a manifest's platform) can serve a request for this platform.

        An unspecified variant matches any; a specified one must be equal, where a missing
        variant counts as the architecture's default (``arm64`` is ``v8``).
        """
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if self.variant is None:
            return True
        default = _DEFAULT_VARIANT.get(self.architecture)
        return (other.variant or default) == (self.variant or default)

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


# -- reading the layout -------------------------------------------------------------------


@attrs.frozen
class _Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    platform: Optional[Platform] = None


@attrs.frozen
class _Image:
    """An image manifest of the layout, resolved."""

    manifest: _Descriptor
    config: Digest
    layers: tuple[_Descriptor, ...]
    parent: Optional[Digest]


def _descriptor(value: Any, what: str) -> _Descriptor:
    if not isinstance(value, dict):
        raise StoreError(f"{what}: a descriptor is not a JSON object")
    media_type = value.get("mediaType", "")
    size = value.get("size")
    annotations = value.get("annotations") or {}
    if not isinstance(media_type, str) or not isinstance(annotations, dict):
        raise StoreError(f"{what}: malformed descriptor")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StoreError(f"{what}: descriptor has no valid size")
    digest_text = value.get("digest")
    try:
        if not isinstance(digest_text, str):
            raise TypeError
        digest = Digest.parse(digest_text)
    except (InvalidDigest, TypeError):
        raise StoreError(f"{what}: descriptor has no valid digest") from None
    platform = None
    raw_platform = value.get("platform")
    if isinstance(raw_platform, dict):
        os_, arch = raw_platform.get("os"), raw_platform.get("architecture")
        variant = raw_platform.get("variant")
        if isinstance(os_, str) and isinstance(arch, str):
            platform = Platform.normalized(
                os_, arch, variant if isinstance(variant, str) else None
            )
    return _Descriptor(
        media_type,
        digest,
        size,
        {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)},
        platform,
    )


def _descriptor_json(desc: _Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": desc.media_type,
        "digest": str(desc.digest),
        "size": desc.size,
    }
    if desc.annotations:
        out["annotations"] = dict(sorted(desc.annotations.items()))
    return out


def _parse_name(text: str) -> Optional[Named]:
    try:
        named = parse_normalized_named(text)
    except InvalidReference:
        return None
    if named.tag is not None and named.digest is not None:
        return None
    return tag_name_only(named)


def _is_whole_reference(ref_name: str) -> bool:
    """Whether a ``ref.name`` is a whole reference; a bare tag (``latest``) names no repository."""
    return any(c in ref_name for c in ":/@")


def _reference_of(annotations: Mapping[str, str], what: str = "descriptor") -> Optional[Named]:
    """The name a descriptor gives its image, if it gives one we can parse.

    ``io.containerd.image.name`` holds a whole reference; ``org.opencontainers.image.ref.name``
    holds a whole reference (skopeo, umoci, tarexport) or just the tag (Docker 25+). When both
    are there they must agree; two names for one descriptor raise :class:`NameConflict`.
    """
    full_text = annotations.get(ANNOTATION_IMAGE_NAME)
    ref_name = annotations.get(ANNOTATION_REF_NAME)
    full = _parse_name(full_text) if full_text else None
    by_ref_name = (
        _parse_name(ref_name) if ref_name and _is_whole_reference(ref_name) else None
    )
    if full is not None and ref_name:
        agrees = ref_name == full.tag or by_ref_name == full
        if not agrees:
            raise NameConflict(
                f"{what}: its names disagree: {ANNOTATION_IMAGE_NAME} is {full_text!r}, "
                f"{ANNOTATION_REF_NAME} is {ref_name!r}"
            )
    return full if full is not None else by_ref_name


@attrs.frozen
class BrokenEntry:
    """An ``index.json`` entry that gives no usable image (see :meth:`OCILayoutStore.broken`).

    ``position`` is its index in ``manifests``; ``name`` the image name its annotations give
    (the full reference, else a whole ``ref.name``), ``digest`` its ``digest`` as written,
    either ``None`` when absent; ``reason`` says what is wrong.
    """

    position: int
    name: Optional[str]
    digest: Optional[str]
    reason: str


def _raw_name_and_digest(value: Any) -> tuple[Optional[str], Optional[str]]:
    """What a descriptor, however malformed, says it names and points at."""
    if not isinstance(value, dict):
        return None, None
    annotations = value.get("annotations")
    name = None
    if isinstance(annotations, dict):
        for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
            text = annotations.get(key)
            if isinstance(text, str) and text:
                name = text
                break
    digest = value.get("digest")
    return name, digest if isinstance(digest, str) else None


_UNREADABLE = _Descriptor("", Digest("sha256", "0" * 64), 0)


@attrs.frozen
class _Entry:
    """One ``index.json`` descriptor: what it names and what it resolves to."""

    descriptor: _Descriptor
    reference: Optional[Named]
    image: Optional[_Image]
    error: Optional[Exception]


class _Snapshot:
    """``index.json`` as read at one moment, every entry resolved."""

    def __init__(self, identity: tuple[int, ...], raw: dict[str, Any], entries: list[_Entry]):
        self.identity = identity
        self.raw = raw
        self.entries = entries
        self.images: dict[Digest, _Image] = {}
        self.parents: dict[Digest, Digest] = {}
        self.references: dict[Named, _Entry] = {}
        self.conflicts: dict[Named, NameConflict] = {}
        for entry in entries:
            if isinstance(entry.error, NameConflict):
                for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
                    named = _parse_name(entry.descriptor.annotations.get(key, ""))
                    if named is not None:
                        self.conflicts[named] = entry.error
            if entry.image is not None:
                self.images.setdefault(entry.image.config, entry.image)
                if entry.image.parent is not None:
                    self.parents.setdefault(entry.image.config, entry.image.parent)
            if entry.reference is not None:
                seen = self.references.get(entry.reference)
                if seen is not None and _image_key(seen) != _image_key(entry):
                    self.conflicts[entry.reference] = NameConflict(
                        f"{entry.reference} names two images in index.json: "
                        f"manifests {seen.descriptor.digest} and {entry.descriptor.digest}"
                    )
                self.references.pop(entry.reference, None)
                self.references[entry.reference] = entry
        self.layers: Optional[dict[Digest, Any]] = None


# -- layers -------------------------------------------------------------------------------


class LayoutBlob:
    """One blob file of a layout, as stored: served from its file, zero-copy.

    Its file is named by its digest and was checked against it when written (by this
    store's loads, as by every layout writer that checks what it writes): a Saver that
    trusts the store (``trust_ingested``) copies it without hashing it again.
    """

    verification = "at-ingest"

    def __init__(self, path: str, digest: Digest, size: int) -> None:
        self.path = path
        self._digest = digest
        self._size = size

    @property
    def digest(self) -> Digest:
        return self._digest

    @property
    def size(self) -> int:
        return self._size

    def open(self) -> BinaryIO:
        try:
            return open_regular(self.path)
        except OSError as exc:
            raise StoreError(f"blob {self.path}: {exc.strerror or exc}") from exc

    def file_range(self) -> Optional[FileRange]:
        return FileRange(self.path, 0, self._size)

    def __repr__(self) -> str:
        return f"<layout blob {self._digest}>"


class _BlobLayer(LayoutBlob):
    """An uncompressed layer blob: its digest is its diff ID; served from its file, zero-copy."""

    @property
    def diff_id(self) -> Digest:
        return self.digest

    def __repr__(self) -> str:
        return f"<layout layer {self.digest}>"


class _CompressedBlobLayer:
    """A compressed layer blob: decompressed when read and checked against its diff ID."""

    verification = "on-read"  # open() checks the blob's digest and the diff ID

    def __init__(
        self,
        store: OCILayoutStore,
        path: str,
        blob: _Descriptor,
        diff_id: Digest,
        kind: Compression,
    ) -> None:
        self._store = store
        self.path = path
        self._blob = blob
        self._diff_id = diff_id
        self._kind = kind

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def size(self) -> int:
        """The uncompressed size: measured (and verified) once per store, then kept."""
        return self._store._uncompressed_size(self)

    def measure(self) -> int:
        with self._open(None) as stream:
            return drain(stream, _CHUNK)

    def open(self) -> BinaryIO:
        return self._open(self._store._sizes.get(self._blob.digest))

    def open_unverified(self) -> BinaryIO:
        """The uncompressed bytes with neither digest checked (a save with ``verify=False``)."""
        return self._open(self._store._sizes.get(self._blob.digest), verify=False)

    def _open(self, size: Optional[int], *, verify: bool = True) -> BinaryIO:
        what = f"layer {self._diff_id} (blob {self._blob.digest})"
        try:
            raw = open_regular(self.path)
        except OSError as exc:
            raise StoreError(f"layer blob {self.path}: {exc.strerror or exc}") from exc
        source: BinaryIO = raw
        if verify:
            source = VerifyingReader(  # type: ignore[assignment]
                raw, self._blob.digest, size=self._blob.size, what=what
            )
        inflated = DecompressingReader(
            source, self._kind, limit=self._store.limits.decompressed_size, what=what
        )
        if not verify:
            return io.BufferedReader(inflated, _CHUNK)
        verified = VerifyingReader(
            inflated, self._diff_id, size=size, what=what  # type: ignore[arg-type]
        )
        return io.BufferedReader(verified, _CHUNK)

    def file_range(self) -> Optional[FileRange]:
        return None

    def compressed_blob(self) -> StoredBlob:
        """The blob as stored, for a push to send as it is (never recompressed)."""
        path = self.path
        return StoredBlob(self._kind.value, self._blob.digest, self._blob.size,
                          lambda: open(path, "rb"))

    def __repr__(self) -> str:
        return f"<layout {self._kind.value} layer {self._diff_id}>"


@attrs.frozen
class StoredBlob:
    """A layer's compressed blob: ``kind`` (``gzip``, ``zstd``), digest, size, and a way to
    read it."""

    kind: str
    digest: Digest
    size: int
    open: Callable[[], BinaryIO] = attrs.field(repr=False)


LayoutLayer = Union[_BlobLayer, _CompressedBlobLayer]


# -- the store ----------------------------------------------------------------------------


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when ``index.json`` is replaced or rewritten."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_bounded(f: BinaryIO, limit: int) -> bytes:
    """The file's bytes, or ``limit + 1`` of them when it is longer than ``limit``.

    Read to the file's size: ``read(limit + 1)`` would allocate the whole limit every time.
    """
    size = os.fstat(f.fileno()).st_size
    return f.read(min(size, limit) + 1)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class OCILayoutStore:
    """An OCI image layout as an image, layer and reference store, and a load target.

    ``create=True`` makes the layout when ``path`` does not hold one (an empty or missing
    directory). ``platform`` (``"linux/arm64"``, or a :class:`Platform`) picks the manifest of
    a multi-platform index; by default the host's. ``fsync`` makes every write durable
    before it becomes visible (blobs, then ``index.json``).

    A blob a write needs that is already in the layout is kept only when it is a regular
    file (not a link) of the right size and, with ``trusted=False``, of the right digest
    (hashed again); otherwise the incoming, verified bytes replace it. A load thus repairs
    a corrupt store.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        create: bool = False,
        *,
        platform: Union[str, Platform, None] = None,
        limits: Limits = DEFAULT_LIMITS,
        fsync: bool = True,
        trusted: bool = True,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.limits = limits
        self.fsync = fsync
        self.trusted = trusted
        if platform is None:
            self.platform = Platform.host()
        elif isinstance(platform, Platform):
            self.platform = platform
        else:
            try:
                self.platform = Platform.parse(platform)
            except ValueError as exc:
                raise StoreError(str(exc)) from None
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._snapshot_cache: Optional[_Snapshot] = None
        self._sizes: dict[Digest, int] = {}
        layout_file = os.path.join(self.path, LAYOUT_FILE)
        try:
            os.stat(layout_file)
        except FileNotFoundError:
            if not create:
                raise StoreError(
                    f"{self.path} is not an OCI image layout (no {LAYOUT_FILE})"
                ) from None
            self._create()
        except OSError as exc:  # permission denied, a file where a directory should be
            raise StoreError(f"{layout_file}: {exc.strerror or exc}") from None
        self._check_layout()

    # -- files ---------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> str:
        """Where the blob ``digest`` lives (or would live) in the layout."""
        return os.path.join(self.path, BLOBS_DIR, digest.algorithm, digest.hex)

    def _create(self) -> None:
        try:
            os.makedirs(self.path, exist_ok=True)
            leftovers = [
                name
                for name in os.listdir(self.path)
                if name not in (BLOBS_DIR, INDEX_FILE) and not name.startswith(STAGING_PREFIX)
            ]
            if leftovers:
                raise StoreError(
                    f"{self.path} is not empty and not an OCI image layout: "
                    "will not make one there"
                )
            os.makedirs(os.path.join(self.path, BLOBS_DIR, "sha256"), exist_ok=True)
            with self._locked():
                if not os.path.exists(os.path.join(self.path, INDEX_FILE)):
                    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}
                    empty = json.dumps(index, separators=(",", ":")).encode()
                    self._replace_file(INDEX_FILE, empty)
                if not os.path.exists(os.path.join(self.path, LAYOUT_FILE)):
                    self._replace_file(LAYOUT_FILE, LAYOUT_BYTES)
        except OSError as exc:
            raise StoreError(
                f"cannot create OCI layout {self.path}: {exc.strerror or exc}"
            ) from exc

    def _check_layout(self) -> None:
        try:
            with open_regular(os.path.join(self.path, LAYOUT_FILE)) as f:
                data = f.read(1 << 16)
            version = json.loads(data).get("imageLayoutVersion")
        except (OSError, ValueError, AttributeError) as exc:
            raise StoreError(f"{self.path}: unreadable {LAYOUT_FILE}: {exc}") from None
        if not isinstance(version, str) or not version.startswith("1."):
            raise StoreError(f"{self.path}: unsupported image layout version {version!r}")

    def _replace_file(self, name: str, data: bytes) -> None:
        """Write a top-level file of the layout by rename, so readers see old or new whole."""
        temp = os.path.join(self.path, f"{STAGING_PREFIX}{secrets.token_hex(8)}-{name}")
        try:
            with open(temp, "xb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(temp, os.path.join(self.path, name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if self.fsync:
            _fsync_dir(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive access among writers, in this process and others (``flock`` on the dir)."""
        with self._thread_lock:
            if self._lock_depth or fcntl is None:  # held already by this thread
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            with lock_directory(self.path):
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0

    def leftovers(self) -> list[Leftover]:
        """The staging left in the layout by loads, each with whether it is still in use."""
        return find_leftovers(self.path)

    def remove_leftovers(self) -> list[Leftover]:
        """Remove the staging of loads that died (``SIGKILL``); returns what was removed.

        Staging a live load holds is never touched (see :mod:`tarexport.leftovers`). Every
        load does this before it stages its first blob.
        """
        with self._locked():
            return remove_leftovers(
                [x for x in find_leftovers(self.path) if not x.in_use], directory_locked=True
            )

    def _read_blob(self, digest: Digest, limit: int, what: str) -> bytes:
        path = self.blob_path(digest)
        try:
            with open_regular(path) as f:
                data = _read_bounded(f, limit)
        except OSError as exc:
            raise StoreError(f"{what}: blob {digest}: {exc.strerror or exc}") from exc
        if len(data) > limit:
            raise StoreError(f"{what}: blob {digest} is over {limit} bytes")
        actual = Digest.from_bytes(data, digest.algorithm)
        if actual != digest:
            raise StoreError(f"{what}: blob {digest} holds content with digest {actual}")
        return data

    def _read_json_blob(self, digest: Digest, what: str) -> Any:
        data = self._read_blob(digest, self.limits.json_size, what)
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise StoreError(f"{what}: blob {digest} is not JSON: {exc}") from None

    # -- the snapshot of index.json ------------------------------------------------------

    def _index_identity(self) -> tuple[int, ...]:
        try:
            return _identity(os.stat(os.path.join(self.path, INDEX_FILE)))
        except OSError as exc:
            raise StoreError(f"{self.path}: no {INDEX_FILE}: {exc.strerror or exc}") from exc

    def _snapshot(self) -> _Snapshot:
        identity = self._index_identity()
        cached = self._snapshot_cache
        if cached is not None and cached.identity == identity:
            return cached
        snapshot = self._read_snapshot()
        self._snapshot_cache = snapshot
        return snapshot

    def refresh(self) -> None:
        """Forget what was read of ``index.json`` (it is re-read when it changes anyway)."""
        self._snapshot_cache = None

    def _read_snapshot(self) -> _Snapshot:
        path = os.path.join(self.path, INDEX_FILE)
        try:
            with open_regular(path) as f:
                identity = _identity(os.fstat(f.fileno()))
                data = _read_bounded(f, _INDEX_LIMIT)
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        if len(data) > _INDEX_LIMIT:
            raise StoreError(f"{path} is over {_INDEX_LIMIT} bytes")
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise StoreError(f"{path} is not JSON: {exc}") from None
        manifests = raw.get("manifests") if isinstance(raw, dict) else None
        if manifests is None:
            manifests = []
        if not isinstance(manifests, list):
            raise StoreError(f"{path}: manifests is not a list")
        entries = []
        for n, value in enumerate(manifests):
            try:
                descriptor = _descriptor(value, f"{path} manifests[{n}]")
            except StoreError as exc:
                # Kept in place (a rewrite preserves it), but it names and holds nothing.
                entries.append(_Entry(_UNREADABLE, None, None, exc))
                continue
            image: Optional[_Image] = None
            error: Optional[Exception] = None
            try:
                reference = _reference_of(descriptor.annotations, f"{path} manifests[{n}]")
            except NameConflict as exc:
                reference, error = None, exc
            try:
                image = self._resolve(descriptor, reference, 0)
            except (StoreError, PlatformNotFound) as exc:
                error = error or exc
            entries.append(_Entry(descriptor, reference, image, error))
        return _Snapshot(identity, raw, entries)

    def _resolve(self, desc: _Descriptor, name: Optional[Named], depth: int) -> _Image:
        what = str(name) if name is not None else f"manifest {desc.digest}"
        if not desc.media_type:
            desc = attrs.evolve(desc, media_type=self._sniff_media_type(desc.digest, what))
        if desc.media_type in _MANIFEST_TYPES:
            return self._read_manifest(desc, what)
        if desc.media_type in _INDEX_TYPES:
            if depth >= _MAX_INDEX_DEPTH:
                raise StoreError(f"{what}: indexes nested too deeply")
            index = self._read_json_blob(desc.digest, what)
            manifests = index.get("manifests") if isinstance(index, dict) else None
            if not isinstance(manifests, list):
                raise StoreError(f"{what}: index {desc.digest} has no manifests list")
            children = [_descriptor(m, f"{what} index {desc.digest}") for m in manifests]
            chosen = self._choose(children)
            if chosen is None:
                available = sorted({str(c.platform) for c in children if c.platform is not None})
                raise PlatformNotFound(
                    f"{what}: no manifest for platform {self.platform} in index {desc.digest}; "
                    f"available: {', '.join(available) or 'none'}"
                )
            return self._resolve(chosen, name, depth + 1)
        raise StoreError(f"{what}: unsupported media type {desc.media_type!r}")

    def _sniff_media_type(self, digest: Digest, what: str) -> str:
        """A descriptor without ``mediaType``: the document says what it is."""
        doc = self._read_json_blob(digest, what)
        if isinstance(doc, dict):
            media_type = doc.get("mediaType")
            if isinstance(media_type, str) and media_type:
                return media_type
            if "manifests" in doc:
                return MEDIA_INDEX
            if "config" in doc:
                return MEDIA_MANIFEST
        return ""

    def _choose(self, children: Sequence[_Descriptor]) -> Optional[_Descriptor]:
        matching = [
            c for c in children if c.platform is not None and self.platform.matches(c.platform)
        ]
        if not matching:
            unlabelled = [c for c in children if c.platform is None]
            return unlabelled[0] if len(unlabelled) == 1 and len(children) == 1 else None
        default = _DEFAULT_VARIANT.get(self.platform.architecture)
        # An exact variant first (or the default one, when none was asked for).
        wanted = self.platform.variant or default
        for child in matching:
            assert child.platform is not None
            if (child.platform.variant or default) == wanted:
                return child
        return matching[0]

    def _read_manifest(self, desc: _Descriptor, what: str) -> _Image:
        manifest = self._read_json_blob(desc.digest, what)
        if not isinstance(manifest, dict):
            raise StoreError(f"{what}: manifest {desc.digest} is not a JSON object")
        config = _descriptor(manifest.get("config"), f"{what} config")
        layers = manifest.get("layers") or []
        if not isinstance(layers, list):
            raise StoreError(f"{what}: manifest {desc.digest} layers is not a list")
        annotations = manifest.get("annotations") or {}
        parent = None
        if isinstance(annotations, dict) and isinstance(annotations.get(ANNOTATION_PARENT), str):
            try:
                parent = Digest.parse(annotations[ANNOTATION_PARENT])
            except InvalidDigest:
                parent = None
        return _Image(
            manifest=desc,
            config=config.digest,
            layers=tuple(_descriptor(layer, f"{what} layer") for layer in layers),
            parent=parent,
        )

    # -- ImageStore ---------------------------------------------------------------------

    def _image(self, image_id: Digest) -> _Image:
        image = self._snapshot().images.get(image_id)
        if image is None:
            raise ImageNotFound(str(image_id))
        return image

    def get_config(self, image_id: Digest) -> bytes:
        self._image(image_id)
        return self._read_blob(image_id, self.limits.json_size, f"config of image {image_id}")

    def search(self, prefix: str) -> Sequence[Digest]:
        return sorted(d for d in self._snapshot().images if d.hex.startswith(prefix))

    def get_parent(self, image_id: Digest) -> Optional[Digest]:
        self._image(image_id)
        return self._snapshot().parents.get(image_id)

    # -- ManifestStore: the manifests and blobs as kept ------------------------------------

    def get_manifest(self, image_id: Digest) -> Optional[bytes]:
        """The manifest bytes of the image, exactly as the layout keeps them."""
        image = self._image(image_id)
        return self._read_blob(image.manifest.digest, self.limits.json_size,
                               f"manifest of image {image_id}")

    def get_blob(self, digest: Digest) -> LayoutBlob:
        """A blob of the layout as stored (a compressed layer stays compressed)."""
        path = self.blob_path(digest)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise StoreError(f"blob {digest} of {self.path}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"blob {digest} of {self.path} is not a regular file")
        return LayoutBlob(path, digest, st.st_size)

    # -- LayerStore ---------------------------------------------------------------------

    def get_layer(self, chain_id: Digest) -> LayoutLayer:
        snapshot = self._snapshot()
        if snapshot.layers is None:
            snapshot.layers = self._layers_of(snapshot)
        layer = snapshot.layers.get(chain_id)
        if layer is None:
            raise LayerNotFound(str(chain_id))
        if isinstance(layer, Exception):
            raise layer
        return layer  # type: ignore[no-any-return]

    def _layers_of(self, snapshot: _Snapshot) -> dict[Digest, Any]:
        """Every layer of every image, by chain ID (an error in place of a broken one)."""
        layers: dict[Digest, Any] = {}
        for image in snapshot.images.values():
            try:
                config = Image.from_bytes(self.get_config(image.config))
            except (StoreError, InvalidImageConfig):
                continue  # the image itself reports this when it is used
            if len(config.diff_ids) != len(image.layers):
                continue
            for chain, diff_id, desc in zip(chain_ids(config.diff_ids), config.diff_ids,
                                            image.layers):
                if chain not in layers:
                    layers[chain] = self._make_layer(desc, diff_id)
        return layers

    def _make_layer(self, desc: _Descriptor, diff_id: Digest) -> Union[LayoutLayer, StoreError]:
        path = self.blob_path(desc.digest)
        try:
            size = os.stat(path).st_size
        except OSError:
            return StoreError(f"layer {diff_id}: blob {desc.digest} is missing from {self.path}")
        if size != desc.size:
            return StoreError(
                f"layer {diff_id}: blob {desc.digest} has {size} bytes, its descriptor says "
                f"{desc.size}"
            )
        # The bytes decide, not the media type: skopeo labels plain tars ".tar.gzip", and
        # Docker sniffs the content too.
        try:
            with open_regular(path) as f:
                head = f.read(BLOCK_SIZE)
        except OSError as exc:
            return StoreError(f"layer {diff_id}: blob {desc.digest}: {exc.strerror or exc}")
        except StoreError as exc:
            return StoreError(f"layer {diff_id}: {exc}")
        kind = layer_compression(head)
        if kind is Compression.NONE:
            if desc.digest != diff_id:
                return StoreError(
                    f"layer {diff_id}: uncompressed blob {desc.digest} is not its diff ID"
                )
            return _BlobLayer(path, diff_id, size)
        return _CompressedBlobLayer(self, path, desc, diff_id, kind)

    def _uncompressed_size(self, layer: _CompressedBlobLayer) -> int:
        blob = layer._blob.digest
        size = self._sizes.get(blob)
        if size is None:
            size = layer.measure()
            self._sizes[blob] = size
        return size

    # -- ReferenceStore -----------------------------------------------------------------

    def get(self, reference: Reference) -> Digest:
        snapshot = self._snapshot()
        if isinstance(reference, Named) and reference in snapshot.conflicts:
            raise snapshot.conflicts[reference]
        entry = snapshot.references.get(reference) if isinstance(reference, Named) else None
        if entry is None:
            raise ReferenceNotFound(str(reference))
        if entry.error is not None:
            raise entry.error
        assert entry.image is not None
        return entry.image.config

    def references_by_name(self, name: Named) -> Sequence[tuple[Named, Digest]]:
        snapshot = self._snapshot()
        for ref, conflict in snapshot.conflicts.items():
            if ref.name == name.name:
                raise conflict
        return [
            (ref, entry.image.config)
            for ref, entry in self._snapshot().references.items()
            if ref.name == name.name and entry.image is not None
        ]

    def references(self, image_id: Digest) -> Sequence[Named]:
        return [
            ref
            for ref, entry in self._snapshot().references.items()
            if entry.image is not None and entry.image.config == image_id
        ]

    # -- what is broken -------------------------------------------------------------------

    def broken(self) -> list[BrokenEntry]:
        """Every ``index.json`` entry that gives no usable image, with why, in index order.

        A malformed descriptor (a negative size, a digest that is no digest), a manifest that
        is missing, unreadable or not the digest it is named by, a config that is missing,
        corrupt or not an image config: the image is left out of :meth:`search`, or fails
        when used, and is listed here instead of vanishing.
        """
        snapshot = self._snapshot()
        raw = snapshot.raw.get("manifests") if isinstance(snapshot.raw, dict) else None
        raw_entries = raw if isinstance(raw, list) else []
        configs: dict[Digest, Optional[str]] = {}
        found = []
        for n, entry in enumerate(snapshot.entries):
            value = raw_entries[n] if n < len(raw_entries) else None
            reason: Optional[str] = None
            if entry.error is not None:
                reason = str(entry.error)
            elif entry.image is not None:
                config = entry.image.config
                if config not in configs:
                    configs[config] = self._config_problem(entry.image)
                reason = configs[config]
            if reason is not None:
                found.append(BrokenEntry(n, *_raw_name_and_digest(value), reason))
        return found

    def _config_problem(self, image: _Image) -> Optional[str]:
        try:
            config = Image.from_bytes(self.get_config(image.config))
        except (StoreError, InvalidImageConfig) as exc:
            return str(exc)
        if len(config.diff_ids) != len(image.layers):
            return (
                f"image {image.config}: its config lists {len(config.diff_ids)} layers, "
                f"its manifest {image.manifest.digest} {len(image.layers)}"
            )
        return None

    # -- writing ------------------------------------------------------------------------

    def begin_load(self) -> LoadTransaction:
        """A transaction that stages blobs in this layout (see :class:`~tarexport.load.Loader`)."""
        return _Transaction(self)

    def add_image(
        self,
        config: bytes,
        layers: Sequence[Union[bytes, str, os.PathLike[str]]] = (),
        references: Iterable[Union[str, Named]] = (),
        parent: Optional[Union[str, Digest]] = None,
    ) -> Digest:
        """Write an image: its raw config, its uncompressed layer tars (bytes or paths), tags.

        Each layer is checked against the config's diff IDs before anything becomes visible.
        Returns the image ID.
        """
        image = Image.from_bytes(bytes(config))
        image.check_layer_count(len(layers))
        refs = [self._parse_reference(ref) for ref in references]
        parent_id = Digest.coerce(parent) if parent is not None else None
        txn = _Transaction(self)
        try:
            txn.stage_bytes(image.raw, image.id)
            for diff_id, source in zip(image.diff_ids, layers):
                actual = txn.stage_source(source)
                if actual != diff_id:
                    raise LayerDigestMismatch(f"layer of image {image.id}", str(diff_id),
                                              str(actual))
            txn.commit_image(image.id, image.diff_ids, refs, parent_id)
        finally:
            txn.close()
        return image.id

    def add_reference(self, reference: Union[str, Named], image_id: Union[str, Digest]) -> None:
        """Point a tag at an image already in the layout (moving it from any other image)."""
        target = Digest.coerce(image_id)
        ref = self._parse_reference(reference)
        with self._locked():
            snapshot = self._read_snapshot()
            image = snapshot.images.get(target)
            if image is None:
                raise ImageNotFound(str(target))
            index = _updated_index(snapshot, image.manifest, image.config, [ref])
            if index != snapshot.raw:
                self._write_index(index)

    @staticmethod
    def _parse_reference(reference: Union[str, Named]) -> Named:
        ref = parse_normalized_named(reference) if isinstance(reference, str) else reference
        if ref.digest is not None:
            raise StoreError(f"{ref}: an OCI layout names images by tag, not by digest")
        return tag_name_only(ref)

    def _write_index(self, raw: dict[str, Any]) -> None:
        data = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._replace_file(INDEX_FILE, data)
        self._snapshot_cache = None


def _name_annotations(ref: Optional[Named]) -> dict[str, str]:
    """The annotations that name an image: the full reference, and the tag alone."""
    if ref is None:
        return {}
    # skopeo and umoci look images up by ref.name: a tag alone would make two repositories'
    # `latest` indistinguishable to them, so it holds the whole name, as the user spells it
    # (`app:1`, `oci:DIR:app:1`), which reads back as the same reference.
    return {ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: familiar_string(ref)}


def _is_unnamed(entry: _Entry) -> bool:
    annotations = entry.descriptor.annotations
    return ANNOTATION_IMAGE_NAME not in annotations and ANNOTATION_REF_NAME not in annotations


def _image_key(entry: _Entry) -> Digest:
    return entry.image.config if entry.image is not None else entry.descriptor.digest


def _updated_index(
    snapshot: _Snapshot, manifest: _Descriptor, config: Digest, references: Sequence[Named]
) -> dict[str, Any]:
    """``index.json`` with the image ``config`` (manifest ``manifest``) under ``references``.

    Tags are moved to it. An image that gets a name loses its unnamed descriptors; an untagged
    image gets an unnamed descriptor unless one already points at this manifest; an image that
    loses its last name to a moved tag keeps an unnamed descriptor (Docker keeps it as
    ``<none>``).
    """
    wanted = set(references)
    raw_manifests = snapshot.raw.get("manifests") or []
    kept: list[tuple[_Entry, Any]] = []
    orphans: list[_Entry] = []
    in_place: set[Named] = set()
    for entry, raw in zip(snapshot.entries, raw_manifests):
        key = _image_key(entry)
        if (
            entry.reference in wanted
            and entry.descriptor.digest == manifest.digest
            and dict(entry.descriptor.annotations) == _name_annotations(entry.reference)
            and entry.reference not in in_place
        ):
            in_place.add(entry.reference)  # already just so: leave it where it is
            kept.append((entry, raw))
            continue
        if entry.reference is not None and entry.reference in wanted:
            if key != config:
                orphans.append(entry)
            continue
        if _is_unnamed(entry) and key == config and (
            references or entry.descriptor.digest != manifest.digest
        ):
            continue  # named now, or superseded by the new manifest
        kept.append((entry, raw))
    additions: list[dict[str, Any]] = []
    for ref in dict.fromkeys(references):
        if ref not in in_place:
            annotations = _name_annotations(ref)
            additions.append(_descriptor_json(attrs.evolve(manifest, annotations=annotations)))
    if not references and not any(
        entry.descriptor.digest == manifest.digest for entry, _ in kept
    ):
        additions.append(_descriptor_json(attrs.evolve(manifest, annotations={})))
    still_listed = {_image_key(entry) for entry, _ in kept} | {config}
    for orphan in orphans:
        key = _image_key(orphan)
        if key in still_listed:
            continue
        unnamed = {
            k: v
            for k, v in orphan.descriptor.annotations.items()
            if k not in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME)
        }
        additions.append(_descriptor_json(attrs.evolve(orphan.descriptor, annotations=unnamed)))
        still_listed.add(key)
    result = dict(snapshot.raw) if isinstance(snapshot.raw, dict) else {}
    result.setdefault("schemaVersion", 2)
    result.setdefault("mediaType", MEDIA_INDEX)
    result["manifests"] = [raw for _, raw in kept] + additions
    return result


# -- transactions -------------------------------------------------------------------------


# With fsync on, a big blob is flushed to disk in the background every this many bytes, so
# the final fsync before it becomes visible has little left to wait for.
_SYNC_EVERY = 128 << 20
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has only fsync


class _StagedWriter:
    """A blob being written into the transaction's staging directory."""

    def __init__(self, txn: _Transaction) -> None:
        self._txn = txn
        self.path = txn._new_staging_path()
        try:
            self._file: Optional[BinaryIO] = open(self.path, "xb")  # noqa: SIM115 - closed by commit/abort
        except OSError as exc:
            raise StoreWriteError.of(exc, self.path) from exc
        self._unsynced = 0
        self._syncing: Optional[Future[None]] = None

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        file = self._file
        assert file is not None, "blob writer already finished"
        try:
            file.write(data)
        except OSError as exc:
            raise StoreWriteError.of(exc, self.path) from exc
        if self._txn.store.fsync:
            self._unsynced += len(data)
            if self._unsynced >= _SYNC_EVERY and (
                self._syncing is None or self._syncing.done()
            ):
                self._wait_for_sync()
                self._unsynced = 0
                file.flush()
                self._syncing = self._txn._syncer().submit(_fdatasync, file.fileno())

    def _wait_for_sync(self) -> None:
        if self._syncing is not None:
            syncing, self._syncing = self._syncing, None
            syncing.result()

    def commit(self, digest: Digest) -> None:
        assert self._file is not None, "blob writer already finished"
        file, self._file = self._file, None
        self._syncing = None  # queued before the final sync below, on the same worker
        try:
            file.flush()
        except BaseException as exc:
            file.close()
            if isinstance(exc, OSError):
                raise StoreWriteError.of(exc, self.path) from exc
            raise
        if self._txn.store.fsync:
            # The loader goes on with the next member while this one reaches the disk;
            # commit_image waits for it before the blob can become visible.
            self._txn._sync_and_close(file)
        else:
            file.close()
        try:
            self._txn._staged_complete(self.path, digest)
        except OSError as exc:
            raise StoreWriteError.of(exc, self.path) from exc

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._wait_for_sync()
            self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _Transaction:
    """Blobs staged inside the layout; images registered one at a time under the lock."""

    def __init__(self, store: OCILayoutStore) -> None:
        self.store = store
        self._dir: Optional[str] = None
        self._dir_fd: Optional[int] = None
        self._counter = 0
        self._staged: dict[Digest, str] = {}
        self._closed = False
        self._sync_thread: Optional[ThreadPoolExecutor] = None
        self._syncs: list[Future[None]] = []

    def _syncer(self) -> ThreadPoolExecutor:
        if self._sync_thread is None:
            self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="tarexport-sync")
        return self._sync_thread

    def _sync_and_close(self, file: BinaryIO) -> None:
        def sync() -> None:
            try:
                os.fsync(file.fileno())
            finally:
                file.close()

        self._syncs.append(self._syncer().submit(sync))

    def _wait_for_syncs(self) -> None:
        """Every staged blob is on disk (an fsync that failed raises here)."""
        syncs, self._syncs = self._syncs, []
        for sync in syncs:
            sync.result()

    def _staging_dir(self) -> str:
        if self._closed:
            raise StoreError("load transaction is closed")
        if self._dir is None:
            path = os.path.join(self.store.path, STAGING_PREFIX + secrets.token_hex(8))
            try:
                # Under the layout's lock, so that no sweep sees it before it is held.
                with self.store._locked():
                    self.store.remove_leftovers()
                    self._dir_fd = hold_staging_directory(path)
            except OSError as exc:
                raise StoreError(
                    f"cannot stage blobs in {self.store.path}: {exc.strerror}"
                ) from exc
            self._dir = path
        return self._dir

    def _new_staging_path(self) -> str:
        self._counter += 1
        return os.path.join(self._staging_dir(), f"{self._counter}.part")

    def _staged_complete(self, path: str, digest: Digest) -> None:
        if digest in self._staged or self._intact(digest, os.stat(path).st_size):
            os.unlink(path)
            return
        final = os.path.join(self._staging_dir(), f"{digest.algorithm}-{digest.hex}")
        os.replace(path, final)
        self._staged[digest] = final

    def _intact(self, digest: Digest, size: int) -> bool:
        """Whether the layout's own copy of ``digest`` can be kept (see OCILayoutStore)."""
        return intact_blob(
            self.store.blob_path(digest), digest, size, verify=not self.store.trusted
        )

    # -- LoadTransaction ----------------------------------------------------------------

    def stage_blob(self) -> BlobWriter:
        return _StagedWriter(self)

    def stage_bytes(self, data: bytes, digest: Digest) -> None:
        writer = self.stage_blob()
        writer.write(data)
        writer.commit(digest)

    def stage_source(self, source: Union[bytes, str, os.PathLike[str]]) -> Digest:
        """Stage a layer given as bytes or as a file path; returns its sha256."""
        writer = self.stage_blob()
        digester = Digester()
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                digester.update(source)
                writer.write(source)
            else:
                with open(os.fspath(source), "rb") as f:
                    while True:
                        chunk = f.read(_CHUNK)
                        if not chunk:
                            break
                        digester.update(chunk)
                        writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        digest = digester.digest()
        writer.commit(digest)
        return digest

    def open_staged(self, digest: Digest) -> BinaryIO:
        path = self._staged.get(digest) or self.store.blob_path(digest)
        try:
            return open_regular(path)
        except OSError as exc:
            raise StoreError(f"blob {digest} is neither staged nor in {self.store.path}") from exc

    def commit_image(
        self,
        config: Digest,
        layers: Sequence[Digest],
        references: Sequence[Named],
        parent: Optional[Digest],
    ) -> None:
        store = self.store
        added: list[str] = []
        with store._locked():
            try:
                sizes = {}
                for digest in (config, *layers):
                    sizes[digest] = self._place(digest, added)
                manifest = _manifest_bytes(config, sizes[config], layers, sizes, parent)
                manifest_digest = Digest.from_bytes(manifest)
                self.stage_bytes(manifest, manifest_digest)
                self._place(manifest_digest, added)
                descriptor = _Descriptor(MEDIA_MANIFEST, manifest_digest, len(manifest))
                snapshot = store._read_snapshot()
                index = _updated_index(snapshot, descriptor, config, list(references))
                if index != snapshot.raw:
                    store._write_index(index)
            except BaseException as exc:
                for path in added:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                if isinstance(exc, OSError) and not isinstance(exc, TarexportError):
                    raise StoreWriteError.of(exc, store.path) from exc
                raise

    def commit_manifest(
        self,
        manifest: Digest,
        media_type: str,
        config: Digest,
        blobs: Sequence[Digest],
        references: Sequence[Named],
    ) -> None:
        """Register an image under the manifest its archive had, blobs as they came."""
        store = self.store
        added: list[str] = []
        with store._locked():
            try:
                for digest in (config, *blobs):
                    self._place(digest, added)
                size = self._place(manifest, added)
                descriptor = _Descriptor(media_type, manifest, size)
                snapshot = store._read_snapshot()
                index = _updated_index(snapshot, descriptor, config, list(references))
                if index != snapshot.raw:
                    store._write_index(index)
            except BaseException:
                for path in added:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                raise

    def _place(self, digest: Digest, added: list[str]) -> int:
        """Move a staged blob into ``blobs/`` (if it is not there yet); returns its size."""
        target = self.store.blob_path(digest)
        staged = self._staged.get(digest)
        if staged is None:
            try:
                return os.stat(target).st_size
            except OSError:
                raise StoreError(f"blob {digest} was never staged") from None
        size = os.stat(staged).st_size
        if self._intact(digest, size):
            return size  # placed by another load meanwhile; ours is dropped at close
        if self.store.fsync:
            self._wait_for_syncs()
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)  # a directory where a blob belongs: not a blob to keep
        os.replace(staged, target)
        del self._staged[digest]
        added.append(target)
        if self.store.fsync:
            _fsync_dir(os.path.dirname(target))
        return size

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sync_thread is not None:
            self._sync_thread.shutdown(wait=True)
            self._sync_thread = None
        self._staged.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)  # the lock goes only once the staging is gone
            self._dir_fd = None


def _manifest_bytes(
    config: Digest,
    config_size: int,
    layers: Sequence[Digest],
    sizes: Mapping[Digest, int],
    parent: Optional[Digest],
) -> bytes:
    """The OCI manifest of an image written here (``docker save`` 25+'s, plus the parent)."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": str(config), "size": config_size},
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": str(d), "size": sizes[d]} for d in layers
        ],
    }
    if parent is not None:
        manifest["annotations"] = {ANNOTATION_PARENT: str(parent)}
    return gojson.dumps(manifest)

