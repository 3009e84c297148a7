"""A damaged OCI layout: corrupt blobs repaired by a load, FIFOs refused, broken entries listed.

Each damage is made the way it happens (a bit flip, a truncation, a link or a directory in
place of a blob, a FIFO planted by another user) and the store must neither trust it nor hang.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict

import pytest
from craft import docker_archive, image

from tarexport import Saver
from tarexport.digest import Digest
from tarexport.errors import StoreError
from tarexport.load import load
from tarexport.stores.oci_layout import OCILayoutStore

REPO = Path(__file__).resolve().parent.parent


def loaded_layout(path: Path, **kwargs: object) -> tuple[OCILayoutStore, bytes, Digest]:
    """A layout holding one image; returns it, the archive, and the image's layer blob."""
    img = image(1, tags=("app:1",))
    archive = docker_archive([img])
    store = OCILayoutStore(path, create=True, **kwargs)  # type: ignore[arg-type]
    load(io.BytesIO(archive), into=store)
    layer = Digest.from_bytes(img.layers[0])
    return store, archive, layer


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def symlink_elsewhere(path: Path) -> None:
    # A link to a good copy is still not the layout's own blob: a later change to the
    # target would change the image.
    copy = path.parent.parent.parent.parent / "elsewhere"
    copy.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(copy)


def directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "junk").write_bytes(b"x")


DAMAGES: Dict[str, Callable[[Path], None]] = {
    "bit-flip": flip_a_bit,
    "truncated": truncate,
    "symlink": symlink_elsewhere,
    "directory": directory,
}


def saved(store: OCILayoutStore) -> bytes:
    out = io.BytesIO()
    Saver(store, store, store).save(["app:1"], out)
    return out.getvalue()


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_load_repairs_a_damaged_blob(damage: str, tmp_path: Path) -> None:
    store, archive, layer = loaded_layout(tmp_path / "layout", trusted=False)
    good = saved(store)
    blob = Path(store.blob_path(layer))
    DAMAGES[damage](blob)
    if damage != "symlink":  # a link to a good copy still saves, but is not kept
        with pytest.raises(Exception):  # noqa: B017 - what fails depends on the damage
            saved(OCILayoutStore(store.path))
    load(io.BytesIO(archive), into=OCILayoutStore(store.path, trusted=False))
    assert blob.is_file() and not blob.is_symlink()
    assert Digest.from_bytes(blob.read_bytes()) == layer
    assert saved(OCILayoutStore(store.path)) == good


@pytest.mark.parametrize("damage", ["truncated", "symlink", "directory"])
def test_a_trusted_layout_still_replaces_a_blob_of_the_wrong_kind_or_size(
    damage: str, tmp_path: Path
) -> None:
    store, archive, layer = loaded_layout(tmp_path / "layout")
    good = saved(store)
    blob = Path(store.blob_path(layer))
    DAMAGES[damage](blob)
    load(io.BytesIO(archive), into=OCILayoutStore(store.path))
    assert blob.is_file() and not blob.is_symlink()
    assert saved(OCILayoutStore(store.path)) == good


def test_a_trusted_layout_keeps_a_blob_of_the_right_size(tmp_path: Path) -> None:
    # The default trusts a regular file of the right size: no second hash of every blob.
    store, archive, layer = loaded_layout(tmp_path / "layout")
    blob = Path(store.blob_path(layer))
    flip_a_bit(blob)
    flipped = blob.read_bytes()
    load(io.BytesIO(archive), into=OCILayoutStore(store.path))
    assert blob.read_bytes() == flipped


def test_a_corrupt_config_blob_is_repaired_too(tmp_path: Path) -> None:
    store, archive, _ = loaded_layout(tmp_path / "layout", trusted=False)
    (image_id,) = store.search("")
    config = Path(store.blob_path(image_id))
    good = config.read_bytes()
    flip_a_bit(config)
    load(io.BytesIO(archive), into=OCILayoutStore(store.path, trusted=False))
    assert config.read_bytes() == good


# -- FIFOs and other files that are not files ------------------------------------------


