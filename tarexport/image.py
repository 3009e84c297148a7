"""The image config: its raw bytes, kept verbatim, and the fields Docker decodes from them.

Docker never re-encodes a config: the archive's ``<id>.json`` is the stored bytes and the image
ID is their sha256. What it does re-encode are the legacy fields (``V1Image``) it copies into
each layer's v1 ``json``, so those are decoded here exactly as ``json.Unmarshal`` fills moby's
``image.Image`` (see :mod:`tarexport.gojson`): the strings as Go holds them, ``null`` kept apart
from ``[]`` and ``{}``, unknown keys dropped, keys matched case-insensitively, and later
duplicates overwriting or merging into earlier ones.

The decoded types are a superset of the Docker releases in :mod:`tarexport.profiles`
(``variant`` and HealthConfig's ``StartInterval`` included); the encoders leave out what a
profile's release did not have.
"""

from __future__ import annotations

from typing import Any, Optional

import attrs

from . import gojson
from .digest import Digest
from .errors import InvalidDigest, InvalidImageConfig, InvalidJSON, InvalidTimestamp
from .gojson import Field, Int, Map, MapOf, Ptr, Slice, String, StrSlice, Struct
from .gotime import GoTime
from .profiles import Profile

__all__ = ["ContainerConfig", "HealthConfig", "History", "Image", "V1Image"]

StrTuple = Optional[tuple[str, ...]]


# -- value types ---------------------------------------------------------------------------


@attrs.frozen
class HealthConfig:
    """``container.HealthConfig``; durations are Go ``time.Duration`` nanoseconds."""

    test: StrTuple = None
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.frozen
class ContainerConfig:
    """``container.Config`` as an image carries it (``config`` and ``container_config``).

    ``None`` is Go's nil (written ``null``, or left out where the field is ``omitempty``);
    an empty tuple or :class:`~tarexport.gojson.Map` is an empty slice or map (``[]``, ``{}``).
    ``exposed_ports`` and ``volumes`` are sets: every value is an empty ``Map``.
    """

    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: Optional[Map[Any]] = None
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: StrTuple = None
    cmd: StrTuple = None
    healthcheck: Optional[HealthConfig] = None
    args_escaped: bool = False
    image: str = ""
    volumes: Optional[Map[Any]] = None
    working_dir: str = ""
    entrypoint: StrTuple = None
    network_disabled: bool = False
    mac_address: str = ""
    on_build: StrTuple = None
    labels: Optional[Map[str]] = None
    stop_signal: str = ""
    stop_timeout: Optional[int] = None
    shell: StrTuple = None

    def to_go(self, profile: Profile) -> dict[str, Any]:
        """The ordered fields ``json.Marshal`` writes for this config under ``profile``."""
        result: dict[str, Any] = CONFIG_TYPE.encode(self, _features(profile))
        return result


@attrs.frozen
class History:
    """One ``history`` entry of an image config (``created`` is ``None`` when never set)."""

    created: Optional[GoTime] = None
    author: str = ""
    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False


_ZERO_CONFIG = ContainerConfig()


