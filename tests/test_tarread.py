"""The strict tar reader: real archives read as Python's tarfile reads them, bad ones refused."""

from __future__ import annotations

import contextlib
import io
import tarfile
from typing import List, Optional, Tuple

import pytest
from craft import BLOCK, M, OnlyRead, raw_header, set_field, tar_bytes
from helpers import golden_cases, golden_params
from hypothesis import given
from hypothesis import strategies as st

from tarexport.errors import InvalidArchive, UnsafeArchive
from tarexport.tarread import (
    MemberIndex,
    MemberType,
    TarMember,
    TarReader,
    clean_member_path,
    looks_like_tar,
    parse_header,
    parse_pax_records,
)

_TYPES = {
    tarfile.REGTYPE: MemberType.FILE,
    tarfile.AREGTYPE: MemberType.FILE,
    tarfile.DIRTYPE: MemberType.DIRECTORY,
    tarfile.SYMTYPE: MemberType.SYMLINK,
    tarfile.LNKTYPE: MemberType.HARDLINK,
    tarfile.CHRTYPE: MemberType.CHAR_DEVICE,
    tarfile.BLKTYPE: MemberType.BLOCK_DEVICE,
    tarfile.FIFOTYPE: MemberType.FIFO,
}


def read_all(data: bytes, seekable: bool = False) -> List[Tuple[TarMember, bytes]]:
    stream = io.BytesIO(data) if seekable else OnlyRead(data)
    reader = TarReader(stream, seekable=seekable)
    out = []
    while True:
        member = reader.next()
        if member is None:
            return out
        body = reader.read_body(1 << 30) if member.type is MemberType.FILE else b""
        out.append((member, body))


