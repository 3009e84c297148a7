"""The goldens of Docker 26, 28 and the containerd image store, as stores to save again.

Each set was recorded on a real daemon (see ``data/goldens/<set>/README.md``). A graphdriver
golden is read back into a :class:`~tarexport.MemoryStore` (configs, layer tars, tags,
parents); a containerd-store golden is an OCI layout already, so it is unpacked into a
directory and opened as an :class:`~tarexport.OCILayoutStore`, which keeps the manifests and
compressed blobs as the content store held them. What the daemon did not repeat between
saves (its clock, its Go map order) is read off its archive and handed to the profile.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Optional

import attrs
from helpers import DATA_DIR

from tarexport import MemoryStore, OCILayoutStore, profiles
from tarexport.profiles import Profile

__all__ = [
    "CONTAINERD_SETS",
    "GRAPHDRIVER_SETS",
    "SET_PROFILES",
    "GenerationGolden",
    "cases",
    "containerd_store",
    "graphdriver_store",
    "read",
]

GRAPHDRIVER_SETS = ("docker-26", "docker-28")
CONTAINERD_SETS = ("docker-26-containerd", "docker-28-containerd")

SET_PROFILES: dict[str, Profile] = {
    # Debian's 26.1.5 is built with Go 1.24, which writes \b and \f short.
    "docker-26": attrs.evolve(profiles.DOCKER_26, go_short_escapes=True),
    "docker-28": profiles.DOCKER_28,
    "docker-26-containerd": profiles.DOCKER_28_CONTAINERD,
    "docker-28-containerd": profiles.DOCKER_28_CONTAINERD,
}
"""The profile that must reproduce each set, before the per-save inputs."""


@attrs.frozen
class GenerationGolden:
    """One recorded save: the case, the archive, and the members read back from it."""

    set: str
    name: str
    case: dict[str, Any]
    archive: Optional[bytes]

    @property
    def error(self) -> Optional[dict[str, Any]]:
        return self.case.get("error")

    def members(self) -> dict[str, tarfile.TarInfo]:
        assert self.archive is not None
        with tarfile.open(fileobj=io.BytesIO(self.archive)) as tar:
            return {m.name: m for m in tar.getmembers()}

    def read(self, name: str) -> bytes:
        assert self.archive is not None
        with tarfile.open(fileobj=io.BytesIO(self.archive)) as tar:
            data = tar.extractfile(name)
            assert data is not None
            return data.read()

    def manifest(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.read("manifest.json"))
        return found

    def order(self) -> tuple[str, ...]:
        """Config hexes in the order the daemon wrote the images (its Go map order)."""
        return tuple(item["Config"].rsplit("/", 1)[-1] for item in self.manifest())

    def profile(self) -> Profile:
        """The set's profile with this save's clock and image order."""
        base = SET_PROFILES[self.set]
        if self.archive is None:
            return base
        clock = self.members().get("blobs/sha256")
        now = clock.mtime if clock is not None and base.layout == "oci-hybrid" else None
        return attrs.evolve(base, image_order=self.order(), now=now)


def cases(set_name: str) -> list[str]:
    root = DATA_DIR / "goldens" / set_name
    return sorted(p.name for p in root.iterdir() if (p / "case.json").is_file())


def read(set_name: str, name: str) -> GenerationGolden:
    case_dir = DATA_DIR / "goldens" / set_name / name
    case = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
    tar = case_dir / "save.tar"
    return GenerationGolden(set_name, name, case, tar.read_bytes() if tar.is_file() else None)


def graphdriver_store(golden: GenerationGolden) -> MemoryStore:
    """The images of a graphdriver save, with every tag and parent the daemon held."""
    held = {i["id"]: i for i in golden.case["saved_images"]}
    items = golden.manifest()
    ids = {"sha256:" + item["Config"].rsplit("/", 1)[-1] for item in items}
    store = MemoryStore()
    pending = list(items)
    while pending:  # parents first
        for item in list(pending):
            image_id = "sha256:" + item["Config"].rsplit("/", 1)[-1]
            info = held.get(image_id, {})
            parent = item.get("Parent") or info.get("parent") or None
            if parent in ids and any(p["Config"].endswith(parent[7:]) for p in pending):
                continue
            refs = (info.get("repo_tags") or []) + (info.get("repo_digests") or [])
            store.add_image(
                golden.read(item["Config"]),
                [golden.read(path) for path in item["Layers"]],
                refs,
                parent=parent if parent in ids else None,
            )
            pending.remove(item)
    return store


def containerd_store(golden: GenerationGolden, directory: Path) -> OCILayoutStore:
    """The save unpacked as the OCI layout it is, with every tag the daemon held."""
    assert golden.archive is not None
    with tarfile.open(fileobj=io.BytesIO(golden.archive)) as tar:
        tar.extractall(directory)  # a golden recorded here, not hostile input
    store = OCILayoutStore(directory)
    index = json.loads((directory / "index.json").read_bytes())
    config_of = {}
    for desc in index["manifests"]:
        manifest = json.loads((directory / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
        config_of[desc["digest"]] = manifest["config"]["digest"]
    for image in golden.case["images"]:
        config = config_of.get(image["id"])  # the image ID of this store: the manifest digest
        if config is not None:
            for tag in image["repo_tags"]:
                store.add_reference(tag, config)
    return store