@attrs.frozen
class V1Image:
    """moby's ``image.V1Image``: the legacy image fields, and the body of a v1 ``json`` file.

    ``created`` and ``created_value`` are the two ways Docker has held the config's
    ``created``: as a pointer since Docker 25 (``None`` when absent or ``null``, written
    ``null``) and as a ``time.Time`` value before (Go's zero time when absent; a ``null``
    leaves the previous value). They differ only when ``created`` is missing or ``null``.

    Build one with :meth:`Image.v1` (a top layer) or :meth:`intermediate` (lower layers);
    :meth:`to_go` gives the fields a profile's Docker writes, in Go's order.
    """

    id: str = ""
    parent: str = ""
    comment: str = ""
    created: Optional[GoTime] = None
    created_value: GoTime = GoTime.ZERO
    container: str = ""
    container_config: ContainerConfig = _ZERO_CONFIG
    docker_version: str = ""
    author: str = ""
    config: Optional[ContainerConfig] = None
    architecture: str = ""
    variant: str = ""
    os: str = ""
    size: int = 0

    @classmethod
    def intermediate(cls, profile: Profile) -> V1Image:
        """The empty V1Image Docker hashes and writes for every layer below the top one.

        Its ``created`` is the Unix epoch in the daemon's zone (``profile.tz_offset``), or
        Go's zero time for Docker before 17.04 (``profile.zero_created_intermediate``).
        """
        if profile.zero_created_intermediate:
            created = GoTime.ZERO
        else:
            created = GoTime.from_unix(0, 0, profile.tz_offset)
        return cls(created=created, created_value=created)

    def to_go(self, profile: Profile) -> dict[str, Any]:
        """The fields ``json.Marshal(v1Image)`` writes under ``profile``, in struct order.

        ``id``, ``parent``, ``comment``, ``container``, ``docker_version``, ``author``,
        ``architecture``, ``variant``, ``os`` and ``Size`` are left out when empty,
        ``config`` when nil; ``created`` and ``container_config`` are always written.
        The values are ready for :func:`gojson.dumps` (the all-zero container config of
        lower layers comes already encoded, as a :class:`gojson.Raw`).
        """
        features = _features(profile)
        out: dict[str, Any] = {}
        if self.id:
            out["id"] = self.id
        if self.parent:
            out["parent"] = self.parent
        if self.comment:
            out["comment"] = self.comment
        if profile.created_nullable:
            out["created"] = None if self.created is None else self.created.format()
        else:
            out["created"] = self.created_value.format()
        if self.container:
            out["container"] = self.container
        out["container_config"] = _config_json(self.container_config, profile)
        if self.docker_version:
            out["docker_version"] = self.docker_version
        if self.author:
            out["author"] = self.author
        if self.config is not None:
            out["config"] = CONFIG_TYPE.encode(self.config, features)
        if self.architecture:
            out["architecture"] = self.architecture
        if self.variant and profile.variant_in_v1:
            out["variant"] = self.variant
        if self.os:
            out["os"] = self.os
        if self.size:
            out["Size"] = self.size
        return out


def _features(profile: Profile) -> frozenset[str]:
    """Optional fields a profile's Docker has."""
    return _FEATURES[profile.start_interval]


_FEATURES: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset({"start_interval"}))
_ZERO_CONFIG_JSON: dict[tuple[bool, bool], gojson.Raw] = {}


def _config_json(config: ContainerConfig, profile: Profile) -> Any:
    """A container config for encoding; the all-zero one (every lower layer's) is cached."""
    if config is not _ZERO_CONFIG:
        return CONFIG_TYPE.encode(config, _features(profile))
    key = (profile.start_interval, profile.go_short_escapes)
    cached = _ZERO_CONFIG_JSON.get(key)
    if cached is None:
        encoded = CONFIG_TYPE.encode(config, _features(profile))
        cached = gojson.Raw(gojson.dumps(encoded, short_escapes=profile.go_short_escapes))
        _ZERO_CONFIG_JSON[key] = cached
    return cached


# -- Go types: what json.Unmarshal fills -----------------------------------------------------


class _TimeType(gojson.GoType):
    """``time.Time`` (and ``*time.Time``) as Go 1.19's ``Time.UnmarshalJSON`` reads it.

    The token is parsed as written, quotes included, so escapes or any non-string value
    fail. The value is what a ``time.Time`` field holds (``null`` leaves it alone), with
    ``None`` standing for the zero time never set. With ``both`` it is a ``(value, pointer)``
    pair, the pointer being what a ``*time.Time`` holds (``null`` makes it nil).
    """

    name = "time.Time"

    def __init__(self, both: bool) -> None:
        self.both = both

    def zero(self) -> Any:
        return (GoTime.ZERO, None) if self.both else None

    def decode(self, node: gojson.Node, current: Any, dec: gojson.Decoder, path: str) -> Any:
        if node is None:
            return (current[0], None) if self.both else current
        if not isinstance(node, gojson.JSONString):
            raise dec.error(f"cannot parse {_token(node)} as a time", path)
        raw = dec.raw(node)
        try:
            parsed = GoTime.parse(raw[1:-1])
        except InvalidTimestamp as error:
            raise dec.error(error.message, path) from None
        return (parsed, parsed) if self.both else parsed


class _Ignored(gojson.GoType):
    """A field older Docker releases do not know: a value of the wrong type is dropped.

    Docker before 25 drops ``StartInterval`` as an unknown key without looking at it, so a
    config it loads may hold anything there; the field keeps its previous value then.
    """

    def __init__(self, elem: gojson.GoType) -> None:
        self.elem = elem
        self.name = elem.name

    def zero(self) -> Any:
        return self.elem.zero()

    def decode(self, node: gojson.Node, current: Any, dec: gojson.Decoder, path: str) -> Any:
        try:
            return self.elem.decode(node, current, dec, path)
        except InvalidJSON:
            return current

    def freeze(self, value: Any) -> Any:
        return self.elem.freeze(value)

    def encode(self, value: Any, features: frozenset[str] = frozenset()) -> Any:
        return self.elem.encode(value, features)

    def is_empty(self, value: Any) -> bool:
        return self.elem.is_empty(value)


