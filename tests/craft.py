"""Crafting archives for load tests: valid ones, odd ones, and hostile ones.

Members are encoded with :mod:`tarfile` where it can (USTAR, PAX records, GNU long names) and by
hand where it refuses. Nothing here reads an archive: tests check what the code under test makes
of these bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attrs

BLOCK = 512


@attrs.frozen
class M:
    """One member to write: a file (``data``), ``dir``, ``symlink``, ``hardlink``, ``fifo``..."""

    name: str
    data: bytes = b""
    kind: str = "file"
    linkname: str = ""
    pax: Optional[Mapping[str, str]] = None
    fmt: int = tarfile.PAX_FORMAT
    mtime: int = 0


_KINDS = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
}


def member_bytes(m: M) -> bytes:
    """The header block(s) and padded body of one member."""
    info = tarfile.TarInfo(m.name)
    info.type = _KINDS[m.kind]
    info.mtime = m.mtime
    info.mode = 0o755 if m.kind == "dir" else 0o644
    info.linkname = m.linkname
    if m.kind == "file":
        info.size = len(m.data)
    if m.pax:
        info.pax_headers = dict(m.pax)
    header = info.tobuf(format=m.fmt, encoding="utf-8", errors="surrogateescape")
    body = m.data if m.kind == "file" else b""
    return header + body + bytes(-len(body) % BLOCK)


def tar_bytes(members: Sequence[Union[M, bytes]], end: bool = True) -> bytes:
    """A tar stream of ``members`` (raw ``bytes`` items are inserted as they are)."""
    out = b"".join(m if isinstance(m, bytes) else member_bytes(m) for m in members)
    return out + (bytes(2 * BLOCK) if end else b"")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed layer tar holding ``files``."""
    return tar_bytes([M(name, data) for name, data in files.items()])


def config_bytes(diff_ids: Sequence[str], **extra: object) -> bytes:
    config: Dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    config.update(extra)
    return json.dumps(config).encode()


@attrs.frozen
class Img:
    """An image to put in an archive: config, layer tars, tags."""

    config: bytes
    layers: Tuple[bytes, ...]
    tags: Tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return sha256(self.config)

    @property
    def hex(self) -> str:
        return self.id.split(":", 1)[1]


def image(n: int = 1, tags: Sequence[str] = ("craft:1",), seed: str = "x", **extra: object) -> Img:
    """An image with ``n`` distinct layers."""
    layers = tuple(layer_tar({f"{seed}-file{i}": f"{seed} layer {i}\n".encode()})
                   for i in range(n))
    return Img(config_bytes([sha256(layer) for layer in layers], **extra), layers, tuple(tags))


def manifest_entry(img: Img, layer_paths: Sequence[str], config_path: Optional[str] = None,
                   **extra: object) -> Dict[str, object]:
    entry: Dict[str, object] = {
        "Config": config_path or f"{img.hex}.json",
        "RepoTags": list(img.tags) or None,
        "Layers": list(layer_paths),
    }
    entry.update(extra)
    return entry


def docker_archive(
    images: Sequence[Img],
    *,
    manifest: Optional[object] = None,
    extra: Sequence[Union[M, bytes]] = (),
    before: Sequence[Union[M, bytes]] = (),
    compress_layers: Optional[str] = None,
) -> bytes:
    """A plain docker-archive of ``images`` (``<n>/layer.tar`` per layer, ``<id>.json``).

    ``manifest`` replaces the generated ``manifest.json`` value (``bytes`` are used as they
    are); ``extra`` members go after it, ``before`` members first. ``compress_layers="gzip"``
    stores the layers gzip-compressed as ``<diff hex>.tar.gz``, as crane does.
    """
    members: List[Union[M, bytes]] = list(before)
    entries = []
    seen = set()
    for img in images:
        paths = []
        for layer in img.layers:
            hex_ = sha256(layer).split(":")[1]
            if compress_layers == "gzip":
                path = f"{hex_}.tar.gz"
                data = gzip.compress(layer, mtime=0)
            else:
                path = f"{hex_}/layer.tar"
                data = layer
            if path not in seen:
                seen.add(path)
                members.append(M(path, data))
            paths.append(path)
        if img.hex + ".json" not in seen:
            seen.add(img.hex + ".json")
            members.append(M(f"{img.hex}.json", img.config))
        entries.append(manifest_entry(img, paths))
    if manifest is None:
        manifest_data = json.dumps(entries).encode()
    elif isinstance(manifest, bytes):
        manifest_data = manifest
    else:
        manifest_data = json.dumps(manifest).encode()
    members.append(M("manifest.json", manifest_data))
    members.extend(extra)
    return tar_bytes(members)


# -- raw header surgery -------------------------------------------------------------------


def set_field(block: bytes, offset: int, value: bytes) -> bytes:
    """A header block with ``value`` written at ``offset`` and the checksum fixed."""
    raw = bytearray(block)
    raw[offset : offset + len(value)] = value
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw)
    return bytes(raw)


def raw_header(name: str, size: int = 0, typeflag: bytes = b"0", linkname: str = "") -> bytes:
    """A USTAR header block written byte by byte (for what :mod:`tarfile` will not write)."""
    block = bytearray(BLOCK)
    block[0:100] = name.encode().ljust(100, b"\0")[:100]
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % 0
    block[156:157] = typeflag
    block[157:257] = linkname.encode().ljust(100, b"\0")[:100]
    block[257:265] = b"ustar\x0000"
    return set_field(bytes(block), 0, bytes(block[:1]))


# -- snapshots of a directory tree -----------------------------------------------------------


Tree = Dict[str, Tuple[int, Optional[bytes]]]


def tree_snapshot(root: Union[str, Path]) -> Tree:
    """Every path under ``root`` with its mode and, for files, its bytes (links not followed)."""
    result: Tree = {}
    root = str(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(path).encode()
            result[os.path.relpath(path, root)] = (st.st_mode, data)
    return result


class OnlyRead:
    """A stream with ``read`` only, like a pipe: no ``seek``, ``readinto`` or ``fileno``.

    Reads return at most ``chunk`` bytes, so callers must cope with short reads.
    """

    def __init__(self, data: bytes, chunk: int = 7919) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._chunk = chunk

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = len(self._data)
        n = min(n, self._chunk)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out
