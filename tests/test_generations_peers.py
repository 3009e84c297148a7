"""Every profile against every real daemon: Docker 20.10, 26.1.5 and 28.5.2, both image stores.

- tarexport's saves (``DEFAULT``, ``DOCKER_26``, ``DOCKER_28``, ``DOCKER_28_CONTAINERD``,
  ``DOCKER_20_10``) ``docker load`` into each daemon with the right IDs, tags, parents and
  diff IDs (in the containerd store, where image IDs are manifest digests: tags and diff IDs);
- images each daemon built itself are saved by it and by tarexport, from what tarexport loaded
  of the daemon's archive: the same bytes, modulo only the daemon's clock and map order;
- ``DEFAULT`` also loads into podman.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import attrs
import pytest
from golden_store import Golden, build_store, read_golden
from helpers import assert_tar_equal
from peers import DockerScratch, Tool

from tarexport import MemoryStore, OCILayoutStore, Saver, load, profiles
from tarexport.image import Image
from tarexport.layouts import containerd_manifest
from tarexport.profiles import Profile
from tarexport.reference import parse_normalized_named, tag_name_only

DEBIAN_20_10 = attrs.evolve(profiles.DOCKER_20_10, owner_name="root")

LOADED_PROFILES = [profiles.DEFAULT, profiles.DOCKER_26, profiles.DOCKER_28,
                   profiles.DOCKER_28_CONTAINERD, profiles.DOCKER_20_10]
LOAD_CASES = [
    "s02-import-fszoo-gnu",  # odd owners, modes, links, long names
    "s09-load-identical-layers-symlink",  # one layer twice in an image
    "s10-base-and-derived-together",  # a parent in the same archive
    "s13-by-short-id",  # untagged
    "s16-registry-deep-normalized-tags",  # three spellings of names
]

# What each daemon writes for `docker save`, before the per-save clock and order.
DAEMON_PROFILES: dict[str, Profile] = {
    "20.10": DEBIAN_20_10,
    "26": attrs.evolve(profiles.DOCKER_26, go_short_escapes=True),  # Debian's: Go 1.24
    "26c": profiles.DOCKER_28_CONTAINERD,
    "28": profiles.DOCKER_28,
    "28c": profiles.DOCKER_28_CONTAINERD,
}


def _renamed(golden: Golden, docker: DockerScratch) -> tuple[MemoryStore, list[str]]:
    """The golden's images with per-test tags, and the save arguments to match."""

    def key(name: str) -> str:
        return str(tag_name_only(parse_normalized_named(name)))

    tags = {key(t): docker.unique(t) for ts in golden.tags.values() for t in ts if "@" not in t}
    renamed = attrs.evolve(golden, tags={h: [tags[key(t)] for t in ts if "@" not in t]
                                         for h, ts in golden.tags.items()})
    store = build_store(renamed, Path("."), files=False)
    names = [tags.get(key(n), n) if _is_name(n) else n for n in golden.case["docker_save_args"]]
    return store, names


def _is_name(name: str) -> bool:
    return ":" in name and not name.startswith("sha256:") and "@" not in name


def _containerd_names(store: MemoryStore, names: list[str]) -> list[str]:
    """An image ID in the containerd store is its manifest digest: name images so."""
    saver = Saver(store, store, store, profile=profiles.DOCKER_28_CONTAINERD)
    out = []
    for name in names:
        if ":" in name and not name.startswith("sha256:"):
            out.append(name)
            continue
        (image_id,) = [d for d in store.search(name.removeprefix("sha256:"))]
        image = Image.from_bytes(store.get_config(image_id))
        out.append(str(containerd_manifest(saver, image_id, image).digest))
    return out


@pytest.mark.parametrize("profile", LOADED_PROFILES, ids=[p.name for p in LOADED_PROFILES])
@pytest.mark.parametrize("case", LOAD_CASES)
def test_our_save_loads_into_every_daemon(
    daemon: DockerScratch, case: str, profile: Profile
) -> None:
    golden = read_golden(case)
    store, names = _renamed(golden, daemon)
    if profile.layout == "containerd":
        names = _containerd_names(store, names)
    out = io.BytesIO()
    plan = Saver(store, store, store, profile=profile).save(names, out)
    if not daemon.containerd:
        daemon.rmi(*[str(p.id) for p in plan.images], check=False)  # a pass must be a load
    loaded = daemon.load(out.getvalue())
    for planned in plan.images:
        diff_ids = [str(d) for d in planned.image.diff_ids]
        tags = sorted(_familiar(t) for t in planned.repo_tags)
        if daemon.containerd:
            refs = tags or [r for r in loaded if r.startswith("sha256:")]
            assert refs, f"{daemon.name} reported nothing for {planned.id}"
            for ref in refs:
                assert daemon.inspect(ref)["RootFS"]["Layers"] == diff_ids
            continue
        info = daemon.inspect(str(planned.id))
        assert info["Id"] == str(planned.id)
        # Only this test's names: the same image may carry others' tags on a shared daemon.
        assert sorted(t for t in info["RepoTags"] if daemon.token in t) == tags
        assert info["RootFS"]["Layers"] == diff_ids
        parent = store.get_parent(planned.id)
        keeps_parent = profile.layout != "containerd" and parent in {p.id for p in plan.images}
        assert info["Parent"] == (str(parent) if keeps_parent else "")


def _familiar(tag: str) -> str:
    return tag.removeprefix("docker.io/library/").removeprefix("docker.io/")


