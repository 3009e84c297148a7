"""DockerRootStore against the real daemons' data roots: every image `docker save` can write.

Each graphdriver daemon (20.10, 26, 28) is given the variety of the goldens: `docker import` of
layer tars made by GNU tar (`./` entries, hardlinks, a sparse file, long names, PAX records,
whiteouts) and of an empty tar, a classic-builder image (COPY, no RUN, metadata-only steps),
and `docker load` of every golden. Then every image is saved twice, by the daemon and from its
data root without it, and the two must agree byte for byte, with the daemon's own profile
(the wall clock and Go's map order taken from Docker's archive, as Docker does not repeat
them). An image the daemon cannot save must fail from the data root as well, before the
first byte.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import attrs
import pytest
from helpers import GOLDENS_DIR, assert_tar_equal
from peers import GRAPHDRIVER_DAEMONS, DockerScratch, PeerCommandError, missing_peer, run_command

from tarexport import Saver, profiles
from tarexport.errors import TarexportError
from tarexport.stores.docker_root import DockerRootStore

pytestmark = pytest.mark.peer

DEBIAN_20_10 = attrs.evolve(profiles.DOCKER_20_10, owner_name="root")

# The profile whose whole archive matches each daemon byte for byte (Debian's builds: 20.10
# writes "root" as owner names, 26.1.5 is built with Go 1.24).
EXACT_PROFILES: Dict[str, profiles.Profile] = {
    "20.10": DEBIAN_20_10,
    "26": attrs.evolve(profiles.DOCKER_26, go_short_escapes=True),
    "28": profiles.DOCKER_28,
}
CLI_PROFILES = {"20.10": "docker-20.10", "26": "docker-26", "28": "docker-28"}


def graphdriver_root(daemon: DockerScratch) -> Path:
    assert not daemon.containerd
    if not daemon.data_root or not os.access(daemon.data_root, os.R_OK | os.X_OK):
        missing_peer(f"the data root of daemon {daemon.name} is not readable here")
    return Path(daemon.data_root)


# -- the images ---------------------------------------------------------------------------


def gnu_tar(directory: Path, *options: str) -> bytes:
    """What ``tar -C DIR -cf - .`` writes (with ``options``), as `docker import` gets it."""
    return run_command(["tar", *options, "-C", str(directory), "-cf", "-", "."]).stdout


def filesystem_zoo(root: Path) -> Path:
    """A directory with a hardlink, a sparse file, long names, a symlink and whiteouts."""
    tree = root / "zoo"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hello").write_bytes(b"hello\n")
    os.link(tree / "etc" / "hello", tree / "etc" / "hard")
    (tree / "etc" / "soft").symlink_to("hello")
    with open(tree / "sparse", "wb") as f:
        f.seek(3 << 20)
        f.write(b"end")
    deep = tree / ("d" * 90) / ("e" * 90)
    deep.mkdir(parents=True)
    (deep / ("f" * 120)).write_bytes(os.urandom(3000))
    (tree / "gone").mkdir()
    (tree / "gone" / ".wh..wh..opq").write_bytes(b"")
    (tree / ".wh.removed").write_bytes(b"")
    os.utime(tree / "etc" / "hello", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    return tree


def sparse_tree(root: Path) -> Path:
    tree = root / "holes"
    tree.mkdir()
    with open(tree / "holes", "wb") as f:
        f.seek(1 << 20)
        f.write(b"x")
    return tree


DOCKERFILE = """\
FROM scratch
COPY zoo/etc /etc/
ENV A=1 B="two words"
LABEL org.example.label="x<y&z"
COPY zoo/sparse /data/sparse
WORKDIR /work
COPY zoo/etc/hello /work/hello
USER 1000:1000
"""


@attrs.frozen
class Made:
    """The images made in a daemon: names to save, those Docker cannot save, and the names of
    each golden that holds several images (saved together, too)."""

    names: List[str]
    unsavable: List[str]
    together: List[List[str]]


def make_images(daemon: DockerScratch, tmp_path: Path) -> Made:
    names: List[str] = []
    zoo = filesystem_zoo(tmp_path)
    imports = {
        "gnu": gnu_tar(zoo, "--format=gnu"),
        "pax": gnu_tar(zoo, "--format=posix", "--xattrs"),
        "ustar-dot": gnu_tar(zoo / "etc", "--format=ustar"),
        "empty": bytes(10240),  # an empty layer: nothing but the end of the archive
    }
    for kind, tar in imports.items():
        tag = daemon.unique(f"tarexport-root-{kind}:1")
        daemon.import_tar(tar, tag)
        names.append(tag)
    # GNU sparse in PAX headers imports, but the daemon cannot export it again.
    sparse = daemon.unique("tarexport-root-sparse:1")
    daemon.import_tar(gnu_tar(sparse_tree(tmp_path), "--format=posix", "--sparse"), sparse)
    build = daemon.unique("tarexport-root-build:1")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    run_command([daemon.binary, "-H", daemon.host, "build", "-q", "-t", build, str(tmp_path)],
                env={**env, "DOCKER_BUILDKIT": "0"})
    names.append(build)
    together = []
    for golden in sorted(GOLDENS_DIR.glob("*/save.tar")):
        loaded = daemon.load(golden)
        names.extend(loaded)
        if len(loaded) > 1:
            together.append(loaded)
    return Made(names, [sparse], together)


# -- comparing ----------------------------------------------------------------------------


def members(archive: bytes) -> Dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        return {m.name: m for m in t.getmembers()}


def member_bytes(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        f = t.extractfile(name)
        assert f is not None, name
        return f.read()


def clock_of(archive: bytes) -> Optional[int]:
    """The wall clock Docker stamped on this save, if it stamped any member with it."""
    found = members(archive)
    if "blobs/sha256" in found:  # 25+: the blobs directory (and, on 26, index.json)
        return int(found["blobs/sha256"].mtime)
    links = [m for m in found.values() if m.issym()]  # 20.10: the symlinked layer's directory
    return int(links[0].mtime) if links else None


def daemon_save(daemon: DockerScratch, names: List[str], profile: profiles.Profile) -> bytes:
    """The daemon's own save; taken again when its two wall-clock stamps straddle a second."""
    for _ in range(3):
        archive = daemon.save(*names)
        found = members(archive)
        if profile.index_mtime != "now" or (
            found["index.json"].mtime == found["blobs/sha256"].mtime
        ):
            break
    return archive


