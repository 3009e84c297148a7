"""Push and pull against a real registry (distribution 2.8), read back by real consumers.

Every golden goes up and comes back with the same digests; skopeo and every Docker daemon see
what was pushed; a second push sends no layer bytes and a sibling image only its own layers
(both read from the registry's own access log); faults end in one error line, leave no tag,
and a rerun completes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from golden_store import CASES, read_golden
from helpers import GOLDENS_DIR
from registry_server import FaultProxy, Registry, Relay, docker_config, make_htpasswd

from tarexport import OCILayoutStore, load
from tarexport.cli import main
from tarexport.digest import Digest, chain_ids
from tarexport.errors import RegistryAuthError, RegistryUnavailable
from tarexport.image import Image
from tarexport.transports import distribution as proto
from tarexport.transports.blobinfo import BlobInfoCache
from tarexport.transports.copier import copy
from tarexport.transports.pull import Puller
from tarexport.transports.push import Pusher
from tarexport.transports.registry import RegistryClient

FAST_RETRIES = proto.RetryPolicy(attempts=3, base=0.05, cap=0.2, deadline=10)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = Registry(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


USER, PASSWORD = "builder", "s3cret-pa55"


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("auth-registry")
    make_htpasswd(root / "htpasswd", USER, PASSWORD)
    server = Registry(root, auth={"htpasswd": {"realm": "tarexport-test",
                                               "path": root / "htpasswd"}}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private default store, blob-info cache and docker config for one test."""
    monkeypatch.setenv("TAREXPORT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    return tmp_path


def golden_layout(case: str, path: Path) -> OCILayoutStore:
    layout = OCILayoutStore(str(path), create=True)
    with open(GOLDENS_DIR / case / "save.tar", "rb") as f:
        load(f, into=layout)
    return layout


def layout_images(layout: OCILayoutStore) -> dict[str, Digest]:
    """Every tag of a layout (full name) with its image ID."""
    found = {}
    for image_id in layout.search(""):
        for ref in layout.references(image_id):
            if ref.digest is None:
                found[str(ref)] = image_id
    return found


def cli(*args: str) -> int:
    return main(list(args))


# -- every golden, up and back ------------------------------------------------------------


PUSHABLE = [c for c in CASES if read_golden(c).tags]


@pytest.mark.parametrize("case", PUSHABLE)
def test_golden_round_trip(case: str, registry: Registry, tmp_path: Path) -> None:
    layout = golden_layout(case, tmp_path / "src")
    golden = read_golden(case)
    cache = BlobInfoCache()
    client = RegistryClient(registry.host, retry=FAST_RETRIES)
    back = OCILayoutStore(str(tmp_path / "back"), create=True)
    for n, (name, image_id) in enumerate(sorted(layout_images(layout).items())):
        repo = f"golden/{case.lower()}"
        dest = f"docker://{registry.host}/{repo}:{n}"
        pushed = Pusher(layout, client=client, cache=cache).push(name, dest)
        # What the registry serves is exactly what was pushed.
        served, _, header = client.get_manifest(repo, str(n))
        assert served == pushed.manifest
        assert header == str(pushed.digest) == str(Digest.from_bytes(served))
        pulled = Puller(back, client=client).pull(dest)
        assert pulled.image_id == image_id
        assert pulled.manifest_digest == pushed.digest
        # The layers that came back are the golden's layer tars, byte for byte.
        image = Image.from_bytes(back.get_config(image_id))
        for chain, data in zip(chain_ids(image.diff_ids), golden.layers[image_id.hex]):
            with back.get_layer(chain).open() as stream:
                assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()


def test_pull_by_digest_and_a_wrong_digest(registry: Registry, tmp_path: Path) -> None:
    layout = golden_layout("s04-build-multilayer-emptylayers", tmp_path / "src")
    name = next(iter(layout_images(layout)))
    pushed = Pusher(layout).push(name, f"docker://{registry.host}/bydigest/app:1")
    back = OCILayoutStore(str(tmp_path / "back"), create=True)
    pulled = Puller(back).pull(f"docker://{registry.host}/bydigest/app@{pushed.digest}")
    assert pulled.manifest_digest == pushed.digest and pulled.reference is None
    wrong = "sha256:" + "0" * 64
    with pytest.raises(Exception, match=r"manifest unknown|not found"):
        Puller(back).pull(f"docker://{registry.host}/bydigest/app@{wrong}")


# -- real consumers -----------------------------------------------------------------------


def test_skopeo_inspects_the_pushed_image(registry: Registry, tmp_path: Path, skopeo: object,
                                          env: Path) -> None:
    layout = golden_layout("s10-base-and-derived-together", tmp_path / "src")
    assert cli("push", "--from", f"oci:{tmp_path / 'src'}", "cc-s-app:1",
               f"{registry.host}/consumers/app:1") == 0
    out = skopeo.run("inspect", "--tls-verify=false",  # type: ignore[attr-defined]
                     f"docker://{registry.host}/consumers/app:1").stdout
    info = json.loads(out)
    image_id = layout_images(layout)["docker.io/library/cc-s-app:1"]
    raw = skopeo.run("inspect", "--tls-verify=false", "--raw",  # type: ignore[attr-defined]
                     f"docker://{registry.host}/consumers/app:1").stdout
    manifest = json.loads(raw)
    assert manifest["mediaType"] == proto.DOCKER_MANIFEST
    assert manifest["config"]["digest"] == str(image_id)
    assert info["Digest"] == str(Digest.from_bytes(raw))
    assert len(info["Layers"]) == len(Image.from_bytes(layout.get_config(image_id)).diff_ids)


def test_every_daemon_pulls_the_pushed_image(registry: Registry, tmp_path: Path,
                                             daemon: object, env: Path) -> None:
    layout = golden_layout("s10-base-and-derived-together", tmp_path / "src")
    image_id = layout_images(layout)["docker.io/library/cc-s-app:1"]
    ref = daemon.unique(f"{registry.host}/daemons/app:1")  # type: ignore[attr-defined]
    assert cli("push", "-q", "--from", f"oci:{tmp_path / 'src'}", "cc-s-app:1", ref) == 0
    daemon.run("pull", "-q", ref)  # type: ignore[attr-defined]
    info = daemon.inspect(ref)  # type: ignore[attr-defined]
    repo, _, tag = ref.partition("/")[2].rpartition(":")
    _, _, digest = RegistryClient(registry.host).get_manifest(repo, tag)
    assert f"{ref.rpartition(':')[0]}@{digest}" in info["RepoDigests"]
    try:
        if daemon.containerd:  # type: ignore[attr-defined]
            # The containerd store's image ID is the manifest digest.
            assert info["Id"] == digest
        else:
            assert info["Id"] == str(image_id)
            assert info["RootFS"]["Layers"] == [
                str(d) for d in Image.from_bytes(layout.get_config(image_id)).diff_ids]
    finally:
        # Untag only this name: the image ID is a golden's, other tests may hold it too.
        daemon.run("rmi", ref, check=False)  # type: ignore[attr-defined]


# -- what is not sent ---------------------------------------------------------------------


def _uploads(registry: Registry, mark: int) -> list[tuple[str, str, int]]:
    return [r for r in registry.requests_since(mark)
            if "/blobs/uploads/" in r[1] and r[0] in ("POST", "PATCH", "PUT")
            and "mount=" not in r[1]]


def test_a_second_push_sends_no_layer_bytes(registry: Registry, tmp_path: Path,
                                            env: Path) -> None:
    golden_layout("s07-build-fszoo", tmp_path / "src")
    name = next(iter(layout_images(OCILayoutStore(str(tmp_path / "src")))))
    args = ["push", "-q", "--from", f"oci:{tmp_path / 'src'}", name,
            f"{registry.host}/again/app:1"]
    mark = registry.log_size()
    assert cli(*args) == 0
    assert _uploads(registry, mark)  # the first push did upload
    mark = registry.log_size()
    assert cli(*args) == 0
    assert _uploads(registry, mark) == []  # the registry's log: no upload started at all


def test_a_sibling_sends_only_its_own_layers(registry: Registry, tmp_path: Path) -> None:
    layout = golden_layout("s11-siblings-shared-base", tmp_path / "src")
    cache = BlobInfoCache()
    first = Pusher(layout, cache=cache).push("cc-s-sib/a:1", f"docker://{registry.host}/sib/a:1")
    mark = registry.log_size()
    second = Pusher(layout, cache=cache).push("cc-s-sib/b:1", f"docker://{registry.host}/sib/b:1")
    a_blobs = {d for d, _ in first.blobs}
    shared = [(d, s) for d, s in second.blobs if d in a_blobs]
    new = [(d, s) for d, s in second.blobs if d not in a_blobs]
    assert shared and all(s == "mounted from sib/a" for _, s in shared)
    assert new and all(s == "pushed" for _, s in new)
    # The registry saw uploads for the new blobs only, and mounts for the shared ones.
    requests = registry.requests_since(mark)
    mounts = [r for r in requests if "mount=" in r[1]]
    assert len(mounts) == len(shared) and all(r[2] == 201 for r in mounts)
    finished = [r for r in requests if r[0] == "PUT" and "/blobs/uploads/" in r[1]]
    assert len(finished) == len(new)
    manifest = json.loads(second.manifest)
    sizes = {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}
    assert second.uploaded_bytes == sum(sizes[d] for d, _ in new)


def test_gzip_is_deterministic_and_none_keeps_layers(registry: Registry, tmp_path: Path) -> None:
    layout = golden_layout("s04-build-multilayer-emptylayers", tmp_path / "src")
    name = next(iter(layout_images(layout)))
    one = Pusher(layout, cache=BlobInfoCache()).push(name, f"docker://{registry.host}/det/a:1")
    two = Pusher(layout, cache=BlobInfoCache()).push(name, f"docker://{registry.host}/det/b:1")
    assert one.digest == two.digest  # compressed afresh, to the same bytes
    for layer in json.loads(one.manifest)["layers"]:
        assert layer["mediaType"] == proto.DOCKER_LAYER_GZIP
    plain = Pusher(layout, compression="none", manifest_format="oci").push(
        name, f"docker://{registry.host}/det/plain:1")
    manifest = json.loads(plain.manifest)
    image = Image.from_bytes(layout.get_config(layout_images(layout)[name]))
    assert [layer["digest"] for layer in manifest["layers"]] == [str(d) for d in image.diff_ids]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {proto.OCI_LAYER}


def test_stored_gzip_layers_go_up_as_they_are(registry: Registry, tmp_path: Path,
                                               skopeo: object, env: Path) -> None:
    layout = golden_layout("s04-build-multilayer-emptylayers", tmp_path / "src")
    name = next(iter(layout_images(layout)))
    pushed = Pusher(layout).push(name, f"docker://{registry.host}/stored/app:1")
    # skopeo keeps the registry's gzip blobs in its layout; pushing from there sends them
    # unchanged (a fresh cache: the digests come from the stored blobs themselves).
    skopeo.run("copy", "--src-tls-verify=false",  # type: ignore[attr-defined]
               f"docker://{registry.host}/stored/app:1", f"oci:{tmp_path / 'sk'}:app")
    copy(f"oci:{tmp_path / 'sk'}:app", f"docker://{registry.host}/stored/again:1")
    raw, _, _ = RegistryClient(registry.host).get_manifest("stored/again", "1")
    layers = [d["digest"] for d in json.loads(raw)["layers"]]
    assert layers == [d["digest"] for d in json.loads(pushed.manifest)["layers"]]
    # And between registries the manifest is copied verbatim, its digest kept.
    copy(f"docker://{registry.host}/stored/app:1", f"docker://{registry.host}/stored/copy:1")
    _, _, digest = RegistryClient(registry.host).get_manifest("stored/copy", "1")
    assert digest == str(pushed.digest)


# -- faults -------------------------------------------------------------------------------


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tarexport: ")
    return lines[0]


def test_wrong_password_one_line_no_secret(auth_registry: Registry, tmp_path: Path, env: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    golden_layout("s04-build-multilayer-emptylayers", tmp_path / "src")
    name = next(iter(layout_images(OCILayoutStore(str(tmp_path / "src")))))
    args = ["push", "-q", "--from", f"oci:{tmp_path / 'src'}", name,
            f"{auth_registry.host}/private/app:1"]
    assert cli(*args) == 1  # no credentials at all
    line = _one_error_line(capsys)
    assert "authentication required" in line
    docker_config(env / "docker-config", auth_registry.host, USER, "wrong-pa55")
    assert cli(*args) == 1
    line = _one_error_line(capsys)
    assert "authentication failed" in line
    assert "wrong-pa55" not in line and USER not in line
    basic = proto.basic_authorization(USER, PASSWORD)
    assert auth_registry.manifest_status("private/app", "1", basic) == 404
    docker_config(env / "docker-config", auth_registry.host, USER, PASSWORD)
    assert cli(*args) == 0
    assert auth_registry.manifest_status("private/app", "1", basic) == 200
    with pytest.raises(RegistryAuthError) as info:
        Puller(OCILayoutStore(str(tmp_path / "x"), create=True),
               client=RegistryClient(auth_registry.host, credentials=lambda host: None)).pull(
            f"docker://{auth_registry.host}/private/app:1")
    assert PASSWORD not in str(info.value)


def test_a_500_on_one_blob(registry: Registry, tmp_path: Path, env: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    golden_layout("s07-build-fszoo", tmp_path / "src")
    name = next(iter(layout_images(OCILayoutStore(str(tmp_path / "src")))))
    proxy = FaultProxy(registry.host)
    try:
        failing = {"left": 1}

        def once(method: str, path: str) -> str | None:
            if method == "PATCH" and failing["left"]:
                failing["left"] -= 1
                return "500"
            return None

        proxy.rule = once  # a transient 500: retried, and nobody hears of it
        args = ["push", "--progress", "plain", "--retry-times", "2", "--from",
                f"oci:{tmp_path / 'src'}", name, f"{proxy.host}/faults/five:1"]
        assert cli(*args) == 0
        assert proxy.faults == 1
        err = capsys.readouterr().err
        assert "retry" not in err.lower() and "tarexport:" not in err

        proxy.rule = lambda method, path: "500" if method == "PATCH" else None
        golden_layout("s02-import-fszoo-gnu", tmp_path / "other")
        other = next(iter(layout_images(OCILayoutStore(str(tmp_path / "other")))))
        args[-3:] = [f"oci:{tmp_path / 'other'}", other, f"{proxy.host}/faults/hundred:1"]
        assert cli(*args) == 1
        line = _one_error_line(capsys)
        assert "HTTP 500" in line and "upload" in line
        assert registry.manifest_status("faults/hundred", "1") == 404  # nothing tagged
        proxy.rule = lambda method, path: None
        assert cli(*args) == 0
        assert registry.manifest_status("faults/hundred", "1") == 200
    finally:
        proxy.close()


def test_a_manifest_the_registry_rejects(registry: Registry, tmp_path: Path, env: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    golden_layout("s07-build-fszoo", tmp_path / "src")
    name = next(iter(layout_images(OCILayoutStore(str(tmp_path / "src")))))
    proxy = FaultProxy(registry.host)
    try:
        # The layer uploads are acknowledged but never reach the registry, which then
        # refuses a manifest naming blobs it does not have.
        proxy.rule = lambda m, p: "swallow" if m == "PUT" and "/blobs/uploads/" in p else None
        args = ["push", "-q", "--from", f"oci:{tmp_path / 'src'}", name,
                f"{proxy.host}/faults/rejected:1"]
        assert cli(*args) == 1
        line = _one_error_line(capsys)
        assert "push manifest" in line and "blob unknown" in line
        assert registry.manifest_status("faults/rejected", "1") == 404
        proxy.rule = lambda m, p: None
        assert cli(*args) == 0
        assert registry.manifest_status("faults/rejected", "1") == 200
    finally:
        proxy.close()


def _big_layout(path: Path, size: int) -> tuple[OCILayoutStore, str]:
    """An image with one layer of ``size`` incompressible bytes."""
    import os

    data = os.urandom(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    layout = OCILayoutStore(str(path), create=True)
    layout.add_image(config, [layer], references=["big/app:1"])
    return layout, "big/app:1"


def test_the_registry_stopped_mid_upload(tmp_path: Path, env: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    server = Registry(tmp_path / "doomed").start()
    relay = Relay(server)
    try:
        _big_layout(tmp_path / "src", 6 << 20)
        relay.cut_after = 3 << 20  # into the layer's PATCH
        relay.on_cut = server.stop
        args = ["push", "-q", "--retry-times", "2", "--from", f"oci:{tmp_path / 'src'}",
                "big/app:1", f"{relay.host}/stopped/app:1"]
        assert cli(*args) == 1
        line = _one_error_line(capsys)
        assert relay.cuts == 1 and server.proc is None
        assert "cannot reach" in line or "Connection refused" in line or "closed" in line
        server.start()
        assert server.manifest_status("stopped/app", "1") == 404
        assert cli(*args) == 0
        assert server.manifest_status("stopped/app", "1") == 200
    finally:
        relay.close()
        server.stop()


def test_a_dropped_connection_resumes_the_upload(registry: Registry, tmp_path: Path) -> None:
    relay = Relay(registry)
    try:
        layout, name = _big_layout(tmp_path / "src", 6 << 20)
        relay.cut_after = 3 << 20
        mark = registry.log_size()
        events = []
        client = RegistryClient(relay.host, retry=FAST_RETRIES)
        pushed = Pusher(layout, client=client, compression="none",
                        progress=lambda e: events.append(e) if e.phase == "retry" else None
                        ).push(name, f"docker://{relay.host}/resumed/app:1")
        assert relay.cuts == 1
        assert any("resuming" in e.message for e in events)
        back = OCILayoutStore(str(tmp_path / "back"), create=True)
        pulled = Puller(back, client=RegistryClient(registry.host)).pull(
            f"docker://{registry.host}/resumed/app:1")
        assert pulled.manifest_digest == pushed.digest
        # The registry was asked where the upload stands. distribution 2.8 forgets an
        # upload whose PATCH broke off (404), so the layer went up again in a fresh upload;
        # a registry that keeps it (204 with a Range) is resumed from its offset (see
        # test_distribution.py for that path).
        requests = registry.requests_since(mark)
        asked = [r for r in requests if r[0] == "GET" and "/blobs/uploads/" in r[1]]
        started = [r for r in requests if r[0] == "POST" and "/resumed/app/" in r[1]]
        assert len(asked) == 1 and asked[0][2] in (204, 404)
        assert len(started) == (3 if asked[0][2] == 404 else 2)
    finally:
        relay.close()


def test_unreachable_registry_is_one_error(tmp_path: Path) -> None:
    from registry_server import free_port

    port = free_port()
    client = RegistryClient(f"127.0.0.1:{port}", retry=FAST_RETRIES)
    with pytest.raises(RegistryUnavailable, match=f"127.0.0.1:{port}"):
        Puller(OCILayoutStore(str(tmp_path / "x"), create=True), client=client).pull(
            f"docker://127.0.0.1:{port}/none:1")


# -- the documentation's examples, as pasted ----------------------------------------------


def test_docs_examples_run(registry: Registry, env: Path, monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "registries.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block.replace("localhost:5000", registry.host), "registries.md", "exec"),
             {})


def test_copy_command_with_registry_places(registry: Registry, tmp_path: Path,
                                           env: Path) -> None:
    layout = golden_layout("s04-build-multilayer-emptylayers", tmp_path / "src")
    name = next(iter(layout_images(layout)))
    dest = f"docker://{registry.host}/cmd/app:1"
    assert cli("copy", "-q", f"oci:{tmp_path / 'src'}:{name}", dest) == 0
    assert cli("copy", "-q", dest, f"oci:{tmp_path / 'back'}:{registry.host}/cmd/app:1") == 0
    back = OCILayoutStore(str(tmp_path / "back"))
    assert set(back.search("")) == set(layout.search(""))


def test_multi_platform_index(registry: Registry, tmp_path: Path) -> None:
    """An index of two platforms: --platform picks, the default is this machine's."""
    from tarexport import MemoryStore

    store = MemoryStore()
    layer = golden_layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    pushed = {}
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        store.add_image(config, [layer], references=[f"multi:{arch}"])
        pushed[arch] = Pusher(store, manifest_format="oci").push(
            f"multi:{arch}", f"docker://{registry.host}/multi/app:{arch}")
    index = json.dumps({"schemaVersion": 2, "mediaType": proto.OCI_INDEX, "manifests": [
        {"mediaType": proto.OCI_MANIFEST, "digest": str(pushed[a].digest),
         "size": len(pushed[a].manifest), "platform": {"os": "linux", "architecture": a}}
        for a in ("amd64", "arm64")]}).encode()
    client = RegistryClient(registry.host)
    client.put_manifest("multi/app", "1", index, proto.OCI_INDEX)
    for arch in ("amd64", "arm64"):
        back = OCILayoutStore(str(tmp_path / arch), create=True)
        pulled = Puller(back, platform=f"linux/{arch}").pull(
            f"docker://{registry.host}/multi/app:1")
        assert pulled.manifest_digest == pushed[arch].digest
    import platform as host

    if host.machine() in ("x86_64", "amd64"):
        back = OCILayoutStore(str(tmp_path / "default"), create=True)
        assert Puller(back).pull(
            f"docker://{registry.host}/multi/app:1").manifest_digest == pushed["amd64"].digest
    with pytest.raises(Exception, match=r"no image for platform linux/s390x"):
        Puller(OCILayoutStore(str(tmp_path / "s390x"), create=True), platform="linux/s390x"
               ).pull(f"docker://{registry.host}/multi/app:1")


def golden_layer() -> bytes:
    return read_golden("s04-build-multilayer-emptylayers").layers[
        read_golden("s04-build-multilayer-emptylayers").order[0]][0]


# -- token authentication -----------------------------------------------------------------


def test_bearer_token_auth(tmp_path: Path, env: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """distribution's token auth with a token server issuing real RS256 JWTs."""
    from registry_server import TokenServer

    tokens = TokenServer(tmp_path / "tokens", USER, PASSWORD)
    server = Registry(tmp_path / "token-registry", auth=tokens.auth_config()).start()
    try:
        golden_layout("s10-base-and-derived-together", tmp_path / "src")
        args = ["push", "-q", "--from", f"oci:{tmp_path / 'src'}", "cc-s-app:1",
                f"{server.host}/tokened/app:1"]
        docker_config(env / "docker-config", server.host, USER, "not-it")
        assert cli(*args) == 1
        line = _one_error_line(capsys)
        assert "authentication failed" in line and "not-it" not in line
        docker_config(env / "docker-config", server.host, USER, PASSWORD)
        assert cli(*args) == 0
        assert tokens.issued >= 1
        # A sibling repository: the mount asks for pull on the source as well.
        assert cli("push", "-q", "--from", f"oci:{tmp_path / 'src'}", "cc-s-base:1",
                   f"{server.host}/tokened/base:1") == 0
        assert cli("pull", "-q", "--into", f"oci:{tmp_path / 'back'}",
                   f"{server.host}/tokened/app:1") == 0
        back = OCILayoutStore(str(tmp_path / "back"))
        assert str(next(iter(back.search("")))) in capsys.readouterr().out
    finally:
        server.stop()
        tokens.close()