# -- images the daemon built, saved by it and by tarexport ------------------------------------


def _build_images(daemon: DockerScratch, tmp_path: Path) -> tuple[list[str], str]:
    """A classic-builder image, a tagged import, an untagged import; returns names and IDs."""
    context = tmp_path / "context"
    (context / "app").mkdir(parents=True)
    (context / "app" / "run").write_text("#!/bin/sh\necho <hello & bye>\n")
    os.chmod(context / "app" / "run", 0o755)
    (context / "app" / "data.txt").write_bytes(os.urandom(3000))
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY app /srv/app/\nENV GREETING=hello\nLABEL x.y=\"<&>\"\n"
        "WORKDIR /srv/app\nENTRYPOINT [\"/srv/app/run\"]\n"
    )
    built = daemon.unique("cc-peer-built:1")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run([daemon.binary, "-H", daemon.host, "build", "-q", "-t", built, str(context)],
                   check=True, capture_output=True, env=env, timeout=300)
    daemon._made.append(daemon.inspect(built)["Id"])
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("./", None), ("./etc/", None), ("./etc/motd", b"welcome\n")):
            info = tarfile.TarInfo(name)
            info.mtime = 1_234_567_890
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    imported = daemon.unique("cc-peer-imported:1")
    daemon.import_tar(layer.getvalue(), imported)
    untagged = daemon.import_tar(layer.getvalue() + b"\0" * 1024)  # another layer, no tag
    return [built, imported], untagged


def _clock(archive: bytes, profile: Profile) -> Optional[int]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    if profile.layout == "oci-hybrid":
        return members["blobs/sha256"].mtime
    symlinks = [m for m in members.values() if m.issym()]
    return symlinks[0].mtime if symlinks else None


def _order(archive: bytes) -> tuple[str, ...]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        data = tar.extractfile("manifest.json")
        assert data is not None
        manifest = json.loads(data.read())
    return tuple(item["Config"].rsplit("/", 1)[-1].removesuffix(".json") for item in manifest)


def _daemon_save(daemon: DockerScratch, names: list[str], profile: Profile) -> bytes:
    """The daemon's own save; retried when its two clock stamps straddle a second."""
    for _ in range(3):
        archive = daemon.save(*names)
        if profile.index_mtime != "now" or _stamps_agree(archive):
            return archive
    return archive


def _stamps_agree(archive: bytes) -> bool:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    return members["blobs/sha256"].mtime == members["index.json"].mtime


@pytest.mark.parametrize("order", ["tagged-first", "untagged-first"])
def test_images_the_daemon_built_save_as_the_daemon_saves_them(
    daemon: DockerScratch, tmp_path: Path, order: str
) -> None:
    tagged, untagged = _build_images(daemon, tmp_path)
    names = [*tagged, untagged] if order == "tagged-first" else [untagged, *tagged]
    profile = DAEMON_PROFILES[daemon.name]
    theirs = _daemon_save(daemon, names, profile)

    store: object
    store = OCILayoutStore(tmp_path / "layout", create=True) if daemon.containerd else MemoryStore()
    load(io.BytesIO(theirs), into=store)  # type: ignore[arg-type]
    ours = io.BytesIO()
    ordered = attrs.evolve(profile, image_order=_order(theirs), now=_clock(theirs, profile))
    Saver(store, store, store, profile=ordered).save(names, ours)  # type: ignore[arg-type]
    assert_tar_equal(ours.getvalue(), theirs)


# -- podman ---------------------------------------------------------------------------------


@pytest.fixture
def podman() -> Iterator[_Podman]:
    tool = Tool.find("podman")
    # podman refuses a run root of over 50 characters: a short private directory.
    root = Path(tempfile.mkdtemp(prefix="txpod.", dir="/tmp"))
    try:
        yield _Podman(tool.binary, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _Podman(Tool):
    """podman with a private vfs store under the test's temporary directory."""

    def __init__(self, binary: str, root: Path) -> None:
        super().__init__(binary)
        self.root = root

    def run(self, *args: str, input: Optional[bytes] = None, check: bool = True
            ) -> subprocess.CompletedProcess[bytes]:
        return super().run(
            "--storage-driver", "vfs", "--root", str(self.root / "root"),
            "--runroot", str(self.root / "run"), "--events-backend", "none",
            "--cgroup-manager", "cgroupfs", *args, input=input, check=check,
        )


@pytest.mark.parametrize("case", LOAD_CASES)
def test_default_loads_into_podman(podman: _Podman, case: str, tmp_path: Path) -> None:
    golden = read_golden(case)
    store = build_store(golden, tmp_path, files=True)
    archive = tmp_path / "default.tar"
    with open(archive, "wb") as out:
        plan = Saver(store, store, store).save(golden.case["docker_save_args"], out)
    podman.run("load", "-i", str(archive))
    listed = podman.run("images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    rows = listed.stdout.decode().split("\n")
    for planned in plan.images:
        mine = [row for row in rows if row.startswith(str(planned.id)) or
                row.startswith(planned.id.hex)]
        assert mine, f"podman has no image {planned.id}: {rows}"
        for tag in planned.repo_tags:
            assert any(row.endswith("/" + tag) or row.endswith(" " + tag) for row in mine), tag
        (info,) = json.loads(podman.run("image", "inspect", planned.id.hex).stdout)
        assert info["RootFS"]["Layers"] == [str(d) for d in planned.image.diff_ids]
