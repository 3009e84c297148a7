"""The benchmark's inputs, made with tarexport's own code.

Two images: ``big``, four layers of random files adding up to the requested size, and
``small``, four layers holding many small random files between them. Each is kept three
ways: layer tars on disk (a file-backed :class:`~tarexport.MemoryStore` is built from them
in each run), an OCI image layout (``OCILayoutStore``, filled by ``tarexport.load``), and a
``docker save`` archive written by ``Saver`` (read in place by ``DockerArchiveStore``).

This module runs in a worker process only; the driver reads the JSON description it writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tarexport.tarstream import DIRTYPE, END_OF_ARCHIVE, REGTYPE, TarHeader, padding

__all__ = ["ImageInputs", "build_image", "read_inputs", "write_inputs"]

LAYERS = 4
MTIME = 1704164645  # 2024-01-02T03:04:05Z, also the images' "created"
CREATED = "2024-01-02T03:04:05Z"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageInputs:
    """One benchmark image as it lies on disk, in its three stores."""

    key: str  # "big", "small" or "scale"
    reference: str  # the tag it is saved and loaded by
    config_path: str
    layer_paths: list[str]
    diff_ids: list[str]
    layer_bytes: int  # the layer tars' total size
    files: int  # regular files in all layers together
    oci_dir: str  # "" when the image has no OCI layout copy
    archive_path: str  # "" when the image has no docker-archive copy
    archive_size: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageInputs:
        return cls(**data)


def write_inputs(path: Path, images: list[ImageInputs]) -> None:
    path.write_text(json.dumps([asdict(image) for image in images], indent=2) + "\n")


def read_inputs(path: Path) -> dict[str, ImageInputs]:
    return {item["key"]: ImageInputs.from_json(item) for item in json.loads(path.read_text())}


# -- layer tars -------------------------------------------------------------------------------


def random_files_layer(
    index: int, data_bytes: int, rng: random.Random
) -> Iterator[tuple[str, int]]:
    """A layer of a few large random files totalling ``data_bytes`` (names with sizes)."""
    top = f"layer{index}/"
    yield top, 0
    low, high = max(1, data_bytes // 64), max(1, data_bytes // 8)
    left, number = data_bytes, 0
    while left > 0:
        size = min(left, rng.randint(low, high))
        yield f"{top}blob-{number:04d}.bin", size
        left -= size
        number += 1


def small_files_layer(index: int, files: int, rng: random.Random) -> Iterator[tuple[str, int]]:
    """A layer of ``files`` small random files (up to 4 KiB), 250 to a directory."""
    top = f"small{index}/"
    yield top, 0
    for number in range(files):
        if number % 250 == 0:
            yield f"{top}d{number // 250:03d}/", 0
        yield f"{top}d{number // 250:03d}/f{number:05d}.dat", rng.randint(1, 4096)


def write_layer(path: Path, members: Iterator[tuple[str, int]]) -> tuple[str, int, int]:
    """Write a layer tar of random content; returns ``(diff_id, size, regular files)``.

    Names ending in ``/`` become directories. Headers come from ``tarstream``, so the tar is
    exactly what Go's ``archive/tar`` would write for the same members.
    """
    digest = hashlib.sha256()
    size = files = 0
    with open(path, "wb", buffering=_CHUNK) as out:

        def put(data: bytes) -> None:
            nonlocal size
            out.write(data)
            digest.update(data)
            size += len(data)

        for name, length in members:
            if name.endswith("/"):
                put(TarHeader(name, DIRTYPE, mtime=MTIME, mode=0o755, type_bits=False).encode())
                continue
            put(TarHeader(name, REGTYPE, size=length, mtime=MTIME, type_bits=False).encode())
            files += 1
            left = length
            while left:
                chunk = os.urandom(min(left, _CHUNK))
                put(chunk)
                left -= len(chunk)
            put(padding(length))
        put(END_OF_ARCHIVE)
    return "sha256:" + digest.hexdigest(), size, files


def image_config(key: str, diff_ids: list[str]) -> bytes:
    """A minimal but complete image config, as compact JSON with sorted keys."""
    config = {
        "architecture": "amd64",
        "config": {
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"org.example.benchmark": key},
        },
        "created": CREATED,
        "history": [
            {"created": CREATED, "created_by": f"benchmark {key} layer {i}"}
            for i in range(len(diff_ids))
        ],
        "os": "linux",
        "rootfs": {"diff_ids": diff_ids, "type": "layers"},
    }
    return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()


# -- the three stores -------------------------------------------------------------------------


def build_image(
    key: str,
    directory: Path,
    *,
    total_bytes: int = 0,
    small_files: int = 0,
    reference: str,
    profile_name: str,
    owner_name: str,
    oci: bool = True,
    archive: bool = True,
    seed: int = 20240102,
    layers: int = LAYERS,
) -> ImageInputs:
    """Write one image's layer tars and config, then its OCI layout and docker archive.

    ``total_bytes`` makes an image of large random files, ``small_files`` one of that many
    small files; either is split over ``layers`` layers (default four).
    """
    from tarexport import MemoryStore, Saver

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}-{key}")
    diff_ids: list[str] = []
    paths: list[str] = []
    layer_bytes = files = 0
    for index in range(layers):
        path = directory / f"layer{index}.tar"
        if small_files:
            share = small_files // layers + (1 if index < small_files % layers else 0)
            members = small_files_layer(index, share, rng)
        else:
            share = total_bytes // layers + (1 if index < total_bytes % layers else 0)
            members = random_files_layer(index, share, rng)
        diff_id, size, count = write_layer(path, members)
        diff_ids.append(diff_id)
        paths.append(str(path))
        layer_bytes += size
        files += count
    config = image_config(key, diff_ids)
    config_path = directory / "config.json"
    config_path.write_bytes(config)

    archive_path = directory / "archive.tar"
    archive_size = 0
    if archive or oci:
        store = MemoryStore()
        store.add_image(config, paths, references=[reference])
        saver = Saver(store, store, store, profile=make_profile(profile_name, owner_name))
        with open(archive_path, "wb") as out:
            saver.save([reference], out)
        archive_size = archive_path.stat().st_size
    oci_dir = directory / "oci"
    if oci:
        from tarexport.load import load
        from tarexport.stores.oci_layout import OCILayoutStore

        with open(archive_path, "rb") as stream:
            load(stream, into=OCILayoutStore(str(oci_dir), create=True))
    if oci and not archive:
        archive_path.unlink()
        archive_size = 0
    return ImageInputs(
        key=key,
        reference=reference,
        config_path=str(config_path),
        layer_paths=paths,
        diff_ids=diff_ids,
        layer_bytes=layer_bytes,
        files=files,
        oci_dir=str(oci_dir) if oci else "",
        archive_path=str(archive_path) if archive else "",
        archive_size=archive_size,
    )


def make_profile(name: str, owner_name: str) -> Any:
    """The named profile, with the tar owner name the Docker build at hand writes."""
    import attrs

    from tarexport import profiles

    return attrs.evolve(profiles.by_name(name), owner_name=owner_name)
