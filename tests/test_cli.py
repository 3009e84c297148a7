"""The ``tarexport`` command, run as a user runs it: a subprocess, real files, real pipes.

Every test points ``TAREXPORT_STORE`` (or ``HOME`` / ``XDG_DATA_HOME``) at a temporary
directory, so the user's own default store is never touched.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import termios
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pytest
from helpers import REFERENCES_JSONL

from tarexport.stores.oci_layout import OCILayoutStore

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "hello"
EXAMPLE_TAG = "hello:latest"

# A safety net against a hung child, not a performance assertion.
TIMEOUT = 120.0

# Docker's own texts, which the command keeps.
REFUSE_TERMINAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"
REFUSE_STDIN = "requested load from stdin, but stdin is empty"

# Names every `docker save` archive of Docker 25+ has besides its blobs (the format spec).
HYBRID_TOP_LEVEL = {"blobs", "blobs/sha256", "index.json", "manifest.json", "oci-layout"}

ONE_LINE_ERROR = re.compile(r"tarexport: [^\n]+\n")


# -- running the command ----------------------------------------------------------------------


def base_env(store: Optional[Path]) -> Dict[str, str]:
    """The environment of a child: this checkout first on the path, the default store set."""
    env = {k: v for k, v in os.environ.items() if k not in ("TAREXPORT_STORE", "XDG_DATA_HOME")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("COLUMNS", None)
    if store is not None:
        env["TAREXPORT_STORE"] = str(store)
    return env


def command(*args: str) -> List[str]:
    return [sys.executable, "-m", "tarexport", *args]


def run(
    *args: str,
    env: Mapping[str, str],
    input: Optional[bytes] = None,
    cwd: Optional[Path] = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        command(*args),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=dict(env),
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


class CLI:
    """Runs ``tarexport`` with the default store at ``store``."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.env = base_env(store)

    def __call__(
        self, *args: str, input: Optional[bytes] = None, cwd: Optional[Path] = None
    ) -> subprocess.CompletedProcess[bytes]:
        return run(*args, env=self.env, input=input, cwd=cwd)

    def ok(self, *args: str, input: Optional[bytes] = None) -> subprocess.CompletedProcess[bytes]:
        proc = self(*args, input=input)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "store")


def assert_error(proc: subprocess.CompletedProcess[bytes], *fragments: str) -> str:
    """Exit 1 with exactly one line, ``tarexport: <message>``, that contains ``fragments``."""
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert ONE_LINE_ERROR.fullmatch(stderr), stderr
    for fragment in fragments:
        assert fragment in stderr
    return stderr


def assert_usage_error(proc: subprocess.CompletedProcess[bytes], *fragments: str) -> None:
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert stderr.startswith("usage: tarexport"), stderr
    assert "Traceback" not in stderr
    last = stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("tarexport") and ": error: " in last, last
    for fragment in fragments:
        assert fragment in last


def leftovers(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


# -- test images ------------------------------------------------------------------------------


def example_blobs() -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (EXAMPLE / "blobs" / "sha256").iterdir()}


def example_config() -> Dict[str, Any]:
    """The example image's config, found through the layout's index and manifest."""
    index = json.loads((EXAMPLE / "index.json").read_text())
    manifest_hex = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((EXAMPLE / "blobs" / "sha256" / manifest_hex).read_text())
    config_hex = manifest["config"]["digest"].split(":")[1]
    config: Dict[str, Any] = json.loads((EXAMPLE / "blobs" / "sha256" / config_hex).read_text())
    return config


def example_image_id() -> str:
    index = json.loads((EXAMPLE / "index.json").read_text())
    manifest_hex = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((EXAMPLE / "blobs" / "sha256" / manifest_hex).read_text())
    digest: str = manifest["config"]["digest"]
    return digest


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def config_for(layers: Sequence[bytes], label: str) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Labels": {"test": label}},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers],
        },
    }
    return json.dumps(config, sort_keys=True).encode()


