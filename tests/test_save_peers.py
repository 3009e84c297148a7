"""The Saver's archives against real consumers: Docker 20.10's `docker load`, and skopeo.

Every golden is saved again from its images with the profile of the daemon that made it, and
the result must load into that daemon as the same images with the same names. Expected values
come from the goldens (Docker's own `manifest.json` and configs), never from our output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator, Sequence

import attrs
import pytest
from golden_store import (
    CASES,
    ExpectedImage,
    Golden,
    assert_loaded,
    build_store,
    evict,
    expected_images,
    read_golden,
    save_to_file,
)
from helpers import assert_tar_equal
from peers import COMMAND_TIMEOUT, DockerCLI, DockerScratch, PeerCommandError, Tool

from tarexport import Saver, profiles

pytestmark = pytest.mark.peer

# The goldens' daemon is Debian's docker.io 20.10, which writes "root" as owner names.
DEBIAN_20_10 = attrs.evolve(profiles.DOCKER_20_10, owner_name="root")


@contextlib.contextmanager
def loaded_fresh(
    docker: DockerCLI, images: Sequence[ExpectedImage], tags: Sequence[str] = ()
) -> Iterator[None]:
    """The daemon holds none of these images (or tags) before, so a load must create them;
    they are removed again afterwards, also when a load failed half-way.
    """
    ids = [image.id for image in images]
    left = evict(docker, [*ids, *tags])
    assert not left, f"the daemon still holds {left} after removing them"
    try:
        yield
    finally:
        evict(docker, ids)


def resave_is_deterministic(golden: Golden) -> bool:
    """Whether a second `docker save` reproduces the golden's bytes.

    Not when a layer dir holds a symlink (stamped with the wall clock), the manifest order
    follows Go's map order, or the image was named by a digest reference (which `docker load`
    cannot re-create).
    """
    case = golden.case
    return (
        not case.get("symlinked_layers")
        and not case.get("repeat_saves")
        and not any("@" in arg for arg in case["docker_save_args"])
    )


# -- docker load ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_docker_20_10_loads_our_save(docker: DockerScratch, case: str, tmp_path: Path) -> None:
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    archive = save_to_file(
        store, golden.case["docker_save_args"], DEBIAN_20_10, tmp_path / "ours.tar"
    )
    images = expected_images(golden)
    with loaded_fresh(docker, images, [t for image in images for t in image.repo_tags]):
        loaded = docker.load(archive)

        assert_loaded(docker, loaded, images)
        if resave_is_deterministic(golden):
            # The daemon now holds exactly what it held when it wrote the golden.
            assert_tar_equal(docker.save(*golden.case["docker_save_args"]), golden.archive)


def test_docker_20_10_loads_the_2016_format(docker: DockerScratch, tmp_path: Path) -> None:
    """Docker 20.10 loads the Docker 1.11 format (every layer written in full, intermediate
    layers created at Go's zero time, no `os` in v1 `json`) as the same image with the same
    tags, and its own re-save of it is the golden.
    """
    golden = read_golden("s04-build-multilayer-emptylayers")
    store = build_store(golden, tmp_path, files=True)
    archive = save_to_file(
        store, golden.case["docker_save_args"], profiles.DOCKER_1_11, tmp_path / "ours-1.11.tar"
    )
    assert archive.read_bytes() != golden.archive  # really the older format
    images = expected_images(golden)
    assert len(images[0].diff_ids) > 1  # intermediate layers are what 1.11 writes differently
    with loaded_fresh(docker, images, [t for image in images for t in image.repo_tags]):
        loaded = docker.load(archive)

        assert_loaded(docker, loaded, images)
        assert_tar_equal(docker.save(*golden.case["docker_save_args"]), golden.archive)


PIPE_CASES = ["s08-build-bigfile-3MiB", "s10-base-and-derived-together"]


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
@pytest.mark.parametrize("case", PIPE_CASES)
def test_save_piped_into_docker_load(
    docker: DockerScratch, case: str, verify: bool, tmp_path: Path
) -> None:
    """The embedding example: the Saver writes straight into the stdin of `docker load`."""
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    images = expected_images(golden)
    # Fresh names carrying the test's token, so that cleanup finds them.
    names = []
    renamed = []
    for image in images:
        tags = tuple(docker.unique(tag) for tag in image.repo_tags)
        for tag in tags:
            store.add_reference(tag, image.id)
        names += tags
        renamed.append(attrs.evolve(image, repo_tags=tags))
    saver = Saver(store, store, store, profile=DEBIAN_20_10, verify=verify)
    # The client's own DOCKER_* settings would compete with -H.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}

    with loaded_fresh(docker, images):
        load = subprocess.Popen(
            [docker.binary, "-H", docker.host, "load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert load.stdin is not None
        try:
            saver.save(names, load.stdin)
            # Closes stdin, which ends the archive for `docker load`, then reads its output.
            stdout, stderr = load.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        if load.returncode != 0:
            raise PeerCommandError(load.returncode, load.args, stdout, stderr)

        loaded = [
            line.removeprefix("Loaded image: ")
            for line in stdout.decode().splitlines()
            if line.startswith("Loaded image: ")
        ]
        assert_loaded(docker, loaded, renamed)


# -- skopeo -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_skopeo_reads_our_save(skopeo: Tool, case: str, tmp_path: Path) -> None:
    """skopeo (containers/image) finds every image by index and by tag, with Docker's config."""
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    archive = save_to_file(
        store, golden.case["docker_save_args"], DEBIAN_20_10, tmp_path / "ours.tar"
    )
    images = {image.id: image for image in expected_images(golden)}

    def config_of(source: str) -> bytes:
        source = f"docker-archive:{archive}:{source}"
        return skopeo.run("inspect", "--config", "--raw", source).stdout

    seen = []
    for index in range(len(images)):
        config = config_of(f"@{index}")
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        assert image_id in images, f"@{index}: {image_id} is not one of the golden's images"
        assert config == golden.configs[image_id.removeprefix("sha256:")]
        info: dict[str, Any] = json.loads(
            skopeo.run("inspect", f"docker-archive:{archive}:@{index}").stdout
        )
        parsed = json.loads(config)
        assert info["Layers"] == list(images[image_id].diff_ids)
        assert (info["Architecture"], info["Os"]) == (parsed["architecture"], parsed["os"])
        seen.append(image_id)
    assert sorted(seen) == sorted(images)
    # Nothing beyond the golden's images.
    extra = skopeo.run("inspect", "--raw", f"docker-archive:{archive}:@{len(images)}", check=False)
    assert extra.returncode != 0
    assert b"invalid source index" in extra.stderr.lower()

    for image in images.values():
        for tag in image.repo_tags:
            config = config_of(tag)
            assert "sha256:" + hashlib.sha256(config).hexdigest() == image.id, tag
