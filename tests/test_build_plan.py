"""The layer planner and its headers: pure, checked by reading the bytes back with ``tarfile``."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarexport.build import LayerOptions, Node, plan_layer
from tarexport.build.plan import image_path
from tarexport.build.tarheader import CHRTYPE, REGTYPE, MemberHeader
from tarexport.errors import InvalidLayerEntry

_DEFAULT = LayerOptions()


def layer_bytes(nodes: list[Node], options: LayerOptions = _DEFAULT) -> bytes:
    plan = plan_layer(nodes, options)
    data = b"".join(s for s in plan.segments() if isinstance(s, bytes))  # type: ignore[misc]
    assert len(data) == plan.size
    return data


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def test_parents_are_added_and_everything_is_sorted_component_wise() -> None:
    data = layer_bytes([
        Node("/z", "file", data=b"z"),
        Node("a-b", "file", data=b""),
        Node("/a/b/c", "file", data=b"hello"),
    ])
    names = [(m.name, m.type) for m in members(data)]
    # "a" and its children come before "a-b" although "-" sorts before "/".
    assert names == [("a", tarfile.DIRTYPE), ("a/b", tarfile.DIRTYPE),
                     ("a/b/c", tarfile.REGTYPE), ("a-b", tarfile.REGTYPE),
                     ("z", tarfile.REGTYPE)]
    assert data.endswith(bytes(1024))


def test_modes_are_normalised_as_git_does_unless_exact() -> None:
    nodes = [
        Node("d", "dir", mode=0o700),
        Node("d/exec", "file", mode=0o4710, data=b"#!"),
        Node("d/plain", "file", mode=0o600, data=b"x"),
        Node("d/kept", "file", mode=0o4750, exact_mode=True, data=b"y"),
    ]
    got = {m.name: m.mode for m in members(layer_bytes(nodes))}
    assert got == {"d": 0o755, "d/exec": 0o755, "d/plain": 0o644, "d/kept": 0o4750}
    exact = {m.name: m.mode for m in members(layer_bytes(nodes, LayerOptions(exact_modes=True)))}
    assert exact == {"d": 0o700, "d/exec": 0o4710, "d/plain": 0o600, "d/kept": 0o4750}


def test_owner_and_mtime_come_from_the_options_unless_a_node_sets_them() -> None:
    options = LayerOptions(mtime=1234567890, uid=1000, gid=100)
    data = layer_bytes([Node("a", "file", data=b"", mtime=99), Node("b", "file", data=b"",
                                                                    uid=0, gid=0)], options)
    got = {m.name: (m.uid, m.gid, m.mtime) for m in members(data)}
    assert got == {"a": (1000, 100, 1234567890), "b": (0, 0, 1234567890)}
    clamped = LayerOptions(mtime=1000, clamp_mtime=True)
    got = {m.name: m.mtime for m in members(layer_bytes(
        [Node("old", "file", data=b"", mtime=10), Node("new", "file", data=b"", mtime=5000)],
        clamped))}
    assert got == {"old": 10, "new": 1000}


def test_symlinks_are_verbatim_and_hardlinks_point_at_the_first_name() -> None:
    data = layer_bytes([
        Node("z/file", "file", data=b"content", link_key=(1, 2)),
        Node("a/second", "file", data=b"content", link_key=(1, 2)),
        Node("b/link", "hardlink", target="/z/file"),
        Node("up", "symlink", target="../../etc/passwd"),
    ])
    by_name = {m.name: m for m in members(data)}
    assert by_name["a/second"].isreg() and by_name["a/second"].size == 7
    assert by_name["z/file"].islnk() and by_name["z/file"].linkname == "a/second"
    assert by_name["b/link"].islnk() and by_name["b/link"].linkname == "a/second"
    assert by_name["up"].issym() and by_name["up"].linkname == "../../etc/passwd"
    assert by_name["up"].mode == 0o777


def test_whiteouts() -> None:
    names = [m.name for m in members(layer_bytes([
        Node("/etc/gone", "whiteout"), Node("/var/cache", "opaque")]))]
    assert names == ["etc", "etc/.wh.gone", "var", "var/cache", "var/cache/.wh..wh..opq"]


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/a/../b"])
def test_a_path_that_escapes_the_root_is_refused(path: str) -> None:
    with pytest.raises(InvalidLayerEntry, match="escapes the image root"):
        plan_layer([Node(path, "file", data=b"")])


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([Node("a", "file", data=b""), Node("/a", "file", data=b"")], "given twice"),
        ([Node("a", "symlink", target="x"), Node("a/b", "file", data=b"")], "not a directory"),
        ([Node("a\udcff", "file", data=b"")], "cannot be encoded"),
        ([Node("a\x00b", "file", data=b"")], "NUL"),
        ([Node(".wh.x", "file", data=b"")], "whiteouts"),
        ([Node("l", "hardlink", target="nothing")], "not a file of this layer"),
        ([Node("s", "symlink", target="")], "needs a target"),
    ],
)
def test_bad_entries_are_typed_errors_naming_the_path(nodes: list[Node], message: str) -> None:
    with pytest.raises(InvalidLayerEntry, match=message) as info:
        plan_layer(nodes)
    assert info.value.path


def test_image_path() -> None:
    assert image_path("/usr//bin/./x/") == "usr/bin/x"
    assert image_path("/") == ""


def test_long_names_owners_and_xattrs_go_into_pax_records() -> None:
    long_name = "d/" + "n" * 150 + "/ü" * 3
    data = layer_bytes([
        Node(long_name, "file", data=b"x", uid=3_000_000, gid=7,
             xattrs=(("user.note", b"\x00\xffbin"),)),
        Node("ln", "symlink", target="t" * 200),
    ])
    by_name = {m.name: m for m in members(data)}
    assert by_name[long_name].uid == 3_000_000
    note = by_name[long_name].pax_headers["SCHILY.xattr.user.note"]
    assert note.encode("utf-8", "surrogateescape") == b"\x00\xffbin"
    assert by_name["ln"].linkname == "t" * 200


def test_device_headers() -> None:
    header = MemberHeader("dev/null", CHRTYPE, 0o666, devmajor=1, devminor=3)
    (member,) = members(header.encode() + bytes(1024))
    assert member.ischr() and (member.devmajor, member.devminor) == (1, 3)


def test_a_plain_header_matches_go_byte_for_byte() -> None:
    # What Go's archive/tar writes for this header (USTAR, octal zero device fields).
    header = MemberHeader("etc/hostname", REGTYPE, 0o644, size=5, mtime=1234567890)
    block = header.encode()
    assert len(block) == 512
    assert block[257:265] == b"ustar\x0000"
    assert block[329:345] == b"0000000\x000000000\x00"
    assert block[100:108] == b"0000644\x00"


_names = st.lists(
    st.lists(st.text("abcé-_.", min_size=1, max_size=12).filter(lambda s: s not in (".", "..")
             and not s.startswith(".wh.")), min_size=1, max_size=4).map("/".join),
    max_size=20, unique=True,
)


@given(_names, st.binary(max_size=700))
def test_any_set_of_files_plans_to_a_tar_that_reads_back(paths: list[str], data: bytes) -> None:
    # Keep only paths that are no other path's parent (a file cannot hold files).
    files = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    plan = plan_layer([Node(p, "file", data=data) for p in files])
    raw = b"".join(s for s in plan.segments() if isinstance(s, bytes))  # type: ignore[misc]
    assert len(raw) == plan.size
    read = members(raw)
    regular = {m.name for m in read if m.isreg()}
    assert regular == set(files)
    seen: set[str] = set()
    for member in read:  # every parent directory comes before what it holds
        parent = member.name.rpartition("/")[0]
        assert not parent or parent in seen
        seen.add(member.name)


_header_fields = st.fixed_dictionaries({
    "name": st.text("abc/._-", min_size=1, max_size=100).filter(lambda n: not n.endswith("/")),
    "typeflag": st.sampled_from(["0", "1", "2", "3", "4", "6"]),
    "mode": st.integers(0, 0o7777),
    "uid": st.integers(0, 8**7 - 1),
    "gid": st.integers(0, 8**7 - 1),
    "mtime": st.integers(0, 8**11 - 1),
    "uname": st.text("abcdefgh", max_size=32),
    "gname": st.text("abcdefgh", max_size=32),
    "devmajor": st.integers(0, 8**7 - 1),
    "devminor": st.integers(0, 8**7 - 1),
})


@given(_header_fields, st.integers(0, 8**11 - 1))
def test_the_fast_ustar_path_writes_what_the_field_by_field_path_writes(
    fields: dict[str, object], size: int
) -> None:
    header = MemberHeader(**fields, size=size if fields["typeflag"] == "0" else 0)  # type: ignore[arg-type]
    fast = header._plain_ustar()
    assert fast is not None
    assert fast == header._block(header.name, header.linkname, ustar=True)
