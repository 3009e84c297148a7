"""A Docker data root (graphdriver image store) read in place, without the daemon.

:class:`DockerRootStore` reads ``image/<driver>/`` once, when it opens: the image configs
(``imagedb``), their parents, the layer metadata (``layerdb``) of every layer those images use,
and the tags (``repositories.json``). Layers are rebuilt when they are read: the tar-split
metadata Docker recorded when it applied each layer gives the original tar's headers and
padding, and the file contents come from the storage driver's directory (``vfs`` and
``overlay2`` are understood). Every file's CRC-64 and the whole stream's sha256 are checked,
as the daemon itself does when it exports a layer.

Nothing on disk is locked: the daemon may delete an image while it is read. A layer that
vanishes or changes mid-read fails its checks and raises; it never yields wrong bytes quietly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Optional, Union

from ..compression import VerifyingReader
from ..digest import Digest, chain_ids
from ..errors import (
    InvalidDigest,
    InvalidReference,
    LayerIntegrityError,
    StoreError,
    TarexportError,
)
from ..image import Image
from ..reference import parse_normalized_named
from ..tarsplit import Entry, ReassemblingReader, decode_entries, plan_stream
from .protocols import FileRange
from .tables import StoreTables

__all__ = ["DRIVERS", "DockerRootStore"]

DRIVERS = ("overlay2", "vfs")
"""Storage drivers whose layer contents can be read without the daemon."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CACHE_ID = re.compile(r"[0-9A-Za-z_.-]+")
_CHUNK = 1 << 20


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise StoreError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _read_digest(path: str, what: str) -> Digest:
    text = _read(path, what).decode("ascii", "replace").strip()
    try:
        return Digest.parse(text)
    except InvalidDigest as exc:
        raise StoreError(f"{what} {path}: {exc}") from None


class _RootLayer:
    """One layer of a data root, rebuilt from tar-split and the driver's files when read."""

    verification = "on-read"  # open() checks the diff ID as the tar is rebuilt

    def __init__(
        self, diff_id: Digest, layer_dir: str, content_root: str, verify_files: bool
    ) -> None:
        self._diff_id = diff_id
        self._layer_dir = layer_dir
        self._content_root = content_root
        self._verify_files = verify_files
        self._size: Optional[int] = None
        self._lock = threading.Lock()

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def tar_split_path(self) -> str:
        return os.path.join(self._layer_dir, "tar-split.json.gz")

    @property
    def content_root(self) -> str:
        """The directory the layer's file contents are read from."""
        return self._content_root

    def entries(self) -> Iterator[Entry]:
        """The tar-split entries, decoded as the gzip stream is read."""
        path = self.tar_split_path
        try:
            with gzip.open(path, "rb") as f:
                yield from decode_entries(f, path)
        except (OSError, EOFError, zlib.error) as exc:
            raise StoreError(f"cannot read tar-split {path}: {exc}") from exc

    @property
    def size(self) -> int:
        """The length of the layer tar; the first read plans the layer (see the module doc).

        No file content is read: the tar-split is decoded and checked, and every file it needs
        is looked up (a regular file of the recorded size, inside the layer's directory).
        """
        with self._lock:
            if self._size is None:
                self._size = plan_stream(self.entries(), self._file_checker(), self._what)
            return self._size

    @property
    def _what(self) -> str:
        return f"layer {self._diff_id} ({self._layer_dir})"

    def _resolve(self, name: bytes) -> bytes:
        root = os.fsencode(self._content_root)
        path = os.path.join(root, name)
        # Symlinks inside the layer are followed only while they stay inside it.
        real = os.path.realpath(path)
        real_root = os.path.realpath(root)
        if os.path.commonpath([real, real_root]) != real_root:
            raise StoreError(f"tar-split name {name!r} resolves outside {self._content_root}")
        return real

    def _file_checker(self) -> Callable[[bytes, Entry], None]:
        """Checks one file for the plan: resolved as :meth:`_resolve` does, each directory once.

        The directories' real paths are kept for this plan only; writing resolves every file
        afresh, so a directory swapped for a symlink since then is still caught.
        """
        root = os.fsencode(self._content_root)
        real_root = os.path.realpath(root)
        real_dirs: dict[bytes, bytes] = {b"": real_root}
        inside = os.path.join(real_root, b"")

        def check(name: bytes, entry: Entry) -> None:
            parent, _, base = name.rpartition(b"/")
            real_parent = real_dirs.get(parent)
            if real_parent is None:
                real_parent = real_dirs[parent] = os.path.realpath(os.path.join(root, parent))
            real = os.path.join(real_parent, base)
            shown = os.fsdecode(os.path.join(root, name))
            try:
                info = os.lstat(real)
                if stat.S_ISLNK(info.st_mode):
                    real = os.path.realpath(real)
                    info = os.lstat(real)
            except OSError as exc:
                raise StoreError(
                    f"cannot open {shown} of layer {self._diff_id}: {exc.strerror or exc}"
                ) from exc
            if not real.startswith(inside):  # both are real paths: a prefix says it all
                raise StoreError(
                    f"tar-split name {name!r} resolves outside {self._content_root}"
                )
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"{shown} of layer {self._diff_id} is not a regular file")
            if info.st_size != entry.size:
                raise LayerIntegrityError(
                    f"{self._what}: file {entry.name!r} is {info.st_size} bytes on disk, "
                    f"{entry.size} in tar-split"
                )

        return check

    def _open_file(self, name: bytes) -> BinaryIO:
        root = os.fsencode(self._content_root)
        path = os.path.join(root, name)
        real = self._resolve(name)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise StoreError(
                f"cannot open {os.fsdecode(path)} of layer {self._diff_id}: {exc.strerror or exc}"
            ) from exc
        return open(fd, "rb", buffering=0)

    def open(self) -> BinaryIO:
        return self._open(verify=True)

    def open_unverified(self) -> BinaryIO:
        """The rebuilt tar without its diff ID checked (a save with ``verify=False``); the
        per-file CRC-64 check of ``verify_files`` still applies."""
        return self._open(verify=False)

    def _open(self, *, verify: bool) -> BinaryIO:
        what = self._what
        size = self.size  # planned first: a layer never streams before it was checked
        raw = ReassemblingReader(
            self.entries(), self._open_file, verify=self._verify_files, what=what
        )
        source: BinaryIO = raw  # type: ignore[assignment]  # a raw reader is enough
        if not verify:
            return io.BufferedReader(raw, _CHUNK)
        verified = VerifyingReader(source, self._diff_id, size=size, what=what)
        return io.BufferedReader(verified, _CHUNK)

    def file_range(self) -> Optional[FileRange]:
        return None

    def __repr__(self) -> str:
        return f"<data root layer {self._diff_id} at {self._layer_dir}>"


