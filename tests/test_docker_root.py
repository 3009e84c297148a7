"""DockerRootStore and tar-split: crafted data roots, and a real Docker 20.10 data root.

The unit tests build small data roots by hand: a layer tar written with Python's ``tarfile``,
its tar-split metadata cut from that tar here (segments between file contents, each file's
CRC-64 from a bit-by-bit reference of the checksum's definition), and the files extracted into
a ``vfs`` directory. The peer tests read the test daemon's own data root and compare what the
Saver writes from it with what ``docker save`` writes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import attrs
import pytest
from helpers import GOLDENS_DIR, assert_tar_equal
from hypothesis import given
from hypothesis import strategies as st
from peers import DockerScratch

from tarexport import Saver, profiles
from tarexport.digest import Digest, chain_ids
from tarexport.errors import (
    ImageNotFound,
    LayerDigestMismatch,
    LayerIntegrityError,
    LayerNotFound,
    StoreError,
)
from tarexport.reference import parse_normalized_named
from tarexport.stores.docker_root import DockerRootStore
from tarexport.tarsplit import (
    CRC64,
    FILE,
    SEGMENT,
    Entry,
    ReassemblingReader,
    clean_name,
    crc64_iso,
    decode_entries,
    go_clean,
    stream_size,
)

# The test daemon is Debian's docker.io 20.10, which writes "root" as owner names.
DEBIAN_20_10 = attrs.evolve(profiles.DOCKER_20_10, owner_name="root")

# -- CRC-64/ISO --------------------------------------------------------------------------

# Go's hash/crc64 test table, ISO column.
GO_ISO_VECTORS = [
    (b"", 0x0),
    (b"a", 0x3420000000000000),
    (b"ab", 0x36C4200000000000),
    (b"abc", 0x3776C42000000000),
    (b"abcdefgh", 0x0E21B002D36776C4),
    (b"abcdefghij", 0x7F5B6E21B002D367),
    (b"Discard medicine more than two years old.", 0x8EC0E7C835BF9CDF),
    (b"123456789", 0xB90956C775A41001),  # the catalogued check value of CRC-64/GO-ISO
]


def reference_crc64(data: bytes) -> int:
    """The definition, one bit at a time: reflected, polynomial 0xD800000000000000, ~0 in/out."""
    register = (1 << 64) - 1
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0xD800000000000000 if register & 1 else 0)
    return register ^ ((1 << 64) - 1)


@pytest.mark.parametrize(("data", "expected"), GO_ISO_VECTORS, ids=lambda v: repr(v)[:20])
def test_crc64_go_vectors(data: bytes, expected: int) -> None:
    assert crc64_iso(data) == expected
    assert reference_crc64(data) == expected


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=5))
def test_crc64_matches_definition_in_any_chunking(data: bytes, cuts: List[int]) -> None:
    crc = CRC64()
    start = 0
    for cut in sorted(cuts):
        crc.update(data[start:cut])
        start = max(start, cut)
    crc.update(data[start:])
    assert crc.value() == reference_crc64(data)
    assert crc.digest() == reference_crc64(data).to_bytes(8, "big")


def test_crc64_large_input_matches_definition() -> None:
    data = bytes(range(256)) * 600 + b"tail"
    assert crc64_iso(data) == reference_crc64(data)


# -- crafting tar-split ------------------------------------------------------------------


def tar_split_lines(tar: bytes) -> List[Dict[str, Any]]:
    """tar-split entries for ``tar``: the bytes around each member's content, and its CRC."""
    lines: List[Dict[str, Any]] = []
    done = 0
    with tarfile.open(fileobj=io.BytesIO(tar), format=tarfile.GNU_FORMAT) as t:
        for member in t.getmembers():
            lines.append({"type": SEGMENT, "payload": tar[done : member.offset_data]})
            size = member.size if member.isreg() else 0
            content = tar[member.offset_data : member.offset_data + size]
            lines.append(
                {
                    "type": FILE,
                    "name": member.name,
                    "size": size,
                    "payload": reference_crc64(content).to_bytes(8, "big") if size else None,
                }
            )
            done = member.offset_data + size
    lines.append({"type": SEGMENT, "payload": tar[done:]})
    encoded = []
    for position, line in enumerate(lines):
        out: Dict[str, Any] = {"type": line["type"]}
        if line["type"] == FILE:
            out["name"] = line["name"]
            if line["size"]:
                out["size"] = line["size"]
        payload = line["payload"]
        out["payload"] = None if payload is None else base64.b64encode(payload).decode()
        out["position"] = position
        encoded.append(out)
    return encoded


