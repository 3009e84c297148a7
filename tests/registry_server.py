"""A real registry for the tests: Debian's ``docker-registry`` (distribution 2.8) on loopback.

:class:`Registry` starts the server on a free port with its own storage directory (plain,
htpasswd, or token auth), reads its log, and is stopped by pid. :class:`FaultProxy` sits in
front of one and fails chosen requests (a 500, a blob it swallows) while counting the upload
bytes it forwards; :class:`Relay` is a TCP relay that can stop the registry in the middle of
a request. Both are real sockets between the client and the real registry.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Optional

from peers import missing_peer

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("docker-registry did not start listening")


class Registry:
    """One ``docker-registry`` process. ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self, root: Path, *, auth: Optional[dict[str, Any]] = None,
                 port: Optional[int] = None) -> None:
        binary = shutil.which("docker-registry") or REGISTRY_BINARY
        if not os.path.exists(binary):
            missing_peer("docker-registry (Debian package docker-registry) is not installed")
        self.binary = binary
        self.root = root
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.auth = auth
        self.log = root / "registry.log"
        self.config = root / "config.yml"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        root.mkdir(parents=True, exist_ok=True)
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.root / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self.auth:
            lines.append("auth:")
            for kind, settings in self.auth.items():
                lines.append(f"  {kind}:")
                lines.extend(f"    {key}: {value}" for key, value in settings.items())
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Registry:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        _wait_for_port(self.port, self.proc, self.log)
        return self

    def stop(self) -> None:
        """Stop the server (by its pid) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def requests_since(self, mark: int) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request the access log shows after byte ``mark``."""
        with open(self.log, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        found = []
        for match in re.finditer(r'"([A-Z]+) (\S+) HTTP/1\.1" (\d{3}) ', text):
            found.append((match.group(1), match.group(2), int(match.group(3))))
        return found

    def manifest_status(self, repository: str, reference: str,
                        authorization: Optional[str] = None) -> int:
        """The status of ``HEAD`` on a manifest, straight from the server (no tarexport)."""
        conn = http.client.HTTPConnection(self.host, timeout=10)
        headers = {"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                             "application/vnd.oci.image.manifest.v1+json"}
        if authorization:
            headers["Authorization"] = authorization
        try:
            conn.request("HEAD", f"/v2/{repository}/manifests/{reference}", headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()


def make_htpasswd(path: Path, user: str, password: str) -> None:
    tool = shutil.which("htpasswd")
    if tool is None:
        missing_peer("htpasswd (Debian package apache2-utils) is not installed")
    done = subprocess.run([tool, "-Bbn", user, password], capture_output=True, check=True)
    path.write_bytes(done.stdout)


def docker_config(directory: Path, host: str, user: str, password: str) -> Path:
    """A docker CLI config directory holding credentials for ``host`` (as docker login)."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory


# -- a proxy that fails chosen requests ---------------------------------------------------


Rule = Callable[[str, str], Optional[str]]
"""(method, path) -> ``None`` to forward, ``"500"`` to fail, ``"swallow"`` to answer 201."""


class _QuietHTTPServer(http.server.ThreadingHTTPServer):
    """A test server that does not print a traceback when a client drops the connection:
    that is the fault under test, and the print would land in the captured stderr."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class FaultProxy:
    """An HTTP proxy in front of ``upstream`` that applies :attr:`rule` to each request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rule: Rule = lambda method, path: None
        self.upload_bytes = 0
        self.faults = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                action = proxy.rule(self.command, self.path)
                if action == "500":
                    proxy.faults += 1
                    self._reply(500, b"injected failure", {})
                    return
                if action == "swallow":
                    proxy.faults += 1
                    self._reply(201, b"", {"Docker-Content-Digest": "swallowed"})
                    return
                if "/blobs/uploads/" in self.path and self.command in ("PATCH", "PUT"):
                    proxy.upload_bytes += len(body)
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("transfer-encoding", "content-length")}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = b"" if self.command == "HEAD" else response.read()
                passed = {k: v for k, v in response.getheaders()
                          if k.lower() not in ("transfer-encoding", "connection")}
                conn.close()
                self._reply(response.status, data, passed, head=self.command == "HEAD")

            def _reply(self, status: int, data: bytes, headers: dict[str, str], *,
                       head: bool = False) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                length = headers.get("Content-Length") if head else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a TCP relay that can stop the registry mid-request -----------------------------------


class Relay:
    """Relays TCP to ``registry``; once :attr:`cut_after` client bytes have passed on one
    connection, :attr:`on_cut` runs (stop the registry, or nothing) and that connection is
    dropped."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.cut_after: Optional[int] = None
        self.on_cut: Callable[[], None] = lambda: None
        self.cuts = 0
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    upstream = socket.create_connection(("127.0.0.1", relay.registry.port),
                                                        timeout=30)
                except OSError:
                    return  # the registry is down: the client sees the connection close
                client = self.request
                done = threading.Event()

                def back() -> None:
                    try:
                        while True:
                            data = upstream.recv(1 << 16)
                            if not data:
                                break
                            client.sendall(data)
                    except OSError:
                        pass
                    finally:
                        done.set()

                threading.Thread(target=back, daemon=True).start()
                passed = 0
                try:
                    while not done.is_set():
                        data = client.recv(1 << 16)
                        if not data:
                            break
                        passed += len(data)
                        limit = relay.cut_after
                        if limit is not None and passed > limit:
                            relay.cut_after = None
                            relay.cuts += 1
                            relay.on_cut()
                            break
                        upstream.sendall(data)
                except OSError:
                    pass
                finally:
                    for sock in (upstream, client):
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                        sock.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that drops the connection is what the faults are about

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_query(path: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)


# -- a token server, for distribution's token authentication -------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The bearer-token side of distribution's token auth: checks a user's basic
    credentials and issues RS256 JWTs (signed by ``openssl``, carrying the signing
    certificate in ``x5c``) granting the scopes asked for."""

    SERVICE = "tarexport-test-registry"
    ISSUER = "tarexport-test-issuer"

    def __init__(self, root: Path, user: str, password: str) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            missing_peer("openssl is not installed")
        self.openssl = openssl
        self.key = root / "token-key.pem"
        self.cert = root / "token-cert.pem"
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(self.key), "-out", str(self.cert), "-days", "2", "-subj",
                        "/CN=tarexport-test-token"], check=True, capture_output=True)
        der = subprocess.run([openssl, "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.user, self.password = user, password
        self.issued = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_query(self.path)
                expected = "Basic " + base64.b64encode(
                    f"{server.user}:{server.password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._reply(401, b'{"details":"bad credentials"}')
                    return
                token = server.token(query.get("scope", []))
                self._reply(200, json.dumps({"token": token, "expires_in": 300}).encode())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.ISSUER, "sub": self.user, "aud": self.SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode()))
        signature = subprocess.run([self.openssl, "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True,
                                   capture_output=True).stdout
        self.issued += 1
        return signing_input + "." + _b64url(signature)

    def auth_config(self) -> dict[str, Any]:
        return {"token": {"realm": self.realm, "service": self.SERVICE, "issuer": self.ISSUER,
                          "rootcertbundle": self.cert}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
