"""The Docker 25+ archive (the default, `DOCKER_29`) against real consumers.

Every golden is saved again from its images with the default profile, and must be read by:

- Docker 20.10's `docker load`, which reads `manifest.json`: same image IDs, tags, parents
  and layers as the golden;
- `skopeo copy oci-archive:...`, which reads `index.json` as an OCI image layout and checks
  every digest on the way;
- `umoci ls` and `umoci stat` on the extracted tree.

Expected values come from the goldens (Docker's own `manifest.json`, configs and layers). The
last part measures which consumer reads which profile's archives, with and without images
that have no layers; `docs/formats.md` reports that table.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import attrs
import pytest
from golden_store import (
    CASES,
    ExpectedImage,
    assert_loaded,
    build_store,
    evict,
    expected_images,
    read_golden,
    save_to_file,
)
from peers import DockerCLI, DockerScratch, Tool

from tarexport import MemoryStore, profiles
from tarexport.profiles import Profile

pytestmark = pytest.mark.peer


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        body = tar.extractfile(name)
        assert body is not None
        return body.read()


def extract(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # pragma: no cover - Pythons without extraction filters
            tar.extractall(into)
    return into


# -- every golden, saved with the default profile --------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_docker_20_10_loads_it(docker: DockerScratch, case: str, tmp_path: Path) -> None:
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    archive = save_to_file(
        store, golden.case["docker_save_args"], profiles.DEFAULT, tmp_path / "a.tar"
    )
    images = expected_images(golden)
    assert not evict(docker, [i.id for i in images] + [t for i in images for t in i.repo_tags])

    assert_loaded(docker, docker.load(archive), images)


def skopeo_sources(path: Path) -> dict[str, str]:
    """Image hex -> how skopeo can name it in our archive: the one ref name only it has, or
    no name when the index lists nothing else (skopeo 1.9 has no `@index` for OCI)."""
    manifests = json.loads(read_member(path, "index.json"))["manifests"]
    ref_names: dict[str, set[str]] = {}
    for d in manifests:
        name = d.get("annotations", {}).get("org.opencontainers.image.ref.name")
        if name is not None:
            ref_names.setdefault(name, set()).add(d["digest"])
    sources: dict[str, str] = {}
    for d in manifests:
        manifest = json.loads(read_member(path, "blobs/sha256/" + d["digest"][7:]))
        config_hex = manifest["config"]["digest"][7:]
        name = d.get("annotations", {}).get("org.opencontainers.image.ref.name")
        if len(manifests) == 1:
            sources[config_hex] = f"oci-archive:{path}"
        elif name is not None and ref_names[name] == {d["digest"]}:
            sources.setdefault(config_hex, f"oci-archive:{path}:{name}")
    return sources


def assert_copied(directory: Path, image: ExpectedImage) -> None:
    """skopeo's `dir:` copy holds the image's config and layers, each named by its digest."""
    manifest = json.loads((directory / "manifest.json").read_bytes())
    assert manifest["config"]["digest"] == image.id
    assert [layer["digest"] for layer in manifest["layers"]] == image.diff_ids
    assert [layer["size"] for layer in manifest["layers"]] == [len(x) for x in image.layers]
    for digest in [image.id, *image.diff_ids]:
        blob = directory / digest.removeprefix("sha256:")
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("case", CASES)
def test_skopeo_copies_every_image(skopeo: Tool, case: str, tmp_path: Path) -> None:
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    archive = save_to_file(
        store, golden.case["docker_save_args"], profiles.DEFAULT, tmp_path / "a.tar"
    )
    sources = skopeo_sources(archive)
    for image in expected_images(golden):
        source = sources.get(image.hex)
        if source is None:  # not nameable in the whole archive: the image saved alone
            alone = save_to_file(store, [image.id], profiles.DEFAULT, tmp_path / f"{image.hex}.tar")
            source = f"oci-archive:{alone}"
        target = tmp_path / f"dir-{image.hex}"
        skopeo.run("--insecure-policy", "copy", "--quiet", source, f"dir:{target}")
        assert_copied(target, image)


@pytest.mark.parametrize("case", CASES)
def test_umoci_reads_the_extracted_layout(umoci: Tool, case: str, tmp_path: Path) -> None:
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    archive = save_to_file(
        store, golden.case["docker_save_args"], profiles.DEFAULT, tmp_path / "a.tar"
    )
    layout = extract(archive, tmp_path / "layout")
    images = expected_images(golden)
    ref_names = [tag.rpartition(":")[2] for image in images for tag in image.repo_tags]
    listed = umoci.run("ls", "--layout", str(layout)).stdout.decode().split()
    assert sorted(listed) == sorted(ref_names)
    for name in {n for n in ref_names if ref_names.count(n) == 1}:
        stat = umoci.run("stat", "--json", "--image", f"{layout}:{name}").stdout
        history = json.loads(stat)["history"]
        assert isinstance(history, list)


# -- which consumer reads which profile: the table of docs/formats.md ------------------------


ZERO_CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "config": {"Labels": {"only": "a label"}},
        "created": "2026-11-28T23:01:25.266573106Z",
        "os": "linux",
        "rootfs": {"type": "layers"},
    }
).encode()


@attrs.frozen
class Sample:
    """What a matrix cell saves: a store, the names, and the images expected back."""

    store: MemoryStore
    names: tuple[str, ...]
    images: tuple[ExpectedImage, ...]


def sample(kind: str, tmp_path: Path) -> Sample:
    if kind == "no-layers":
        store = MemoryStore()
        store.add_image(ZERO_CONFIG, [], ["fmt-nolayers:1"])
        hex_ = hashlib.sha256(ZERO_CONFIG).hexdigest()
        image = ExpectedImage(hex_, ("fmt-nolayers:1",), "", ())
        return Sample(store, ("fmt-nolayers:1",), (image,))
    # Two images of one repository, with distinct tags, so that every tool can name each.
    golden = read_golden("s12-repo-name-only")
    store = build_store(golden, tmp_path, files=True)
    return Sample(store, tuple(golden.case["docker_save_args"]), tuple(expected_images(golden)))


def reads(consumer: str, archive: Path, sample: Sample, tmp_path: Path, peer: Any) -> None:
    """Run one consumer on the archive; raises (a peer command error) when it cannot read it."""
    if consumer == "docker load":
        refs = [i.id for i in sample.images] + [t for i in sample.images for t in i.repo_tags]
        assert not evict(peer, refs)
        assert_loaded(peer, peer.load(archive), sample.images)
    elif consumer in ("skopeo docker-archive", "skopeo oci-archive"):
        transport = consumer.split()[1]
        by_id = {image.id: image for image in sample.images}
        copied = []
        for n, image in enumerate(sample.images):
            # docker-archive names images by position, an OCI layout by ref name.
            ref_name = image.repo_tags[0].rpartition(":")[2]
            name = f"@{n}" if transport == "docker-archive" else ref_name
            target = tmp_path / f"{transport}-{n}"
            peer.run(
                "--insecure-policy",
                "copy",
                "--quiet",
                f"{transport}:{archive}:{name}",
                f"dir:{target}",
            )
            config = json.loads((target / "manifest.json").read_bytes())["config"]["digest"]
            assert_copied(target, by_id[config])
            copied.append(config)
        assert sorted(copied) == sorted(by_id)
    else:
        layout = extract(archive, tmp_path / "layout")
        listed = peer.run("ls", "--layout", str(layout)).stdout.decode().split()
        assert sorted(listed) == sorted(
            t.rpartition(":")[2] for i in sample.images for t in i.repo_tags
        )
        for name in listed:
            peer.run("stat", "--image", f"{layout}:{name}")


CONSUMERS = ("docker load", "skopeo docker-archive", "skopeo oci-archive", "umoci")
# Measured: the OCI tools need the OCI layout (index.json, oci-layout) of Docker 25+.
READS_V1_DIRS = {
    "docker load": True,
    "skopeo docker-archive": True,
    "skopeo oci-archive": False,
    "umoci": False,
}


# Measured: early 25.0.x OCI manifests list no layer, so OCI tools see images without their
# layers; the containerd store's manifest of a loaded legacy image is Docker schema 2, which
# skopeo 1.9's and umoci 0.4's OCI layout readers do not take.
OCI_REFUSALS = {
    ("docker-25", "skopeo oci-archive"): r"assert \[\] == ",
    ("docker-25", "umoci"): r"index out of range",  # umoci stat panics on it
    ("docker-28-containerd", "skopeo oci-archive"): r"no descriptor found for reference",
    ("docker-28-containerd", "umoci"): r"not implemented: application/vnd\.docker",
}


@pytest.mark.parametrize("kind", ["two-images", "no-layers"])
@pytest.mark.parametrize("profile", profiles.ALL, ids=[p.name for p in profiles.ALL])
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_consumer_matrix(
    request: pytest.FixtureRequest, consumer: str, profile: Profile, kind: str, tmp_path: Path
) -> None:
    peer: Any
    if consumer == "docker load":
        peer = request.getfixturevalue("docker")
    else:
        peer = request.getfixturevalue(consumer.split()[0])
    this = sample(kind, tmp_path)
    profile = attrs.evolve(profile, zero_layer_images=(kind == "no-layers"))
    archive = save_to_file(this.store, this.names, profile, tmp_path / "a.tar")
    refusal = OCI_REFUSALS.get((profile.name, consumer))
    if profile.layout == "v1-dirs" and not READS_V1_DIRS[consumer]:
        refusal = r"index\.json|oci-layout|no such file"
    if refusal is None or (kind == "no-layers" and profile.name == "docker-25"):
        reads(consumer, archive, this, tmp_path, peer)
    else:
        with pytest.raises(Exception, match=refusal):
            reads(consumer, archive, this, tmp_path, peer)


def test_peer_versions(docker_cli: DockerCLI, skopeo: Tool, umoci: Tool) -> None:
    """The versions the table in docs/formats.md was measured with (printed with -rA)."""
    versions = {
        "docker": docker_cli.server_version()["Version"],
        "skopeo": skopeo.version(),
        "umoci": umoci.version(),
    }
    print(json.dumps(versions))
    assert all(versions.values())
