"""What a save costs: bounded memory and no staging on disk, for a 1 GiB image.

Each save runs in a child process that reports its own peak RSS (``VmHWM``; ``ru_maxrss`` where
there is no ``/proc``) after building the store and again after saving. A baseline child does
everything but the save. The child also records, through an audit hook, every file it opens for
writing (and every directory, link or process it makes) while saving; its ``TMPDIR`` and working
directory start empty and must stay so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import attrs
import pytest

import tarexport
from tarexport.tarstream import END_OF_ARCHIVE, REGTYPE, TarHeader, padding

LAYER_COUNT = 4
LAYER_BODY = 256 << 20  # one random file per layer: 1 GiB of layer data in all
CHUNK = 4 << 20
RSS_GROWTH_LIMIT = 32 << 20
TAG = "big:1"


@attrs.frozen
class BigImage:
    """A 1 GiB file-backed image: its config file and its layer tars, bottom to top."""

    config: Path
    layers: tuple[Path, ...]
    layer_sizes: tuple[int, ...]


def _write_layer(path: Path, index: int) -> str:
    """A layer tar holding one file of random bytes; returns its diff ID."""
    digest = hashlib.sha256()
    header = TarHeader(f"random-{index}.bin", REGTYPE, size=LAYER_BODY, mtime=1_700_000_000)
    with open(path, "wb") as out:

        def put(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        put(header.encode())
        for _ in range(LAYER_BODY // CHUNK):
            put(os.urandom(CHUNK))
        put(padding(LAYER_BODY) + END_OF_ARCHIVE)
    return "sha256:" + digest.hexdigest()


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigImage]:
    root = tmp_path_factory.mktemp("big-image")
    try:
        paths = [root / f"layer-{i}.tar" for i in range(LAYER_COUNT)]
        # os.urandom, hashing and writing all release the GIL: the layers are made in parallel.
        with ThreadPoolExecutor(LAYER_COUNT) as pool:
            diff_ids = list(pool.map(_write_layer, paths, range(LAYER_COUNT)))
        config = {
            "architecture": "amd64",
            "config": {},
            "created": "2026-01-02T03:04:05.123456789Z",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_path = root / "config.json"
        config_path.write_bytes(json.dumps(config).encode())
        yield BigImage(config_path, tuple(paths), tuple(p.stat().st_size for p in paths))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# The child: build the store, note the peak RSS, save (unless "baseline"), note it again.
CHILD = r"""
import json, os, resource, sys

spec = json.loads(sys.argv[1])
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
written = []
watching = False
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
WATCHED = {"os.mkdir", "os.rename", "os.link", "os.symlink", "os.truncate", "shutil.copyfile",
           "subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec", "tempfile.mkstemp",
           "tempfile.mkdtemp"}

def audit(event, args):
    if not watching:
        return
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS:
            written.append(["open", str(path)])
    elif event in WATCHED:
        written.append([event, repr(args)[:200]])

sys.addaudithook(audit)

from tarexport import MemoryStore, Saver, profiles

def peak():
    # VmHWM is this process's own high-water mark since exec. ru_maxrss is not: Linux carries
    # the parent's peak over through fork and exec, which would hide a growth below it.
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT

with open(spec["config"], "rb") as f:
    config = f.read()