def gnu_layer(files: Dict[str, bytes], links: Sequence[Tuple[str, str, bytes]] = ()) -> bytes:
    """A GNU tar of regular files plus (name, target, type) links, with 10 KiB records."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o4755 if name.endswith(".suid") else 0o640
            info.mtime = 1_700_000_000
            info.uname, info.gname = "app", "staff"
            t.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            info.mtime = 1_700_000_000
            t.addfile(info)
    return out.getvalue()


@attrs.frozen
class CraftedRoot:
    root: Path
    image_id: Digest
    chain: Digest
    layer_dir: Path
    content: Path


def craft_root(
    tmp_path: Path,
    tar: bytes,
    *,
    lines: Optional[List[Dict[str, Any]]] = None,
    tags: Dict[str, str] = {},  # noqa: B006 - read only
) -> CraftedRoot:
    """A vfs data root holding one image of one layer ``tar`` (tar-split ``lines`` if given)."""
    root = tmp_path / "root"
    image = root / "image" / "vfs"
    diff_id = Digest.parse("sha256:" + hashlib.sha256(tar).hexdigest())
    chain = chain_ids([diff_id])[-1]
    layer_dir = image / "layerdb" / "sha256" / chain.hex
    layer_dir.mkdir(parents=True)
    (layer_dir / "diff").write_text(str(diff_id))
    cache_id = "c" * 64
    (layer_dir / "cache-id").write_text(cache_id)
    with gzip.open(layer_dir / "tar-split.json.gz", "wb") as f:
        for line in lines if lines is not None else tar_split_lines(tar):
            f.write(json.dumps(line).encode() + b"\n")
    content = root / "vfs" / "dir" / cache_id
    content.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        if hasattr(tarfile, "tar_filter"):
            t.extractall(content, filter="tar")
        else:  # Python without extraction filters; the tar is our own
            t.extractall(content)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
        }
    ).encode()
    image_hex = hashlib.sha256(config).hexdigest()
    configs = image / "imagedb" / "content" / "sha256"
    configs.mkdir(parents=True)
    (configs / image_hex).write_bytes(config)
    repositories = {"Repositories": {}}  # type: Dict[str, Dict[str, Dict[str, str]]]
    for ref, target in tags.items():
        name = ref.partition(":")[0]
        repositories["Repositories"].setdefault(name, {})[ref] = target or f"sha256:{image_hex}"
    (image / "repositories.json").write_text(json.dumps(repositories))
    return CraftedRoot(root, Digest("sha256", image_hex), chain, layer_dir, content)


LONG = "deep/" + "d" * 120 + "/" + "f" * 110 + ".txt"
FILES = {
    "etc/hello": b"hello\n",
    "bin/tool.suid": bytes(range(256)) * 9,
    LONG: b"long name\n",
    "empty": b"",
}
LINKS = [("etc/link", "hello", tarfile.SYMTYPE), ("etc/hard", "etc/hello", tarfile.LNKTYPE)]


def test_crafted_layer_reassembles_exactly(tmp_path: Path) -> None:
    tar = gnu_layer(FILES, LINKS)
    crafted = craft_root(tmp_path, tar, tags={"app:1": ""})
    store = DockerRootStore(crafted.root)
    assert store.driver == "vfs"
    assert store.search("") == [crafted.image_id]
    assert store.get(parse_normalized_named("app:1")) == crafted.image_id
    layer = store.get_layer(crafted.chain)
    assert layer.size == len(tar)
    assert layer.file_range() is None
    with layer.open() as stream:
        assert stream.read() == tar


def flip_one_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_size_reads_no_file_content(tmp_path: Path) -> None:
    tar = gnu_layer(FILES, LINKS)
    crafted = craft_root(tmp_path, tar)
    flip_one_bit(crafted.content / "bin" / "tool.suid")  # looked up, never read
    assert DockerRootStore(crafted.root).get_layer(crafted.chain).size == len(tar)


def test_missing_file_fails_the_plan(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES, LINKS))
    (crafted.content / "bin" / "tool.suid").unlink()
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(StoreError, match=r"tool\.suid.*No such file"):
        layer.size  # noqa: B018 - planning is what is tested


def test_tampered_file_fails_its_crc(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES, LINKS))
    flip_one_bit(crafted.content / "bin" / "tool.suid")
    layer = DockerRootStore(crafted.root, verify_files=True).get_layer(crafted.chain)
    failed = pytest.raises(LayerIntegrityError, match="file integrity checksum failed")
    with failed, layer.open() as stream:
        stream.read()


def test_tampered_file_fails_the_diff_id_without_crc(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES, LINKS))
    flip_one_bit(crafted.content / "bin" / "tool.suid")
    layer = DockerRootStore(crafted.root, verify_files=False).get_layer(crafted.chain)
    with pytest.raises(LayerDigestMismatch), layer.open() as stream:
        stream.read()


def test_file_of_another_size_fails_the_plan(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES, LINKS))
    with open(crafted.content / "etc" / "hello", "ab") as f:
        f.write(b"more")
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(LayerIntegrityError, match=r"'etc/hello' is 10 bytes on disk, 6 in"):
        layer.size  # noqa: B018


@pytest.mark.parametrize(("change", "message"), [(b"more", "longer"), (b"", "shorter")])
def test_file_changed_after_the_plan_fails_the_read(
    tmp_path: Path, change: bytes, message: str
) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES, LINKS))
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    assert layer.size
    path = crafted.content / "etc" / "hello"
    path.write_bytes(b"hello\n" + change if change else b"he")
    with pytest.raises(LayerIntegrityError, match=message), layer.open() as stream:
        stream.read()


def test_path_escape_by_dotdot_is_refused(tmp_path: Path) -> None:
    tar = gnu_layer({"x": b"secret"})
    lines = tar_split_lines(tar)
    for line in lines:
        if line.get("name") == "x":
            line["name"] = "../../x"
    (tmp_path / "x").write_bytes(b"secret")
    crafted = craft_root(tmp_path, tar, lines=lines)
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(StoreError, match="escapes"), layer.open() as stream:
        stream.read()


def test_path_escape_through_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    tar = gnu_layer({"dir/secret": b"secret"})
    crafted = craft_root(tmp_path, tar)
    # The layer's directory is replaced by a symlink out of the layer root.
    (crafted.content / "dir" / "secret").unlink()
    (crafted.content / "dir").rmdir()
    (crafted.content / "dir").symlink_to(outside)
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(StoreError, match="outside"), layer.open() as stream:
        stream.read()


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [(b"./etc/hello", b"etc/hello"), (b"/abs/x", b"abs/x"), (b"a//b/./c", b"a/b/c")],
)
def test_clean_name(name: bytes, cleaned: bytes) -> None:
    assert clean_name(name) == cleaned


@pytest.mark.parametrize("name", [b"./", b"/", b".", b""])
def test_clean_name_of_the_root_is_empty(name: bytes) -> None:
    assert clean_name(name) == b""


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [(b"./", b"."), (b"/", b"/"), (b"./a/../b/", b"b"), (b"/../a", b"/a"), (b"../a", b"../a"),
     (b"a//b/.", b"a/b"), (b"", b".")],
)
def test_go_clean(name: bytes, cleaned: bytes) -> None:
    assert go_clean(name) == cleaned


@pytest.mark.parametrize("name", [b"../x", b"a/../../x", b"a/..", b"a\x00b"])
def test_clean_name_refuses(name: bytes) -> None:
    with pytest.raises(StoreError):
        clean_name(name)


def test_decode_entries_and_reassembly() -> None:
    raw = [
        b'{"type":2,"payload":"aGVhZA==","position":0}',
        json.dumps(
            {
                "type": 1,
                "name_raw": base64.b64encode(b"caf\xe9").decode(),
                "size": 3,
                "payload": base64.b64encode(reference_crc64(b"abc").to_bytes(8, "big")).decode(),
                "position": 1,
            }
        ).encode(),
        b'{"type":1,"name":"dir/","payload":null,"position":2}',
        b'{"type":2,"payload":"dGFpbA==","position":3}',
        b'{"type":2,"payload":"","position":4}',
    ]
    entries = list(decode_entries(raw, "t"))
    assert entries[1] == Entry(FILE, 1, b"caf\xe9", 3, reference_crc64(b"abc").to_bytes(8, "big"))
    assert entries[2] == Entry(FILE, 2, b"dir/")
    assert stream_size(entries) == len(b"head") + 3 + len(b"tail")
    opened = []

    def open_file(name: bytes) -> Any:
        opened.append(name)
        return io.BytesIO(b"abc")

    reader = io.BufferedReader(ReassemblingReader(entries, open_file))
    assert reader.read() == b"headabctail"
    assert opened == [b"caf\xe9"]  # size-0 entries are never opened


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1]",
        b'{"type":3}',
        b'{"type":1,"name":"x","size":-1}',
        b'{"type":1,"name":"x","size":2,"payload":null}',
        b'{"type":2,"payload":"%%"}',
    ],
)
def test_decode_entries_refuses(line: bytes) -> None:
    with pytest.raises(StoreError, match="t line 1"):
        list(decode_entries([line], "t"))


def test_duplicate_names_are_refused() -> None:
    entries = [Entry(FILE, 0, b"a"), Entry(FILE, 1, b"./a")]
    with pytest.raises(StoreError, match="duplicate"):
        ReassemblingReader(entries, lambda name: io.BytesIO()).read()


# -- what `tar -C DIR -cf - .` makes, and errors before the first byte ---------------------


def dot_layer() -> Tuple[bytes, List[Dict[str, Any]]]:
    """A layer as ``tar -C DIR -cf - .`` writes it: ``./`` first, every name under ``./``.

    Also a hardlink, a PAX long name with xattrs, a file of zeros (sparse on disk once
    extracted) and a whiteout. The tar-split lines carry the names as Go's reader reports them
    (``./``, ``./sub/``), which Python's ``tarfile`` strips of their slash.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, link in [
            ("./", tarfile.DIRTYPE, b"", ""),
            ("./sub/", tarfile.DIRTYPE, b"", ""),
            ("./sub/h", tarfile.REGTYPE, b"hi\n", ""),
            ("./a", tarfile.LNKTYPE, b"", "./sub/h"),
            ("./" + "p" * 150 + "/x", tarfile.REGTYPE, b"pax\n", ""),
            ("./zeros", tarfile.REGTYPE, bytes(100_000), ""),
            ("./sub/.wh.gone", tarfile.REGTYPE, b"", ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.size = len(data)
            info.mtime = 1_700_000_000
            if "ppp" in name:
                info.pax_headers = {"SCHILY.xattr.user.k": "v", "mtime": "1700000000.5"}
            t.addfile(info, io.BytesIO(data) if data else None)
    tar = out.getvalue()
    lines = tar_split_lines(tar)
    for line in lines:
        if line.get("name") == ".":
            line["name"] = "./"
        elif line.get("name") == "./sub":
            line["name"] = "./sub/"
    return tar, lines


def test_dot_entries_reassemble_exactly(tmp_path: Path) -> None:
    tar, lines = dot_layer()
    crafted = craft_root(tmp_path, tar, lines=lines)
    (crafted.content / "sub" / ".wh.gone").unlink()  # the applied layer holds no whiteout
    layer = DockerRootStore(crafted.root, verify_files=True).get_layer(crafted.chain)
    assert layer.size == len(tar)
    with layer.open() as stream:
        assert stream.read() == tar


def cli_save(root: Path, *names: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tarexport", "save", "--from", f"docker-root:{root}", *names],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def test_cli_saves_dot_entries(tmp_path: Path) -> None:
    tar, lines = dot_layer()
    crafted = craft_root(tmp_path, tar, lines=lines, tags={"dot:1": ""})
    done = cli_save(crafted.root, "dot:1")
    assert done.stderr == b"" and done.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as t:
        member = t.extractfile(f"blobs/sha256/{hashlib.sha256(tar).hexdigest()}")
        assert member is not None and member.read() == tar


def _missing_tar_split(c: CraftedRoot) -> None:
    (c.layer_dir / "tar-split.json.gz").unlink()


def _garbage_tar_split(c: CraftedRoot) -> None:
    (c.layer_dir / "tar-split.json.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(200)))


def _truncated_tar_split(c: CraftedRoot) -> None:
    path = c.layer_dir / "tar-split.json.gz"
    path.write_bytes(path.read_bytes()[:-40])


def _bad_line(c: CraftedRoot) -> None:
    path = c.layer_dir / "tar-split.json.gz"
    with gzip.open(path, "rb") as f:
        data = f.read()
    with gzip.open(path, "wb") as f:
        f.write(data + b'{"type":1,"name":"x","size":-5}\n')


def _segment_cut(c: CraftedRoot) -> None:
    path = c.layer_dir / "tar-split.json.gz"
    with gzip.open(path, "rb") as f:
        lines = [json.loads(line) for line in f]
    # The segment before "./zeros" (its PAX header and its header) loses its last block.
    last = lines[[line.get("name") for line in lines].index("./zeros") - 1]
    last["payload"] = base64.b64encode(base64.b64decode(last["payload"])[:-512]).decode()
    with gzip.open(path, "wb") as f:
        f.writelines(json.dumps(line).encode() + b"\n" for line in lines)


def _file_grown(c: CraftedRoot) -> None:
    with open(c.content / "sub" / "h", "ab") as f:
        f.write(b"more")


def _file_missing(c: CraftedRoot) -> None:
    (c.content / "zeros").unlink()


def _file_is_a_directory(c: CraftedRoot) -> None:
    (c.content / "zeros").unlink()
    (c.content / "zeros").mkdir()


def _unsupported_driver(c: CraftedRoot) -> None:
    (c.root / "image" / "vfs").rename(c.root / "image" / "devicemapper")


PLAN_ERRORS = {
    "missing tar-split": (_missing_tar_split, "cannot read tar-split .*No such file"),
    "garbage tar-split": (_garbage_tar_split, "cannot read tar-split"),
    "truncated tar-split": (_truncated_tar_split, "cannot read tar-split"),
    "invalid line": (_bad_line, "size is not a non-negative integer"),
    "cut header": (_segment_cut, "tar-split header of"),
    "file grown": (_file_grown, r"'\./sub/h' is 7 bytes on disk, 3 in tar-split"),
    "file missing": (_file_missing, "zeros of layer .*No such file"),
    "not a file": (_file_is_a_directory, "zeros of layer .* is not a regular file"),
    "unsupported driver": (_unsupported_driver, "storage driver 'devicemapper'"),
}


@pytest.mark.parametrize("case", sorted(PLAN_ERRORS))
def test_cli_save_errors_before_the_first_byte(tmp_path: Path, case: str) -> None:
    tar, lines = dot_layer()
    crafted = craft_root(tmp_path, tar, lines=lines, tags={"dot:1": ""})
    damage, message = PLAN_ERRORS[case]
    damage(crafted)
    done = cli_save(crafted.root, "dot:1")
    assert done.returncode == 1
    assert done.stdout == b""
    error = done.stderr.decode()
    assert error.count("\n") == 1 and error.startswith("tarexport: ")
    assert re.search(message, error), error


def test_file_changed_while_writing_ends_without_end_blocks(tmp_path: Path) -> None:
    tar, lines = dot_layer()
    crafted = craft_root(tmp_path, tar, lines=lines, tags={"dot:1": ""})
    store = DockerRootStore(crafted.root)
    plan = Saver(store, store, store, profile=DEBIAN_20_10).plan(["dot:1"])
    (crafted.content / "zeros").write_bytes(b"x" * 10)
    out = io.BytesIO()
    with pytest.raises(LayerIntegrityError, match=r"zeros.*shorter"):
        plan.write(out)
    assert 0 < len(out.getvalue()) < plan.total_size - 1024


def test_sparse_file_fails_the_plan(tmp_path: Path) -> None:
    """GNU sparse in PAX: tar-split records the expanded size, which no rebuild can match."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("holes")
        data = b"1\n0\n4\n".ljust(512, b"\x00") + b"data"  # the map: 4 bytes at offset 0
        info.size = len(data)
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                            "GNU.sparse.realsize": "8192", "GNU.sparse.name": "holes"}
        t.addfile(info, io.BytesIO(data))
    tar = out.getvalue()
    start = tar.index(data)
    expanded = b"data".ljust(8192, b"\x00")
    crc = base64.b64encode(reference_crc64(expanded).to_bytes(8, "big")).decode()
    lines = [
        {"type": SEGMENT, "payload": base64.b64encode(tar[:start]).decode(), "position": 0},
        {"type": FILE, "name": "holes", "size": 8192, "payload": crc, "position": 1},
        {"type": SEGMENT, "payload": base64.b64encode(tar[start + len(data):]).decode(),
         "position": 2},
    ]
    crafted = craft_root(tmp_path, tar, lines=lines)
    (crafted.content / "holes").write_bytes(expanded)
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(StoreError, match="sparse file, which Docker cannot export either"):
        layer.size  # noqa: B018


def test_hardlink_with_data_fails_the_plan(tmp_path: Path) -> None:
    tar, lines = dot_layer()
    for line in lines:
        if line.get("name") == "./a":
            line["size"] = 3
            line["payload"] = base64.b64encode(bytes(8)).decode()
    crafted = craft_root(tmp_path, tar, lines=lines)
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(StoreError, match=r"'\./a' has 3 bytes of data but is not a regular file"):
        layer.size  # noqa: B018


def test_duplicate_names_as_go_cleans_them() -> None:
    # tar-split tells "/etc" from "etc" (filepath.Clean keeps the root) but not "./etc/".
    entries = [Entry(FILE, 0, b"etc"), Entry(FILE, 1, b"/etc")]
    assert ReassemblingReader(entries, lambda name: io.BytesIO()).read() == b""
    entries = [Entry(FILE, 0, b"etc"), Entry(FILE, 1, b"./etc/")]
    with pytest.raises(StoreError, match="duplicate"):
        ReassemblingReader(entries, lambda name: io.BytesIO()).read()


# -- the index ---------------------------------------------------------------------------


def test_orphan_config_is_skipped(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES))
    orphan = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "ab" * 32]},
        }
    ).encode()
    orphan_hex = hashlib.sha256(orphan).hexdigest()
    configs = crafted.root / "image" / "vfs" / "imagedb" / "content" / "sha256"
    (configs / orphan_hex).write_bytes(orphan)
    store = DockerRootStore(crafted.root)
    assert store.search("") == [crafted.image_id]
    with pytest.raises(ImageNotFound):
        store.get_config(Digest("sha256", orphan_hex))
    with pytest.raises(LayerNotFound):
        store.get_layer(Digest.parse("sha256:" + "ab" * 32))


def test_tag_of_missing_image_is_skipped(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES), tags={"gone:1": "sha256:" + "cd" * 32})
    store = DockerRootStore(crafted.root)
    assert store.references_by_name(parse_normalized_named("gone")) == []


def test_config_not_matching_its_name_is_an_error(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES))
    path = crafted.root / "image" / "vfs" / "imagedb" / "content" / "sha256" / crafted.image_id.hex
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(StoreError, match=crafted.image_id.hex):
        DockerRootStore(crafted.root)


def test_driver_must_be_unambiguous(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES))
    (crafted.root / "image" / "overlay2" / "imagedb").mkdir(parents=True)
    with pytest.raises(StoreError, match="overlay2, vfs"):
        DockerRootStore(crafted.root)
    assert DockerRootStore(crafted.root, driver="vfs").search("") == [crafted.image_id]
    (tmp_path / "empty" / "image").mkdir(parents=True)
    with pytest.raises(StoreError, match="found none"):
        DockerRootStore(tmp_path / "empty")
    with pytest.raises(StoreError, match=r"cannot list .*missing"):
        DockerRootStore(tmp_path / "missing")


def test_overlay2_reads_the_diff_directory(tmp_path: Path) -> None:
    tar = gnu_layer(FILES, LINKS)
    crafted = craft_root(tmp_path, tar)
    image = crafted.root / "image"
    (image / "vfs").rename(image / "overlay2")
    (crafted.root / "overlay2").mkdir()
    crafted.content.rename(crafted.root / "overlay2" / crafted.content.name)
    (crafted.root / "overlay2" / crafted.content.name).rename(tmp_path / "diff")
    (crafted.root / "overlay2" / crafted.content.name).mkdir()
    (tmp_path / "diff").rename(crafted.root / "overlay2" / crafted.content.name / "diff")
    store = DockerRootStore(crafted.root)
    assert store.driver == "overlay2"
    with store.get_layer(crafted.chain).open() as stream:
        assert stream.read() == tar


# -- the real data root ------------------------------------------------------------------


def data_root(docker: DockerScratch) -> Path:
    out = docker.run("info", "--format", "{{.Driver}} {{.DockerRootDir}}").stdout.decode()
    driver, _, root = out.strip().partition(" ")
    path = Path(root)
    if not os.access(path / "image" / driver, os.R_OK | os.X_OK):
        pytest.skip(f"the daemon's data root {root} is not readable here")
    return path


def assert_layers_hash_to_diff_ids(store: DockerRootStore, image_id: str) -> None:
    config = json.loads(store.get_config(Digest.parse(image_id)))
    diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
    for chain, diff_id in zip(chain_ids(diff_ids), diff_ids):
        layer = store.get_layer(chain)
        digest = hashlib.sha256()
        total = 0
        with layer.open() as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
        assert f"sha256:{digest.hexdigest()}" == str(diff_id)
        assert total == layer.size


def saved(store: DockerRootStore, names: Sequence[str], profile: profiles.Profile) -> bytes:
    out = io.BytesIO()
    Saver(store, store, store, profile=profile).save(list(names), out)
    return out.getvalue()


def test_peer_imported_gnu_tar(docker: DockerScratch) -> None:
    files = dict(FILES)
    files["name/" + "n" * 200] = b"x" * 5000
    tar = gnu_layer(files, [*LINKS, ("dev/pipe", "", tarfile.FIFOTYPE)])
    tag = docker.unique("tarexport-root-import:1")
    image_id = docker.import_tar(tar, tag)
    store = DockerRootStore(data_root(docker))
    assert store.get(parse_normalized_named(tag)) == Digest.parse(image_id)
    assert_layers_hash_to_diff_ids(store, image_id)
    assert_tar_equal(saved(store, [tag], DEBIAN_20_10), docker.save(tag))


GOLDEN = GOLDENS_DIR / "s10-base-and-derived-together" / "save.tar"


def test_peer_loaded_golden_with_parent(docker: DockerScratch) -> None:
    names = docker.load(GOLDEN)
    assert len(names) == 2
    store = DockerRootStore(data_root(docker))
    ids = [docker.inspect(name)["Id"] for name in names]
    for name, image_id in zip(names, ids):
        assert_layers_hash_to_diff_ids(store, image_id)
        assert_tar_equal(saved(store, [name], DEBIAN_20_10), docker.save(name))
    assert any(store.get_parent(Digest.parse(i)) is not None for i in ids)
    # Docker lists several images in Go map order, and stamps the directories of shared
    # layers (symlinked) with the clock: take the order and the time of this save.
    expected = docker.save(*names)
    with tarfile.open(fileobj=io.BytesIO(expected)) as t:
        member = t.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
        symlinks = [m for m in t.getmembers() if m.issym()]
    assert symlinks, "the two images share layers"
    order = [item["Config"].removesuffix(".json") for item in manifest]
    assert any("Parent" in item for item in manifest)
    profile = attrs.evolve(DEBIAN_20_10, image_order=order, now=int(symlinks[0].mtime))
    assert_tar_equal(saved(store, names, profile), expected)


def test_layer_diff_id_must_match_the_config(tmp_path: Path) -> None:
    crafted = craft_root(tmp_path, gnu_layer(FILES))
    (crafted.layer_dir / "diff").write_text("sha256:" + "ef" * 32)
    with pytest.raises(StoreError, match="but its image says"):
        DockerRootStore(crafted.root)


def test_file_symlinked_out_of_the_layer_fails_the_plan(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"hello\n")  # the same size as the file it replaces
    crafted = craft_root(tmp_path, gnu_layer(FILES, LINKS))
    (crafted.content / "etc" / "hello").unlink()
    (crafted.content / "etc" / "hello").symlink_to(outside)
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with pytest.raises(StoreError, match="resolves outside"):
        layer.size  # noqa: B018


def test_file_symlinked_inside_the_layer_is_read(tmp_path: Path) -> None:
    tar = gnu_layer(FILES, LINKS)
    crafted = craft_root(tmp_path, tar)
    (crafted.content / "moved").write_bytes((crafted.content / "etc" / "hello").read_bytes())
    (crafted.content / "etc" / "hello").unlink()
    (crafted.content / "etc" / "hello").symlink_to("../moved")
    layer = DockerRootStore(crafted.root).get_layer(crafted.chain)
    with layer.open() as stream:
        assert stream.read() == tar
