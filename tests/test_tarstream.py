"""Tar headers as Go's archive/tar writes them: goldens, the spec's PAX bytes, round trips."""

from __future__ import annotations

import datetime
import io
import tarfile
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from helpers import golden_cases, golden_params
from hypothesis import given
from hypothesis import strategies as st

from tarexport import profiles
from tarexport.errors import TarexportError, TarHeaderError
from tarexport.tarstream import (
    BLOCK_SIZE,
    DIRTYPE,
    END_OF_ARCHIVE,
    HEADER_FIELDS,
    REGTYPE,
    SYMTYPE,
    TarHeader,
    header_difference,
    header_fields,
    padded_size,
    padding,
)

SAVED_CASES = [c for c in golden_cases() if c.save_tar is not None]
V1ID = "1f016b8582a3" + "0" * 52  # any 64-hex v1 directory name
FIELD = {name: (offset, length) for name, offset, length in HEADER_FIELDS}


def header_of(info: tarfile.TarInfo, *, type_bits: bool) -> TarHeader:
    """Rebuild our header from what Python's tarfile read back."""
    return TarHeader(
        name=info.name + ("/" if info.isdir() else ""),
        typeflag=info.type.decode("ascii"),
        size=info.size,
        mtime=int(info.mtime),
        mode=info.mode & 0o7777,
        linkname=info.linkname,
        uname=info.uname,
        gname=info.gname,
        type_bits=type_bits,
    )


def members_with_headers(data: bytes) -> Iterator[Tuple[tarfile.TarInfo, bytes]]:
    """Each member with the raw bytes of all its header blocks (PAX ones included)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            yield info, data[info.offset : info.offset_data]


def field(block: bytes, name: str) -> bytes:
    offset, length = FIELD[name]
    return block[offset : offset + length]


# -- the goldens ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(SAVED_CASES))
def test_golden_archive_headers_are_rebuilt_byte_for_byte(case):
    data = case.save_tar.read_bytes()
    type_bits = profiles.DOCKER_20_10.mode_type_bits
    end = 0
    for info, raw in members_with_headers(data):
        encoded = header_of(info, type_bits=type_bits).encode()
        difference = header_difference(raw, encoded)
        assert encoded == raw, f"{case.name}: member {info.name!r}: {difference}"
        end = info.offset_data + padded_size(info.size)
    # Exactly two zero blocks after the last member's padded data, and nothing else.
    assert data[end:] == END_OF_ARCHIVE


@pytest.mark.parametrize("case", golden_params(SAVED_CASES))
def test_golden_archive_length_formula(case):
    data = case.save_tar.read_bytes()
    total = sum(len(raw) + padded_size(info.size) for info, raw in members_with_headers(data))
    assert total + len(END_OF_ARCHIVE) == len(data)
    assert len(data) % BLOCK_SIZE == 0


def go_written_layer_headers(save_tar: Path) -> List[Tuple[str, tarfile.TarInfo, bytes]]:
    """Headers inside the goldens' layers that the daemon wrote with Go's archive/tar.

    Layers made by a build are written by moby's ``archive.Tar`` (Go), those made by
    ``docker import`` or ``docker load`` keep their producer's bytes. Go writes the device
    fields as octal zero on every header, GNU tar and Python do not; that is the fingerprint.
    Only the entries our headers can describe are kept: files, dirs and symlinks owned by 0.
    """
    found = []
    for info, _ in members_with_headers(save_tar.read_bytes()):
        if not (info.isfile() and info.name.endswith("/layer.tar")):
            continue
        with tarfile.open(save_tar) as outer:
            body = outer.extractfile(info)
            assert body is not None
            layer = body.read()
        for inner, raw in members_with_headers(layer):
            main = raw[-BLOCK_SIZE:]
            if (
                field(main, "magic") + field(main, "version") == b"ustar\x0000"
                and field(main, "devmajor") == b"0000000\x00"
                and inner.type in (b"0", b"2", b"5")
                and inner.uid == 0
                and inner.gid == 0
                and set(inner.pax_headers) <= {"path", "linkpath"}
            ):
                found.append((info.name, inner, raw))
    return found


LAYER_HEADERS = [
    (case.name, layer, inner, raw)
    for case in SAVED_CASES
    for layer, inner, raw in go_written_layer_headers(case.save_tar)
]


def test_goldens_include_go_pax_headers():
    # The fszoo build holds long, non-ASCII and long-target entries that needed PAX.
    pax = [inner for _, _, inner, raw in LAYER_HEADERS if len(raw) > BLOCK_SIZE]
    keys = {key for inner in pax for key in inner.pax_headers}
    assert keys == {"path", "linkpath"}
    assert any(not inner.name.isascii() for inner in pax)
    # ... and long names that Go split into a USTAR prefix instead.
    assert any(field(raw, "prefix")[0] for _, _, _, raw in LAYER_HEADERS)


@pytest.mark.parametrize(
    ("layer", "inner", "raw"),
    [
        pytest.param(layer, inner, raw, id=f"{case}:{inner.name[:48]}")
        for case, layer, inner, raw in LAYER_HEADERS
    ],
)
def test_go_written_layer_headers_are_rebuilt_byte_for_byte(layer, inner, raw):
    type_bits = int(field(raw[-BLOCK_SIZE:], "mode").rstrip(b"\x00"), 8) > 0o7777
    encoded = header_of(inner, type_bits=type_bits).encode()
    assert encoded == raw, f"{layer}: {inner.name!r}: {header_difference(raw, encoded)}"


# -- bytes from the spec ----------------------------------------------------------------------


def block(**fields: bytes) -> bytes:
    """A header block laid out from the spec's table, with its checksum filled in."""
    data = bytearray(BLOCK_SIZE)
    for name, value in fields.items():
        offset, length = FIELD[name]
        assert len(value) <= length, name
        data[offset : offset + len(value)] = value
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\x00 " % sum(data)
    return bytes(data)


def octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def normal_block(name: bytes, size: int, mtime_field: bytes, **extra: bytes) -> bytes:
    fields = {
        "name": name,
        "mode": b"0100644\x00",
        "uid": b"0000000\x00",
        "gid": b"0000000\x00",
        "size": octal(size, 12),
        "mtime": mtime_field,
        "typeflag": b"0",
        "magic": b"ustar\x00",
        "version": b"00",
        "uname": b"root",
        "gname": b"root",
        "devmajor": b"0000000\x00",
        "devminor": b"0000000\x00",
    }
    fields.update(extra)
    return block(**fields)


def pax_block(name: bytes, records: bytes) -> bytes:
    """Go's extended header: zero numbers, no owner, device or prefix fields."""
    return (
        block(
            name=name,
            mode=b"0000000\x00",
            uid=b"0000000\x00",
            gid=b"0000000\x00",
            size=octal(len(records), 12),
            mtime=b"00000000000\x00",
            typeflag=b"x",
            magic=b"ustar\x00",
            version=b"00",
        )
        + records
        + bytes(-len(records) % BLOCK_SIZE)
    )


MTIME_2250 = int(datetime.datetime(2250, 1, 1, tzinfo=datetime.timezone.utc).timestamp())


def test_mtime_after_2242_needs_a_pax_record():
    assert MTIME_2250 == 8835955200
    header = TarHeader(
        f"{V1ID}/VERSION", REGTYPE, size=3, mtime=MTIME_2250, uname="root", gname="root"
    )
    expected = pax_block(f"{V1ID}/PaxHeaders.0/VERSION".encode(), b"20 mtime=8835955200\n")
    expected += normal_block(f"{V1ID}/VERSION".encode(), 3, b"00000000000\x00")
    assert header.encode() == expected, header_difference(expected, header.encode())


def test_pax_name_of_a_directory_and_of_a_top_level_file():
    directory = TarHeader(f"{V1ID}/", DIRTYPE, mtime=MTIME_2250, mode=0o755)
    assert field(directory.encode(), "name").rstrip(b"\x00") == f"{V1ID}/PaxHeaders.0".encode()
    config = TarHeader(f"{V1ID}.json", REGTYPE, size=10, mtime=MTIME_2250)
    assert field(config.encode(), "name").rstrip(b"\x00") == f"PaxHeaders.0/{V1ID}.json".encode()


def test_largest_mtime_and_size_that_fit_ustar():
    header = TarHeader("big", REGTYPE, size=8**11 - 1, mtime=8**11 - 1)
    encoded = header.encode()
    assert len(encoded) == BLOCK_SIZE
    assert field(encoded, "size") == b"77777777777\x00"
    assert field(encoded, "mtime") == b"77777777777\x00"


