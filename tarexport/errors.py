"""The exception hierarchy: every error tarexport raises is a :class:`TarexportError`.

Messages are one line and name the bad input. Where Docker has a message for the same
condition, ours contains Docker's text verbatim so that tools matching on it keep working.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "AmbiguousReference",
    "ArchiveDigestMismatch",
    "BuildError",
    "ConnectionFailed",
    "DaemonError",
    "DaemonUnavailable",
    "EmptyExport",
    "ImageNotFound",
    "InvalidArchive",
    "InvalidBuildOption",
    "InvalidDigest",
    "InvalidImageConfig",
    "InvalidJSON",
    "InvalidLayerEntry",
    "InvalidReference",
    "InvalidTimestamp",
    "InvalidTransport",
    "LayerDigestMismatch",
    "LayerIntegrityError",
    "LayerNotFound",
    "LayerSizeMismatch",
    "NameConflict",
    "OutputError",
    "PlatformNotFound",
    "ReferenceNotFound",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFound",
    "RegistryRejected",
    "RegistryUnavailable",
    "SourceChanged",
    "StoreError",
    "StoreWriteError",
    "TarHeaderError",
    "TarexportError",
    "UnsafeArchive",
    "UnsupportedCompression",
]


class TarexportError(Exception):
    """Root of every error raised by tarexport."""


# -- values -------------------------------------------------------------------------------


class InvalidDigest(TarexportError, ValueError):
    """A digest string is malformed; ``str()`` is go-digest's message."""

    def __init__(self, message: str, digest: str) -> None:
        super().__init__(message)
        self.message = message
        self.input = digest


class InvalidReference(TarexportError, ValueError):
    """An image reference does not parse; ``str()`` is Docker's own message."""

    def __init__(self, message: str, reference: str) -> None:
        super().__init__(message)
        self.message = message
        self.input = reference


