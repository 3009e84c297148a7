"""A ``docker save`` archive used in place as a read-only store, and the archive model.

:class:`DockerArchiveStore` reads the tar headers of an archive file once, builds an index of
member offsets, and then serves configs from their members and layers as byte ranges of the
archive itself, so saving them again is a zero-copy ``copy_file_range``.

:func:`read_archive` is the part shared with the loader: given the members of an archive and a
way to read them, it finds the images the way ``docker load`` does (``manifest.json``, or for a
legacy archive the ``repositories`` file and the v1 layer directories), checks every path and
every config, and returns plain values. Four layouts are understood:

- Docker 1.10 to 24: ``<v1id>/layer.tar`` (possibly a symlink to another layer directory),
  ``<config>.json``, ``manifest.json``, ``repositories``;
- Docker 25+: the same ``manifest.json`` pointing into an OCI ``blobs/sha256/`` directory;
- crane and friends: layers stored compressed (``<digest>.tar.gz``), decompressed on the fly;
- before 1.10: no ``manifest.json``, only ``repositories`` and v1 directories, from which
  configs are synthesised as Docker's legacy loader does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO, Optional, Union

import attrs
from typing_extensions import Protocol

from .. import gojson
from ..compression import (
    Compression,
    DecompressingReader,
    RangeReader,
    VerifyingReader,
    detect,
    drain,
    readinto,
)
from ..digest import Digest, Digester, chain_ids
from ..errors import (
    ArchiveDigestMismatch,
    InvalidArchive,
    InvalidDigest,
    InvalidImageConfig,
    InvalidReference,
    InvalidTimestamp,
    StoreError,
    UnsafeArchive,
)
from ..gotime import GoTime
from ..image import History, Image
from ..reference import Named, parse_normalized_named, with_tag
from ..tarread import BLOCK_SIZE, MemberIndex, TarMember, TarReader, looks_like_tar
from ._files import open_regular
from .protocols import FileRange
from .tables import StoreTables

__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveContents",
    "ArchiveImage",
    "ArchiveSource",
    "DockerArchiveStore",
    "GoObject",
    "Limits",
    "ManifestEntry",
    "blob_digest",
    "config_from_v1",
    "decode_json",
    "layer_compression",
    "parse_manifest",
    "parse_repo_tag",
    "read_archive",
]

MANIFEST = "manifest.json"
REPOSITORIES = "repositories"
_CHUNK = 1 << 20


@attrs.frozen
class Limits:
    """Bounds on what an archive may make tarexport hold or produce.

    - ``json_size``: any JSON member (``manifest.json``, ``repositories``, a config, a v1
      ``json``); past it the archive is refused as unsafe.
    - ``decompressed_size``: bytes one compressed stream (the archive, or one compressed
      layer) may inflate to; ``None`` for no limit.
    - ``members``: tar members in one archive.
    - ``extension_size``: one PAX or GNU long-name header.
    - ``metadata_size``: small members the loader keeps in memory while it waits for
      ``manifest.json``, all together.
    """

    json_size: int = 8 << 20
    decompressed_size: Optional[int] = 64 << 30
    members: int = 100_000
    extension_size: int = 1 << 20
    metadata_size: int = 64 << 20


DEFAULT_LIMITS = Limits()


# -- JSON as Go decodes it ---------------------------------------------------------------


def _fold(key: str) -> str:
    # Go matches struct fields case-insensitively with simple folding (long s folds to s).
    return key.lower().replace("\u017f", "s")


class GoObject:
    """A decoded JSON object whose fields are looked up as Go's ``encoding/json`` fills a struct.

    A key matches a field case-insensitively, and when several keys match, the last wins.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def field(self, name: str, default: Any = None) -> Any:
        folded = _fold(name)
        found = default
        for key, value in self.pairs:
            if key == name or _fold(key) == folded:
                found = value
        return found

    def as_map(self) -> dict[str, Any]:
        """The object as a Go map: exact keys, the last duplicate wins."""
        return dict(self.pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def decode_json(data: bytes, what: str) -> Any:
    """Decode JSON the way Go does (objects as :class:`GoObject`); errors are ``InvalidArchive``."""
    text = data.decode("utf-8", "replace")  # Go turns invalid UTF-8 into U+FFFD
    try:
        return json.loads(text, object_pairs_hook=GoObject, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidArchive(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidArchive(f"{what}: invalid JSON: {exc}") from None


def _go_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _string_field(obj: GoObject, name: str, what: str) -> str:
    value = obj.field(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArchive(f"{what}: {name} is a JSON {_go_type(value)}, not a string")
    return value


def _string_list_field(obj: GoObject, name: str, what: str) -> tuple[str, ...]:
    value = obj.field(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArchive(f"{what}: {name} is not a list of strings")
    return tuple(value)


# -- manifest.json ------------------------------------------------------------------------


@attrs.frozen
class ManifestEntry:
    """One image of ``manifest.json``, as written (paths not resolved, tags not parsed)."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]
    parent: str = ""


def parse_manifest(data: bytes) -> tuple[ManifestEntry, ...]:
    """The entries of ``manifest.json``; anything but a JSON array of objects is refused."""
    value = decode_json(data, MANIFEST)
    if value is None:
        raise InvalidArchive("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(value, list):
        raise InvalidArchive(
            f"{MANIFEST}: json: cannot unmarshal {_go_type(value)} into Go value of type "
            "[]tarexport.manifestItem"
        )
    entries = []
    for n, item in enumerate(value):
        what = f"{MANIFEST} entry {n}"
        if not isinstance(item, GoObject):
            raise InvalidArchive(f"{what}: a JSON {_go_type(item)}, not an object")
        entries.append(
            ManifestEntry(
                config=_string_field(item, "Config", what),
                repo_tags=_string_list_field(item, "RepoTags", what),
                layers=_string_list_field(item, "Layers", what),
                parent=_string_field(item, "Parent", what),
            )
        )
    return tuple(entries)


def parse_repo_tag(text: str) -> Named:
    """A ``RepoTags`` entry: it must be ``name:tag`` (no digest), as ``docker load`` insists."""
    try:
        named = parse_normalized_named(text)
    except InvalidReference as exc:
        raise InvalidArchive(f"invalid tag {text!r}: {exc}") from None
    if named.tag is None or named.digest is not None:
        raise InvalidArchive(f'invalid tag "{text}"')
    return named


_BLOB_PATH = re.compile(r"blobs/([a-z0-9]+)/([a-zA-Z0-9=_-]+)\Z")


def blob_digest(path: str) -> Optional[Digest]:
    """The digest an OCI blob path (``blobs/sha256/<hex>``) names, if ``path`` is one."""
    match = _BLOB_PATH.match(path)
    if match is None:
        return None
    try:
        return Digest(match.group(1), match.group(2))
    except InvalidDigest:
        raise InvalidArchive(f"{path!r}: not a valid blob digest") from None


# -- the images of an archive -------------------------------------------------------------


class ArchiveSource(Protocol):
    """What :func:`read_archive` needs from whoever holds the archive's bytes."""

    @property
    def index(self) -> MemberIndex:
        """Every member of the archive (all of them read: the index is complete)."""
        ...

    def read_small(self, member: TarMember, what: str) -> bytes:
        """The body of a JSON member; over the JSON limit raises ``UnsafeArchive``."""
        ...

    def diff_id(self, member: TarMember, what: str) -> Digest:
        """The sha256 of the member's bytes, decompressed if compressed (legacy archives)."""
        ...


@attrs.frozen
class ArchiveImage:
    """One image of an archive: its config, its layer members bottom to top, its tags."""

    config: bytes = attrs.field(repr=False)
    image: Image
    layers: tuple[TarMember, ...]
    layer_names: tuple[str, ...]
    blob_digests: tuple[Optional[Digest], ...]
    references: tuple[Named, ...]
    parent: Optional[Digest]
    config_name: str

    @property
    def id(self) -> Digest:
        return self.image.id

    @property
    def diff_ids(self) -> Sequence[Digest]:
        return self.image.diff_ids


@attrs.frozen
class ArchiveContents:
    """The images of an archive in the order it lists them (for a legacy one: parents first)."""

    images: tuple[ArchiveImage, ...]
    legacy: bool


def read_archive(source: ArchiveSource) -> ArchiveContents:
    """Find and check the images of an archive whose members are all in ``source.index``."""
    index = source.index
    if MANIFEST in index:
        member = index.resolve(MANIFEST, "manifest")
        entries = parse_manifest(source.read_small(member, MANIFEST))
        images = [_manifest_image(source, entry, n) for n, entry in enumerate(entries)]
        return ArchiveContents(tuple(_link_parents(images)), legacy=False)
    if "index.json" in index and "oci-layout" in index:  # an OCI layout alone (oci-archive)
        from .oci_archive import oci_images

        return ArchiveContents(tuple(oci_images(source)), legacy=False)
    if REPOSITORIES not in index and not _has_v1_layer(index):
        raise InvalidArchive(FILE_SYSTEM_TAR)
    return ArchiveContents(tuple(_legacy_images(source)), legacy=True)


FILE_SYSTEM_TAR = (
    f"not an image archive: no {MANIFEST}, no index.json; this looks like a file-system "
    "tar; `docker import` it, or `tarexport build --layer-tar`"
)


def _has_v1_layer(index: MemberIndex) -> bool:
    """Whether any top-level directory holds the ``json`` and ``layer.tar`` of a v1 image."""
    paths = {m.path for m in index.members()}
    return any(
        path.endswith("/json") and path.count("/") == 1 and path[:-4] + "layer.tar" in paths
        for path in paths
    )


def _decode_image(config: bytes, what: str) -> Image:
    try:
        return Image.from_bytes(config)
    except InvalidImageConfig as exc:
        raise InvalidArchive(f"{what}: {exc}") from exc


def _check_blob(data: bytes, named: Optional[Digest], what: str) -> None:
    if named is None:
        return
    actual = Digest(named.algorithm, hashlib.new(named.algorithm, data).hexdigest())
    if actual != named:
        raise ArchiveDigestMismatch(what, str(named), str(actual))


def _manifest_image(source: ArchiveSource, entry: ManifestEntry, n: int) -> ArchiveImage:
    index = source.index
    what = f"{MANIFEST} entry {n}"
    config_member = index.resolve(entry.config, f"{what}: config")
    config = source.read_small(config_member, f"config {entry.config!r}")
    _check_blob(
        config,
        blob_digest(entry.config) or blob_digest(config_member.path),
        f"config {entry.config!r}",
    )
    image = _decode_image(config, f"config {entry.config!r}")
    if len(entry.layers) != len(image.diff_ids):
        raise InvalidArchive(
            f"invalid manifest, layers length mismatch: expected {len(entry.layers)}, "
            f"got {len(image.diff_ids)}"
        )
    layers = tuple(
        index.resolve(path, f"{what}: layer {i}") for i, path in enumerate(entry.layers)
    )
    blob_digests = tuple(
        blob_digest(path) or blob_digest(member.path)
        for path, member in zip(entry.layers, layers)
    )
    references = tuple(parse_repo_tag(tag) for tag in entry.repo_tags)
    parent: Optional[Digest] = None
    if entry.parent:
        try:
            parent = Digest.parse(entry.parent)
        except InvalidDigest as exc:
            raise InvalidArchive(f"{what}: invalid Parent {entry.parent!r}: {exc}") from None
    return ArchiveImage(
        config=config,
        image=image,
        layers=layers,
        layer_names=entry.layers,
        blob_digests=blob_digests,
        references=references,
        parent=parent,
        config_name=entry.config,
    )


def _same_step(parent: History, child: History) -> bool:
    if (parent.created is None) != (child.created is None):
        return False
    # The same instant written in another zone is the same step (Go's Time.Equal).
    if (
        parent.created is not None
        and child.created is not None
        and parent.created.unix_nanos != child.created.unix_nanos
    ):
        return False
    return attrs.evolve(parent, created=None) == attrs.evolve(child, created=None)


def _valid_parent(child: Image, parent: Image) -> bool:
    """Docker's rule: the parent's history is the child's minus exactly its last step."""
    if not child.history and not parent.history:
        return True
    if len(child.history) - len(parent.history) != 1:
        return False
    return all(_same_step(p, c) for p, c in zip(parent.history, child.history))


def _link_parents(images: list[ArchiveImage]) -> list[ArchiveImage]:
    """Keep a ``Parent`` only when that image is in the archive too, and check it is one."""
    by_id = {image.id: image for image in images}
    linked = []
    for image in images:
        parent = by_id.get(image.parent) if image.parent is not None else None
        if parent is None or parent.id == image.id:
            linked.append(attrs.evolve(image, parent=None))
            continue
        if not _valid_parent(image.image, parent.image):
            raise InvalidArchive(f"image {parent.id} is not a valid parent for {image.id}")
        linked.append(image)
    return linked


# -- legacy archives (no manifest.json) ---------------------------------------------------


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_JSON_STRING_OR_SPACE = re.compile(r'"(?:[^"\\]|\\.)*"|[ \t\n\r]+', re.DOTALL)
_HTML_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                "\u2029": "\\u2029"}
_HTML_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")


def _go_compact(raw: str) -> str:
    """Go's ``json.Compact`` with HTML escaping, as ``json.Marshal`` applies it to raw values."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token[0] != '"':
            return ""
        return _HTML_UNSAFE_RE.sub(lambda m: _HTML_UNSAFE[m.group(0)], token)

    return _JSON_STRING_OR_SPACE.sub(replace, raw)


def _raw_object_pairs(text: str, what: str) -> list[tuple[str, str]]:
    """The members of a JSON object, each value's exact text (Go's ``map[string]RawMessage``)."""
    decoder = json.JSONDecoder()
    pos = _WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "{":
        raise InvalidArchive(f"{what}: not a JSON object")
    pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    pairs: list[tuple[str, str]] = []
    if text[pos : pos + 1] == "}":
        pos += 1
    else:
        while True:
            try:
                if text[pos : pos + 1] != '"':
                    raise ValueError("expected a key")
                key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
                if text[pos : pos + 1] != ":":
                    raise ValueError("expected ':'")
                pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
                _, end = decoder.raw_decode(text, pos)
            except (ValueError, RecursionError) as exc:
                raise InvalidArchive(f"{what}: invalid JSON: {exc}") from None
            pairs.append((key, text[pos:end]))
            pos = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] == ",":
                pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
                continue
            if text[pos : pos + 1] == "}":
                pos += 1
                break
            raise InvalidArchive(f"{what}: invalid JSON object")
    if _WHITESPACE.match(text, pos).end() != len(text):  # type: ignore[union-attr]
        raise InvalidArchive(f"{what}: data after the JSON object")
    return pairs


# Keys Docker's legacy loader drops from a v1 json before it becomes a config.
_V1_ONLY_KEYS = frozenset({"id", "parent", "Size", "parent_id", "layer_id", "throwaway"})


def config_from_v1(
    v1_json: bytes, diff_ids: Sequence[Digest], history: Sequence[bytes]
) -> bytes:
    """The config Docker's legacy loader makes from a v1 ``json`` (``MakeConfigFromV1Config``).

    The v1 keys that describe the layer are dropped, ``rootfs`` and ``history`` (encoded
    history entries) are set, and the object is written as Go marshals a
    ``map[string]json.RawMessage``: keys sorted, values compacted and HTML-escaped.

    Docker re-encodes v1 JSON older than 1.8.3 through its struct first; that step is skipped
    here, which only matters for JSON that is not already in Docker's own form.
    """
    text = v1_json.decode("utf-8", "surrogateescape")
    values = dict(_raw_object_pairs(text, "v1 json"))
    for key in _V1_ONLY_KEYS:
        values.pop(key, None)
    raw = {
        key: gojson.Raw(_go_compact(value).encode("utf-8", "surrogateescape"))
        for key, value in values.items()
    }
    raw["rootfs"] = gojson.Raw(
        gojson.dumps({"type": "layers", "diff_ids": [str(d) for d in diff_ids]})
    )
    raw["history"] = gojson.Raw(b"[" + b",".join(history) + b"]")
    return gojson.dumps(gojson.Map(raw))


def _v1_history(obj: GoObject, what: str) -> bytes:
    """The history entry Docker derives from a v1 json (``HistoryFromConfig``), encoded."""
    created_text = obj.field("created")
    created = GoTime.ZERO
    if created_text is not None:
        if not isinstance(created_text, str):
            raise InvalidArchive(f"{what}: created is not a string")
        try:
            created = GoTime.parse(created_text)
        except InvalidTimestamp as exc:
            raise InvalidArchive(f"{what}: {exc}") from None
    container_config = obj.field("container_config")
    command: Any = container_config.field("Cmd") if isinstance(container_config, GoObject) else None
    if isinstance(command, str):
        command = [command]
    if command is not None and (
        not isinstance(command, list) or not all(isinstance(c, str) for c in command)
    ):
        raise InvalidArchive(f"{what}: container_config.Cmd is not a list of strings")
    entry = {"created": created.format()}
    author = _string_field(obj, "author", what)
    created_by = " ".join(command or [])
    comment = _string_field(obj, "comment", what)
    # Go's History struct: author, created_by and comment are omitempty.
    if author:
        entry["author"] = author
    if created_by:
        entry["created_by"] = created_by
    if comment:
        entry["comment"] = comment
    return gojson.dumps(entry)


def _is_component(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and "\x00" not in name


@attrs.frozen
class _LegacyLayer:
    member: TarMember
    diff_id: Digest
    history: bytes
    name: str


def _legacy_images(source: ArchiveSource) -> list[ArchiveImage]:
    index = source.index
    dirs = sorted(
        {m.path.split("/", 1)[0] for m in index.members() if "/" in m.path}
        | {m.path for m in index.members() if m.path and m.type.value == "directory"}
    )
    if not dirs:
        raise InvalidArchive(f"invalid archive: does not contain a {MANIFEST}")
    loaded: dict[str, tuple[ArchiveImage, tuple[_LegacyLayer, ...]]] = {}
    order: list[str] = []

    for top in dirs:
        # Walk up the parent chain, then load from the oldest ancestor down.
        chain: list[tuple[str, bytes, GoObject]] = []
        v1_id: Optional[str] = top
        seen: set[str] = set()
        while v1_id is not None and v1_id not in loaded:
            if v1_id in seen:
                raise InvalidArchive(f"v1 image {v1_id}: its parents form a loop")
            seen.add(v1_id)
            if not _is_component(v1_id):
                raise UnsafeArchive(f"v1 parent {v1_id!r} is not a plain directory name")
            raw = source.read_small(
                index.resolve(f"{v1_id}/json", f"v1 image {v1_id}"), f"{v1_id}/json"
            )
            obj = decode_json(raw, f"{v1_id}/json")
            if not isinstance(obj, GoObject):
                raise InvalidArchive(f"{v1_id}/json: not a JSON object")
            chain.append((v1_id, raw, obj))
            parent = _string_field(obj, "parent", f"{v1_id}/json")
            v1_id = parent or None
        for v1_id, raw, obj in reversed(chain):
            parent_id = _string_field(obj, "parent", f"{v1_id}/json")
            parent_image, parent_layers = loaded[parent_id] if parent_id else (None, ())
            member = index.resolve(f"{v1_id}/layer.tar", f"v1 image {v1_id}")
            layer = _LegacyLayer(
                member=member,
                diff_id=source.diff_id(member, f"{v1_id}/layer.tar"),
                history=_v1_history(obj, f"{v1_id}/json"),
                name=f"{v1_id}/layer.tar",
            )
            layers = (*parent_layers, layer)
            config = config_from_v1(
                raw, [entry.diff_id for entry in layers], [entry.history for entry in layers]
            )
            image = _decode_image(config, f"config made from {v1_id}/json")
            loaded[v1_id] = (
                ArchiveImage(
                    config=config,
                    image=image,
                    layers=tuple(entry.member for entry in layers),
                    layer_names=tuple(entry.name for entry in layers),
                    blob_digests=(None,) * len(layers),
                    references=(),
                    parent=parent_image.id if parent_image is not None else None,
                    config_name=f"{v1_id}/json",
                ),
                layers,
            )
            order.append(v1_id)

    references: dict[str, list[Named]] = {}
    if REPOSITORIES in index:
        member = index.resolve(REPOSITORIES, REPOSITORIES)
        for named, v1_id in _parse_repositories(source.read_small(member, REPOSITORIES)):
            if v1_id not in loaded:
                raise InvalidArchive(f"invalid target ID: {v1_id}")
            references.setdefault(v1_id, []).append(named)
    return [
        attrs.evolve(loaded[v1_id][0], references=tuple(references.get(v1_id, ())))
        for v1_id in order
    ]


def _parse_repositories(data: bytes) -> list[tuple[Named, str]]:
    """``{name: {tag: v1 id}}`` as (name:tag, v1 id) pairs, sorted by name then tag."""
    value = decode_json(data, REPOSITORIES)
    if not isinstance(value, GoObject):
        raise InvalidArchive(f"{REPOSITORIES}: not a JSON object")
    result = []
    for name, tags in sorted(value.as_map().items()):
        if not isinstance(tags, GoObject):
            raise InvalidArchive(f"{REPOSITORIES}: {name!r} does not map tags to IDs")
        for tag, v1_id in sorted(tags.as_map().items()):
            if not isinstance(v1_id, str):
                raise InvalidArchive(f"{REPOSITORIES}: {name}:{tag} is not an ID")
            try:
                named = with_tag(parse_normalized_named(name), tag)
            except InvalidReference as exc:
                raise InvalidArchive(f"{REPOSITORIES}: {name!r} tag {tag!r}: {exc}") from None
            result.append((named, v1_id))
    return result


# -- compression of layer members ---------------------------------------------------------


def layer_compression(head: bytes) -> Compression:
    """How a layer whose first bytes are ``head`` is compressed.

    A block that is a valid tar header is an uncompressed tar even if its first bytes happen to
    spell a magic number (a first file named ``BZh...`` would fool a magic-only check).
    """
    if len(head) >= BLOCK_SIZE and looks_like_tar(head[:BLOCK_SIZE]):
        return Compression.NONE
    return detect(head)


# -- the store ----------------------------------------------------------------------------


class _ArchiveLayer:
    """An uncompressed layer: a byte range of the archive file."""

    def __init__(self, store: DockerArchiveStore, diff_id: Digest, member: TarMember) -> None:
        self._store = store
        self._diff_id = diff_id
        self._member = member

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def size(self) -> int:
        return self._member.size

    def open(self) -> BinaryIO:
        self._store._check_unchanged()
        raw = RangeReader(self._store.path, self._member.data_offset, self._member.size)
        return io.BufferedReader(raw, _CHUNK)

    def file_range(self) -> Optional[FileRange]:
        self._store._check_unchanged()
        return FileRange(self._store.path, self._member.data_offset, self._member.size)

    def __repr__(self) -> str:
        return f"<archive layer {self._diff_id} at {self._member.data_offset}+{self._member.size}>"


class _CompressedArchiveLayer:
    """A compressed layer member: decompressed when read, checked against its diff ID."""

    verification = "on-read"  # open() checks the diff ID (and the blob digest, if named)

    def __init__(
        self,
        store: DockerArchiveStore,
        diff_id: Digest,
        member: TarMember,
        kind: Compression,
        blob: Optional[Digest],
    ) -> None:
        self._store = store
        self._diff_id = diff_id
        self._member = member
        self._kind = kind
        self._blob = blob
        self._size: Optional[int] = None
        self._lock = threading.Lock()

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def size(self) -> int:
        """The uncompressed size: measured (and verified) by one full decompression, then kept."""
        with self._lock:
            if self._size is None:
                with self.open() as stream:
                    self._size = drain(stream, _CHUNK)
            return self._size

    def open(self) -> BinaryIO:
        return self._open(verify=True)

    def open_unverified(self) -> BinaryIO:
        """The uncompressed bytes with no digest checked (a save with ``verify=False``)."""
        return self._open(verify=False)

    def _open(self, *, verify: bool) -> BinaryIO:
        store = self._store
        store._check_unchanged()
        what = f"layer {self._diff_id} ({self._member.path!r} in {store.path})"
        raw: BinaryIO = RangeReader(  # type: ignore[assignment]
            store.path, self._member.data_offset, self._member.size
        )
        if self._blob is not None and verify:
            raw = VerifyingReader(raw, self._blob, size=self._member.size, what=what)  # type: ignore[assignment]
        inflated = DecompressingReader(
            raw, self._kind, limit=store.limits.decompressed_size, what=what
        )
        if not verify:
            return io.BufferedReader(inflated, _CHUNK)
        verified = VerifyingReader(
            inflated, self._diff_id, size=self._size, what=what  # type: ignore[arg-type]
        )
        return io.BufferedReader(verified, _CHUNK)

    def file_range(self) -> Optional[FileRange]:
        return None

    def __repr__(self) -> str:
        return f"<{self._kind.value} archive layer {self._diff_id} at {self._member.data_offset}>"


ArchiveLayer = Union[_ArchiveLayer, _CompressedArchiveLayer]


class _FileSource:
    """:class:`ArchiveSource` over an archive file on disk."""

    def __init__(self, path: str, index: MemberIndex, limits: Limits) -> None:
        self.path = path
        self._index = index
        self.limits = limits

    @property
    def index(self) -> MemberIndex:
        return self._index

    def read_range(self, offset: int, length: int) -> bytes:
        with open_regular(self.path) as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise InvalidArchive(f"{self.path}: file ends inside a member")
        return data

    def read_small(self, member: TarMember, what: str) -> bytes:
        if member.size > self.limits.json_size:
            raise UnsafeArchive(
                f"{what}: {member.size} bytes is over the JSON limit of {self.limits.json_size}"
            )
        return self.read_range(member.data_offset, member.size)

    def diff_id(self, member: TarMember, what: str) -> Digest:
        head = self.read_range(member.data_offset, min(member.size, BLOCK_SIZE))
        kind = layer_compression(head)
        stream: BinaryIO = io.BufferedReader(
            RangeReader(self.path, member.data_offset, member.size), _CHUNK
        )
        if kind is not Compression.NONE:
            stream = DecompressingReader(  # type: ignore[assignment]
                stream, kind, limit=self.limits.decompressed_size, what=what
            )
        digester = Digester()
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        with stream:
            while True:
                got = readinto(stream, view)
                if not got:
                    break
                digester.update(view[:got])
        return digester.digest()


def index_archive(stream: BinaryIO, limits: Limits, *, seekable: bool) -> MemberIndex:
    """Read every member header of a tar stream into a checked :class:`MemberIndex`."""
    reader = TarReader(
        stream,
        seekable=seekable,
        max_extension_size=limits.extension_size,
        max_members=limits.members,
    )
    index = MemberIndex(limits.members)
    for member in reader:
        index.add(member)
    index.check_links()
    return index


class DockerArchiveStore(StoreTables[ArchiveLayer]):
    """A ``docker save`` archive file read in place: an image, layer and reference store.

    The archive is indexed once, here: every member header is checked as hostile input would
    be, ``manifest.json`` (or the legacy ``repositories``) is read, and every config is read
    and checked. Layers are not read until they are used: an uncompressed one is served as a
    byte range of the archive file (:meth:`Layer.file_range`), a compressed one is decompressed
    on the fly and verified against its diff ID. The file must not change while the store is in
    use; if it does, reads raise :class:`~tarexport.errors.StoreError`.
    """

    def __init__(
        self, path: Union[str, os.PathLike[str]], *, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.path = os.fspath(path)
        self.limits = limits
        try:
            # Read in place means seeked: a FIFO would hang here and could not be read anyway.
            with open_regular(self.path) as f:
                self._stat = self._identity(os.fstat(f.fileno()))
                head = f.read(BLOCK_SIZE)
                kind = layer_compression(head) if head else Compression.NONE
                if kind is not Compression.NONE:
                    raise InvalidArchive(
                        f"{self.path} is {kind.value}-compressed: an archive is read in place "
                        "only when uncompressed (decompress it, or load it into a store)"
                    )
                f.seek(0)
                index = index_archive(f, limits, seekable=True)
        except OSError as exc:
            raise StoreError(f"cannot read archive {self.path}: {exc.strerror or exc}") from exc
        source = _FileSource(self.path, index, limits)
        contents = read_archive(source)
        self.legacy = contents.legacy
        self._source = source
        StoreTables.__init__(self)
        self._order: list[Digest] = []
        for image in contents.images:
            self._add(source, image)

    @staticmethod
    def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _check_unchanged(self) -> None:
        try:
            current = self._identity(os.stat(self.path))
        except OSError as exc:
            raise StoreError(f"archive {self.path}: {exc.strerror or exc}") from exc
        if current != self._stat:
            raise StoreError(f"archive {self.path} changed since it was indexed")

    def _add(self, source: _FileSource, image: ArchiveImage) -> None:
        if image.id not in self._configs:
            self._order.append(image.id)
        self._configs[image.id] = image.config
        if image.parent is not None:
            self._parents[image.id] = image.parent
        for chain, diff_id, member, blob in zip(
            chain_ids(image.diff_ids), image.diff_ids, image.layers, image.blob_digests
        ):
            if chain in self._layers:
                continue
            head = source.read_range(member.data_offset, min(member.size, BLOCK_SIZE))
            kind = layer_compression(head)
            if kind is Compression.NONE:
                self._layers[chain] = _ArchiveLayer(self, diff_id, member)
            else:
                self._layers[chain] = _CompressedArchiveLayer(self, diff_id, member, kind, blob)
        for ref in image.references:
            # A later entry with the same tag takes it over, as loading them in order would.
            self._point(ref, image.id)

    # -- what the archive holds ---------------------------------------------------------

    def ref_names(self) -> dict[str, list[tuple[Digest, Optional[Named]]]]:
        """The ``org.opencontainers.image.ref.name`` values of an OCI ``index.json`` in the
        archive, each with the images (ID, full name) it is given to; ``{}`` without one."""
        if "index.json" not in self._source.index:
            return {}
        from .oci_archive import ref_names

        return ref_names(self._source)

    @property
    def image_ids(self) -> tuple[Digest, ...]:
        """Every image of the archive, in the order ``manifest.json`` lists them."""
        return tuple(self._order)