class DockerRootStore(StoreTables[_RootLayer]):
    """A Docker data root (``/var/lib/docker``) read in place: image, layer and reference store.

    ``driver`` names the storage driver (``image/<driver>/``); by default the only one present
    is used. Configs are checked against their IDs; images whose top layer is missing (left by
    a failed build, or half deleted) are skipped, as the daemon skips them, and so are tags
    pointing at images that are not there. The layer's sha256 is always checked against its
    diff ID; ``verify_files=True`` also checks each file's CRC-64 as tar-split recorded it,
    which names the file that changed but is computed in pure Python (tens of MB/s).
    """

    def __init__(
        self,
        root: Union[str, os.PathLike[str]] = "/var/lib/docker",
        *,
        driver: Optional[str] = None,
        verify_files: bool = False,
    ) -> None:
        StoreTables.__init__(self)
        self.root = os.fspath(root)
        self.driver = driver if driver is not None else self._find_driver()
        if self.driver not in DRIVERS:
            raise StoreError(
                f"storage driver {self.driver!r} of {self.root} cannot be read without the "
                f"daemon (supported: {', '.join(DRIVERS)})"
            )
        self.image_dir = os.path.join(self.root, "image", self.driver)
        if not os.path.isdir(self.image_dir):
            raise StoreError(f"{self.image_dir} is not a directory")
        self.verify_files = verify_files
        self._read_images()
        self._read_repositories()

    def _find_driver(self) -> str:
        image = os.path.join(self.root, "image")
        try:
            found = sorted(
                d for d in os.listdir(image) if os.path.isdir(os.path.join(image, d, "imagedb"))
            )
        except OSError as exc:
            raise StoreError(f"cannot list {image}: {exc.strerror or exc}") from exc
        if len(found) != 1:
            listed = ", ".join(found) if found else "none"
            raise StoreError(
                f"{image}: cannot tell the storage driver (found {listed}); pass driver="
            )
        return found[0]

    # -- index ----------------------------------------------------------------------------

    def _read_images(self) -> None:
        content = os.path.join(self.image_dir, "imagedb", "content", "sha256")
        try:
            names = sorted(os.listdir(content))
        except FileNotFoundError:
            names = []
        except OSError as exc:
            raise StoreError(f"cannot list {content}: {exc.strerror or exc}") from exc
        for name in names:
            if not _HEX64.fullmatch(name):
                continue
            path = os.path.join(content, name)
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                continue  # deleted since the listing
            except OSError as exc:
                raise StoreError(f"cannot read image config {path}: {exc.strerror}") from exc
            if hashlib.sha256(raw).hexdigest() != name:
                raise StoreError(f"image config {path} does not hash to its name")
            try:
                image = Image.from_bytes(raw)
            except TarexportError as exc:
                raise StoreError(f"image config {path}: {exc}") from None
            image_id = Digest("sha256", name)
            try:
                complete = self._add_layers(image.diff_ids)
            except StoreError:
                if self._top_layer_present(image.diff_ids):
                    raise
                complete = False  # the image was being deleted while it was read
            if not complete:
                continue  # an orphan: its layers are gone or were never committed
            self._configs[image_id] = raw
            parent_path = os.path.join(
                self.image_dir, "imagedb", "metadata", "sha256", name, "parent"
            )
            if os.path.exists(parent_path):
                self._parents[image_id] = _read_digest(parent_path, "image parent")

    def _top_layer_present(self, diff_ids: tuple[Digest, ...]) -> bool:
        chains = chain_ids(diff_ids)
        if not chains:
            return True
        top = chains[-1]
        return os.path.isdir(os.path.join(self.image_dir, "layerdb", top.algorithm, top.hex))

    def _add_layers(self, diff_ids: tuple[Digest, ...]) -> bool:
        """Index the layers of an image; ``False`` when its top layer is not in the layer db."""
        chains = chain_ids(diff_ids)
        layerdb = os.path.join(self.image_dir, "layerdb")
        if not self._top_layer_present(diff_ids):
            return False
        for chain, diff_id in zip(chains, diff_ids):
            if chain in self._layers:
                continue
            layer_dir = os.path.join(layerdb, chain.algorithm, chain.hex)
            stored = _read_digest(os.path.join(layer_dir, "diff"), "layer diff ID")
            if stored != diff_id:
                raise StoreError(
                    f"layer {layer_dir} has diff ID {stored}, but its image says {diff_id}"
                )
            cache_id = _read(os.path.join(layer_dir, "cache-id"), "layer cache ID")
            cache = cache_id.decode("ascii", "replace").strip()
            if not _CACHE_ID.fullmatch(cache) or cache in (".", ".."):
                raise StoreError(f"layer {layer_dir}: invalid cache-id {cache!r}")
            if self.driver == "vfs":
                content_root = os.path.join(self.root, "vfs", "dir", cache)
            else:
                content_root = os.path.join(self.root, self.driver, cache, "diff")
            self._layers[chain] = _RootLayer(diff_id, layer_dir, content_root, self.verify_files)
        return True

    def _read_repositories(self) -> None:
        path = os.path.join(self.image_dir, "repositories.json")
        if not os.path.exists(path):
            return
        try:
            document = json.loads(_read(path, "reference store"))
        except ValueError as exc:
            raise StoreError(f"{path}: invalid JSON: {exc}") from None
        repositories = document.get("Repositories") if isinstance(document, dict) else None
        if repositories is None:
            return
        if not isinstance(repositories, dict):
            raise StoreError(f"{path}: Repositories is not an object")
        for refs in repositories.values():
            if not isinstance(refs, dict):
                raise StoreError(f"{path}: a repository is not an object")
            for text, target in refs.items():
                try:
                    reference = parse_normalized_named(text, legacy=True)
                    image_id = Digest.parse(target) if isinstance(target, str) else None
                except (InvalidReference, InvalidDigest) as exc:
                    raise StoreError(f"{path}: {text!r}: {exc}") from None
                if image_id is None:
                    raise StoreError(f"{path}: {text!r} does not point at an image ID")
                if image_id in self._configs:  # a tag may outlive its image briefly
                    self._point(reference, image_id)

    # -- what the root holds ----------------------------------------------------------------

    @property
    def image_ids(self) -> tuple[Digest, ...]:
        """Every image of the data root, by ID."""
        return tuple(sorted(self._configs))

    def __repr__(self) -> str:
        return f"<DockerRootStore {self.root} ({self.driver}, {len(self._configs)} images)>"
