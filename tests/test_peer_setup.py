"""Peer tests that prove the test set-up: the daemon, skopeo and umoci work as the goldens need.

They check the peers against independent facts (the goldens, our reference parser), so a
daemon that behaves differently from the one that made the goldens shows up here first.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from helpers import GoldenCase, assert_tar_equal, golden_cases, golden_params
from peers import DockerScratch, Tool

pytestmark = pytest.mark.peer


def tiny_layer_tar() -> bytes:
    """A one-file layer tar, made here so the test needs no fixture file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        body = b"hello from tarexport\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(body)
        info.mtime = 1_600_000_000
        archive.addfile(info, io.BytesIO(body))
    return buf.getvalue()


# Names as a user would type them to `docker tag`: a registry with a port and a deep path,
# a domain with capitals (allowed there, not in the path), the docker.io spellings that
# normalise away, a bare `localhost` domain, an IP host, and a name with no tag.
TAG_SPELLINGS = [
    "localhost:5000/a/b:c",
    "Example.com:443/x",
    "docker.io/library/plain:1",
    "index.docker.io/ns/deep/path",
    "docker.io/ns/app:v1.0-RC_2",
    "localhost/x",
    "127.0.0.1:5000/ns/app:1",
    "no-tag_at.all",
]


def test_docker_repo_tags_agree_with_reference_parser(docker: DockerScratch) -> None:
    # Imported here: a package that fails to import then fails this test, not the module.
    from tarexport import reference

    spellings = [docker.unique(s) for s in TAG_SPELLINGS]
    image_id = docker.import_tar(tiny_layer_tar(), spellings[0])
    for spelling in spellings[1:]:
        docker.tag(image_id, spelling)

    expected = sorted(
        reference.familiar_string(
            reference.tag_name_only(reference.parse_normalized_named(s, legacy=True))
        )
        for s in spellings
    )
    assert sorted(docker.inspect(image_id)["RepoTags"]) == expected


def test_docker_import_keeps_the_layer_bytes(docker: DockerScratch) -> None:
    layer = tiny_layer_tar()
    image_id = docker.import_tar(layer, docker.unique("import-check:1"))
    info = docker.inspect(image_id)
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]


def _resave_is_deterministic(case: GoldenCase) -> bool:
    """Cases whose bytes a second `docker save` reproduces.

    Symlinked layer dirs carry the wall-clock time of the save, multi-image manifests follow
    Go's map order, and a name@digest cannot be re-created by `docker load`.
    """
    c = case.case
    return (
        case.save_tar is not None
        and not c.get("symlinked_layers")
        and not c.get("repeat_saves")
        and not any("@" in arg for arg in c["docker_save_args"])
    )


RESAVE_CASES = [c for c in golden_cases() if _resave_is_deterministic(c)]


@pytest.mark.parametrize("case", golden_params(RESAVE_CASES))
def test_docker_resaves_golden_byte_for_byte(docker: DockerScratch, case: GoldenCase) -> None:
    """Loading a golden and saving it again gives the golden's bytes: same daemon behaviour."""
    assert case.save_tar is not None
    docker.load(case.save_tar)
    for image in case.case["images"]:
        assert docker.inspect(image["id"])["Id"] == image["id"]
    saved = docker.save(*case.case["docker_save_args"])
    assert_tar_equal(saved, case.save_tar.read_bytes())


def test_peer_tools_report_versions(skopeo: Tool, umoci: Tool) -> None:
    assert skopeo.version().startswith("skopeo version ")
    assert umoci.version().startswith("umoci version ")


@pytest.mark.parametrize(
    "case", golden_params([c for c in golden_cases() if c.name.startswith("s01-")])
)
def test_skopeo_and_umoci_read_a_golden(
    skopeo: Tool, umoci: Tool, case: GoldenCase, tmp_path: Path
) -> None:
    assert case.save_tar is not None
    source = f"docker-archive:{case.save_tar}"
    config = skopeo.run("inspect", "--config", "--raw", source).stdout
    assert "sha256:" + hashlib.sha256(config).hexdigest() == case.case["images"][0]["id"]

    layout = tmp_path / "layout"
    skopeo.run("--insecure-policy", "copy", "--quiet", source, f"oci:{layout}:copied")
    assert umoci.run("ls", "--layout", str(layout)).stdout.split() == [b"copied"]

    # The copy keeps the golden's layers: the OCI config lists the same diff IDs.
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads(blob_path(layout, index["manifests"][0]["digest"]).read_bytes())
    config = json.loads(blob_path(layout, manifest["config"]["digest"]).read_bytes())
    assert config["rootfs"]["diff_ids"] == case.case["images"][0]["diff_ids"]


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hex_ = digest.partition(":")
    return layout / "blobs" / algorithm / hex_
