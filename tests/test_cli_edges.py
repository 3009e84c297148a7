"""The command at its edges: what a new user meets first, and what goes wrong halfway.

Wrong inputs get a message that says what they are; Ctrl-C ends with one line and nothing
left behind; a failed load leaves no new empty layout and an existing one as it was; ``-o``
replaces a regular file atomically and writes through anything else.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest
from craft import M, docker_archive, image, tar_bytes, tree_snapshot

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "hello"
TAG = "hello:latest"
TIMEOUT = 120.0  # a safety net for a wedged child, not a timing assertion


def env_for(store: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TAREXPORT_STORE", "XDG_DATA_HOME")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TAREXPORT_STORE"] = str(store)
    return env


def tarexport(
    *args: str,
    store: Path,
    input: Optional[bytes] = None,
    prefix: List[str] = [],  # noqa: B006 - never mutated
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tarexport", *args],
        input=None if input is None else input.decode("latin-1"),
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True, text=True, encoding="latin-1", env=env_for(store),
        timeout=TIMEOUT, check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tarexport: "), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.fixture
def hello_tar(tmp_path: Path) -> Path:
    out = tmp_path / "hello.tar"
    proc = tarexport("save", "--from", f"oci:{EXAMPLE}", TAG, "-o", str(out),
                     store=tmp_path / "unused")
    assert proc.returncode == 0, proc.stderr
    return out


# -- what the input is ---------------------------------------------------------------------


def test_a_file_system_tar_is_named_as_such(tmp_path: Path) -> None:
    # What `tar -C DIR -cf - .` makes: a `./` entry, directories and files, no metadata.
    fs_tar = tmp_path / "rootfs.tar"
    fs_tar.write_bytes(tar_bytes([M("./", kind="dir"), M("./etc/", kind="dir"),
                                  M("./etc/hostname", b"box\n"), M("./bin/", kind="dir")]))
    target = tmp_path / "new"
    proc = tarexport("load", "--into", f"oci:{target}", "-i", str(fs_tar), store=tmp_path / "s")
    one_error_line(proc, str(fs_tar), "no manifest.json, no index.json",
                   "looks like a file-system tar", "`docker import` it",
                   "`tarexport build --layer-tar`")
    assert not target.exists()


def without_dac_override() -> List[str]:
    """A prefix that runs a command as root without its power to ignore file modes."""
    if os.geteuid() != 0:
        return []  # file modes apply already
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: file modes cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_permission_denied_is_reported_as_permission_denied(
    tmp_path: Path, hello_tar: Path
) -> None:
    prefix = without_dac_override()
    layout = tmp_path / "layout"
    shutil.copytree(EXAMPLE, layout)
    layout.chmod(0o000)
    try:
        for args in (["images", "--from", f"oci:{layout}"],
                     ["save", "--from", f"oci:{layout}", TAG, "-o", str(tmp_path / "x.tar")],
                     ["load", "--into", f"oci:{layout}", "-i", str(hello_tar)]):
            proc = tarexport(*args, store=tmp_path / "s", prefix=prefix)
            one_error_line(proc, "Permission denied")
            assert "not an OCI image layout" not in proc.stderr
        layout.chmod(0o500)  # readable, not writable
        proc = tarexport("load", "--into", f"oci:{layout}", "-i", str(hello_tar),
                         store=tmp_path / "s", prefix=prefix)
        one_error_line(proc, "Permission denied")
    finally:
        layout.chmod(0o755)
    hello_tar.chmod(0o000)
    proc = tarexport("load", "-i", str(hello_tar), store=tmp_path / "s", prefix=prefix)
    one_error_line(proc, f"cannot read {hello_tar}: Permission denied")
    assert not (tmp_path / "s").exists()


def test_a_terminal_on_stdin_is_refused_with_a_pointer_to_i(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tarexport", "load"], stdin=slave, capture_output=True,
            text=True, env=env_for(tmp_path / "s"), timeout=TIMEOUT, check=False,
        )
    finally:
        os.close(master)
        os.close(slave)
    one_error_line(proc, "requested load from stdin, but stdin is empty", "-i FILE")
    assert not (tmp_path / "s").exists()


def test_an_empty_stdin_points_to_i(tmp_path: Path) -> None:
    proc = tarexport("load", store=tmp_path / "s", input=b"")
    one_error_line(proc, "stdin (no -i FILE given)", "empty")
    assert not (tmp_path / "s").exists()


# -- interrupted ---------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert proc.poll() is None, "the command ended before it could be interrupted"
        assert time.monotonic() < deadline, "gave up waiting for the command"
        time.sleep(0.02)


def big_archive() -> bytes:
    from craft import Img, config_bytes, layer_tar, sha256

    layer = layer_tar({"big": os.urandom(4 << 20)})
    return docker_archive([Img(config_bytes([sha256(layer)]), (layer,), ("big:1",))])


def staged_bytes(layout: Path) -> int:
    total = 0
    for entry in layout.glob(".tarexport-staging-*"):
        for f in entry.iterdir():
            total += f.stat().st_size
    return total


@pytest.mark.parametrize("target", ["new", "existing"])
def test_ctrl_c_during_a_load_prints_one_line_and_leaves_nothing(
    tmp_path: Path, target: str
) -> None:
    layout = tmp_path / "layout"
    if target == "existing":
        shutil.copytree(EXAMPLE, layout)
    before = tree_snapshot(layout) if layout.exists() else None
    data = big_archive()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tarexport", "load", "--into", f"oci:{layout}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env_for(tmp_path / "s"),
    )
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    wait_for(lambda: layout.exists() and staged_bytes(layout) >= 1 << 20, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130
    assert stderr == b"tarexport: interrupted\n"
    if before is None:
        assert not layout.exists()
    else:
        assert tree_snapshot(layout) == before


SLOW_SAVE = """
import sys, time
from tarexport import save
def write(self, out, progress=None):
    out.write(b"x" * 4096)
    out.flush()
    print("writing", flush=True)
    time.sleep(600)