def tarfile_view(data: bytes) -> List[Tuple[str, MemberType, int, str, int, Optional[bytes]]]:
    """What Python's tarfile sees: name, type, size, link, data offset, file content."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            body = archive.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            out.append((info.name, _TYPES[info.type], info.size if info.isreg() else 0,
                        info.linkname, info.offset_data, body))
    return out


def our_view(data: bytes) -> List[Tuple[str, MemberType, int, str, int, Optional[bytes]]]:
    return [
        (m.name.rstrip("/") if m.type is MemberType.DIRECTORY else m.name, m.type, m.size,
         m.linkname, m.data_offset, body if m.type is MemberType.FILE else None)
        for m, body in read_all(data)
    ]


# -- real archives ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params([c for c in golden_cases() if c.save_tar]))
def test_golden_archives_read_as_tarfile_reads_them(case) -> None:
    data = case.save_tar.read_bytes()
    assert our_view(data) == tarfile_view(data)


def _golden_layers() -> List[object]:
    """Every distinct layer tar inside the goldens: GNU long names, PAX, whiteouts, hardlinks."""
    params = []
    seen = set()
    for case in golden_cases():
        if case.save_tar is None:
            continue
        with tarfile.open(case.save_tar) as archive:
            for info in archive:
                if info.isreg() and info.name.endswith("layer.tar"):
                    body = archive.extractfile(info).read()  # type: ignore[union-attr]
                    if body not in seen:
                        seen.add(body)
                        params.append(pytest.param(body, id=f"{case.name}:{info.name[:12]}"))
    return params


@pytest.mark.parametrize("layer", _golden_layers())
def test_golden_layer_tars_read_as_tarfile_reads_them(layer: bytes) -> None:
    # Layers carry GNU LongLink/LongName, PAX paths, hardlinks and devices-free fs zoos.
    assert our_view(layer) == tarfile_view(layer)


def test_seekable_and_streaming_reads_agree() -> None:
    case = next(c for c in golden_cases() if c.name.startswith("s09"))
    data = case.save_tar.read_bytes()  # type: ignore[union-attr]
    assert [m for m, _ in read_all(data, seekable=True)] == [m for m, _ in read_all(data)]


names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/\\"),
    min_size=1,
    max_size=40,
).filter(lambda s: s not in (".", ".."))


@given(
    st.lists(
        st.tuples(st.lists(names, min_size=1, max_size=6), st.binary(max_size=1500)),
        min_size=1,
        max_size=6,
        unique_by=lambda t: "/".join(t[0]),
    ),
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
)
def test_any_names_and_sizes_round_trip_through_tarfile(files, fmt) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8") as archive:
        for parts, data in files:
            info = tarfile.TarInfo("/".join(parts))
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = out.getvalue()
    got = [(m.name, body) for m, body in read_all(data)]
    assert got == [("/".join(parts), body) for parts, body in files]


# -- headers and records -------------------------------------------------------------------


def test_parse_header_fields() -> None:
    block = tar_bytes([M("dir/file", b"abc", mtime=1234567890)], end=False)[:BLOCK]
    header = parse_header(block)
    assert (header.name, header.size, header.mtime, header.typeflag, header.format) == (
        "dir/file", 3, 1234567890, b"0", "ustar")


def test_base256_size_is_read() -> None:
    block = raw_header("big")
    block = set_field(block, 124, b"\x80" + (5).to_bytes(11, "big"))
    assert parse_header(block).size == 5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (124, b"\xff" * 12, "negative size"),
        (124, b"12x4567\0\0\0\0\0", "invalid size"),
        (257, b"ustaX\x00", "unknown magic"),
    ],
    ids=["negative-base256", "bad-octal", "bad-magic"],
)
def test_bad_header_fields_are_refused(field: int, value: bytes, message: str) -> None:
    with pytest.raises(InvalidArchive, match=message):
        parse_header(set_field(raw_header("x"), field, value))


def test_bad_checksum_is_refused() -> None:
    block = bytearray(raw_header("x"))
    block[0] ^= 1
    assert not looks_like_tar(bytes(block))
    with pytest.raises(InvalidArchive, match="checksum"):
        parse_header(bytes(block))


def test_pax_records() -> None:
    data = b"12 path=a/b\n" + b"18 mtime=1.500000\n"
    assert parse_pax_records(data) == {"path": "a/b", "mtime": "1.500000"}


@pytest.mark.parametrize(
    "data",
    [b"13 path=a/b\n", b"11 path=a/b\n", b"x path=a\n", b"08 path=\n", b"9 =value\n",
     b"10 pathab\n"],
    ids=["length-too-long", "no-newline", "not-a-number", "leading-zero", "empty-key", "no-eq"],
)
def test_malformed_pax_records_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidArchive):
        parse_pax_records(data)


def test_pax_record_given_twice_is_unsafe() -> None:
    with pytest.raises(UnsafeArchive, match="twice"):
        parse_pax_records(b"12 path=a/b\n12 path=c/d\n")


def test_sparse_pax_is_refused() -> None:
    with pytest.raises(InvalidArchive, match="sparse"):
        parse_pax_records(b"22 GNU.sparse.major=1\n")


def test_pax_path_overrides_the_header_name() -> None:
    data = tar_bytes([M("short", b"x", pax={"path": "long/" + "n" * 150})])
    (member, body), = read_all(data)
    assert member.name == "long/" + "n" * 150 and body == b"x"


def test_gnu_long_names() -> None:
    name = "d/" + "g" * 200
    data = tar_bytes([M(name, b"y", fmt=tarfile.GNU_FORMAT),
                      M("l", kind="symlink", linkname="t" * 150, fmt=tarfile.GNU_FORMAT)])
    members = [m for m, _ in read_all(data)]
    assert members[0].name == name and members[1].linkname == "t" * 150


# -- stream structure ------------------------------------------------------------------------


def test_empty_stream_is_not_a_tar() -> None:
    with pytest.raises(InvalidArchive, match="empty"):
        read_all(b"")


def test_garbage_is_not_a_tar() -> None:
    with pytest.raises(InvalidArchive, match="not a tar"):
        read_all(b"hello world" * 100)


def test_missing_end_marker_is_truncation() -> None:
    data = tar_bytes([M("a", b"1")], end=False)
    with pytest.raises(InvalidArchive, match="no end-of-archive"):
        read_all(data)


def test_lone_zero_block_is_refused() -> None:
    data = tar_bytes([M("a", b"1")], end=False) + bytes(BLOCK) + tar_bytes([M("b", b"2")])
    with pytest.raises(InvalidArchive, match="lone zero block"):
        read_all(data)


def test_every_truncation_is_an_invalid_archive() -> None:
    data = tar_bytes([M("a", b"1" * 700), M("d", kind="dir"), M("b", b"2", pax={"x.y": "z"})])
    for cut in range(0, len(data) - 1, 97):
        with pytest.raises(InvalidArchive):
            read_all(data[:cut])


@given(st.data())
def test_corrupted_bytes_give_only_typed_errors(data) -> None:
    archive = bytearray(tar_bytes([M("a", b"1" * 700), M("b/c", b"2", pax={"path": "b/cc"}),
                                   M("l", kind="symlink", linkname="a")]))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(archive) - 1))
        archive[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(InvalidArchive):
        read_all(bytes(archive))


def test_extension_header_over_the_limit_is_unsafe() -> None:
    data = tar_bytes([M("a", b"1", pax={"comment": "c" * 5000})])
    with pytest.raises(UnsafeArchive, match="extension header"):
        TarReader(io.BytesIO(data), max_extension_size=4096).next()


def test_two_pax_headers_for_one_member_are_unsafe() -> None:
    first = M("a", b"", pax={"path": "one"})
    pax_only = tar_bytes([first], end=False)[: 2 * BLOCK]  # the PAX header and its records
    data = pax_only + tar_bytes([M("b", b"2", pax={"path": "two"})])
    with pytest.raises(UnsafeArchive, match="two PAX headers"):
        read_all(data)


def test_global_header_that_renames_is_unsafe() -> None:
    info = tarfile.TarInfo("g")
    info.type = tarfile.XGLTYPE
    records = b"15 path=../etc\n"
    block = set_field(raw_header("pax_global_header", len(records), b"g"), 0, b"p")
    data = block + records + bytes(-len(records) % BLOCK) + tar_bytes([M("a", b"1")])
    with pytest.raises(UnsafeArchive, match="global header"):
        read_all(data)


def test_data_on_a_symlink_is_unsafe() -> None:
    data = raw_header("l", size=5, typeflag=b"2", linkname="a") + b"hello".ljust(BLOCK, b"\0")
    with pytest.raises(UnsafeArchive, match="data"):
        read_all(data + bytes(2 * BLOCK))


def test_unknown_entry_type_is_refused() -> None:
    with pytest.raises(InvalidArchive, match="unsupported entry type"):
        read_all(raw_header("x", typeflag=b"S") + bytes(2 * BLOCK))


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "clean"),
    [("a/b", "a/b"), ("./a//b/", "a/b"), ("./", ""), (".", ""), ("a/./b", "a/b")],
)
def test_clean_member_path(name: str, clean: str) -> None:
    assert clean_member_path(name) == clean


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a/..", "a\0b"])
def test_unsafe_member_paths(name: str) -> None:
    with pytest.raises(UnsafeArchive):
        clean_member_path(name)


def index_of(*members: M) -> MemberIndex:
    index = MemberIndex()
    for member, _ in read_all(tar_bytes(list(members))):
        index.add(member)
    index.check_links()
    return index


def test_resolve_follows_symlinks_inside_the_archive() -> None:
    index = index_of(M("a/layer.tar", b"L"), M("b/layer.tar", kind="symlink",
                                                 linkname="../a/layer.tar"),
                     M("c", kind="symlink", linkname="b"), M("h", kind="hardlink",
                                                            linkname="a/layer.tar"))
    for path in ("a/layer.tar", "b/layer.tar", "c/layer.tar", "h", "c/../a/layer.tar"):
        assert index.resolve(path, "test").path == "a/layer.tar"


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ([M("a", b"1"), M("a", b"2")], "more than once"),
        ([M("f", kind="fifo")], "fifo"),
        ([M("c", kind="chr")], "character device"),
        ([M("l", kind="symlink", linkname="/etc/passwd")], "outside"),
        ([M("d/l", kind="symlink", linkname="../../x")], "outside"),
        ([M("a", kind="symlink", linkname="b"), M("b", kind="symlink", linkname="a")], "loop"),
        ([M("h", kind="hardlink", linkname="../x")], "'..'"),
        ([M("h", kind="hardlink", linkname="nothing")], "no earlier member"),
        ([M("d", kind="dir"), M("h", kind="hardlink", linkname="d")], "not a link to a file"),
    ],
    ids=["duplicate", "fifo", "device", "absolute-symlink", "climbing-symlink", "loop",
         "climbing-hardlink", "dangling-hardlink", "hardlink-to-dir"],
)
def test_index_refuses_hostile_members(members: List[M], error: str) -> None:
    with pytest.raises(UnsafeArchive, match=error):
        index_of(*members)


def test_repeated_directories_are_fine() -> None:
    index = index_of(M("d", kind="dir"), M("d/", kind="dir"), M("d/x", b"1"))
    assert index.resolve("d/x", "test").path == "d/x"


def test_symlink_escape_through_a_symlinked_directory_is_unsafe() -> None:
    # Lexically ``up/..`` is the root; followed for real, ``up`` is the root and ``..`` leaves.
    with pytest.raises(UnsafeArchive, match="outside"):
        index_of(M("up", kind="symlink", linkname="."), M("x", kind="symlink", linkname="up/.."))


@pytest.mark.parametrize(
    ("path", "error"),
    [("missing", InvalidArchive), ("d", InvalidArchive), ("/abs", UnsafeArchive),
     ("../x", UnsafeArchive), ("", InvalidArchive), ("f/inside", InvalidArchive)],
)
def test_resolve_errors(path: str, error: type) -> None:
    index = index_of(M("d", kind="dir"), M("f", b"x"))
    with pytest.raises(error):
        index.resolve(path, "test")


def test_member_limit() -> None:
    index = MemberIndex(max_members=2)
    members = [m for m, _ in read_all(tar_bytes([M("a"), M("b"), M("c")]))]
    index.add(members[0])
    index.add(members[1])
    with pytest.raises(UnsafeArchive, match="more than 2 members"):
        index.add(members[2])


# -- bounded work: long PAX headers, repeated members, sizes past 2^63 ---------------------


def pax_records_of(count: int) -> bytes:
    """``count`` distinct PAX records ``"<len> k<i>=\\n"``, as short as records get."""
    out = []
    for i in range(count):
        body = f" k{i}=\n"
        width = len(str(len(body) + 2))
        out.append(f"{len(body) + width}{body}")
    return "".join(out).encode()


def test_pax_records_up_to_the_limit() -> None:
    data = pax_records_of(1000)
    assert len(parse_pax_records(data)) == 1000
    assert len(parse_pax_records(pax_records_of(5000), max_records=5000)) == 5000
    with pytest.raises(UnsafeArchive, match="more than 1000 records"):
        parse_pax_records(pax_records_of(1001))


def test_pax_padding_is_only_trailing_nuls() -> None:
    assert parse_pax_records(b"12 path=a/b\n" + bytes(500)) == {"path": "a/b"}
    with pytest.raises(InvalidArchive, match="malformed record length"):
        parse_pax_records(b"12 path=a/b\n" + bytes(100) + b"12 path=c/d\n")


def test_pax_header_of_many_records_is_refused_by_the_reader() -> None:
    data = tar_bytes([M("d", kind="dir", pax={f"k{i}": "" for i in range(1001)})])
    with pytest.raises(UnsafeArchive, match="more than 1000 records"):
        read_all(data)


def test_repeated_directories_count_against_the_member_limit() -> None:
    index = MemberIndex(max_members=10)
    members = [m for m, _ in read_all(tar_bytes([M("d", kind="dir")] * 11))]
    for member in members[:10]:
        index.add(member)
    with pytest.raises(UnsafeArchive, match="more than 10 members"):
        index.add(members[10])


def test_reader_counts_members_and_global_headers() -> None:
    info = tarfile.TarInfo("pax_global_header")
    info.type = tarfile.XGLTYPE
    global_header = info.tobuf(format=tarfile.USTAR_FORMAT)
    reader = TarReader(OnlyRead(tar_bytes([global_header] * 11)), max_members=10)
    with pytest.raises(UnsafeArchive, match="more than 10 members"):
        list(reader)
    reader = TarReader(OnlyRead(tar_bytes([M("d", kind="dir")] * 10)), max_members=10)
    assert len(list(reader)) == 10


def test_signed_checksum_of_high_bytes_is_accepted() -> None:
    block = bytearray(raw_header("caf\xe9-name"))
    block[0:12] = b"caf\xc3\xa9-name\xff\xfe"
    blanked = bytes(block[:148]) + b" " * 8 + bytes(block[156:])
    signed = sum(blanked) - 256 * sum(1 for c in blanked if c >= 0x80)
    block[148:156] = b"%06o\0 " % signed
    assert looks_like_tar(bytes(block))
    assert parse_header(bytes(block)).size == 0


@pytest.mark.parametrize("seekable", [True, False], ids=["in-place", "stream"])
@pytest.mark.parametrize("how", ["pax", "base256"])
def test_size_past_2_63_is_an_invalid_archive(how: str, seekable: bool) -> None:
    if how == "pax":
        member = member_bytes_of(M("big", b"", pax={"size": str(10**40)}))
    else:
        member = set_field(raw_header("big"), 124, b"\x80" + (1 << 70).to_bytes(11, "big"))
    with pytest.raises(InvalidArchive, match="beyond what a tar can hold"):
        read_all(tar_bytes([M("a", b"x"), member]), seekable=seekable)


def member_bytes_of(m: M) -> bytes:
    return tar_bytes([m], end=False)
