"""The one narrow HTTP seam: a request value in, a streaming response out.

:class:`HTTPTransport` wraps :mod:`http.client` (keep-alive connections per host, request
bodies streamed from bytes, files or iterables, TLS by :mod:`ssl`). :class:`MockTransport`
answers from a function instead of a socket, for tests of code that talks HTTP, as httpx's
``MockTransport`` does. Nothing above this module imports :mod:`http.client`.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Callable, Optional, Union

import attrs
from typing_extensions import Protocol

from ..errors import ConnectionFailed

__all__ = [
    "Body",
    "HTTPTransport",
    "MockTransport",
    "Request",
    "Response",
    "Transport",
]

Body = Union[None, bytes, BinaryIO, Iterable[bytes]]
"""A request body: bytes, a readable stream (sent to its end), or an iterable of chunks."""

BLOCK = 1 << 20  # bytes per socket write when a body is streamed


@attrs.frozen
class Request:
    """One HTTP request. ``url`` is absolute; ``headers`` keep their order."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=lambda h: repr(
        tuple((k, "<hidden>" if k.lower() == "authorization" else v) for k, v in h)))
    body: Body = attrs.field(default=None, eq=False, repr=False)

    def header(self, name: str) -> Optional[str]:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


class Response:
    """A response whose body is read as a stream (``read``/``readinto``), then ``close``\\ d.

    ``headers`` are (name, value) pairs as received; :meth:`header` finds the first.
    """

    def __init__(
        self,
        status: int,
        headers: Sequence[tuple[str, str]],
        stream: BinaryIO,
        *,
        reason: str = "",
        url: str = "",
        on_close: Optional[Callable[[bool], None]] = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = tuple(headers)
        self.url = url
        self._stream = stream
        self._on_close = on_close
        self._finished = False
        self.closed = False

    @classmethod
    def from_bytes(
        cls, status: int, headers: Optional[Mapping[str, str]] = None, body: bytes = b""
    ) -> Response:
        """A complete response held in memory (what a :class:`MockTransport` handler returns)."""
        pairs = list((headers or {}).items())
        if not any(k.lower() == "content-length" for k, _ in pairs):
            pairs.append(("Content-Length", str(len(body))))
        return cls(status, pairs, io.BytesIO(body))

    def header(self, name: str) -> Optional[str]:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n) if n >= 0 else self._stream.read()
        if not data or n < 0:
            self._finished = True
        return data

    def readinto(self, buffer: Any) -> int:
        got = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        if not got:
            self._finished = True
        return got or 0

    def read_limited(self, limit: int) -> bytes:
        """The whole body if it is at most ``limit`` bytes, else the first ``limit + 1``."""
        data = self._stream.read(limit + 1)
        if len(data) <= limit:
            self._finished = True
        return data

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._stream.close()
        finally:
            if self._on_close is not None:
                self._on_close(self._finished)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport(Protocol):
    """Anything that sends a :class:`Request` and returns its :class:`Response`.

    Raises :class:`~tarexport.errors.ConnectionFailed` when no response came (refused,
    reset, timed out, TLS failed); any response, whatever its status, is returned.
    """

    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        data = stream.read(BLOCK)
        if not data:
            return
        yield data