@pytest.fixture(scope="session")
def big_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``big:1``: forty small layers and one of 8 MiB, more than any pipe buffers."""
    path = tmp_path_factory.mktemp("big") / "layout"
    store = OCILayoutStore(path, create=True, fsync=False)
    layers = [layer_tar({f"f{i}.txt": f"layer {i}\n".encode()}) for i in range(40)]
    layers.append(layer_tar({"big.bin": bytes(range(256)) * (8 << 12)}))
    store.add_image(config_for(layers, "big"), layers, references=["big:1"])
    return path


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(EXAMPLE, target)
    return target


# -- --version, --help, usage errors ----------------------------------------------------------


def test_version_is_the_package_version(cli: CLI) -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version is not None
    proc = cli.ok("--version")
    assert proc.stdout.decode() == f"tarexport {version.group(1)}\n"


def test_help_lists_every_command(cli: CLI) -> None:
    out = cli.ok("--help").stdout.decode()
    for name in ("save", "load", "images", "ref"):
        assert name in out
    for name, options in {
        "save": ("--from", "--profile", "--no-verify", "-o", "--progress", "--quiet"),
        "load": ("--into", "-i", "--progress", "--quiet"),
        "images": ("--from",),
        "ref": ("--json",),
    }.items():
        text = cli.ok(name, "--help").stdout.decode()
        for option in options:
            assert option in text, (name, option)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param((), "required", id="no-command"),
        pytest.param(("frobnicate",), "invalid choice", id="unknown-command"),
        pytest.param(("save",), "required", id="save-without-names"),
        pytest.param(("ref",), "required", id="ref-without-refs"),
        pytest.param(("save", "--from", "tar:x", "a"), "expected oci:DIR", id="unknown-store"),
        pytest.param(("save", "--from", "/some/dir", "a"), "expected oci:DIR", id="bare-path"),
        pytest.param(("save", "--from", "oci:", "a"), "needs a path", id="empty-path"),
        pytest.param(("save", "--from", "docker-root:", "a"), "needs a path", id="empty-root"),
        pytest.param(("save", "--profile", "docker-9", "a"), "unknown profile", id="profile"),
        pytest.param(("save", "--progress", "fancy", "a"), "invalid choice", id="progress"),
        pytest.param(("images", "a", "b"), "unrecognized arguments", id="extra-argument"),
    ],
)
def test_usage_errors_exit_2(cli: CLI, args: Tuple[str, ...], fragment: str) -> None:
    assert_usage_error(cli(*args), fragment)


# -- save -------------------------------------------------------------------------------------


def test_save_from_an_oci_layout_to_a_file(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "hello.tar"
    proc = cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out))
    assert proc.stdout == b"" and proc.stderr == b""
    with tarfile.open(out) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    blobs = example_blobs()
    # Every blob of the layout is in the archive (layers and config as they are).
    assert {f"blobs/sha256/{h}" for h in blobs} <= names
    assert names >= HYBRID_TOP_LEVEL
    assert manifest[0]["RepoTags"] == [EXAMPLE_TAG]
    assert manifest[0]["Config"] == "blobs/sha256/" + example_image_id().split(":")[1]
    assert leftovers(tmp_path) == ["hello.tar"]


def test_save_streams_to_stdout_into_tar(cli: CLI, tmp_path: Path) -> None:
    saver = subprocess.Popen(
        command("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
    )
    assert saver.stdout is not None and saver.stderr is not None
    lister = subprocess.run(
        ["tar", "-t"], stdin=saver.stdout, capture_output=True, timeout=TIMEOUT, check=False
    )
    saver.stdout.close()
    stderr = saver.stderr.read()
    saver.stderr.close()
    assert saver.wait(timeout=TIMEOUT) == 0, stderr
    assert lister.returncode == 0, lister.stderr
    listed = {name.rstrip("/") for name in lister.stdout.decode().splitlines()}
    assert listed >= HYBRID_TOP_LEVEL
    assert {f"blobs/sha256/{h}" for h in example_blobs()} <= listed


def test_save_to_stdout_equals_save_to_file(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "a.tar"
    cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out))
    streamed = cli.ok("save", "--from", f"oci:{EXAMPLE}", "-o", "-", EXAMPLE_TAG).stdout
    assert streamed == out.read_bytes()
    # A tar stream ends with its two zero blocks: the whole archive came through.
    assert streamed.endswith(bytes(1024))


def test_save_with_a_v1_profile(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "v1.tar"
    cli.ok("save", "--from", f"oci:{EXAMPLE}", "--profile", "20.10", EXAMPLE_TAG, "-o", str(out))
    with tarfile.open(out) as archive:
        names = archive.getnames()
    # Docker 1.10-24 layout: a v1 directory per layer, the config at <id>.json, no blobs/.
    assert "manifest.json" in names and "repositories" in names
    assert example_image_id().split(":")[1] + ".json" in names
    assert sum(1 for n in names if re.fullmatch(r"[0-9a-f]{64}/layer\.tar", n)) == 2
    assert not any(n.startswith("blobs") for n in names)


def test_save_from_a_docker_archive(cli: CLI, tmp_path: Path) -> None:
    first = tmp_path / "first.tar"
    again = tmp_path / "again.tar"
    cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(first))
    cli.ok("save", "--from", f"docker-archive:{first}", EXAMPLE_TAG, "-o", str(again))
    assert again.read_bytes() == first.read_bytes()


def test_save_over_an_existing_file_replaces_it(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "hello.tar"
    out.write_bytes(b"old content")
    out.chmod(0o640)
    cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out))
    assert tarfile.is_tarfile(out)
    assert out.stat().st_mode & 0o777 == 0o640
    assert leftovers(tmp_path) == ["hello.tar"]


def test_save_through_a_symlink_replaces_its_target(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "hello.tar").write_bytes(b"old")
    link = tmp_path / "link.tar"
    link.symlink_to(tmp_path / "real" / "hello.tar")
    cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(link))
    assert link.is_symlink()
    assert tarfile.is_tarfile(tmp_path / "real" / "hello.tar")
    assert leftovers(tmp_path / "real") == ["hello.tar"]


def test_new_output_file_gets_the_usual_mode(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "hello.tar"
    cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out))
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_save_to_dev_null_leaves_it_a_device(cli: CLI) -> None:
    cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", os.devnull)
    assert Path(os.devnull).is_char_device()


def test_unknown_name_fails_before_any_output(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    proc = cli("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "hello:nope", "-o", str(out))
    assert_error(proc, "hello:nope")
    assert leftovers(tmp_path) == []


def test_invalid_name_is_an_error(cli: CLI, tmp_path: Path) -> None:
    proc = cli("save", "--from", f"oci:{EXAMPLE}", "Hello", "-o", str(tmp_path / "o.tar"))
    assert_error(proc, "invalid reference format")
    assert leftovers(tmp_path) == []


def _corrupt_biggest_layer(layout: Path) -> None:
    """Flip one byte of the largest blob (a layer): same size, wrong digest."""
    biggest = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[700] ^= 0xFF
    biggest.chmod(0o644)
    biggest.write_bytes(bytes(data))


def test_failed_save_leaves_no_file_behind(
    cli: CLI, example_copy: Path, tmp_path: Path
) -> None:
    _corrupt_biggest_layer(example_copy)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = cli("save", "--from", f"oci:{example_copy}", EXAMPLE_TAG, "-o", str(out_dir / "x.tar"))
    assert_error(proc, "digest mismatch")
    assert leftovers(out_dir) == []


def test_failed_save_keeps_the_previous_file(
    cli: CLI, example_copy: Path, tmp_path: Path
) -> None:
    _corrupt_biggest_layer(example_copy)
    out = tmp_path / "x.tar"
    out.write_bytes(b"previous")
    assert_error(cli("save", "--from", f"oci:{example_copy}", EXAMPLE_TAG, "-o", str(out)))
    assert out.read_bytes() == b"previous"
    assert leftovers(tmp_path) == ["hello", "x.tar"]


def test_failed_save_to_stdout_stops_before_the_end_blocks(
    cli: CLI, example_copy: Path
) -> None:
    _corrupt_biggest_layer(example_copy)
    proc = cli("save", "--from", f"oci:{example_copy}", EXAMPLE_TAG)
    assert_error(proc, "digest mismatch")
    # What came out is a strict prefix of the whole archive: the stream simply stopped.
    whole = cli.ok("save", "--no-verify", "--from", f"oci:{example_copy}", EXAMPLE_TAG).stdout
    assert whole.startswith(proc.stdout)
    assert len(proc.stdout) < len(whole)


def test_no_verify_copies_without_checking(cli: CLI, example_copy: Path, tmp_path: Path) -> None:
    _corrupt_biggest_layer(example_copy)
    out = tmp_path / "x.tar"
    cli.ok("save", "--no-verify", "--from", f"oci:{example_copy}", EXAMPLE_TAG, "-o", str(out))
    assert tarfile.is_tarfile(out)


def test_debug_shows_the_traceback(cli: CLI, example_copy: Path, tmp_path: Path) -> None:
    _corrupt_biggest_layer(example_copy)
    args = ("save", "--from", f"oci:{example_copy}", EXAMPLE_TAG, "-o", str(tmp_path / "x.tar"))
    plain = cli(*args)
    assert b"Traceback" not in plain.stderr
    for debug_args in (("--debug", *args), (*args[:1], "--debug", *args[1:])):
        proc = cli(*debug_args)
        assert proc.returncode == 1
        stderr = proc.stderr.decode()
        assert "Traceback (most recent call last)" in stderr
        assert stderr.endswith(plain.stderr.decode())


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        pytest.param("missing-dir/x.tar", "No such file or directory", id="missing-dir"),
        pytest.param(".", "Is a directory", id="directory"),
    ],
)
def test_unwritable_output_is_an_error(
    cli: CLI, tmp_path: Path, target: str, fragment: str
) -> None:
    proc = cli("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(tmp_path / target))
    assert_error(proc, "cannot write", fragment)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        pytest.param("oci:{tmp}/nothing", "not an OCI image layout", id="missing-layout"),
        pytest.param("docker-archive:{tmp}/nothing.tar", "nothing.tar", id="missing-archive"),
        pytest.param("docker-archive:{example}/oci-layout", "oci-layout", id="not-an-archive"),
    ],
)
def test_bad_source_is_an_error(cli: CLI, tmp_path: Path, source: str, fragment: str) -> None:
    spec = source.format(tmp=tmp_path, example=EXAMPLE)
    proc = cli("save", "--from", spec, EXAMPLE_TAG, "-o", str(tmp_path / "x.tar"))
    assert_error(proc, fragment)
    assert not (tmp_path / "x.tar").exists()


# -- terminals --------------------------------------------------------------------------------


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    """Everything the child writes to the pty, until it exits and the pty is drained."""
    chunks = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError as exc:  # EIO: every slave end is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.parametrize("output", [(), ("-o", "-")], ids=["no-o", "dash"])
def test_save_refuses_to_write_to_a_terminal(cli: CLI, output: Tuple[str, ...]) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            command("save", "--from", f"oci:{EXAMPLE}", *output, EXAMPLE_TAG),
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=cli.env,
        )
        os.close(slave)
        slave = -1
        _, stderr = proc.communicate(timeout=TIMEOUT)
        written = _read_all(master, proc)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 1
    assert stderr.decode() == f"tarexport: {REFUSE_TERMINAL}\n"
    assert written == b""


def test_load_refuses_to_read_a_terminal(cli: CLI) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            command("load"),
            stdin=slave,
            capture_output=True,
            env=cli.env,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(master)
        os.close(slave)
    assert_error(proc, REFUSE_STDIN)
    assert not cli.store.exists()


def _save_with_stderr_on_a_pty(
    cli: CLI, out: Path, *extra: str, columns: int = 200
) -> Tuple[int, str]:
    master, slave = pty.openpty()
    try:
        if columns:
            _set_size(slave, 40, columns)
        proc = subprocess.Popen(
            command("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out), *extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=cli.env,
        )
        os.close(slave)
        slave = -1
        text = _read_all(master, proc).decode()
        status = proc.wait(timeout=TIMEOUT)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return status, text


_SIZE = r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB)"
_FACTOR = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _bytes_of(number: str, unit: str) -> float:
    return float(number) * _FACTOR[unit]


def test_progress_on_a_terminal_shows_bytes_of_total(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "hello.tar"
    status, text = _save_with_stderr_on_a_pty(cli, out)
    assert status == 0, text
    size = out.stat().st_size
    # Redrawn in place: carriage return, the status, erase to the end of the line.
    assert "\r" in text and "\x1b[K" in text
    frames = [f.replace("\x1b[K", "").strip() for f in re.split(r"[\r\n]+", text) if f.strip()]
    assert frames[0].startswith("saving ")
    last = re.fullmatch(rf"saved {_SIZE} / {_SIZE} 100% in .*", frames[-1])
    assert last is not None, frames
    done, total = _bytes_of(*last.group(1, 2)), _bytes_of(*last.group(3, 4))
    assert done == total
    # One decimal of the unit: the size shown is the archive's size, rounded.
    assert abs(total - size) <= 0.05 * _FACTOR[last.group(4)]
    first = re.match(rf"saving {_SIZE} / {_SIZE}", frames[0])
    assert first is not None and _bytes_of(*first.group(3, 4)) == total
    assert text.endswith("\n")


def test_progress_fits_a_pty_that_never_said_its_size(cli: CLI, tmp_path: Path) -> None:
    status, text = _save_with_stderr_on_a_pty(cli, tmp_path / "x.tar", columns=0)
    assert status == 0, text
    assert re.search(rf"saved {_SIZE} / {_SIZE} 100%", text), text


@pytest.mark.parametrize("flags", [("--quiet",), ("-q",), ("--progress=none",)])
def test_quiet_draws_nothing(cli: CLI, tmp_path: Path, flags: Tuple[str, ...]) -> None:
    status, text = _save_with_stderr_on_a_pty(cli, tmp_path / "x.tar", *flags)
    assert status == 0
    assert text == ""


def test_quiet_wins_over_a_progress_mode(cli: CLI, tmp_path: Path) -> None:
    proc = cli.ok(
        "save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(tmp_path / "x.tar"),
        "--progress=json", "--quiet",
    )
    assert proc.stderr == b""


def test_no_progress_when_stderr_is_not_a_terminal(cli: CLI, tmp_path: Path) -> None:
    proc = cli.ok("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(tmp_path / "x.tar"))
    assert proc.stderr == b""


def test_tty_progress_can_be_forced(cli: CLI, tmp_path: Path) -> None:
    proc = cli.ok(
        "save", "--progress=tty", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG,
        "-o", str(tmp_path / "x.tar"),
    )
    text = proc.stderr.decode()
    assert text.startswith("\rsaving ") and text.endswith("\x1b[K\n")


def test_json_progress_is_one_event_per_line(cli: CLI, tmp_path: Path) -> None:
    out = tmp_path / "hello.tar"
    proc = cli.ok(
        "save", "--progress=json", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out)
    )
    events = [json.loads(line) for line in proc.stderr.decode().splitlines()]
    size = out.stat().st_size
    assert events[0] == {"phase": "start", "done": 0, "total": size, "entry": "", "layer": None}
    assert events[-1]["phase"] == "done"
    assert events[-1]["done"] == size
    assert all(set(e) == {"phase", "done", "total", "entry", "layer"} for e in events)
    assert all(e["total"] == size for e in events)
    dones = [e["done"] for e in events]
    assert dones == sorted(dones)
    with tarfile.open(out) as archive:
        members = archive.getnames()
    # (tarfile drops the "/" that ends a directory's name)
    assert [e["entry"].rstrip("/") for e in events if e["phase"] == "entry"] == members
    diff_ids = set(example_config()["rootfs"]["diff_ids"])
    layers = {e["layer"] for e in events if e["phase"] == "bytes"}
    assert layers == diff_ids


def test_plain_progress_is_whole_lines(cli: CLI, tmp_path: Path) -> None:
    proc = cli.ok(
        "save", "--progress=plain", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG,
        "-o", str(tmp_path / "x.tar"),
    )
    text = proc.stderr.decode()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("saving ")
    assert lines[-1].startswith("saved ")
    # A line as each of the two layers begins.
    assert len([line for line in lines if " layer " in line]) == 2


# -- signals and pipes ------------------------------------------------------------------------


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert proc.poll() is None, "the command ended before the test could signal it"
        assert time.monotonic() < deadline, "timed out waiting for the command"
        time.sleep(0.01)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_SETPIPE_SZ is Linux's")
@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupted_save_exits_quietly_and_leaves_nothing(
    cli: CLI, big_layout: Path, tmp_path: Path, signum: int, status: int
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # The JSON progress goes into a one-page pipe that nobody reads until the signal: the
    # events of a forty-layer save overflow it, so the save is caught mid-way for certain.
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    try:
        proc = subprocess.Popen(
            command(
                "save", "--progress=json", "--from", f"oci:{big_layout}", "big:1",
                "-o", str(out_dir / "big.tar"),
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=write_end,
            env=cli.env,
        )
        os.close(write_end)
        write_end = -1
        _wait_for(lambda: any(out_dir.iterdir()), proc)  # the temporary file: saving now
        proc.send_signal(signum)
        with os.fdopen(read_end, "rb") as progress:
            read_end = -1
            events = progress.read().decode()
        assert proc.wait(timeout=TIMEOUT) == status
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert leftovers(out_dir) == []
    assert "Traceback" not in events and "KeyboardInterrupt" not in events
    assert '"phase": "done"' not in events


def test_closed_pipe_ends_the_save_quietly(cli: CLI, big_layout: Path) -> None:
    proc = subprocess.Popen(
        command("save", "--from", f"oci:{big_layout}", "big:1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(10240)
    proc.stdout.close()  # like `| head -c 10240`
    stderr = proc.stderr.read()
    proc.stderr.close()
    status = proc.wait(timeout=TIMEOUT)
    assert len(head) == 10240
    # Killed by SIGPIPE, as cat or tar would be (a shell shows status 141), and silent.
    assert status == -signal.SIGPIPE
    assert stderr == b""


def test_closed_pipe_on_text_output_is_quiet(cli: CLI) -> None:
    refs = [f"app{i}:tag{i}" for i in range(3000)]  # more lines than a pipe holds
    proc = subprocess.Popen(
        command("ref", *refs),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=TIMEOUT) == -signal.SIGPIPE
    assert first == b"docker.io/library/app0:tag0\n"
    assert stderr == b""


# -- load, images, and the default store ------------------------------------------------------


@pytest.fixture(scope="session")
def hello_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hello") / "hello.tar"
    env = base_env(tmp_path_factory.mktemp("unused-store"))
    proc = run("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    return out


def test_default_store_round_trip(cli: CLI, hello_tar: Path, tmp_path: Path) -> None:
    proc = cli.ok("load", "-i", str(hello_tar))
    assert proc.stdout.decode() == f"Loaded image: {EXAMPLE_TAG}\n"
    assert (cli.store / "oci-layout").is_file()
    out = tmp_path / "again.tar"
    cli.ok("save", EXAMPLE_TAG, "-o", str(out))
    assert out.read_bytes() == hello_tar.read_bytes()


def test_load_from_stdin(cli: CLI, hello_tar: Path) -> None:
    for args in ((), ("-i", "-")):
        proc = cli.ok("load", *args, input=hello_tar.read_bytes())
        assert proc.stdout.decode() == f"Loaded image: {EXAMPLE_TAG}\n"


def test_load_a_compressed_archive(cli: CLI, hello_tar: Path) -> None:
    import gzip

    proc = cli.ok("load", input=gzip.compress(hello_tar.read_bytes()))
    assert proc.stdout.decode() == f"Loaded image: {EXAMPLE_TAG}\n"


def test_load_into_a_layout_then_list_and_save(cli: CLI, hello_tar: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    cli.ok("load", "--into", f"oci:{layout}", "-i", str(hello_tar))
    assert not cli.store.exists()  # the default store was not used
    listed = cli.ok("images", "--from", f"oci:{layout}").stdout.decode().splitlines()
    assert listed[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = listed[1].split()
    assert row[:3] == ["hello", "latest", example_image_id().split(":")[1][:12]]
    out = tmp_path / "again.tar"
    cli.ok("save", "--from", f"oci:{layout}", EXAMPLE_TAG, "-o", str(out))
    assert out.read_bytes() == hello_tar.read_bytes()


def test_load_json_progress(cli: CLI, hello_tar: Path) -> None:
    proc = cli.ok("load", "--progress=json", "-i", str(hello_tar))
    events = [json.loads(line) for line in proc.stderr.decode().splitlines()]
    assert events[0]["phase"] == "start" and events[-1]["phase"] == "done"
    assert proc.stdout.decode() == f"Loaded image: {EXAMPLE_TAG}\n"


def test_load_errors(cli: CLI, tmp_path: Path, hello_tar: Path) -> None:
    assert_error(cli("load", "-i", str(tmp_path / "missing.tar")), "cannot read", "missing.tar")
    assert_error(cli("load", input=b"this is not a tar archive" * 100))
    proc = cli("load", "--into", f"docker-archive:{tmp_path / 'x.tar'}", "-i", str(hello_tar))
    assert_error(proc, "cannot load into docker-archive:")
    assert not (tmp_path / "x.tar").exists()
    proc = cli("load", "--into", f"docker-root:{tmp_path / 'root'}", "-i", str(hello_tar))
    assert_error(proc, "cannot load into docker-root:", "read-only")
    assert not (tmp_path / "root").exists()


def test_save_from_a_docker_root_that_is_not_one(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    proc = cli("save", "--from", f"docker-root:{tmp_path / 'root'}", "a:1", "-o",
               str(tmp_path / "out.tar"))
    assert_error(proc, str(tmp_path / "root"))
    assert not (tmp_path / "out.tar").exists()


def test_images_of_a_missing_default_store_is_empty(cli: CLI) -> None:
    proc = cli.ok("images")
    assert proc.stdout.decode().split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert not cli.store.exists()  # listing does not create the store


def test_images_lists_every_tag(cli: CLI, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    store = OCILayoutStore(layout, create=True, fsync=False)
    layers = [layer_tar({"a": b"a" * 3000})]
    store.add_image(config_for(layers, "x"), layers, references=["x:1", "registry.example/ns/x:2"])
    untagged = [layer_tar({"b": b"b"})]
    store.add_image(config_for(untagged, "y"), untagged)
    rows = [line.split() for line in cli.ok("images", "--from", f"oci:{layout}").stdout.decode()
            .splitlines()[1:]]
    by_tag = {(row[0], row[1]) for row in rows}
    assert by_tag == {("x", "1"), ("registry.example/ns/x", "2"), ("<none>", "<none>")}
    assert {tuple(row[4:6]) for row in rows} == {("years", "ago")}  # created in 2023
    created = cli.ok("images", "--from", f"oci:{layout}", "--format", "{{.CreatedAt}}")
    assert set(created.stdout.decode().splitlines()) == {"2023-11-14 22:13:20 +0000 UTC"}


def test_default_store_follows_xdg_data_home(hello_tar: Path, tmp_path: Path) -> None:
    env = base_env(None)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    proc = run("load", "-i", str(hello_tar), env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "xdg" / "tarexport" / "oci-layout").is_file()
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("xdg", [None, "relative/dir"], ids=["unset", "relative-ignored"])
def test_default_store_falls_back_to_home(
    hello_tar: Path, tmp_path: Path, xdg: Optional[str]
) -> None:
    env = base_env(None)
    env["HOME"] = str(tmp_path / "home")
    if xdg is not None:
        env["XDG_DATA_HOME"] = xdg
    proc = run("load", "-i", str(hello_tar), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "home" / ".local" / "share" / "tarexport" / "oci-layout").is_file()
    assert not (tmp_path / "relative").exists()


# -- ref --------------------------------------------------------------------------------------


def _reference_rows() -> List[Dict[str, Any]]:
    with open(REFERENCES_JSONL, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_ref_agrees_with_docker_20_10(cli: CLI) -> None:
    """Every labelled string at once: valid ones on stdout, errors on stderr, in order."""
    rows = _reference_rows()
    # `--`: some inputs start with a dash.
    proc = cli("ref", "--legacy", "--json", "--", *(row["input"] for row in rows))
    valid = [row for row in rows if row["valid"]]
    invalid = [row for row in rows if not row["valid"]]
    assert proc.returncode == (1 if invalid else 0)
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(records) == len(valid)
    for row, record in zip(valid, records):
        assert record["input"] == row["input"]
        assert record["reference"] == row["normalized_full"], row["input"]
        assert record["familiar"] == row["familiar"], row["input"]
        name, _, _ = row["normalized_full"].partition("@")
        if record["tag"] is not None:
            assert row["normalized_full"].split("@")[0].endswith(":" + record["tag"])
        assert name.startswith(record["name"])
        assert record["name"] == (
            f"{record['domain']}/{record['path']}" if record["domain"] else record["path"]
        )
    errors = proc.stderr.decode().splitlines()
    assert errors == [f"tarexport: {row['error']}" for row in invalid]


def test_ref_prints_the_full_normalised_form(cli: CLI) -> None:
    proc = cli.ok("ref", "busybox", "localhost:5000/a/b:c", "quay.io/x/y@sha256:" + "ab" * 32)
    assert proc.stdout.decode().splitlines() == [
        "docker.io/library/busybox:latest",
        "localhost:5000/a/b:c",
        "quay.io/x/y@sha256:" + "ab" * 32,
    ]


def test_ref_json_fields(cli: CLI) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    proc = cli.ok("ref", "--json", f"myorg/app:1.2@{digest}")
    assert json.loads(proc.stdout) == {
        "input": f"myorg/app:1.2@{digest}",
        "reference": f"docker.io/myorg/app:1.2@{digest}",
        "name": "docker.io/myorg/app",
        "domain": "docker.io",
        "path": "myorg/app",
        "tag": "1.2",
        "digest": digest,
        "familiar": f"myorg/app:1.2@{digest}",
    }


# -- a fresh install --------------------------------------------------------------------------


def _can_build_offline() -> Optional[str]:
    """Why ``pip install --no-build-isolation`` cannot build here, or ``None`` if it can."""
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed"
    version = tuple(int(p) for p in re.findall(r"\d+", setuptools.__version__)[:2])
    if version >= (70, 1):
        return None  # bdist_wheel is part of setuptools from 70.1 on
    try:
        import wheel  # noqa: F401
    except ImportError:
        return f"setuptools {setuptools.__version__} needs the wheel package to build a wheel"
    return None


def _site_packages_of_this_environment() -> List[str]:
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def test_fresh_install_gives_a_working_command(tmp_path: Path) -> None:
    missing = _can_build_offline()
    if missing is not None:
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(f"cannot build offline under CI: {missing}")
        pytest.skip(f"cannot build offline: {missing}")
    # A copy of what `pip install .` reads, so the build leaves nothing in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "tarexport", source / "tarexport",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True, timeout=TIMEOUT,
    )
    python = venv / "bin" / "python"
    # From a virtual environment, --system-site-packages reaches the base interpreter's
    # packages only; make this environment's (pip, setuptools, attrs...) visible as well.
    if sys.prefix != sys.base_prefix:
        site_dir = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=TIMEOUT,
        ).stdout.strip()
        Path(site_dir, "_outer_environment.pth").write_text(
            "\n".join(_site_packages_of_this_environment()) + "\n"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TAREXPORT_STORE")}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # tools a developer put there
    if str(REPO) in env["PYTHONPATH"].split(os.pathsep):
        env["PYTHONPATH"] = ""
    env["TAREXPORT_STORE"] = str(tmp_path / "store")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--quiet", str(source)],
        capture_output=True, env=env, cwd=tmp_path, timeout=600, check=False,
    )
    assert install.returncode == 0, install.stderr.decode()[-3000:]

    where = subprocess.run(
        [str(python), "-c", "import tarexport, sys; print(tarexport.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=TIMEOUT, check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where
    assert (Path(where).parent / "py.typed").is_file()

    script = venv / "bin" / "tarexport"
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=TIMEOUT, check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("tarexport ")
    out = tmp_path / "hello.tar"
    saved = subprocess.run(
        [str(script), "save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(out)],
        capture_output=True, env=env, cwd=tmp_path, timeout=TIMEOUT, check=False,
    )
    assert saved.returncode == 0, saved.stderr
    reference = tmp_path / "reference.tar"
    run("save", "--from", f"oci:{EXAMPLE}", EXAMPLE_TAG, "-o", str(reference),
        env=base_env(tmp_path / "store"))
    assert out.read_bytes() == reference.read_bytes()


# -- the pieces, in process -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TAREXPORT_STORE": "/s", "XDG_DATA_HOME": "/x", "HOME": "/h"}, "/s"),
        ({"TAREXPORT_STORE": "", "XDG_DATA_HOME": "/x", "HOME": "/h"}, "/x/tarexport"),
        ({"XDG_DATA_HOME": "rel", "HOME": "/h"}, "/h/.local/share/tarexport"),
        ({"HOME": "/h"}, "/h/.local/share/tarexport"),
    ],
    ids=["explicit", "xdg", "relative-xdg", "home"],
)
def test_default_store_path(
    monkeypatch: pytest.MonkeyPatch, environ: Dict[str, str], expected: str
) -> None:
    from tarexport.cli import default_store_path

    monkeypatch.setenv("HOME", environ["HOME"])  # Path.home() reads it
    assert str(default_store_path(environ)) == expected


@pytest.mark.parametrize(
    ("text", "kind", "path"),
    [
        ("oci:layout", "oci", "layout"),
        ("oci:/a:b/c", "oci", "/a:b/c"),
        ("docker-archive:x.tar", "docker-archive", "x.tar"),
    ],
)
def test_store_spec_parses(text: str, kind: str, path: str) -> None:
    from tarexport.cli import StoreSpec

    spec = StoreSpec.parse(text)
    assert (spec.kind, spec.path) == (kind, path)
    assert str(spec) == text


def test_main_returns_usage_status_instead_of_exiting(capsys: pytest.CaptureFixture[str]) -> None:
    from tarexport.cli import main

    assert main(["--version"]) == 0
    assert main(["frobnicate"]) == 2
    assert main(["ref", "busybox"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "docker.io/library/busybox:latest"


def test_images_of_an_empty_default_store_directory(cli: CLI) -> None:
    cli.store.mkdir()
    proc = cli.ok("images")
    assert len(proc.stdout.decode().splitlines()) == 1


def test_docs_cover_every_option_and_exit_status() -> None:
    """docs/cli.md names every option the parser has, and every exit status the code uses."""
    import argparse

    from tarexport import cli as cli_module

    text = (REPO / "docs" / "cli.md").read_text()
    parser = cli_module.build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    for name, sub in subparsers.choices.items():
        assert f"tarexport {name}" in text
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                assert f"`{option}" in text, (name, option)
    for status in (cli_module.EXIT_ERROR, cli_module.EXIT_USAGE, cli_module.EXIT_INTERRUPTED,
                   cli_module.EXIT_TERMINATED):
        assert f"| {status} |" in text
    for mode in cli_module.PROGRESS_MODES:
        assert f"`{mode}`" in text
