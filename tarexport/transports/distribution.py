"""The OCI distribution protocol as pure values: what to ask a registry, and what it answered.

Nothing here does I/O (as in h11): the registry client builds its requests with these
functions and hands each response back to them to be interpreted. That keeps every rule of
the protocol — URLs, media types, auth challenges, upload offsets, error bodies, retry
delays, which hosts may speak plain HTTP — testable without a socket.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import attrs

from ..digest import Digest
from ..errors import (
    InvalidDigest,
    InvalidReference,
    RegistryAuthError,
    RegistryError,
    RegistryNotFound,
    RegistryRejected,
    RegistryUnavailable,
)
from ..reference import Named, parse_normalized_named

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "Challenge",
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "RegistryRef",
    "RetryPolicy",
    "Token",
    "basic_authorization",
    "error_from_response",
    "image_manifest_bytes",
    "next_offset",
    "parse_challenges",
    "parse_manifest",
    "parse_token_response",
    "plain_http_allowed",
    "registry_host",
    "retryable_status",
    "token_url",
    "upload_url",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

MANIFEST_LIMIT = 4 << 20
"""The largest manifest or config accepted (distribution refuses manifests over 4 MiB)."""

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

# -- naming -------------------------------------------------------------------------------


@attrs.frozen
class RegistryRef:
    """``HOST[:PORT]/REPO[:TAG|@DIGEST]``: where an image lives in a registry.

    ``named`` is the normalised reference (``busybox`` is ``docker.io/library/busybox``);
    ``registry`` is the host to connect to (Docker Hub's API host for ``docker.io``).
    """

    named: Named

    @classmethod
    def parse(cls, text: str) -> RegistryRef:
        """Parse ``docker://HOST/REPO:TAG`` (the ``docker:`` and ``//`` are optional)."""
        body = text.removeprefix("docker:")
        body = body.removeprefix("//")
        if not body:
            raise InvalidReference("invalid reference format: empty registry reference", text)
        return cls(parse_normalized_named(body))

    @property
    def domain(self) -> str:
        return self.named.domain

    @property
    def registry(self) -> str:
        return registry_host(self.named.domain)

    @property
    def repository(self) -> str:
        return self.named.path

    @property
    def tag(self) -> Optional[str]:
        return self.named.tag

    @property
    def digest(self) -> Optional[Digest]:
        return self.named.digest

    @property
    def reference(self) -> str:
        """What names the manifest in its URL: the digest if there is one, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    def scope(self, *actions: str) -> str:
        """A token scope: ``repository:library/busybox:pull,push``."""
        return f"repository:{self.repository}:{','.join(actions)}"

    def __str__(self) -> str:
        return "docker://" + str(self.named)


def registry_host(domain: str) -> str:
    """The host serving a domain's API: Docker Hub's is not ``docker.io`` itself."""
    return DOCKER_HUB_API if domain in (DOCKER_HUB, "index.docker.io") else domain


def _host_only(host: str) -> str:
    """``host`` without a port; ``[::1]:5000`` is ``::1``."""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (maybe with a port) names this machine: ``localhost``, 127/8, ``::1``."""
    name = _host_only(host).lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_allowed(host: str, insecure: Sequence[str] = ()) -> bool:
    """Whether ``host`` may be spoken to without TLS: loopback ones, as Docker allows, and
    exactly the hosts the user listed as insecure (by ``host`` or ``host:port``)."""
    return is_loopback(host) or host in insecure or _host_only(host) in insecure


# -- URLs ---------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="/:@")


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{_quote(repository)}/manifests/{_quote(reference)}"


def blob_path(repository: str, digest: Digest) -> str:
    return f"/v2/{_quote(repository)}/blobs/{digest}"


def uploads_path(repository: str, *, mount: Optional[Digest] = None, source: str = "") -> str:
    """``POST`` here starts an upload, or mounts ``mount`` from the repository ``source``."""
    path = f"/v2/{_quote(repository)}/blobs/uploads/"
    if mount is not None:
        query = urllib.parse.urlencode({"mount": str(mount), "from": source})
        path += "?" + query
    return path


def upload_url(base: str, location: str, *, digest: Optional[Digest] = None) -> str:
    """The absolute URL of an upload from its ``Location`` (relative ones are resolved against
    the request URL ``base``), with ``digest=`` added to finish it."""
    url = urllib.parse.urljoin(base, location)
    if digest is None:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.append(("digest", str(digest)))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def next_offset(range_header: Optional[str]) -> int:
    """The byte the registry expects next, from an upload's ``Range: 0-N`` (``None``: 0).

    distribution says ``0-0`` for an empty upload as well as for one holding one byte; it is
    read as empty (resending a byte is caught by the digest check, skipping one is not).
    """
    if not range_header:
        return 0
    match = re.fullmatch(r"\s*(?:bytes=)?0-(\d+)\s*", range_header)
    if match is None:
        raise RegistryError(f"the registry sent an unreadable upload range {range_header!r}")
    end = int(match.group(1))
    return end + 1 if end else 0


def content_range(start: int, length: int) -> str:
    """The ``Content-Range`` of a chunk (distribution's form: ``start-end``, end inclusive)."""
    return f"{start}-{start + length - 1}"


# -- authentication -----------------------------------------------------------------------


@attrs.frozen
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``Bearer realm="...",service="..."``."""

    scheme: str  # lower case
    params: Mapping[str, str] = attrs.field(factory=dict)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*,?')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge of a ``WWW-Authenticate`` header, as distribution's client reads it."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        match = _SCHEME.match(header, pos)
        if match is None:
            break
        scheme = match.group(1).lower()
        pos = match.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = _PARAM.match(header, pos)
            if param is None:
                break
            # A bare token followed by a space starts the next challenge, not a parameter.
            key = param.group(1).lower()
            quoted, plain = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
            params[key] = value
            pos = param.end()
        challenges.append(Challenge(scheme, params))
        while pos < len(header) and header[pos] in ", ":
            pos += 1
    return challenges


def basic_authorization(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def token_url(challenge: Challenge, scopes: Sequence[str], *, account: str = "") -> str:
    """Where to fetch a bearer token for ``scopes`` (the challenge's realm, with its service)."""
    realm = challenge.params.get("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryAuthError("the registry's token realm is not an http(s) URL")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    query.extend(("scope", scope) for scope in scopes)
    if account:
        query.append(("account", account))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@attrs.frozen
class Token:
    """A bearer token and how long it stays good (seconds, as the server said; 60 by default)."""

    token: str = attrs.field(repr=False)
    expires_in: int = 60


def parse_token_response(body: bytes) -> Token:
    """The token of a token server's JSON answer (``token``, or OAuth's ``access_token``)."""
    try:
        value = json.loads(body)
    except ValueError:
        raise RegistryAuthError("the token server's answer is not JSON") from None
    if not isinstance(value, dict):
        raise RegistryAuthError("the token server's answer is not a JSON object")
    token = value.get("token") or value.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryAuthError("the token server's answer holds no token")
    expires = value.get("expires_in")
    # Docker treats less than a minute as a minute.
    seconds = expires if isinstance(expires, int) and expires >= 60 else 60
    return Token(token, seconds)


# -- errors and retries -------------------------------------------------------------------


def _printable(text: str, limit: int = 200) -> str:
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_details(body: bytes) -> tuple[Optional[str], str]:
    """The first ``{"errors": [{"code", "message"}]}`` entry of an error body, if any."""
    try:
        value = json.loads(body)
    except ValueError:
        return None, ""
    errors = value.get("errors") if isinstance(value, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, ""
    first = errors[0]
    code = first.get("code")
    message = first.get("message")
    return (
        _printable(code, 60) if isinstance(code, str) else None,
        _printable(message) if isinstance(message, str) else "",
    )


def error_from_response(what: str, registry: str, status: int, body: bytes) -> RegistryError:
    """The one-line typed error for a failed request: ``what`` failed, the registry said why."""
    code, message = _error_details(body)
    said = ": ".join(part for part in (code and code.lower().replace("_", " "), message) if part)
    detail = said or f"HTTP {status}"
    text = f"{what}: {registry}: {detail}"
    if status == 401:
        return RegistryAuthError(f"{what}: {registry}: authentication required ({detail})",
                                 status=status, code=code)
    if status == 403:
        return RegistryAuthError(f"{what}: {registry}: access denied ({detail})",
                                 status=status, code=code)
    if status == 404:
        return RegistryNotFound(text, status=status, code=code)
    if status == 429 or status >= 500:
        return RegistryUnavailable(text, status=status, code=code)
    if 400 <= status < 500:
        return RegistryRejected(text, status=status, code=code)
    return RegistryError(text, status=status, code=code)


def retryable_status(status: int) -> bool:
    """Whether a response says "try again later": too many requests, or a server failure
    other than "not implemented" / "version not supported"."""
    return status in (408, 429) or (500 <= status < 600 and status not in (501, 505))


@attrs.frozen
class RetryPolicy:
    """How often, and for how long, to try a request again: bounded in count and in time.

    The delay doubles from ``base`` up to ``cap``; a ``Retry-After`` the registry sends is
    honoured within ``cap``. No attempt starts once ``deadline`` seconds have passed since the
    first one.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0
    deadline: float = 120.0

    def delay(self, attempt: int, retry_after: Optional[str] = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.cap)
        return float(min(self.base * (2 ** (attempt - 1)), self.cap))

    def allows(self, attempt: int, elapsed: float, delay: float) -> bool:
        """Whether try number ``attempt + 1`` may start after waiting ``delay`` more seconds."""
        return attempt < self.attempts and elapsed + delay < self.deadline


NO_RETRIES = RetryPolicy(attempts=1)
DEFAULT_RETRIES = RetryPolicy()


# -- manifests ----------------------------------------------------------------------------


@attrs.frozen
class Descriptor:
    """A content descriptor: what a manifest says about one blob (or one child manifest)."""

    media_type: str
    digest: Digest
    size: int
    platform: Optional[Mapping[str, Any]] = None
    annotations: Optional[Mapping[str, str]] = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": str(self.digest),
        }
        if self.platform:
            value["platform"] = dict(self.platform)
        if self.annotations:
            value["annotations"] = dict(self.annotations)
        return value


@attrs.frozen
class ImageManifest:
    """One image: its config and its layers, bottom to top."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@attrs.frozen
class ImageIndex:
    """A list of manifests, one per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def image_manifest_bytes(
    media_type: str, config: Descriptor, layers: Sequence[Descriptor],
    annotations: Optional[Mapping[str, str]] = None,
) -> bytes:
    """A manifest as ``docker push`` writes one (three-space indent for Docker's; compact
    for OCI), the field order of distribution's structs."""
    value: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                             "config": config.to_json(),
                             "layers": [layer.to_json() for layer in layers]}
    if annotations:
        value["annotations"] = dict(annotations)
    if media_type == DOCKER_MANIFEST:
        return json.dumps(value, indent=3).encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _digest_field(value: Any, what: str) -> Digest:
    if not isinstance(value, str):
        raise RegistryRejected(f"{what}: the digest is not a string")
    try:
        return Digest.parse(value)
    except InvalidDigest as exc:
        raise RegistryRejected(f"{what}: {exc}") from None


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise RegistryRejected(f"{what}: not a JSON object")
    media_type = value.get("mediaType", "")
    size = value.get("size")
    if not isinstance(media_type, str):
        raise RegistryRejected(f"{what}: the media type is not a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryRejected(f"{what}: the size is not a non-negative integer")
    platform = value.get("platform")
    annotations = value.get("annotations")
    return Descriptor(
        media_type,
        _digest_field(value.get("digest"), what),
        size,
        platform if isinstance(platform, dict) else None,
        annotations if isinstance(annotations, dict) else None,
    )


def parse_manifest(
    data: bytes, content_type: Optional[str], what: str
) -> Union[ImageManifest, ImageIndex]:
    """A manifest or index from a registry: hostile input, every field checked."""
    try:
        value = json.loads(data)
    except ValueError:
        raise RegistryRejected(f"{what}: the manifest is not JSON") from None
    if not isinstance(value, dict):
        raise RegistryRejected(f"{what}: the manifest is not a JSON object")
    media_type = value.get("mediaType") or (content_type or "").split(";")[0].strip()
    if not isinstance(media_type, str):
        raise RegistryRejected(f"{what}: the manifest's media type is not a string")
    if value.get("schemaVersion") != 2:
        raise RegistryRejected(
            f"{what}: unsupported manifest schema version {value.get('schemaVersion')!r} "
            "(only schema 2 manifests and indexes are read)"
        )
    if media_type in INDEX_TYPES or (not media_type and "manifests" in value):
        children = value.get("manifests")
        if not isinstance(children, list):
            raise RegistryRejected(f"{what}: the index has no manifest list")
        return ImageIndex(
            media_type or OCI_INDEX,
            tuple(_descriptor(c, f"{what}: manifest {i}") for i, c in enumerate(children)),
        )
    if media_type in IMAGE_MANIFEST_TYPES or (not media_type and "config" in value):
        layers = value.get("layers")
        if not isinstance(layers, list):
            raise RegistryRejected(f"{what}: the manifest has no layer list")
        return ImageManifest(
            media_type or OCI_MANIFEST,
            _descriptor(value.get("config"), f"{what}: config"),
            tuple(_descriptor(layer, f"{what}: layer {i}") for i, layer in enumerate(layers)),
        )
    raise RegistryRejected(f"{what}: unsupported manifest media type {media_type!r}")