class InvalidImageConfig(TarexportError, ValueError):
    """An image config cannot be decoded the way Docker decodes it."""

    def __init__(
        self, message: str, *, field: Optional[str] = None, offset: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.offset = offset


class InvalidJSON(TarexportError, ValueError):
    """Bytes Go's ``encoding/json`` refuses: bad syntax (``offset``) or a wrong type (``field``)."""

    def __init__(
        self, message: str, *, field: Optional[str] = None, offset: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.offset = offset


class InvalidTimestamp(TarexportError, ValueError):
    """A timestamp Go's ``time.Parse(time.RFC3339, ...)`` refuses."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.message = message
        self.input = text


# -- resolving names ----------------------------------------------------------------------


class ImageNotFound(TarexportError, LookupError):
    """No image matches a name or ID (``No such image: X``)."""

    def __init__(self, name: str, message: Optional[str] = None) -> None:
        super().__init__(message or f"No such image: {name}")
        self.name = name


class ReferenceNotFound(TarexportError, LookupError):
    """A tag or digest reference is not in the reference store."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"reference does not exist: {reference}")
        self.reference = reference


class AmbiguousReference(TarexportError, LookupError):
    """A short ID prefix matches more than one image."""

    def __init__(self, prefix: str) -> None:
        super().__init__(f"ambiguous digest string: {prefix}")
        self.prefix = prefix


class LayerNotFound(TarexportError, LookupError):
    """A layer store has no layer for a chain ID."""

    def __init__(self, chain_id: str) -> None:
        super().__init__(f"layer does not exist: {chain_id}")
        self.chain_id = chain_id


class EmptyExport(TarexportError):
    """An image has no layers and the profile refuses such images, as Docker does."""

    def __init__(self, image_id: str) -> None:
        super().__init__(f"empty export - not implemented: image {image_id} has no layers")
        self.image_id = image_id


class PlatformNotFound(TarexportError, LookupError):
    """An image index has no manifest for the requested platform."""


# -- writing ------------------------------------------------------------------------------


class LayerIntegrityError(TarexportError):
    """A layer's bytes are not what its store or image config declared."""


class LayerDigestMismatch(LayerIntegrityError):
    """A layer's content does not hash to its diff ID."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class LayerSizeMismatch(LayerIntegrityError):
    """A layer yielded more or fewer bytes than its store declared."""

    def __init__(self, what: str, expected: int, actual: int, *, at_least: bool = False) -> None:
        got = f"at least {actual}" if at_least else str(actual)
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {got}")
        self.expected = expected
        self.actual = actual


class OutputError(TarexportError, OSError):
    """The output stream failed (closed pipe, full disk, ...); the archive is incomplete."""


class TarHeaderError(TarexportError, ValueError):
    """A tar header cannot be written as Go's ``archive/tar`` would (bad name, size, type...)."""


# -- reading ------------------------------------------------------------------------------


class StoreError(TarexportError):
    """A store's on-disk data is missing, malformed or cannot be written."""


class UnsupportedCompression(StoreError):
    """A blob uses a compression that this installation cannot read."""


class InvalidArchive(TarexportError, ValueError):
    """An archive is malformed: not a tar, truncated, or its manifest is unusable."""


class UnsafeArchive(InvalidArchive):
    """An archive tries something hostile (path escape, link loop, bomb, ...)."""


class ArchiveDigestMismatch(LayerDigestMismatch, InvalidArchive):
    """A blob of an archive being loaded does not hash to the digest that names it."""


class StoreWriteError(StoreError, OSError):
    """Writing into a store failed: a full disk, a file or a directory in the way, ...

    ``str()`` names the path; ``errno``, ``strerror`` and ``filename`` are the failure's own.
    """

    @classmethod
    def of(cls, exc: OSError, path: str) -> StoreWriteError:
        """The error for ``exc``, raised while writing at ``path`` (or the file it names)."""
        where = exc.filename if exc.filename is not None else path
        error = cls(f"cannot write {where}: {exc.strerror or exc}")
        error.errno, error.strerror, error.filename = exc.errno, exc.strerror, where
        return error

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not OSError's "[Errno N] ..." form


# -- transports ---------------------------------------------------------------------------


class InvalidTransport(TarexportError, ValueError):
    """An image location (``oci:DIR:REF``, ``docker-daemon:REF``...) cannot be used."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r}: {reason}")
        self.input = text
        self.reason = reason


class DaemonError(TarexportError):
    """A Docker daemon refused a request; ``message`` is the daemon's own text.

    ``status`` is the HTTP status (``None`` when the error came in the body of a 200 reply,
    as ``POST /images/load`` reports a broken archive).
    """

    def __init__(self, host: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"docker daemon at {host}: {message}")
        self.host = host
        self.message = message
        self.status = status


class DaemonUnavailable(DaemonError):
    """No Docker daemon answers at the host (no socket, refused, not an Engine API)."""


class NameConflict(StoreError):
    """A store names images ambiguously: two names of one descriptor, or one name twice."""


# -- registries ---------------------------------------------------------------------------


class RegistryError(TarexportError):
    """A registry refused or failed a request; ``str()`` names the registry and what failed.

    ``status`` is the HTTP status when there was a response; ``code`` the registry's error code
    (``BLOB_UNKNOWN``, ``MANIFEST_INVALID``, ...) when it sent one. Never holds a credential.
    """

    def __init__(
        self, message: str, *, status: Optional[int] = None, code: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class RegistryAuthError(RegistryError):
    """The registry wants credentials it was not given, or refused the ones it was given."""


class RegistryNotFound(RegistryError, LookupError):
    """The repository, tag, manifest or blob asked for is not in the registry."""


class RegistryRejected(RegistryError, ValueError):
    """The registry refused what was sent (an invalid manifest, a blob it will not take)."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, or kept failing until the retries ran out."""


class ConnectionFailed(TarexportError, OSError):
    """No HTTP response came: the connection was refused, dropped, timed out or TLS failed."""


class LayerChanged(LayerIntegrityError):
    """A layer's file was written or replaced after the save was planned, or while copied."""


# -- building -----------------------------------------------------------------------------


class BuildError(TarexportError):
    """An image or layer cannot be built from what was given."""


class InvalidLayerEntry(BuildError, ValueError):
    """A layer entry is unusable: a path escaping the image root, a name that cannot be
    encoded, a duplicate, a source that is not what it claims. ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path!r}: {reason}")
        self.path = path
        self.reason = reason


class SourceChanged(BuildError):
    """A source file changed, grew, shrank or vanished between planning and writing."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path!r} {reason} while the layer was being written")
        self.path = path
        self.reason = reason


class InvalidBuildOption(BuildError, ValueError):
    """A config value or build option is malformed (``option`` names it)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