def test_size_of_8_gib_needs_a_pax_record():
    size = 8 * 1024**3
    assert size == 8**11
    header = TarHeader(
        f"{V1ID}/layer.tar", REGTYPE, size=size, mtime=1600000000, uname="root", gname="root"
    )
    expected = pax_block(f"{V1ID}/PaxHeaders.0/layer.tar".encode(), b"19 size=8589934592\n")
    expected += normal_block(f"{V1ID}/layer.tar".encode(), 0, octal(1600000000, 12))
    assert header.encode() == expected, header_difference(expected, header.encode())


def test_pax_records_are_sorted_by_key():
    header = TarHeader("x", REGTYPE, size=8**11, mtime=MTIME_2250)
    records = header.encode()[BLOCK_SIZE : 2 * BLOCK_SIZE].rstrip(b"\x00")
    assert records == b"20 mtime=8835955200\n19 size=8589934592\n"


def test_ustar_prefix_split_uses_the_last_slash():
    # Spec example: Go gives prefix "a/b" where Python's tarfile gives prefix "a".
    name = "a/b/" + "c" * 98
    encoded = TarHeader(name, REGTYPE).encode()
    assert len(encoded) == BLOCK_SIZE
    assert field(encoded, "prefix").rstrip(b"\x00") == b"a/b"
    assert field(encoded, "name") == b"c" * 98 + b"\x00\x00"


def test_directory_of_exactly_101_bytes_splits_before_its_last_component():
    name = "p" * 50 + "/" + "q" * 49 + "/"
    encoded = TarHeader(name, DIRTYPE).encode()
    assert len(encoded) == BLOCK_SIZE
    assert field(encoded, "prefix").rstrip(b"\x00") == b"p" * 50
    assert field(encoded, "name") == b"q" * 49 + b"/" + b"\x00" * 50


def test_unsplittable_long_name_gets_a_path_record_and_a_cut_main_name():
    name = "x" * 99 + "/" + "y" * 101  # the suffix after the only slash is too long
    encoded = TarHeader(name, REGTYPE).encode()
    record = b"211 path=" + name.encode() + b"\n"
    assert len(record) == 211
    assert encoded[BLOCK_SIZE : BLOCK_SIZE + len(record)] == record
    main = encoded[-BLOCK_SIZE:]
    # Cut to 100 bytes; a cut ending in "/" gets a NUL there (Go's formatString).
    assert field(main, "name") == b"x" * 99 + b"\x00"
    assert field(main, "prefix") == bytes(155)
    # dir + "PaxHeaders.0/" + base, cut to 100 bytes, trailing slash trimmed.
    assert field(encoded, "name") == b"x" * 99 + b"\x00"


def test_cut_ending_in_several_slashes_gets_one_nul():
    # Go's formatString writes a single NUL over the first of the trailing slashes.
    name = "x" * 98 + "//" + "y" * 101
    main = TarHeader(name, REGTYPE).encode()[-BLOCK_SIZE:]
    assert field(main, "name") == b"x" * 98 + b"\x00/"


def test_non_ascii_name_is_dropped_from_the_main_header():
    name = "zoo/caf\u00e9-\u4e2d.txt"
    encoded = TarHeader(name, REGTYPE, size=1).encode()
    assert len(encoded) == 3 * BLOCK_SIZE
    assert field(encoded, "name").rstrip(b"\x00") == b"zoo/PaxHeaders.0/caf-.txt"
    assert field(encoded[-BLOCK_SIZE:], "name").rstrip(b"\x00") == b"zoo/caf-.txt"


def test_pax_record_length_counts_its_own_digits():
    # "path" + a 91-byte value + " =\n" is 98 bytes; two length digits make 100, which has
    # three digits, so the record is 101 bytes long.
    name = "\u00e9" + "a" * 89
    assert len(name.encode()) == 91
    encoded = TarHeader(name, REGTYPE).encode()
    record = encoded[BLOCK_SIZE : 2 * BLOCK_SIZE].rstrip(b"\x00")
    assert record == b"101 path=" + name.encode() + b"\n"
    assert len(record) == 101


def test_long_owner_names_need_pax_records_and_are_cut():
    uname = "u" * 33
    encoded = TarHeader("f", REGTYPE, uname=uname, gname="root").encode()
    assert encoded[BLOCK_SIZE : 2 * BLOCK_SIZE].rstrip(b"\x00") == b"43 uname=" + b"u" * 33 + b"\n"
    main = encoded[-BLOCK_SIZE:]
    assert field(main, "uname") == b"u" * 32
    assert field(main, "gname") == b"root" + bytes(28)


def test_owner_names_of_32_bytes_fit():
    encoded = TarHeader("f", REGTYPE, uname="u" * 32, gname="g" * 32).encode()
    assert len(encoded) == BLOCK_SIZE
    assert field(encoded, "uname") == b"u" * 32