def fifo_in_place_of(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """The command in a child, so that a hang is a timeout, not a stuck test run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "tarexport", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env,
    )


@pytest.mark.parametrize("which", ["index.json", "oci-layout", "config"])
def test_a_fifo_in_a_layout_is_refused_not_waited_for(which: str, tmp_path: Path) -> None:
    store, archive, _ = loaded_layout(tmp_path / "layout")
    (image_id,) = store.search("")
    target = Path(store.blob_path(image_id)) if which == "config" else Path(store.path, which)
    fifo_in_place_of(target)
    (tmp_path / "app.tar").write_bytes(archive)
    for args in (
        ["images", "--from", f"oci:{store.path}"],
        ["save", "--from", f"oci:{store.path}", "app:1", "-o", str(tmp_path / "out.tar")],
        ["load", "--into", f"oci:{store.path}", "-i", str(tmp_path / "app.tar")],
    ):
        proc = run_cli(*args)
        if which == "config" and args[0] == "load":
            # The load brings a good config: the FIFO is replaced, the load succeeds.
            assert proc.returncode == 0, proc.stderr
            assert Path(store.blob_path(image_id)).is_file()
            fifo_in_place_of(target)
            continue
        assert proc.returncode != 0, (args, proc.stdout)
        assert "FIFO" in proc.stderr, (args, proc.stderr)
        assert "internal error" not in proc.stderr
    assert not (tmp_path / "out.tar").exists()


def test_library_reads_refuse_a_fifo(tmp_path: Path) -> None:
    store, _, layer = loaded_layout(tmp_path / "layout")
    fifo_in_place_of(Path(store.blob_path(layer)))
    fresh = OCILayoutStore(store.path)
    with pytest.raises(StoreError, match=r"FIFO|bytes"):
        Saver(fresh, fresh, fresh).plan(["app:1"])


# -- entries that give no image: listed with their reason, the rest still listed --------------


NAME = "io.containerd.image.name"


def broken_layout(root: Path) -> tuple[OCILayoutStore, Dict[str, str]]:
    """A layout with one good image and one entry broken in each way; returns the reasons."""
    from craft import config_bytes, layer_tar, sha256
    from test_oci_layout import HandLayout

    hand = HandLayout(root)
    good_layer = layer_tar({"good": b"good\n"})
    good = hand.image(config_bytes([sha256(good_layer)]), [good_layer])
    hand.add(good, **{NAME: "docker.io/library/good:1"})
    hand.add(dict(good, size=-1), **{NAME: "docker.io/library/negative:1"})
    hand.add(dict(good, digest="sha256:../../etc/passwd"), **{NAME: "docker.io/library/path:1"})
    hand.add(dict(good, digest="sha512:" + "ab" * 64), **{NAME: "docker.io/library/sha512:1"})
    bad_layer = layer_tar({"bad": b"bad\n"})
    bad_config = config_bytes([sha256(bad_layer)])
    bad = hand.image(bad_config, [bad_layer])
    hand.add(bad, **{NAME: "docker.io/library/badconfig:1"})
    config_path = root / "blobs" / "sha256" / sha256(bad_config).split(":")[1]
    flip_a_bit(config_path)
    reasons = {
        "docker.io/library/negative:1": "no valid size",
        "docker.io/library/path:1": "no valid digest",
        "docker.io/library/sha512:1": "sha512",
        "docker.io/library/badconfig:1": "digest",
    }
    return OCILayoutStore(root), reasons


def test_broken_entries_are_listed_with_their_reason(tmp_path: Path) -> None:
    store, reasons = broken_layout(tmp_path / "layout")
    broken = store.broken()
    assert [b.name for b in broken] == list(reasons)
    assert [b.position for b in broken] == [1, 2, 3, 4]
    for entry in broken:
        assert reasons[entry.name or ""] in entry.reason, entry
    assert broken[1].digest == "sha256:../../etc/passwd"


def test_images_lists_the_rest_and_says_what_is_broken(tmp_path: Path) -> None:
    store, reasons = broken_layout(tmp_path / "layout")
    proc = run_cli("images", "--from", f"oci:{store.path}")
    assert proc.returncode == 1
    rows = proc.stdout.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert [row.split()[:2] for row in rows[1:]] == [["good", "1"]]
    lines = proc.stderr.splitlines()
    assert len(lines) == len(reasons), proc.stderr
    for line, (name, reason) in zip(lines, reasons.items()):
        assert line.startswith(f"tarexport: broken: {name}: "), line
        assert reason in line
    assert "internal error" not in proc.stderr