def image_order(archive: bytes) -> Tuple[str, ...]:
    manifest = json.loads(member_bytes(archive, "manifest.json"))
    return tuple(item["Config"].rpartition("/")[2].removesuffix(".json") for item in manifest)


def save_from_root(store: DockerRootStore, names: List[str], profile: profiles.Profile) -> bytes:
    out = io.BytesIO()
    Saver(store, store, store, profile=profile).save(names, out)
    return out.getvalue()


def assert_blobs_equal(actual: bytes, expected: bytes) -> None:
    """Every layer and config of Docker's archive is in ours with the same bytes."""
    manifest = json.loads(member_bytes(expected, "manifest.json"))
    ours = json.loads(member_bytes(actual, "manifest.json"))
    assert [item["Layers"] for item in ours] == [item["Layers"] for item in manifest]
    for item in manifest:
        for name in [item["Config"], *item["Layers"]]:
            assert member_bytes(actual, name) == member_bytes(expected, name), name


def cli_save(root: Path, profile: str, name: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tarexport", "save", "--from", f"docker-root:{root}",
         "--profile", profile, name],
        capture_output=True, stdin=subprocess.DEVNULL, check=False, timeout=600,
    )


# The containerd image store keeps no graphdriver layout to read: only these daemons.
@pytest.mark.parametrize("daemon", GRAPHDRIVER_DAEMONS, indirect=True)
def test_every_image_saves_as_the_daemon_saves_it(daemon: DockerScratch, tmp_path: Path) -> None:
    root = graphdriver_root(daemon)
    made = make_images(daemon, tmp_path)
    store = DockerRootStore(root)
    exact = EXACT_PROFILES[daemon.name]
    compared = 0
    for names in [[name] for name in made.names] + made.together:
        try:
            expected = daemon_save(daemon, names, exact)
        except PeerCommandError as exc:
            assert b"empty export" in exc.stderr, exc  # s18: an image without layers
            with pytest.raises(TarexportError, match="empty export"):
                Saver(store, store, store, profile=exact).plan(names)
            continue
        profile = attrs.evolve(exact, now=clock_of(expected), image_order=image_order(expected))
        assert_tar_equal(save_from_root(store, names, profile), expected)
        compared += 1
    assert made.together and compared >= len(made.names) - 1 + len(made.together)
    # The command, once per daemon, on the image with the most kinds of entries.
    done = cli_save(root, CLI_PROFILES[daemon.name], made.names[0])
    assert done.returncode == 0, done.stderr
    assert_blobs_equal(done.stdout, daemon.save(made.names[0]))
    # What Docker cannot save fails from the data root too, and before the first byte.
    for name in made.unsavable:
        with pytest.raises(PeerCommandError):
            daemon.save(name)
        done = cli_save(root, CLI_PROFILES[daemon.name], name)
        assert (done.returncode, done.stdout) == (1, b"")
        assert b"sparse file, which Docker cannot export either" in done.stderr
