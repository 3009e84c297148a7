"""The distribution protocol's pure rules, the credential lookup, and the client's auth and
retry logic over the shipped mock transport (the registry itself is tested for real in
``test_registry.py``; these are the cases a real distribution server cannot be made to show:
a bearer realm, an expired token, Retry-After, a hostile answer)."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarexport.digest import Digest
from tarexport.errors import (
    InvalidReference,
    RegistryAuthError,
    RegistryNotFound,
    RegistryRejected,
    RegistryUnavailable,
)
from tarexport.stores.oci_layout import Platform
from tarexport.transports import distribution as proto
from tarexport.transports.blobinfo import BlobInfoCache
from tarexport.transports.credentials import Credentials, docker_config_credentials
from tarexport.transports.http import MockTransport, Request, Response
from tarexport.transports.pull import select_platform
from tarexport.transports.registry import RegistryClient
from tarexport.transports.streams import GzipStream

# -- names and hosts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "reference"),
    [
        ("docker://busybox", "registry-1.docker.io", "library/busybox", "latest"),
        ("docker://localhost:5000/app:1", "localhost:5000", "app", "1"),
        ("//127.0.0.1:5000/a/b/c:v", "127.0.0.1:5000", "a/b/c", "v"),
        ("ghcr.io/o/app@sha256:" + "a" * 64, "ghcr.io", "o/app", "sha256:" + "a" * 64),
    ],
)
def test_registry_ref(text: str, registry: str, repository: str, reference: str) -> None:
    ref = proto.RegistryRef.parse(text)
    assert (ref.registry, ref.repository, ref.reference) == (registry, repository, reference)
    assert ref.scope("pull", "push") == f"repository:{repository}:pull,push"


def test_registry_ref_refuses_bad_names() -> None:
    with pytest.raises(InvalidReference):
        proto.RegistryRef.parse("docker://Upper/Case")
    with pytest.raises(InvalidReference):
        proto.RegistryRef.parse("docker://")


@pytest.mark.parametrize(
    ("host", "plain"),
    [("localhost:5000", True), ("127.0.0.1:5000", True), ("127.1.2.3", True),
     ("[::1]:5000", True), ("registry.localhost", True), ("example.com", False),
     ("10.0.0.1:5000", False), ("localhost.example.com", False)],
)
def test_plain_http_only_for_loopback(host: str, plain: bool) -> None:
    assert proto.plain_http_allowed(host) is plain


def test_plain_http_for_hosts_named_insecure() -> None:
    assert proto.plain_http_allowed("reg.lan:5000", ("reg.lan:5000",))
    assert proto.plain_http_allowed("reg.lan:5000", ("reg.lan",))
    assert not proto.plain_http_allowed("other.lan:5000", ("reg.lan",))


# -- challenges and tokens ----------------------------------------------------------------


def test_parse_bearer_challenge() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/busybox:pull"')
    (challenge,) = proto.parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }


def test_parse_several_challenges_and_escapes() -> None:
    header = 'Basic realm="a \\"quoted\\" realm", Bearer realm="https://t/x",service=svc'
    basic, bearer = proto.parse_challenges(header)
    assert basic.scheme == "basic" and basic.params["realm"] == 'a "quoted" realm'
    assert bearer.params == {"realm": "https://t/x", "service": "svc"}


@given(st.text(max_size=200))
def test_parse_challenges_never_fails(header: str) -> None:
    for challenge in proto.parse_challenges(header):
        assert challenge.scheme == challenge.scheme.lower()


def test_token_url_keeps_the_realm_query_and_adds_scopes() -> None:
    challenge = proto.Challenge("bearer", {"realm": "https://auth.example/token?x=1",
                                           "service": "reg"})
    url = proto.token_url(challenge, ["repository:a:pull", "repository:b:pull,push"],
                          account="me")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query == {"x": ["1"], "service": ["reg"], "account": ["me"],
                     "scope": ["repository:a:pull", "repository:b:pull,push"]}
    with pytest.raises(RegistryAuthError):
        proto.token_url(proto.Challenge("bearer", {"realm": "file:///etc/passwd"}), [])


@pytest.mark.parametrize(
    ("body", "token", "expires"),
    [(b'{"token": "t1", "expires_in": 300}', "t1", 300),
     (b'{"access_token": "t2"}', "t2", 60),
     (b'{"token": "t3", "expires_in": 5}', "t3", 60)],
)
def test_token_response(body: bytes, token: str, expires: int) -> None:
    assert proto.parse_token_response(body) == proto.Token(token, expires)


@pytest.mark.parametrize("body", [b"", b"[]", b'{"token": 5}', b"<html>"])
def test_token_response_refused(body: bytes) -> None:
    with pytest.raises(RegistryAuthError):
        proto.parse_token_response(body)


# -- uploads, errors, retries -------------------------------------------------------------


@pytest.mark.parametrize(("header", "offset"),
                         [(None, 0), ("0-0", 0), ("0-1023", 1024), ("bytes=0-9", 10)])
def test_next_offset(header: str | None, offset: int) -> None:
    assert proto.next_offset(header) == offset


def test_upload_url_resolves_and_adds_the_digest() -> None:
    digest = Digest("sha256", "b" * 64)
    url = proto.upload_url("http://r:5000/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/u?_state=s",
                           digest=digest)
    parts = urllib.parse.urlsplit(url)
    assert parts.netloc == "r:5000" and parts.path == "/v2/a/blobs/uploads/u"
    assert urllib.parse.parse_qs(parts.query) == {"_state": ["s"], "digest": [str(digest)]}


def test_error_from_response_is_one_typed_line() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_BLOB_UNKNOWN",
                                   "message": "blob unknown\nto registry", "detail": "x"}]})
    error = proto.error_from_response("push manifest a:1", "r:5000", 400, body.encode())
    assert isinstance(error, RegistryRejected)
    assert str(error) == (
        "push manifest a:1: r:5000: manifest blob unknown: blob unknown to registry")
    assert error.code == "MANIFEST_BLOB_UNKNOWN" and error.status == 400
    assert isinstance(proto.error_from_response("x", "r", 404, b""), RegistryNotFound)
    assert isinstance(proto.error_from_response("x", "r", 503, b"<html>"), RegistryUnavailable)
    assert "\n" not in str(proto.error_from_response("x", "r", 500, b"\x1b[2J\nboom"))


def test_retry_policy_is_bounded_in_count_and_time() -> None:
    policy = proto.RetryPolicy(attempts=4, base=1, cap=3, deadline=10)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    assert policy.delay(1, "2") == 2 and policy.delay(1, "100") == 3
    assert policy.allows(3, 0, 3) and not policy.allows(4, 0, 1)
    assert not policy.allows(1, 8, 3)
    assert [s for s in range(400, 600) if proto.retryable_status(s)] == [
        408, 429, *[s for s in range(500, 600) if s not in (501, 505)]]


# -- manifests ----------------------------------------------------------------------------


def _desc(media: str, data: bytes = b"x", **extra: object) -> dict[str, object]:
    return {"mediaType": media, "digest": str(Digest.from_bytes(data)), "size": len(data),
            **extra}


def test_manifest_built_then_parsed() -> None:
    config = proto.Descriptor(proto.DOCKER_CONFIG, Digest.from_bytes(b"c"), 1)
    layer = proto.Descriptor(proto.DOCKER_LAYER_GZIP, Digest.from_bytes(b"l"), 1)
    data = proto.image_manifest_bytes(proto.DOCKER_MANIFEST, config, [layer])
    assert data.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType"')
    parsed = proto.parse_manifest(data, None, "m")
    assert parsed == proto.ImageManifest(proto.DOCKER_MANIFEST, config, (layer,))


@pytest.mark.parametrize(
    "value",
    [[], {"schemaVersion": 1}, {"schemaVersion": 2, "mediaType": "text/plain"},
     {"schemaVersion": 2, "mediaType": proto.OCI_MANIFEST, "config": {}, "layers": []},
     {"schemaVersion": 2, "mediaType": proto.OCI_MANIFEST,
      "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}, "layers": []},
     {"schemaVersion": 2, "mediaType": proto.OCI_MANIFEST,
      "config": {"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": -1}, "layers": []},
     {"schemaVersion": 2, "mediaType": proto.OCI_INDEX, "manifests": {}}],
)
def test_hostile_manifests_are_refused(value: object) -> None:
    with pytest.raises(RegistryRejected):
        proto.parse_manifest(json.dumps(value).encode(), None, "m")


def test_select_platform() -> None:
    index = proto.parse_manifest(json.dumps({
        "schemaVersion": 2, "mediaType": proto.OCI_INDEX, "manifests": [
            _desc(proto.OCI_MANIFEST, b"1", platform={"os": "linux", "architecture": "amd64"}),
            _desc(proto.OCI_MANIFEST, b"2",
                  platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
            _desc(proto.OCI_MANIFEST, b"3", platform={"os": "unknown",
                                                      "architecture": "unknown"}),
        ]}).encode(), None, "i")
    assert isinstance(index, proto.ImageIndex)
    arm = select_platform(index, Platform.parse("linux/aarch64"))
    assert arm.digest == Digest.from_bytes(b"2")
    with pytest.raises(Exception, match=r"no image for platform linux/s390x.*linux/amd64"):
        select_platform(index, Platform.parse("linux/s390x"))


# -- credentials --------------------------------------------------------------------------


def _config(tmp_path: Path, value: object) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps(value))
    return {"DOCKER_CONFIG": str(tmp_path)}


def test_credentials_from_auths(tmp_path: Path) -> None:
    auth = base64.b64encode(b"me:pa:ss").decode()
    env = _config(tmp_path, {"auths": {"https://reg.example:5000": {"auth": auth},
                                       "https://index.docker.io/v1/": {"auth": auth}}})
    lookup = docker_config_credentials(env)
    assert lookup("reg.example:5000") == Credentials("me", "pa:ss")
    assert lookup("registry-1.docker.io") == Credentials("me", "pa:ss")
    assert lookup("other.example") is None
    assert "pa:ss" not in repr(lookup("reg.example:5000"))


def test_credentials_from_a_real_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testing"
    helper.write_text('#!/bin/sh\nread server\n'
                      'if [ "$server" = "reg.example" ]; then\n'
                      '  printf \'{"ServerURL":"%s","Username":"hu","Secret":"hs"}\' "$server"\n'
                      'else echo "credentials not found in native keychain"; exit 1; fi\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env = _config(tmp_path, {"credHelpers": {"reg.example": "testing"},
                             "credsStore": "testing"})
    lookup = docker_config_credentials(env)
    assert lookup("reg.example") == Credentials("hu", "hs")
    assert lookup("elsewhere.example") is None  # "not found" is no credentials, not an error
    env = _config(tmp_path, {"credsStore": "missing"})
    with pytest.raises(RegistryAuthError, match="docker-credential-missing"):
        docker_config_credentials(env)("reg.example")


# -- the client over the mock transport ---------------------------------------------------


class FakeRegistry:
    """A registry behind a bearer realm, whose tokens can be made to expire."""

    def __init__(self) -> None:
        self.issued = 0
        self.valid: set[str] = set()
        self.failures: list[int] = []

    def handle(self, request: Request) -> Response:
        url = urllib.parse.urlsplit(request.url)
        if url.netloc == "auth.example":
            basic = request.header("Authorization")
            if basic != proto.basic_authorization("u", "right"):
                return Response.from_bytes(401, {}, b"{}")
            self.issued += 1
            token = f"tok{self.issued}"
            self.valid.add(token)
            return Response.from_bytes(200, {}, json.dumps({"token": token}).encode())
        if self.failures:
            return Response.from_bytes(self.failures.pop(0), {"Retry-After": "0"}, b"")
        auth = (request.header("Authorization") or "").removeprefix("Bearer ")
        if auth not in self.valid:
            return Response.from_bytes(401, {
                "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'},
                b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
        return Response.from_bytes(200, {"Content-Type": proto.OCI_MANIFEST,
                                         "Content-Length": "2"}, b"{}")


def _client(fake: FakeRegistry, password: str = "right") -> tuple[RegistryClient, MockTransport]:
    transport = MockTransport(fake.handle)
    client = RegistryClient(
        "reg.example", transport=transport,
        credentials=lambda host: Credentials("u", password) if host == "reg.example" else None,
        retry=proto.RetryPolicy(attempts=3, base=0, cap=0), sleep=lambda s: None)
    client.scheme = "https"
    return client, transport


def test_bearer_flow_and_expired_tokens() -> None:
    fake = FakeRegistry()
    client, transport = _client(fake)
    client.get_manifest("app", "1")
    assert fake.issued == 1
    token_request = next(r for r in transport.requests if "auth.example" in r.url)
    assert "scope=repository%3Aapp%3Apull" in token_request.url
    client.get_manifest("app", "1")
    assert fake.issued == 1  # the token is kept
    fake.valid.clear()  # it expired: one new token, the request goes through
    client.get_manifest("app", "1")
    assert fake.issued == 2


def test_wrong_password_never_in_the_message() -> None:
    client, _ = _client(FakeRegistry(), password="hunter2-secret")
    with pytest.raises(RegistryAuthError) as info:
        client.get_manifest("app", "1")
    assert "hunter2" not in str(info.value) and "authentication failed" in str(info.value)


def test_retries_then_one_error() -> None:
    fake = FakeRegistry()
    client, _ = _client(fake)
    notices: list[str] = []
    client.on_notice = notices.append
    fake.failures = [503, 429]
    client.get_manifest("app", "1")  # two failures, then it works
    assert len(notices) == 2 and "retrying" in notices[0]
    fake.failures = [500, 500, 500, 500]
    with pytest.raises(RegistryUnavailable, match="HTTP 500"):
        client.get_manifest("app", "1")


# -- gzip and the blob cache --------------------------------------------------------------


@given(st.binary(max_size=5000))
def test_gzip_stream_is_deterministic_gzip(data: bytes) -> None:
    import gzip
    import io

    one = GzipStream(io.BytesIO(data)).read()
    assert one == GzipStream(io.BytesIO(data)).read()
    assert gzip.decompress(one) == data
    assert one[4:8] == b"\0\0\0\0" and not one[3] & 0x08  # mtime 0, no file name


def test_blob_info_cache_persists(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "blob-info.json"
    cache = BlobInfoCache(path)
    diff, blob = Digest.from_bytes(b"tar"), Digest.from_bytes(b"gz")
    cache.record_compressed(diff, "gzip", blob)
    cache.record_location(blob, "r:5000", "a")
    cache.record_location(blob, "r:5000", "b")
    cache.record_location(blob, "other", "c")
    cache.save()
    again = BlobInfoCache(path)
    assert again.compressed(diff, "gzip") == blob and again.uncompressed(blob) == diff
    assert again.repositories(blob, "r:5000") == ["b", "a"]
    path.write_text("{broken")
    assert BlobInfoCache(path).compressed(diff, "gzip") is None  # only a cache


def test_an_upload_resumes_from_the_registrys_offset() -> None:
    """A PATCH that breaks off is followed by a status request; the rest is sent from the
    offset the registry reports, and the digest covers the whole blob."""
    from tarexport import MemoryStore
    from tarexport.errors import ConnectionFailed
    from tarexport.transports.push import Pusher

    layer = b"\0" * 10240 + bytes(range(256)) * 20000  # over the single-PUT limit
    diff_id = Digest.from_bytes(layer)
    store = MemoryStore()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]}}).encode()
    store.add_image(config, [layer], references=["app:1"])
    held = bytearray()
    seen: list[str] = []
    broke = {"once": False}

    def handle(request: Request) -> Response:
        path = urllib.parse.urlsplit(request.url).path
        seen.append(f"{request.method} {path}")
        if request.method == "HEAD":
            return Response.from_bytes(404)
        if request.method == "POST":
            return Response.from_bytes(202, {"Location": "/v2/app/blobs/uploads/u1"})
        if request.method == "PATCH":
            assert isinstance(request.body, bytes)
            if not broke["once"]:
                broke["once"] = True
                held.extend(request.body[:5000])  # the registry kept 5000 bytes
                raise ConnectionFailed("r: connection reset")
            held.extend(request.body)
            return Response.from_bytes(202, {"Location": "/v2/app/blobs/uploads/u1",
                                             "Range": f"0-{len(held) - 1}"})
        if request.method == "GET":
            return Response.from_bytes(204, {"Location": "/v2/app/blobs/uploads/u1",
                                             "Range": f"0-{len(held) - 1}"})
        if request.method == "PUT" and "/uploads/" in path:
            digest = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)["digest"]
            assert digest == [str(diff_id)] or request.body
            return Response.from_bytes(201)
        return Response.from_bytes(201)

    client = RegistryClient("r.example", transport=MockTransport(handle),
                            credentials=lambda host: None,
                            retry=proto.RetryPolicy(attempts=3, base=0, cap=0),
                            sleep=lambda s: None)
    client.scheme = "https"
    result = Pusher(store, client=client, compression="none").push("app:1",
                                                                   "docker://r.example/app:1")
    assert bytes(held) == layer
    assert seen.count("POST /v2/app/blobs/uploads/") == 2  # the layer's, once; the config's
    assert "GET /v2/app/blobs/uploads/u1" in seen
    assert result.uploaded_bytes == len(layer) + len(config) + (len(layer) - 5000)