store = MemoryStore()
store.add_image(config, spec["layers"], [spec["tag"]])
saver = Saver(store, store, store, profile=profiles.DOCKER_20_10, verify=spec["verify"])
report = {"before": peak(), "total_size": None,
          "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT}
if spec["mode"] != "baseline":
    watching = True
    if spec["mode"] == "file":
        with open(spec["output"], "wb") as out:
            plan = saver.save([spec["tag"]], out)
    else:
        plan = saver.save([spec["tag"]], sys.stdout.buffer)
        sys.stdout.buffer.flush()
    watching = False
    report["total_size"] = plan.total_size
report["after"] = peak()
report["written"] = written
with open(spec["report"], "w") as f:
    json.dump(report, f)
"""


@attrs.frozen
class ChildRun:
    before: int  # peak RSS in bytes once the store is built
    after: int  # peak RSS in bytes at the end
    total_size: Optional[int]
    written: List[List[str]]
    streamed: Optional[int]  # bytes read from the child's stdout (pipe mode)
    members: Dict[str, int]  # archive member name -> size


class _CountingReader:
    """A read-only stream that counts what passes through it."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.count += len(data)
        return data


def run_child(big: BigImage, mode: str, verify: bool, work: Path) -> ChildRun:
    """Run one child with an empty TMPDIR and working directory, and check they stay empty."""
    tmpdir, cwd, control = work / "tmp", work / "cwd", work / "control"
    for d in (tmpdir, cwd, control):
        d.mkdir()
    output = cwd / "archive.tar"
    spec = {
        "config": str(big.config),
        "layers": [str(p) for p in big.layers],
        "tag": TAG,
        "mode": mode,
        "verify": verify,
        "output": str(output),
        "report": str(control / "report.json"),
    }
    package_root = str(Path(tarexport.__file__).resolve().parent.parent)
    env = {**os.environ, "TMPDIR": str(tmpdir), "TEMP": str(tmpdir), "TMP": str(tmpdir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with open(control / "stderr", "wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if mode == "pipe" else subprocess.DEVNULL,
            stderr=stderr,
            cwd=cwd,
            env=env,
        )
        streamed = None
        members: Dict[str, int] = {}
        try:
            if mode == "pipe":
                assert child.stdout is not None
                reader = _CountingReader(child.stdout)
                with tarfile.open(fileobj=reader, mode="r|", bufsize=1 << 20) as tar:
                    members = {m.name: m.size for m in tar}
                while reader.read(1 << 20):
                    pass
                streamed = reader.count
            returncode = child.wait(timeout=600)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert returncode == 0, (control / "stderr").read_text()
    report = json.loads((control / "report.json").read_text())

    assert os.listdir(tmpdir) == [], "the save left files in TMPDIR"
    if mode == "file":
        assert os.listdir(cwd) == [output.name]
        with tarfile.open(output) as tar:
            members = {m.name: m.size for m in tar}
        assert output.stat().st_size == report["total_size"]
        output.unlink()
    else:
        assert os.listdir(cwd) == []
    return ChildRun(
        before=report["before"],
        after=report["after"],
        total_size=report["total_size"],
        written=report["written"],
        streamed=streamed,
        members=members,
    )


@pytest.fixture(scope="module")
def baseline(big_image: BigImage, tmp_path_factory: pytest.TempPathFactory) -> ChildRun:
    return run_child(big_image, "baseline", True, tmp_path_factory.mktemp("baseline"))


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


@pytest.mark.parametrize("mode", ["file", "pipe"])
@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
def test_saving_1_gib_stays_small_and_stages_nothing(
    big_image: BigImage, baseline: ChildRun, mode: str, verify: bool, tmp_path: Path
) -> None:
    run = run_child(big_image, mode, verify, tmp_path)

    growth = run.after - run.before
    over_baseline = run.after - baseline.after
    print(
        f"\n{mode}, verify={verify}: peak RSS {_mib(run.after)} "
        f"(before saving {_mib(run.before)}, growth {_mib(growth)}; "
        f"baseline child {_mib(baseline.after)}, over baseline {_mib(over_baseline)})"
    )
    assert growth < RSS_GROWTH_LIMIT
    assert over_baseline < RSS_GROWTH_LIMIT

    # Only the output itself was opened for writing, and nothing else was created or run.
    allowed = [["open", str(tmp_path / "cwd" / "archive.tar")]] if mode == "file" else []
    assert run.written == allowed

    # The whole archive arrived: every layer at its full size, and nothing else is missing.
    assert run.total_size is not None and run.total_size > LAYER_COUNT * LAYER_BODY
    if mode == "pipe":
        assert run.streamed == run.total_size
    layer_sizes = sorted(size for name, size in run.members.items() if name.endswith("/layer.tar"))
    assert layer_sizes == sorted(big_image.layer_sizes)
    assert {"manifest.json", "repositories"} <= set(run.members)