save.SavePlan.write = write
from tarexport.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_a_save_prints_one_line_and_leaves_no_partial_file(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out" / "hello.tar"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, "save", "--from", f"oci:{EXAMPLE}", TAG, "-o",
         str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env_for(tmp_path / "s"),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130
    assert stderr == b"tarexport: interrupted\n"
    assert list(out.parent.iterdir()) == []


# -- a failed load -------------------------------------------------------------------------


def corrupt_archive() -> bytes:
    """An archive whose layer does not match its diff ID: found only after staging it."""
    good = image(1, tags=("bad:1",))
    bad = type(good)(good.config, (good.layers[0][:-1] + b"\x01",), good.tags)
    return docker_archive([bad])


@pytest.mark.parametrize("target", ["missing", "empty-dir"])
def test_a_failed_load_leaves_no_new_layout(tmp_path: Path, target: str) -> None:
    layout = tmp_path / "layout"
    if target == "empty-dir":
        layout.mkdir()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(corrupt_archive())
    proc = tarexport("load", "--into", f"oci:{layout}", "-i", str(bad), store=tmp_path / "s")
    one_error_line(proc, "digest")
    if target == "missing":
        assert not layout.exists()
    else:
        assert list(layout.iterdir()) == []


def test_a_failed_load_into_the_default_store_does_not_create_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(corrupt_archive())
    proc = tarexport("load", "-i", str(bad), store=tmp_path / "store")
    one_error_line(proc, "digest")
    assert not (tmp_path / "store").exists()


def test_a_failed_load_leaves_an_existing_layout_exactly_as_it_was(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    shutil.copytree(EXAMPLE, layout)
    before = tree_snapshot(layout)
    bad = tmp_path / "bad.tar"
    bad.write_bytes(corrupt_archive())
    proc = tarexport("load", "--into", f"oci:{layout}", "-i", str(bad), store=tmp_path / "s")
    one_error_line(proc, "digest")
    assert tree_snapshot(layout) == before


# -- -o FILE -------------------------------------------------------------------------------


def save_to(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return tarexport("save", "--from", f"oci:{EXAMPLE}", TAG, "-o", str(path),
                     store=tmp_path / "s")


def test_o_replaces_a_regular_file_atomically_keeping_its_mode(
    tmp_path: Path, hello_tar: Path
) -> None:
    out = tmp_path / "out.tar"
    out.write_bytes(b"old")
    out.chmod(0o640)
    inode = out.stat().st_ino
    with open(out, "rb") as reader:  # a reader of the old file keeps reading the old file
        proc = save_to(out, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert reader.read() == b"old"
    assert out.read_bytes() == hello_tar.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.stat().st_ino != inode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_o_dev_null_works_and_stays(tmp_path: Path) -> None:
    proc = save_to(Path(os.devnull), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("through", ["fifo", "symlink-to-fifo"])
def test_o_writes_through_a_fifo_and_never_replaces_it(
    tmp_path: Path, hello_tar: Path, through: str
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = fifo
    if through == "symlink-to-fifo":
        target = tmp_path / "link"
        target.symlink_to(fifo)
    got: List[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    try:
        proc = save_to(target, tmp_path)
    finally:
        if reader.is_alive() and not got:
            # Unblock the reader if the command never opened the FIFO.
            with open(fifo, "wb"):
                pass
        reader.join(TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert got == [hello_tar.read_bytes()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if through == "symlink-to-fifo":
        assert target.is_symlink()


def test_o_a_directory_is_a_clean_error(tmp_path: Path) -> None:
    out = tmp_path / "dir"
    out.mkdir()
    proc = save_to(out, tmp_path)
    one_error_line(proc, f"cannot write {out}: Is a directory")
    assert list(out.iterdir()) == []


def test_a_fifo_as_an_archive_read_in_place_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "archive.tar"
    os.mkfifo(fifo)
    for args in (["images", "--from", f"docker-archive:{fifo}"],
                 ["save", "--from", f"docker-archive:{fifo}", TAG, "-o", "-"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tarexport", *args], capture_output=True, text=True,
            env=env_for(tmp_path / "s"), timeout=20, stdin=subprocess.DEVNULL, check=False,
        )
        one_error_line(proc, f"{fifo} is a FIFO, not a regular file")