def _token(node: gojson.Node) -> str:
    if isinstance(node, gojson.JSONNumber):
        return node.text
    if isinstance(node, gojson.JSONObject):
        return "{...}"
    if isinstance(node, gojson.JSONArray):
        return "[...]"
    return "true" if node else "false"


_DURATION = Int("time.Duration")
_INT = Int("int")
_SET = MapOf(gojson.EmptyStruct)
_STRINGS = Slice(String)

HEALTH_TYPE = Struct(
    "container.HealthConfig",
    [
        Field("Test", "test", _STRINGS, omitempty=True),
        Field("Interval", "interval", _DURATION, omitempty=True),
        Field("Timeout", "timeout", _DURATION, omitempty=True),
        Field("StartPeriod", "start_period", _DURATION, omitempty=True),
        Field(
            "StartInterval",
            "start_interval",
            _Ignored(_DURATION),
            omitempty=True,
            only_with="start_interval",
        ),
        Field("Retries", "retries", _INT, omitempty=True),
    ],
    HealthConfig,
)
"""Go's ``container.HealthConfig`` (``StartInterval`` is written only by Docker 25+)."""

CONFIG_TYPE = Struct(
    "container.Config",
    [
        Field("Hostname", "hostname", String),
        Field("Domainname", "domainname", String),
        Field("User", "user", String),
        Field("AttachStdin", "attach_stdin", gojson.Bool),
        Field("AttachStdout", "attach_stdout", gojson.Bool),
        Field("AttachStderr", "attach_stderr", gojson.Bool),
        Field("ExposedPorts", "exposed_ports", _SET, omitempty=True),
        Field("Tty", "tty", gojson.Bool),
        Field("OpenStdin", "open_stdin", gojson.Bool),
        Field("StdinOnce", "stdin_once", gojson.Bool),
        Field("Env", "env", _STRINGS),
        Field("Cmd", "cmd", StrSlice),
        Field("Healthcheck", "healthcheck", Ptr(HEALTH_TYPE), omitempty=True),
        Field("ArgsEscaped", "args_escaped", gojson.Bool, omitempty=True),
        Field("Image", "image", String),
        Field("Volumes", "volumes", _SET),
        Field("WorkingDir", "working_dir", String),
        Field("Entrypoint", "entrypoint", StrSlice),
        Field("NetworkDisabled", "network_disabled", gojson.Bool, omitempty=True),
        Field("MacAddress", "mac_address", String, omitempty=True),
        Field("OnBuild", "on_build", _STRINGS),
        Field("Labels", "labels", MapOf(String)),
        Field("StopSignal", "stop_signal", String, omitempty=True),
        Field("StopTimeout", "stop_timeout", Ptr(_INT), omitempty=True),
        Field("Shell", "shell", StrSlice, omitempty=True),
    ],
    ContainerConfig,
)
"""Go's ``container.Config``, same fields and order in Docker 1.13 to 28."""

_HISTORY_TYPE = Struct(
    "image.History",
    [
        Field("created", "created", _TimeType(both=False)),
        Field("author", "author", String),
        Field("created_by", "created_by", String),
        Field("comment", "comment", String),
        Field("empty_layer", "empty_layer", gojson.Bool),
    ],
    History,
)

_ROOTFS_TYPE = Struct(
    "image.RootFS",
    [Field("type", "type", String), Field("diff_ids", "diff_ids", _STRINGS)],
)

# image.Image with its embedded V1Image flattened, in Go's field order. V1Image's own
# "parent" is shadowed by Image's, so a config's "parent" never reaches the V1Image.
IMAGE_TYPE = Struct(
    "image.Image",
    [
        Field("id", "id", String),
        Field("comment", "comment", String),
        Field("created", "created", _TimeType(both=True)),
        Field("container", "container", String),
        Field("container_config", "container_config", CONFIG_TYPE),
        Field("docker_version", "docker_version", String),
        Field("author", "author", String),
        Field("config", "config", Ptr(CONFIG_TYPE)),
        Field("architecture", "architecture", String),
        Field("variant", "variant", String),
        Field("os", "os", String),
        Field("Size", "size", Int("int64")),
        Field("parent", "parent", String),
        Field("rootfs", "rootfs", Ptr(_ROOTFS_TYPE)),
        Field("history", "history", Slice(_HISTORY_TYPE)),
        Field("os.version", "os_version", String),
        Field("os.features", "os_features", _STRINGS),
    ],
)
"""Go's ``image.Image`` as ``image.NewFromJSON`` decodes a config."""


