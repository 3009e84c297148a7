"""``docker-daemon:REF``: a Docker daemon over its Engine API, without the docker CLI.

The daemon is found as the docker CLI finds it: ``DOCKER_HOST`` (``unix:///path`` or
``tcp://host:port``, plain HTTP), else ``unix:///var/run/docker.sock``. The API version is
negotiated as the CLI does: the lower of the daemon's (``GET /_ping``) and ours.

- write: the archive is planned first (bad names fail before a byte goes out), then streamed
  into ``POST /images/load`` with its exact length; the archive never touches disk. The
  daemon's JSON message stream is read, and an error in it becomes :class:`DaemonError`
  carrying the daemon's text. A copy that fails half-way stops sending and closes the
  connection, so the daemon sees a truncated archive and registers nothing.
- read: ``GET /images/get?names=REF`` is streamed straight into the destination's store.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO, Optional

import attrs

from .. import profiles
from ..errors import DaemonError, DaemonUnavailable, InvalidTransport, OutputError
from ..profiles import Profile
from ..reference import Named, familiar_string
from ..save import SavePlan
from ..stores.protocols import ImageSink
from .archive import plan_archive
from .base import ArchiveStream, CopyOptions, CopyResult, Selection
from .names import TransportName, register
from .stores import latest_form

__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "DaemonDestination",
    "DaemonSource",
    "EngineClient",
    "install",
]

DEFAULT_HOST = "unix:///var/run/docker.sock"
API_VERSION = "1.41"
"""The newest Engine API version used; every call here exists since 1.24."""
MIN_API_VERSION = "1.24"
_ERROR_BODY_LIMIT = 1 << 16
_MESSAGE_LINE_LIMIT = 1 << 20
_SEND_CHUNK = 1 << 20
_UNPACK_ERROR = "Error unpacking image"


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the daemon's usual endpoint)."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EngineClient:
    """A minimal Docker Engine API client (``http.client`` only).

    ``host`` is a ``DOCKER_HOST`` value; by default the environment's, else the default
    socket. ``timeout`` bounds connecting and each read (``None``: wait as long as it takes,
    as a big load does).
    """

    def __init__(
        self,
        host: Optional[str] = None,
        *,
        environ: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.host = host or env.get("DOCKER_HOST", "").strip() or DEFAULT_HOST
        self.timeout = timeout
        scheme, _, rest = self.host.partition("://")
        if scheme == "unix" and rest:
            self._unix: Optional[str] = rest
            self._tcp: Optional[tuple[str, Optional[int]]] = None
        elif scheme in ("tcp", "http") and rest:
            parsed = urllib.parse.urlsplit(f"http://{rest}")
            self._unix = None
            self._tcp = (parsed.hostname or "localhost", parsed.port or 2375)
        else:
            raise InvalidTransport(self.host, "expected DOCKER_HOST as unix:///PATH or tcp://HOST:PORT")
        self._version: Optional[str] = None

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, self.timeout)
        assert self._tcp is not None
        return http.client.HTTPConnection(self._tcp[0], self._tcp[1], timeout=self.timeout)

    def _unavailable(self, exc: BaseException) -> DaemonUnavailable:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DaemonUnavailable(self.host, f"cannot connect: {reason or type(exc).__name__}")

    def api_version(self) -> str:
        """The negotiated API version (the daemon's, capped at :data:`API_VERSION`)."""
        if self._version is None:
            response, conn = self._send("GET", "/_ping", versioned=False)
            try:
                response.read(_ERROR_BODY_LIMIT)
                server = response.getheader("API-Version") or ""
            finally:
                conn.close()
            if not _version_tuple(server):
                raise DaemonUnavailable(self.host, "no API-Version in its /_ping answer")
            if _version_tuple(server) < _version_tuple(MIN_API_VERSION):
                raise DaemonError(self.host, f"API version {server} is older than "
                                  f"{MIN_API_VERSION}, the oldest supported")
            self._version = min(server, API_VERSION, key=_version_tuple)
        return self._version

    def _url(self, path: str, query: Optional[Mapping[str, Any]], versioned: bool) -> str:
        url = f"/v{self.api_version()}{path}" if versioned else path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        return url

    def _send(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, Any]] = None,
        *,
        versioned: bool = True,
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        url = self._url(path, query, versioned)
        conn = self._connect()
        try:
            conn.request(method, url, headers={"User-Agent": "tarexport"})
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._unavailable(exc) from exc
        self._check_status(response, conn)
        return response, conn

    def _check_status(
        self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection
    ) -> None:
        if response.status < 400:
            return
        try:
            body = response.read(_ERROR_BODY_LIMIT)
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            conn.close()
        raise DaemonError(self.host, _error_text(body, response), response.status)

    # -- calls ----------------------------------------------------------------------------

    def get_json(self, path: str, query: Optional[Mapping[str, Any]] = None) -> Any:
        response, conn = self._send("GET", path, query)
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable(exc) from exc
        finally:
            conn.close()
        try:
            return json.loads(data)
        except ValueError:
            raise DaemonError(self.host, f"{path}: the answer is not JSON") from None

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /images/{name}/json``: the daemon's view of one image."""
        found = self.get_json(f"/images/{urllib.parse.quote(name, safe='')}/json")
        if not isinstance(found, dict):
            raise DaemonError(self.host, f"inspect {name}: the answer is not an object")
        return found

    def save(self, names: Sequence[str]) -> BinaryIO:
        """``GET /images/get``: the archive of ``names`` as a stream (close it when done)."""
        response, conn = self._send("GET", "/images/get", {"names": list(names)})
        return _Response(response, conn, self.host)  # type: ignore[return-value]

    def load(self, plan: SavePlan, options: CopyOptions) -> list[str]:
        """Stream the archive ``plan`` into ``POST /images/load``; the daemon's lines back."""
        url = self._url("/images/load", {"quiet": "1"}, True)
        conn = self._connect()
        try:
            try:
                conn.putrequest("POST", url, skip_accept_encoding=True)
                conn.putheader("User-Agent", "tarexport")
                conn.putheader("Content-Type", "application/x-tar")
                conn.putheader("Content-Length", str(plan.total_size))
                conn.endheaders()
            except OSError as exc:
                raise self._unavailable(exc) from exc
            assert conn.sock is not None
            out: BinaryIO = conn.sock.makefile("wb", buffering=_SEND_CHUNK)  # type: ignore[assignment]
            try:
                plan.write(out, options.progress)
                out.flush()
            except OutputError as exc:
                # The daemon hung up early: its answer says why, when it gave one.
                self._answer_after_failure(conn, exc)
                raise
            finally:
                with contextlib.suppress(OSError):
                    out.close()
            try:
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable(exc) from exc
            self._check_status(response, conn)
            return self._messages(response)
        finally:
            conn.close()

    def _answer_after_failure(self, conn: http.client.HTTPConnection, exc: OutputError) -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            response = conn.getresponse()
            self._check_status(response, conn)
            self._messages(response)

    def _messages(self, response: http.client.HTTPResponse) -> list[str]:
        """The ``stream`` lines of a JSON message stream; an ``error`` in it raises."""
        lines: list[str] = []
        while True:
            try:
                raw = response.readline(_MESSAGE_LINE_LIMIT)
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable(exc) from exc
            if not raw:
                return lines
            raw = raw.strip()
            if not raw:
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                raise DaemonError(self.host, f"unreadable message: {raw[:200]!r}") from None
            if not isinstance(message, dict):
                continue
            error = message.get("error") or (message.get("errorDetail") or {}).get("message")
            if error:
                raise DaemonError(self.host, _one_line(str(error)))
            text = message.get("stream")
            if isinstance(text, str):
                for line in text.splitlines():
                    # The containerd image store registers an image whose layers do not
                    # apply, and says so only in a message line.
                    if line.startswith(_UNPACK_ERROR):
                        raise DaemonError(self.host, _one_line(line))
                    if line.strip():
                        lines.append(line)