class HTTPTransport:
    """HTTP/1.1 over :mod:`http.client`, one keep-alive connection pool per host.

    ``verify=False`` turns certificate checks off (for registries the user named insecure).
    Safe to share between threads: each request takes a connection of its own.
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        verify: bool = True,
    ) -> None:
        self.timeout = timeout
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
            if not verify:
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        self.ssl_context = ssl_context
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _connect(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop(), True
        if scheme == "https":
            return http.client.HTTPSConnection(
                netloc, timeout=self.timeout, context=self.ssl_context, blocksize=BLOCK
            ), False
        return http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=BLOCK), False

    def _release(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    def send(self, request: Request) -> Response:
        parts = urllib.parse.urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConnectionFailed(f"not an http(s) URL: {parts.scheme}://{parts.netloc}")
        key = (parts.scheme, parts.netloc)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        replayable = request.body is None or isinstance(request.body, (bytes, bytearray))
        while True:
            conn, reused = self._connect(*key)
            failure = None
            try:
                response = self._exchange(conn, request, target)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A kept-alive connection the server closed meanwhile fails on first use;
                # a fresh one is tried when the request can be sent again as it was.
                if reused and replayable and _stale(exc):
                    continue
                failure = _describe(exc, parts.netloc)
            if failure is not None:
                # Raised outside the handler: a broken pipe to a server is no broken pipe
                # of this process's output, and must not read as one.
                raise ConnectionFailed(failure)
            break

        stream = _SafeStream(response, parts.netloc)

        def on_close(finished: bool) -> None:
            # Reusable only once the body was read to its end (http.client then closes it).
            if (finished or stream.exhausted) and not response.will_close:
                self._release(key, conn)
            else:
                conn.close()

        return Response(
            response.status,
            response.getheaders(),
            stream,  # type: ignore[arg-type]
            reason=response.reason,
            url=request.url,
            on_close=on_close,
        )

    @staticmethod
    def _exchange(
        conn: http.client.HTTPConnection, request: Request, target: str
    ) -> http.client.HTTPResponse:
        headers = dict(request.headers)
        body: Any = request.body
        chunked = False
        if body is not None and not isinstance(body, (bytes, bytearray)):
            if request.header("Content-Length") is None:
                chunked = True
                headers["Transfer-Encoding"] = "chunked"
            if hasattr(body, "read"):
                body = _chunks(body)
        conn.putrequest(request.method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if isinstance(body, (bytes, bytearray)):
            if request.header("Content-Length") is None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(bytes(body) if body else None)
        elif body is None:
            if request.method in ("POST", "PUT", "PATCH") and request.header(
                "Content-Length"
            ) is None:
                conn.putheader("Content-Length", "0")
            conn.endheaders()
        else:
            conn.endheaders()
            for chunk in body:
                if not chunk:
                    continue
                if chunked:
                    conn.send(b"%x\r\n" % len(chunk))
                    conn.send(chunk)
                    conn.send(b"\r\n")
                else:
                    conn.send(chunk)
            if chunked:
                conn.send(b"0\r\n\r\n")
        return conn.getresponse()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _stale(exc: BaseException) -> bool:
    return isinstance(
        exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
    )


def _describe(exc: BaseException, netloc: str) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"{netloc}: TLS failed: {exc.reason or exc}"
    if isinstance(exc, socket.timeout):
        return f"{netloc}: timed out"
    if isinstance(exc, http.client.RemoteDisconnected):
        return f"{netloc}: the connection was closed without a response"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{netloc}: {exc.strerror}"
    return f"{netloc}: {type(exc).__name__}: {exc}".rstrip(": ")


class _SafeStream:
    """A response body whose read failures (a dropped connection) are ``ConnectionFailed``."""

    def __init__(self, response: http.client.HTTPResponse, netloc: str) -> None:
        self._response = response
        self._netloc = netloc
        self.exhausted = False

    def read(self, n: int = -1) -> bytes:
        failure = ""
        try:
            return self._response.read(n) if n >= 0 else self._response.read()
        except (OSError, http.client.HTTPException) as exc:
            failure = _describe(exc, self._netloc)
        raise ConnectionFailed(failure)

    def readinto(self, buffer: Any) -> int:
        failure = ""
        try:
            return self._response.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            failure = _describe(exc, self._netloc)
        raise ConnectionFailed(failure)

    def close(self) -> None:
        self.exhausted = self._response.isclosed()
        self._response.close()


Handler = Callable[[Request], Response]


class MockTransport:
    """A transport that calls ``handler(request)`` instead of the network.

    The request's body is read into bytes first (so a handler can look at it), and every
    request is kept in :attr:`requests`, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    def send(self, request: Request) -> Response:
        body = request.body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = (b"".join(_chunks(body)) if hasattr(body, "read")  # type: ignore[arg-type]
                    else b"".join(body))
        recorded = attrs.evolve(request, body=body)
        self.requests.append(recorded)
        return self.handler(recorded)

    def close(self) -> None:
        pass