def test_long_symlink_target_needs_a_linkpath_record():
    target = "../" + "t" * 120
    encoded = TarHeader(f"{V1ID}/layer.tar", SYMTYPE, mode=0o777, linkname=target).encode()
    assert encoded[BLOCK_SIZE : 2 * BLOCK_SIZE].rstrip(b"\x00") == (
        b"137 linkpath=" + target.encode() + b"\n"
    )
    assert field(encoded[-BLOCK_SIZE:], "linkname") == target.encode()[:100]


@pytest.mark.parametrize(
    ("typeflag", "name", "mode", "with_bits", "without_bits"),
    [
        (REGTYPE, "f", 0o644, b"0100644\x00", b"0000644\x00"),
        (DIRTYPE, "d/", 0o755, b"0040755\x00", b"0000755\x00"),
        (SYMTYPE, "l", 0o777, b"0120777\x00", b"0000777\x00"),
    ],
)
def test_type_bits_in_the_mode_field(typeflag, name, mode, with_bits, without_bits):
    linkname = "../x" if typeflag == SYMTYPE else ""
    on = TarHeader(name, typeflag, mode=mode, linkname=linkname, type_bits=True).encode()
    off = TarHeader(name, typeflag, mode=mode, linkname=linkname, type_bits=False).encode()
    assert field(on, "mode") == with_bits
    assert field(off, "mode") == without_bits
    assert field(on, "typeflag") == typeflag.encode()


def test_symlink_header_from_the_spec_table():
    header = TarHeader(
        f"{V1ID}/layer.tar",
        SYMTYPE,
        mtime=1700000000,
        mode=0o777,
        linkname=f"../{V1ID}/layer.tar",
        uname="root",
        gname="root",
    )
    expected = block(
        name=f"{V1ID}/layer.tar".encode(),
        mode=b"0120777\x00",
        uid=b"0000000\x00",
        gid=b"0000000\x00",
        size=b"00000000000\x00",
        mtime=octal(1700000000, 12),
        typeflag=b"2",
        linkname=f"../{V1ID}/layer.tar".encode(),
        magic=b"ustar\x00",
        version=b"00",
        uname=b"root",
        gname=b"root",
        devmajor=b"0000000\x00",
        devminor=b"0000000\x00",
    )
    assert header.encode() == expected, header_difference(expected, header.encode())


def test_upstream_owner_names_are_all_nul():
    encoded = TarHeader("manifest.json", REGTYPE, size=2).encode()
    assert field(encoded, "uname") == bytes(32)
    assert field(encoded, "gname") == bytes(32)


# -- padding and the end of archive -----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "padded"), [(0, 0), (1, 512), (3, 512), (511, 512), (512, 512), (513, 1024)]
)
def test_padding(size, padded):
    assert padded_size(size) == padded
    assert padding(size) == bytes(padded - size)


def test_end_of_archive_is_two_zero_blocks():
    assert len(END_OF_ARCHIVE) == 2 * BLOCK_SIZE
    assert not any(END_OF_ARCHIVE)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"name": "f", "typeflag": REGTYPE, "size": -1}, id="negative-size"),
        pytest.param({"name": "f\x00g", "typeflag": REGTYPE}, id="nul-in-name"),
        pytest.param({"name": "l", "typeflag": SYMTYPE, "linkname": "a\x00"}, id="nul-in-link"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "uname": "r\x00"}, id="nul-in-uname"),
        pytest.param({"name": "f", "typeflag": "1"}, id="hardlink-type"),
        pytest.param({"name": "f", "typeflag": "x"}, id="pax-type"),
        pytest.param({"name": "f", "typeflag": ""}, id="empty-type"),
        pytest.param({"name": "", "typeflag": REGTYPE}, id="empty-name"),
        pytest.param({"name": "d", "typeflag": DIRTYPE}, id="dir-without-slash"),
        pytest.param({"name": "f/", "typeflag": REGTYPE}, id="file-with-slash"),
        pytest.param({"name": "d/", "typeflag": DIRTYPE, "size": 1}, id="dir-with-size"),
        pytest.param({"name": "l", "typeflag": SYMTYPE}, id="symlink-without-target"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "linkname": "x"}, id="file-with-target"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "mode": 0o100644}, id="mode-type-bits"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "mode": -1}, id="negative-mode"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "size": 2**63}, id="size-over-int64"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "mtime": 1.5}, id="float-mtime"),
        pytest.param({"name": "f", "typeflag": REGTYPE, "size": True}, id="bool-size"),
        pytest.param({"name": "\udcff", "typeflag": REGTYPE}, id="surrogate-name"),
        pytest.param({"name": b"f", "typeflag": REGTYPE}, id="bytes-name"),
    ],
)
def test_invalid_headers_are_refused(kwargs):
    with pytest.raises(TarHeaderError) as info:
        TarHeader(**kwargs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TarexportError)
    assert "\n" not in str(info.value)


