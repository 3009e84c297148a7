"""The goldens as stores: what Docker held when it wrote each `save.tar`, rebuilt in memory.

:func:`read_golden` reads one golden back into its parts (raw configs, layer tars, tags,
parents, and the order Docker wrote the images in), taken from the archive Docker wrote and
its ``case.json`` only. :func:`build_store` puts those parts in a
:class:`~tarexport.MemoryStore`, so a test can save the same images again with any profile.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Optional, Sequence

import attrs
from helpers import GOLDENS_DIR
from peers import DockerCLI

from tarexport import MemoryStore, Saver
from tarexport.profiles import Profile

__all__ = [
    "CASES",
    "ExpectedImage",
    "Golden",
    "assert_loaded",
    "build_store",
    "evict",
    "expected_images",
    "read_golden",
    "save_to_file",
]

CASES = sorted(p.name for p in GOLDENS_DIR.iterdir() if (p / "save.tar").exists())
"""Every golden case that has a ``save.tar`` (error cases have none)."""


@attrs.frozen
class Golden:
    """What Docker had in its stores for one golden, read back from the archive and case."""

    name: str
    case: dict[str, Any]
    archive: bytes
    configs: dict[str, bytes]  # image hex -> raw config
    layers: dict[str, list[bytes]]  # image hex -> layer tars, bottom to top
    tags: dict[str, list[str]]  # image hex -> references Docker had
    parents: dict[str, str]
    order: tuple[str, ...]  # image hexes in the archive's manifest order
    symlink_mtime: Optional[int]
    repo_tags: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    """Image hex -> the ``RepoTags`` Docker wrote for it in this save's ``manifest.json``."""


def read_golden(name: str) -> Golden:
    case = json.loads((GOLDENS_DIR / name / "case.json").read_text())
    archive = (GOLDENS_DIR / name / "save.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}

        def read(path: str) -> bytes:
            member = members[path]
            while member.issym():
                path = os.path.normpath(os.path.join(os.path.dirname(path), member.linkname))
                member = members[path]
            data = tar.extractfile(member)
            assert data is not None
            return data.read()

        manifest = json.loads(read("manifest.json"))
        configs, layers, tags, repo_tags = {}, {}, {}, {}
        order = []
        for item in manifest:
            hex_ = item["Config"].removesuffix(".json")
            order.append(hex_)
            configs[hex_] = read(item["Config"])
            layers[hex_] = [read(p) for p in item["Layers"]]
            tags[hex_] = list(item["RepoTags"] or [])
            repo_tags[hex_] = tuple(item["RepoTags"] or ())
        symlinks = [m for m in members.values() if m.issym()]
        symlink_mtime = symlinks[0].mtime if symlinks else None
    parents = {}
    for image in case["images"]:
        hex_ = image["id"].removeprefix("sha256:")
        for ref in image["repo_tags"] + image["repo_digests"]:
            if ref not in tags.setdefault(hex_, []):
                tags[hex_].append(ref)
        if image["parent"]:
            parents[hex_] = image["parent"]
    return Golden(
        name,
        case,
        archive,
        configs,
        layers,
        tags,
        parents,
        tuple(order),
        symlink_mtime,
        repo_tags,
    )


def build_store(golden: Golden, tmp_path: Path, *, files: bool) -> MemoryStore:
    """A MemoryStore holding the golden's images; layers as files on disk or as bytes."""
    store = MemoryStore()
    pending = dict(golden.configs)
    while pending:  # parents first, so that parent IDs refer to known images
        for hex_, config in list(pending.items()):
            parent = golden.parents.get(hex_)
            if parent and parent.removeprefix("sha256:") in pending:
                continue
            sources: list[Any] = []
            for i, data in enumerate(golden.layers[hex_]):
                if files:
                    path = tmp_path / f"{hex_[:12]}-{i}.tar"
                    path.write_bytes(data)
                    sources.append(path)
                else:
                    sources.append(data)
            known = parent and parent.removeprefix("sha256:") in golden.configs
            known_parent = parent if known else None
            store.add_image(config, sources, golden.tags.get(hex_, []), parent=known_parent)
            del pending[hex_]
    return store


# -- what Docker must show after loading a golden's images --------------------------------


@attrs.frozen
class ExpectedImage:
    """An image as Docker wrote it in the golden: what `docker image inspect` must show."""

    hex: str
    repo_tags: tuple[str, ...]
    parent: str
    layers: tuple[bytes, ...]

    @property
    def id(self) -> str:
        return f"sha256:{self.hex}"

    @property
    def diff_ids(self) -> list[str]:
        return ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in self.layers]


def expected_images(golden: Golden) -> list[ExpectedImage]:
    """The golden's images, from Docker's own `manifest.json` and layer tars."""
    images = []
    for item in golden.case["manifest"]:
        hex_ = item["Config"].removesuffix(".json")
        tags = tuple(item["RepoTags"] or ())
        images.append(ExpectedImage(hex_, tags, item.get("Parent", ""), tuple(golden.layers[hex_])))
    return images


def save_to_file(store: MemoryStore, names: Sequence[str], profile: Profile, path: Path) -> Path:
    """Save ``names`` from ``store`` into the file ``path``."""
    with open(path, "wb") as out:
        Saver(store, store, store, profile=profile).save(list(names), out)
    return path


def evict(docker: DockerCLI, refs: Sequence[str]) -> list[str]:
    """Remove these images and tags from the daemon; returns those still there after trying.

    A parent cannot go while its child exists, so passes repeat until nothing is left.
    """
    present = list(refs)
    for _ in range(4):
        present = [ref for ref in present if docker.exists(ref)]
        if not present:
            break
        docker.rmi(*present, check=False)
    return [ref for ref in present if docker.exists(ref)]


def assert_loaded(
    docker: DockerCLI, loaded: Sequence[str], images: Sequence[ExpectedImage]
) -> None:
    """`docker load` reported every tag (or the ID of an untagged image), and inspect agrees."""
    expected = [tag for image in images for tag in image.repo_tags]
    expected += [image.id for image in images if not image.repo_tags]
    assert sorted(loaded) == sorted(expected)
    for image in images:
        info = docker.inspect(image.id)
        assert info["Id"] == image.id
        assert sorted(info["RepoTags"]) == sorted(image.repo_tags), image.id
        assert info["Parent"] == image.parent, image.id
        assert info["RootFS"].get("Layers", []) == image.diff_ids, image.id
