"""Leftovers of killed processes: removed by the next operation, listed and pruned on demand,
and never confused with the work of a live process."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import pytest
from craft import Img, config_bytes, docker_archive, image, layer_tar, sha256

from tarexport.cli import main
from tarexport.leftovers import STAGING_PREFIX, create_partial, find_leftovers, remove_leftovers
from tarexport.load import load
from tarexport.stores.oci_layout import OCILayoutStore

REPO = Path(__file__).resolve().parent.parent
WAIT = 60.0  # a safety net for a wedged child, not a timing assertion


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def big_archive() -> bytes:
    """An archive with a layer big enough that a load is caught in the middle of it."""
    layer = layer_tar({"big": os.urandom(4 << 20)})
    img = Img(config_bytes([sha256(layer)]), (layer,), ("big:1",))
    return docker_archive([img])


def staging_in(layout: Path) -> List[str]:
    return sorted(p.name for p in layout.iterdir() if p.name.startswith(STAGING_PREFIX))


def staged_bytes(layout: Path) -> int:
    return sum(f.stat().st_size for n in staging_in(layout) for f in Path(layout, n).iterdir())


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def start_load(layout: Path, data: bytes) -> subprocess.Popen[bytes]:
    """A ``tarexport load`` fed half of ``data``, then left waiting for the rest."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tarexport", "load", "--into", f"oci:{layout}", "-q"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
    )
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    wait_for(lambda: staged_bytes(layout) >= 1 << 20, "the load to stage a MiB")
    return proc


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(WAIT)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(BrokenPipeError):
                stream.close()


def test_the_next_load_removes_the_staging_of_a_killed_one(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    OCILayoutStore(layout, create=True)
    kill(start_load(layout, big_archive()))
    left = staging_in(layout)
    assert left, "the killed load left its staging behind"
    load(io.BytesIO(docker_archive([image(1)])), into=OCILayoutStore(layout))
    assert staging_in(layout) == []


def test_a_live_load_is_never_pruned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = tmp_path / "layout"
    OCILayoutStore(layout, create=True)
    data = big_archive()
    proc = start_load(layout, data)
    try:
        (live,) = staging_in(layout)
        # Another load into the same layout, and an explicit prune, leave it alone.
        load(io.BytesIO(docker_archive([image(1)])), into=OCILayoutStore(layout))
        assert main(["prune", f"oci:{layout}"]) == 0
        out = capsys.readouterr().out
        assert f"In use: {layout / live}" in out
        assert staging_in(layout) == [live]
        assert proc.stdin is not None
        proc.stdin.write(data[len(data) // 2 :])
        proc.stdin.close()
        assert proc.wait(WAIT) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            kill(proc)
    assert staging_in(layout) == []
    assert b"Loaded image: big:1" in (proc.stdout.read() if proc.stdout else b"")


def test_prune_lists_then_removes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = tmp_path / "layout"
    OCILayoutStore(layout, create=True)
    kill(start_load(layout, big_archive()))
    (dead,) = staging_in(layout)
    assert main(["prune", "--dry-run", f"oci:{layout}"]) == 0
    out = capsys.readouterr().out
    assert f"Would delete: {layout / dead} (" in out and "MiB)" in out
    assert staging_in(layout) == [dead]
    assert main(["prune", f"oci:{layout}"]) == 0
    out = capsys.readouterr().out
    assert f"Deleted: {layout / dead}" in out
    assert "Total reclaimed space: " in out
    assert staging_in(layout) == []


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


def partials(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def killed_save(out: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, "save", "--from", f"oci:{REPO / 'examples/hello'}",
         "hello:latest", "-o", str(out)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=child_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    kill(proc)


def test_the_next_save_removes_the_partial_archive_of_a_killed_one(tmp_path: Path) -> None:
    out = tmp_path / "hello.tar"
    killed_save(out)
    (left,) = partials(tmp_path)
    assert left.startswith(".hello.tar.") and not out.exists()
    assert main(["save", "--from", f"oci:{REPO / 'examples/hello'}", "hello:latest", "-o",
                 str(out), "-q"]) == 0
    assert partials(tmp_path) == []
    assert out.stat().st_size > 4096


def test_prune_a_file_removes_its_partial_archives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hello.tar"
    killed_save(out)
    (left,) = partials(tmp_path)
    assert main(["prune", "-n", str(out)]) == 0
    assert f"Would delete: {tmp_path / left} (4.0 KiB)" in capsys.readouterr().out
    assert main(["prune", str(out)]) == 0
    assert partials(tmp_path) == []


def test_only_our_own_names_count(tmp_path: Path) -> None:
    # Other programs' temporary files look alike; only ours, exactly, are leftovers.
    for name in (".app.tar.abcdefgh.tmp", ".app.tar.tarexport-XYZ.tmp", "notes.tmp",
                 ".app.tar.tarexport-0123456789abcdef.tmp.keep"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".link.tarexport-0123456789abcdef.tmp").symlink_to(tmp_path / "notes.tmp")
    assert find_leftovers(str(tmp_path)) == []
    fd, path = create_partial(str(tmp_path), "app.tar")
    try:
        (found,) = find_leftovers(str(tmp_path), "app.tar")
        assert found.path == path and found.in_use and found.kind == "partial"
        assert remove_leftovers([found]) == []  # held: not removed
        assert os.path.exists(path)
    finally:
        os.close(fd)
    (found,) = find_leftovers(str(tmp_path))
    assert not found.in_use
    assert remove_leftovers([found]) == [found]
    assert not os.path.exists(path)
    assert len(list(tmp_path.iterdir())) == 5


def test_prune_without_a_default_store_has_nothing_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAREXPORT_STORE", str(tmp_path / "not-yet"))
    assert main(["prune"]) == 0
    assert capsys.readouterr().out == "Total reclaimed space: 0 B\n"
    assert not (tmp_path / "not-yet").exists()
    assert main(["prune", f"oci:{tmp_path / 'missing'}"]) == 1
    assert "no such directory" in capsys.readouterr().err
