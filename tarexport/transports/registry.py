"""A client for one registry: authentication, retries, blobs and manifests.

Every request goes through :meth:`RegistryClient.request`, which adds the authorization the
registry asked for (anonymous, basic, or a bearer token from the challenge's realm), answers a
401 by authenticating once, and retries 429s, 5xxs and dropped connections with backoff,
bounded in count and time (:class:`~tarexport.transports.distribution.RetryPolicy`). Retry
notices go to ``on_notice`` only; the caller sees one typed error if the retries run out.
The protocol rules themselves live in :mod:`tarexport.transports.distribution`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Callable, Optional, Union

import attrs

from .. import __version__
from ..digest import Digest
from ..errors import ConnectionFailed, RegistryAuthError, RegistryError, RegistryUnavailable
from . import distribution as proto
from .credentials import CredentialLookup, Credentials, docker_config_credentials
from .http import Body, HTTPTransport, Request, Response, Transport

__all__ = ["RegistryClient", "UploadSession"]

Notice = Callable[[str], None]
BodyFactory = Callable[[], Body]

USER_AGENT = "tarexport/" + __version__
_REDIRECTS = 5
_ERROR_BODY_LIMIT = 64 << 10


@attrs.frozen
class UploadSession:
    """A blob upload in progress: where to send the next bytes, and how many it holds."""

    url: str
    offset: int = 0


class RegistryClient:
    """Requests to one registry host (``host[:port]``), authenticated and retried.

    ``credentials`` looks up a host's credentials (default: the docker CLI's config).
    ``insecure`` lists hosts that may use plain HTTP besides loopback ones; ``transport`` is
    the HTTP seam (an :class:`~tarexport.transports.http.HTTPTransport` by default).
    """

    def __init__(
        self,
        registry: str,
        *,
        transport: Optional[Transport] = None,
        credentials: Optional[CredentialLookup] = None,
        insecure: Sequence[str] = (),
        retry: proto.RetryPolicy = proto.DEFAULT_RETRIES,
        on_notice: Optional[Notice] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.plain_allowed = proto.plain_http_allowed(registry, insecure)
        # As Docker: hosts allowed plain HTTP (loopback, or named insecure) are also spoken
        # to over TLS without certificate checks when they have TLS.
        self.transport: Transport = transport or HTTPTransport(verify=not self.plain_allowed)
        self.credentials = credentials if credentials is not None else docker_config_credentials()
        self.retry = retry
        self.on_notice = on_notice
        self.sleep = sleep
        self.clock = clock
        self.scheme: Optional[str] = None
        self._challenge: Optional[proto.Challenge] = None
        self._authorization: dict[frozenset[str], str] = {}
        self._creds: Optional[Credentials] = None
        self._creds_loaded = False
        self._lock = threading.Lock()

    # -- the base URL ---------------------------------------------------------------------

    def base(self) -> str:
        """``https://host`` (or ``http://`` for a host allowed plain HTTP that has no TLS)."""
        if self.scheme is None:
            self.ping()
        return f"{self.scheme}://{self.registry}"

    def ping(self) -> None:
        """``GET /v2/``: choose the scheme and learn how the registry wants to be asked."""
        schemes = ["https", "http"] if self.plain_allowed else ["https"]
        last: Optional[ConnectionFailed] = None
        for scheme in schemes:
            try:
                response = self._send_retrying(
                    "GET", f"{scheme}://{self.registry}/v2/", (), None, "reach the registry",
                    retry_connect=scheme == schemes[-1],
                )
            except ConnectionFailed as exc:
                last = exc
                continue
            self.scheme = scheme
            with response:
                self._learn(response)
                if response.status not in (200, 401):
                    body = response.read_limited(_ERROR_BODY_LIMIT)
                    raise proto.error_from_response(
                        "reach the registry", self.registry, response.status, body
                    )
            return
        assert last is not None
        raise RegistryUnavailable(f"cannot reach the registry {self.registry}: {last}") from last

    def _learn(self, response: Response) -> None:
        for header in response.header_all("WWW-Authenticate"):
            for challenge in proto.parse_challenges(header):
                if challenge.scheme in ("bearer", "basic"):
                    if self._challenge != challenge:
                        self._authorization.clear()
                    self._challenge = challenge
                    return

    # -- authentication -------------------------------------------------------------------

    def _credentials(self) -> Optional[Credentials]:
        if not self._creds_loaded:
            self._creds = self.credentials(self.registry)
            self._creds_loaded = True
        return self._creds

    def _auth_header(self, scopes: frozenset[str]) -> Optional[str]:
        if self._challenge is None:
            return None
        with self._lock:
            cached = self._authorization.get(scopes)
            if cached is not None:
                return cached
            header = self._authenticate(self._challenge, scopes)
            self._authorization[scopes] = header
            return header

    def _authenticate(self, challenge: proto.Challenge, scopes: frozenset[str]) -> str:
        creds = self._credentials()
        if challenge.scheme == "basic":
            if creds is None or not creds.username:
                raise RegistryAuthError(
                    f"{self.registry}: authentication required: no credentials for this "
                    "registry (docker login, or ~/.docker/config.json)"
                )
            return proto.basic_authorization(creds.username, creds.password)
        headers: list[tuple[str, str]] = []
        method, body = "GET", None
        if creds is not None and creds.identity_token:
            method = "POST"
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": challenge.params.get("service", ""), "client_id": "tarexport",
                    "scope": " ".join(sorted(scopes))}
            body = urllib.parse.urlencode(form).encode()
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            url = proto.token_url(challenge, ())
            url = url.split("?", 1)[0]
        else:
            if creds is not None and creds.username:
                headers.append(("Authorization",
                                proto.basic_authorization(creds.username, creds.password)))
            url = proto.token_url(challenge, sorted(scopes),
                                  account=creds.username if creds else "")
        response = self._send_retrying(method, url, tuple(headers), lambda: body,
                                       "get a token")
        with response:
            data = response.read_limited(_ERROR_BODY_LIMIT)
        if response.status in (401, 403):
            said = "the credentials were refused" if creds else "anonymous access was refused"
            raise RegistryAuthError(f"{self.registry}: authentication failed: {said}",
                                    status=response.status)
        if response.status != 200:
            raise RegistryAuthError(
                f"{self.registry}: the token server answered HTTP {response.status}",
                status=response.status,
            )
        return "Bearer " + proto.parse_token_response(data).token

    # -- sending --------------------------------------------------------------------------

    def _notice(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)

    def _send_retrying(
        self,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...],
        body: Optional[BodyFactory],
        what: str,
        *,
        retry_connect: bool = True,
    ) -> Response:
        """Send, retrying dropped connections and "try later" answers; return the last answer."""
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            retry_after: Optional[str] = None
            try:
                response = self.transport.send(
                    Request(method, url, headers, body() if body else None)
                )
            except ConnectionFailed as exc:
                if not retry_connect:
                    raise
                problem = str(exc)
                failure: Union[ConnectionFailed, Response] = exc
            else:
                if not proto.retryable_status(response.status):
                    return response
                retry_after = response.header("Retry-After")
                problem = f"HTTP {response.status}"
                failure = response
            delay = self.retry.delay(attempt, retry_after)
            if not self.retry.allows(attempt, self.clock() - started, delay):
                if isinstance(failure, Response):
                    return failure
                raise failure
            if isinstance(failure, Response):
                failure.close()
            self._notice(f"{what}: {problem}; retrying in {delay:.1f}s "
                         f"(attempt {attempt + 1} of {self.retry.attempts})")
            self.sleep(delay)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        what: str,
        scopes: Sequence[str],
        headers: Sequence[tuple[str, str]] = (),
        body: Optional[BodyFactory] = None,
        ok: Sequence[int] = (200,),
        follow: bool = False,
    ) -> Response:
        """One authenticated, retried request; a status outside ``ok`` raises its typed error.

        ``path_or_url`` is a path on the registry or an absolute URL (an upload location).
        ``body`` makes a fresh body for each try. With ``follow``, redirects are followed
        (without the registry's authorization when they lead elsewhere, as blob storage
        redirects do).
        """
        url = path_or_url if "://" in path_or_url else self.base() + path_or_url
        headers = [*headers, ("User-Agent", USER_AGENT)]
        scope_set = frozenset(scopes)
        reauthenticated = False
        redirects = 0
        foreign = False
        while True:
            sent = list(headers)
            if not foreign:
                auth = self._auth_header(scope_set)
                if auth is not None:
                    sent.append(("Authorization", auth))
            try:
                response = self._send_retrying(method, url, tuple(sent), body, what)
            except ConnectionFailed as exc:
                raise RegistryUnavailable(f"{what}: {exc}") from exc
            if response.status == 401 and not foreign and not reauthenticated:
                # A first challenge, or an expired token: authenticate once more.
                response.read_limited(_ERROR_BODY_LIMIT)
                response.close()
                with self._lock:
                    self._authorization.pop(scope_set, None)
                self._learn(response)
                reauthenticated = True
                if self._challenge is not None:
                    continue
            if follow and response.status in (301, 302, 303, 307, 308) and redirects < _REDIRECTS:
                location = response.header("Location")
                response.close()
                if location:
                    redirects += 1
                    target = urllib.parse.urljoin(url, location)
                    foreign = foreign or (
                        urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(url).netloc
                    )
                    url = target
                    continue
            if response.status in ok:
                return response
            with response:
                data = response.read_limited(_ERROR_BODY_LIMIT)
            if response.status == 401 and reauthenticated and self._challenge is not None:
                said = ("the credentials were refused" if self._credentials()
                        else "no credentials for this registry")
                raise RegistryAuthError(f"{what}: {self.registry}: authentication failed: {said}",
                                        status=401)
            raise proto.error_from_response(what, self.registry, response.status, data)

    # -- blobs ----------------------------------------------------------------------------

    def blob_size(self, repository: str, digest: Digest, *, scopes: Sequence[str]) -> Optional[int]:
        """The size of a blob the repository holds, or ``None`` when it holds none."""
        response = self.request("HEAD", proto.blob_path(repository, digest), scopes=scopes,
                                what=f"check blob {digest.short()}", ok=(200, 404),
                                follow=True)
        with response:
            if response.status == 404:
                return None
            length = response.header("Content-Length")
        return int(length) if length and length.isdigit() else 0

    def open_blob(self, repository: str, digest: Digest, *, offset: int = 0) -> Response:
        """A streaming ``GET`` of a blob (from byte ``offset`` when resuming)."""
        headers = [("Range", f"bytes={offset}-")] if offset else []
        return self.request("GET", proto.blob_path(repository, digest),
                            scopes=[f"repository:{repository}:pull"], headers=headers,
                            what=f"pull blob {digest.short()}", ok=(200, 206), follow=True)

    def mount_blob(
        self, repository: str, digest: Digest, source: str, *, scopes: Sequence[str]
    ) -> Optional[UploadSession]:
        """Mount a blob from another repository: ``None`` when mounted, else the upload the
        registry started instead."""
        path = proto.uploads_path(repository, mount=digest, source=source)
        response = self.request("POST", path, scopes=[*scopes, f"repository:{source}:pull"],
                                what=f"mount blob {digest.short()}", ok=(201, 202))
        with response:
            if response.status == 201:
                return None
            return self._session(response, self.base() + path)

    def start_upload(self, repository: str, *, scopes: Sequence[str]) -> UploadSession:
        path = proto.uploads_path(repository)
        response = self.request("POST", path, scopes=scopes, what="start an upload",
                                ok=(202,))
        with response:
            return self._session(response, self.base() + path)

    def _session(self, response: Response, base: str) -> UploadSession:
        location = response.header("Location")
        if not location:
            raise RegistryError(f"{self.registry}: an upload answer has no Location")
        return UploadSession(proto.upload_url(base, location),
                             proto.next_offset(response.header("Range")))

    def upload_status(self, session: UploadSession, *, scopes: Sequence[str]) -> UploadSession:
        """Where an interrupted upload stands (the bytes the registry kept)."""
        response = self.request("GET", session.url, scopes=scopes,
                                what="resume an upload", ok=(204,))
        with response:
            return self._session(response, session.url)

    def upload_chunk(
        self, session: UploadSession, body: BodyFactory, length: Optional[int], *,
        scopes: Sequence[str],
    ) -> UploadSession:
        """``PATCH`` bytes at the session's offset; ``length`` ``None`` streams them chunked.

        Not retried here: a failed chunk's bytes are gone, the caller resumes from
        :meth:`upload_status`.
        """
        headers = [("Content-Type", "application/octet-stream")]
        if length is not None:
            headers.append(("Content-Length", str(length)))
            if session.offset and length:
                headers.append(("Content-Range", proto.content_range(session.offset, length)))
        response = self._once(lambda: self.request(
            "PATCH", session.url, scopes=scopes, headers=headers, body=body,
            what="upload a blob", ok=(202,)))
        with response:
            return self._session(response, session.url)

    def finish_upload(
        self, session: UploadSession, digest: Digest, *, scopes: Sequence[str],
        body: Optional[BodyFactory] = None, length: int = 0,
    ) -> None:
        """``PUT`` the upload's digest (with its last bytes, or the whole blob, as ``body``)."""
        headers = [("Content-Type", "application/octet-stream"),
                   ("Content-Length", str(length))]
        response = self.request(
            "PUT", proto.upload_url(session.url, session.url, digest=digest),
            scopes=scopes, headers=headers, body=body, what=f"upload blob {digest.short()}",
            ok=(201, 204),
        )
        response.close()

    def cancel_upload(self, session: UploadSession, *, scopes: Sequence[str]) -> None:
        """Drop an unfinished upload (best effort: a registry times abandoned ones out)."""
        with contextlib.suppress(RegistryError):
            self._once(lambda: self.request("DELETE", session.url, scopes=scopes,
                                            what="cancel an upload", ok=(204, 404))).close()

    def _once(self, call: Callable[[], Response]) -> Response:
        saved = self.retry
        self.retry = proto.NO_RETRIES
        try:
            return call()
        finally:
            self.retry = saved

    # -- manifests ------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, *, method: str = "GET"
    ) -> tuple[bytes, Optional[str], Optional[str]]:
        """A manifest's bytes, its ``Content-Type`` and ``Docker-Content-Digest``."""
        response = self.request(method, proto.manifest_path(repository, reference),
                                scopes=[f"repository:{repository}:pull"],
                                headers=[("Accept", proto.MANIFEST_ACCEPT)],
                                what=f"{repository}:{reference}" if ":" not in reference
                                else f"{repository}@{reference}", follow=True)
        with response:
            data = b"" if method == "HEAD" else response.read_limited(proto.MANIFEST_LIMIT)
            if len(data) > proto.MANIFEST_LIMIT:
                raise RegistryError(f"{repository}:{reference}: the manifest is larger than "
                                    f"{proto.MANIFEST_LIMIT} bytes")
            return data, response.header("Content-Type"), response.header(
                "Docker-Content-Digest")

    def put_manifest(
        self, repository: str, reference: str, data: bytes, media_type: str
    ) -> Optional[str]:
        """Put a manifest under a tag or digest; returns the digest the registry reports."""
        response = self.request(
            "PUT", proto.manifest_path(repository, reference),
            scopes=[f"repository:{repository}:pull,push"],
            headers=[("Content-Type", media_type), ("Content-Length", str(len(data)))],
            body=lambda: data, what=f"push manifest {repository}:{reference}", ok=(200, 201),
        )
        with response:
            return response.header("Docker-Content-Digest")

    def close(self) -> None:
        self.transport.close()