class _Response:
    """An archive being read from the daemon; closing it closes the connection."""

    def __init__(
        self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection, host: str
    ) -> None:
        self.response = response
        self.conn = conn
        self.host = host

    def read(self, size: int = -1) -> bytes:
        try:
            return self.response.read(size if size >= 0 else None)
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonUnavailable(self.host, f"the archive stream broke: {exc}") from exc

    def readinto(self, buffer: Any) -> int:
        try:
            return self.response.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonUnavailable(self.host, f"the archive stream broke: {exc}") from exc

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.response.close()
        self.conn.close()

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_text(body: bytes, response: http.client.HTTPResponse) -> str:
    try:
        value = json.loads(body)
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return _one_line(value["message"])
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return _one_line(text) or f"HTTP {response.status} {response.reason}"


# -- the transport ------------------------------------------------------------------------


@attrs.frozen
class DaemonSource:
    """``docker-daemon:REF``: the image REF (a name or an ID) of a daemon."""

    name: str
    text: str
    client: EngineClient = attrs.field(factory=EngineClient)

    def describe(self) -> str:
        return self.text

    def open(self, stack: contextlib.ExitStack) -> ArchiveStream:
        self.client.inspect(self.name)  # "No such image: x" before any transfer
        # A repository alone is its latest tag, as the daemon resolves it for inspect; the
        # save endpoint would otherwise send every tag of the repository.
        latest = latest_form(self.name)
        name = self.name if latest is None else familiar_string(latest)
        stream = stack.enter_context(self.client.save([name]))
        return ArchiveStream(stream, (name,))


@attrs.frozen
class DaemonDestination:
    """``docker-daemon:REF``: load into a daemon, the image named REF."""

    reference: Optional[Named]
    text: str
    client: EngineClient = attrs.field(factory=EngineClient)
    profile: Profile = profiles.DEFAULT

    def describe(self) -> str:
        return self.text

    def sink(self, stack: contextlib.ExitStack) -> Optional[ImageSink]:
        return None

    def write(self, selection: Selection, options: CopyOptions) -> CopyResult:
        plan = plan_archive(selection, self.profile, options.verify)
        messages = self.client.load(plan, options)
        return CopyResult(selection.selected, tuple(messages))


def _source(name: TransportName) -> DaemonSource:
    assert name.reference is not None
    return DaemonSource(name.reference, name.text)


def _destination(name: TransportName) -> DaemonDestination:
    from .local import destination_reference

    return DaemonDestination(destination_reference(name), name.text)


def install() -> None:
    """Register ``docker-daemon:`` (idempotent)."""
    register("docker-daemon", source=_source, destination=_destination)
