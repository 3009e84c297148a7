"""The shared test helpers: golden discovery, tar reading, and tar difference messages.

Golden tests trust these to report where two archives differ, so they are checked
against archives built here with :mod:`tarfile` and against the goldens themselves.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import List, Optional

import pytest
from helpers import (
    GOLDENS_DIR,
    GoldenCase,
    assert_tar_equal,
    golden_cases,
    golden_params,
    read_tar,
    tar_difference,
    tar_segments,
)

CASES = golden_cases()


def make_tar(
    files: List[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT, mtime: int = 0
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as archive:
        for name, body in files:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mtime = mtime
            archive.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def member_offsets(data: bytes) -> List[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return archive.getmembers()


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def with_save_tar(cases: List[GoldenCase]) -> List[GoldenCase]:
    return [c for c in cases if c.save_tar is not None]


# -- golden discovery -------------------------------------------------------------------------


def test_golden_cases_cover_every_case_directory() -> None:
    dirs = sorted(p.name for p in GOLDENS_DIR.iterdir() if p.is_dir())
    assert [c.name for c in CASES] == dirs
    assert all(c.case["case"] == c.name for c in CASES)


@pytest.mark.parametrize("case", golden_params())
def test_golden_has_save_tar_unless_error_case(case: GoldenCase) -> None:
    assert (case.save_tar is None) == (case.case["error"] is not None)
    if case.save_tar is not None:
        assert case.save_tar.stat().st_size == case.case["save_tar"]["size"]


# -- read_tar ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(with_save_tar(CASES)))
def test_read_tar_gives_manifest_of_golden(case: GoldenCase) -> None:
    assert case.save_tar is not None
    members = read_tar(case.save_tar)
    by_name = {info.name: body for info, body in members}
    assert json.loads(by_name["manifest.json"] or b"") == case.case["manifest"]
    assert [info.name for info, _ in members][-1] in ("manifest.json", "repositories")
    for info, body in members:
        assert (body is None) == (not info.isreg())
        if body is not None:
            assert len(body) == info.size


# -- tar_segments -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(with_save_tar(CASES)))
def test_segments_match_tarfile_on_goldens(case: GoldenCase) -> None:
    assert case.save_tar is not None
    data = case.save_tar.read_bytes()
    segments = tar_segments(data)
    headers = [s for s in segments if s.kind == "header"]
    members = member_offsets(data)
    # tarfile drops the trailing slash of directory names; the raw header keeps it.
    assert [(s.start, s.member_name.rstrip("/")) for s in headers] == [
        (m.offset, m.name) for m in members
    ]
    # Segments tile the archive with no gap, and it ends with exactly two zero blocks.
    assert [s.start for s in segments[1:]] == [s.end for s in segments[:-1]]
    assert segments[-1].end == len(data)
    assert [s.kind for s in segments[-2:]] == ["end", "end"]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_segments_name_long_members(fmt: int) -> None:
    long_name = "d/" + "n" * 150
    data = make_tar([("short", b"x"), (long_name, b"yy")], fmt=fmt)
    names = [(s.kind, s.member_index, s.member_name) for s in tar_segments(data)]
    assert ("extension header", 1, long_name) in names
    assert ("header", 1, long_name) in names


# -- tar_difference ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_params(with_save_tar(CASES)))
def test_identical_goldens_have_no_difference(case: GoldenCase) -> None:
    assert case.save_tar is not None
    data = case.save_tar.read_bytes()
    assert tar_difference(data, bytes(data)) is None
    assert_tar_equal(data, bytes(data))


@pytest.mark.parametrize(
    ("field", "start"),
    [("name", 0), ("mode", 100), ("size", 124), ("mtime", 136), ("chksum", 148), ("uname", 265)],
)
def test_header_difference_names_member_and_field(field: str, start: int) -> None:
    case = next(c for c in CASES if c.name.startswith("s01-"))
    assert case.save_tar is not None
    expected = case.save_tar.read_bytes()
    target = member_offsets(expected)[2]
    actual = flip(expected, target.offset + start + 1)
    message = tar_difference(actual, expected)
    assert message is not None
    assert f"member #2 {target.name!r}" in message
    assert f"field {field!r}" in message
    assert f"at byte {target.offset + start + 1} " in message


def test_data_difference_names_member_and_offset() -> None:
    case = next(c for c in CASES if c.name.startswith("s01-"))
    assert case.save_tar is not None
    expected = case.save_tar.read_bytes()
    members = member_offsets(expected)
    index, layer = next((i, m) for i, m in enumerate(members) if m.name.endswith("layer.tar"))
    actual = flip(expected, layer.offset_data + 700)
    message = tar_difference(actual, expected)
    assert message is not None
    assert f"member #{index} {layer.name!r}, data at offset 700" in message


def test_difference_in_member_order_names_both() -> None:
    expected = make_tar([("alpha", b"1"), ("beta", b"2")])
    actual = make_tar([("beta", b"2"), ("alpha", b"1")])
    message = tar_difference(actual, expected)
    assert message is not None
    assert "expected member #0 'alpha', actual member #0 'beta'" in message
    assert "field 'name'" in message


def test_difference_in_gnu_long_name() -> None:
    expected = make_tar([("d/" + "a" * 120, b"1")], fmt=tarfile.GNU_FORMAT)
    actual = make_tar([("d/" + "a" * 119 + "b", b"1")], fmt=tarfile.GNU_FORMAT)
    message = tar_difference(actual, expected)
    assert message is not None
    assert "(GNU long name)" in message
    assert "extension data at offset 121" in message


@pytest.mark.parametrize("cut", [512, 1024])
def test_truncated_archive_says_which_side_goes_on(cut: int) -> None:
    expected = make_tar([("alpha", b"1"), ("beta", b"2")])
    message = tar_difference(expected[:-cut], expected)
    assert message is not None
    assert "only the expected archive goes on" in message
    assert "end block" in message
    message = tar_difference(expected, expected[:-cut])
    assert message is not None
    assert "only the actual archive goes on" in message


def test_extra_member_is_named() -> None:
    expected = make_tar([("alpha", b"1")])
    actual = make_tar([("alpha", b"1"), ("beta", b"2")])
    message: Optional[str] = tar_difference(actual, expected)
    assert message is not None
    assert "actual has member #1 'beta', expected has end block" in message


def test_assert_tar_equal_fails_with_the_message() -> None:
    expected = make_tar([("alpha", b"1")], mtime=1)
    actual = make_tar([("alpha", b"1")], mtime=2)
    with pytest.raises(pytest.fail.Exception, match="member #0 'alpha', header field 'mtime'"):
        assert_tar_equal(actual, expected)


def test_difference_inside_a_layer_names_the_inner_member() -> None:
    case = next(c for c in CASES if c.name.startswith("s01-"))
    assert case.save_tar is not None
    expected = case.save_tar.read_bytes()
    layer = next(m for m in member_offsets(expected) if m.name.endswith("layer.tar"))
    inner_members = member_offsets(expected[layer.offset_data : layer.offset_data + layer.size])
    index, inner = next((i, m) for i, m in enumerate(inner_members) if m.isreg())
    actual = flip(expected, layer.offset_data + inner.offset + 136 + 3)
    message = tar_difference(actual, expected)
    assert message is not None
    assert f"inside {layer.name!r}: " in message
    assert f"member #{index} {inner.name!r}, header field 'mtime'" in message