# -- the image -------------------------------------------------------------------------------


@attrs.frozen
class Image:
    """An image config: the exact bytes (``raw``), its ID, and the fields Docker decodes.

    ``history`` and ``os_features`` are empty tuples when absent or ``null``.
    """

    raw: bytes = attrs.field(repr=False)
    id: Digest
    v1: V1Image
    rootfs_type: str
    diff_ids: tuple[Digest, ...]
    history: tuple[History, ...] = ()
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Image:
        """Decode a config as ``image.NewFromJSON`` does; the bytes are kept as they are.

        Raises :class:`~tarexport.errors.InvalidImageConfig`: with ``offset`` (Go's byte
        offset) when the bytes are not JSON, with ``field`` when a value has a type Docker
        cannot store (e.g. a float where Go has an integer), when ``rootfs`` is missing
        (Docker's ``invalid image JSON, no RootFS key``) or a diff ID is not a digest.
        """
        raw = bytes(raw)
        try:
            fields = gojson.unmarshal(raw, IMAGE_TYPE)
        except InvalidJSON as error:
            where = f" (at byte offset {error.offset})" if error.offset is not None else ""
            raise InvalidImageConfig(
                f"invalid image config: {error.message}{where}",
                field=error.field,
                offset=error.offset,
            ) from None
        rootfs = fields["rootfs"]
        if rootfs is None:
            raise InvalidImageConfig("invalid image JSON, no RootFS key", field="rootfs")
        diff_ids = []
        for i, text in enumerate(rootfs["diff_ids"] or ()):
            try:
                diff_ids.append(Digest.parse(text))
            except InvalidDigest as error:
                field = f"rootfs.diff_ids[{i}]"
                raise InvalidImageConfig(
                    f"invalid image config: {field}: {error.message}: {text!r}", field=field
                ) from None
        value, pointer = fields["created"]
        v1 = V1Image(
            id=fields["id"],
            comment=fields["comment"],
            created=pointer,
            created_value=value,
            container=fields["container"],
            container_config=fields["container_config"],
            docker_version=fields["docker_version"],
            author=fields["author"],
            config=fields["config"],
            architecture=fields["architecture"],
            variant=fields["variant"],
            os=fields["os"],
            size=fields["size"],
        )
        return cls(
            raw=raw,
            id=Digest.from_bytes(raw),
            v1=v1,
            rootfs_type=rootfs["type"],
            diff_ids=tuple(diff_ids),
            history=fields["history"] or (),
            os_version=fields["os_version"],
            os_features=fields["os_features"] or (),
        )

    # The V1Image fields, for convenience.

    @property
    def created(self) -> Optional[GoTime]:
        """``created``, or ``None`` when it is absent or ``null``."""
        return self.v1.created

    @property
    def created_value(self) -> GoTime:
        """``created`` as Docker before 25 holds it: Go's zero time when it is absent."""
        return self.v1.created_value

    @property
    def os(self) -> str:
        return self.v1.os

    @property
    def architecture(self) -> str:
        return self.v1.architecture

    @property
    def variant(self) -> str:
        return self.v1.variant

    @property
    def config(self) -> Optional[ContainerConfig]:
        return self.v1.config

    @property
    def container_config(self) -> ContainerConfig:
        return self.v1.container_config

    @property
    def author(self) -> str:
        return self.v1.author

    @property
    def comment(self) -> str:
        return self.v1.comment

    @property
    def docker_version(self) -> str:
        return self.v1.docker_version

    @property
    def container(self) -> str:
        return self.v1.container

    @property
    def size(self) -> int:
        return self.v1.size

    def check_layer_count(self, count: int) -> None:
        """Raise unless ``count`` layers were given for this config's diff IDs."""
        if count != len(self.diff_ids):
            raise InvalidImageConfig(
                f"image {self.id}: {count} layers given for "
                f"{len(self.diff_ids)} diff IDs in rootfs",
                field="rootfs.diff_ids",
            )