def test_pax_records_over_a_mebibyte_are_refused():
    with pytest.raises(TarHeaderError, match="1 MiB"):
        TarHeader("n/" * (1 << 19) + "x", REGTYPE).encode()


# -- comparing headers ------------------------------------------------------------------------


def test_header_difference_names_the_block_and_field():
    a = TarHeader("f", REGTYPE, size=1).encode()
    b = TarHeader("f", REGTYPE, size=2).encode()
    assert header_difference(a, a) is None
    assert (
        header_difference(a, b) == "block 0 field size: expected b'00000000001\\x00', got "
        "b'00000000002\\x00'"
    )
    assert header_difference(a, a + a).startswith("block 1:")


def test_header_fields_cover_the_block():
    fields = header_fields(TarHeader("f", REGTYPE).encode())
    assert sum(len(v) for v in fields.values()) == BLOCK_SIZE
    assert fields["magic"] + fields["version"] == b"ustar\x0000"
    with pytest.raises(TarHeaderError):
        header_fields(b"short")


# -- round trips through Python's tarfile -----------------------------------------------------

component = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=60,
)
names = st.lists(component, min_size=1, max_size=6).map("/".join)
owner = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@st.composite
def headers(draw: st.DrawFn) -> TarHeader:
    typeflag = draw(st.sampled_from([REGTYPE, DIRTYPE, SYMTYPE]))
    name = draw(names)
    return TarHeader(
        name=name + "/" if typeflag == DIRTYPE else name,
        typeflag=typeflag,
        size=draw(st.integers(0, 2**40)) if typeflag == REGTYPE else 0,
        mtime=draw(st.integers(-(2**40), 2**40)),
        mode=draw(st.integers(0, 0o7777)),
        linkname=draw(names) if typeflag == SYMTYPE else "",
        uname=draw(owner),
        gname=draw(owner),
        type_bits=draw(st.booleans()),
    )


def pax_records(data: bytes) -> List[bytes]:
    records = []
    while data:
        length = int(data.split(b" ", 1)[0])
        records.append(data[:length])
        data = data[length:]
    return records


@given(headers())
def test_python_tarfile_reads_our_headers_back(header):
    encoded = header.encode()
    assert len(encoded) % BLOCK_SIZE == 0
    with tarfile.open(fileobj=io.BytesIO(encoded + END_OF_ARCHIVE), mode="r:") as archive:
        info = archive.next()
    assert info is not None
    assert info.name == (header.name.rstrip("/") if header.typeflag == DIRTYPE else header.name)
    assert info.type == header.typeflag.encode()
    assert info.size == header.size
    assert info.mtime == header.mtime
    assert info.mode & 0o7777 == header.mode
    assert info.linkname == header.linkname
    assert (info.uname, info.gname) == (header.uname, header.gname)
    assert (info.uid, info.gid) == (0, 0)


@given(headers())
def test_pax_records_are_self_describing_and_sorted(header):
    encoded = header.encode()
    if len(encoded) == BLOCK_SIZE:
        assert not header.needs_pax()
        return
    size = int(field(encoded, "size").rstrip(b"\x00"), 8)
    records = pax_records(encoded[BLOCK_SIZE : BLOCK_SIZE + size])
    for record in records:
        assert len(record) == int(record.split(b" ", 1)[0])
        assert record.endswith(b"\n")
    keys = [r.split(b" ", 1)[1].split(b"=", 1)[0] for r in records]
    assert keys == sorted(keys)
    assert len(encoded) == BLOCK_SIZE + padded_size(size) + BLOCK_SIZE
    main = encoded[-BLOCK_SIZE:]
    # Overflowing numbers are written as zero, and the main block has no prefix.
    if b"size" in keys:
        assert field(main, "size") == b"00000000000\x00"
    if b"mtime" in keys:
        assert field(main, "mtime") == b"00000000000\x00"
    assert field(main, "prefix") == bytes(155)
