"""Running one measured operation in a child process: wall time, peak RSS, temporary files.

Children are started by :mod:`benchmarks.spawner`, a lean process that forks them and reads
their ``ru_maxrss`` with ``os.wait4`` (see there why the driver does not fork them itself).
Every benchmark worker also reports its own ``VmHWM``; the driver checks that the two agree.

Temporary files are measured by pointing ``TMPDIR`` at an empty directory for the run and
sampling its size while the child runs (the peak) and after it ends (what is left). A
directory written by someone else, such as a Docker daemon's own temporary directory, can be
watched the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["ChildRun", "DirWatch", "Spawner", "dir_usage", "worker_argv", "worker_path"]

# A safety net against a wedged child, not a performance limit.
DEFAULT_TIMEOUT = 900.0

Fd3 = Union[None, str, dict[str, str]]


def worker_argv() -> list[str]:
    """The command line of a benchmark worker: this interpreter, ``-S -m benchmarks.worker``.

    ``-S`` keeps the machine's ``.pth`` start-up hooks (which can import whole packages) out
    of every figure; :func:`worker_path` puts the package directories back on the path.
    """
    return [sys.executable, "-S", "-m", "benchmarks.worker"]


def worker_path(root: Path) -> str:
    """``PYTHONPATH`` for a worker: the source tree, then this interpreter's package dirs."""
    import site

    dirs = [str(root)]
    dirs += [d for d in sys.path if os.path.isabs(d) and os.path.isdir(d) and d not in dirs]
    dirs += [d for d in site.getsitepackages() if d not in dirs]
    return os.pathsep.join(dirs)


def dir_usage(path: Path) -> tuple[int, int]:
    """``(bytes, files)`` under ``path``: apparent sizes of the regular files, recursively."""
    total = files = 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                            files += 1
                    except OSError:
                        continue  # removed while we looked: it no longer counts
        except OSError:
            continue
    return total, files


class DirWatch:
    """Samples the size of some directories in a thread; keeps the peak of their sum.

    The interval backs off when a scan is slow, so that watching a directory of many files
    does not steal the measured child's CPU.
    """

    def __init__(self, dirs: Sequence[Path], interval: float = 0.01) -> None:
        self.dirs = list(dirs)
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        self.peak_files = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> DirWatch:
        if self.dirs:
            self._sample()
            self.start_bytes = self.peak_bytes
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dirs:
            self._stop.set()
            self._thread.join()
            self._sample()

    def _sample(self) -> float:
        started = time.perf_counter()
        total = files = 0
        for path in self.dirs:
            size, count = dir_usage(path)
            total += size
            files += count
        self.peak_bytes = max(self.peak_bytes, total)
        self.peak_files = max(self.peak_files, files)
        return time.perf_counter() - started

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            spent = self._sample()
            self.interval = max(self.interval, 10 * spent)


@dataclass(frozen=True)
class ChildRun:
    """What one child did: exit status, wall time, peak RSS and the temporary bytes seen."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    maxrss_bytes: int
    cpu_s: float  # user + system time of the child (its own helpers not included)
    spawner_anon_bytes: int  # the child's ru_maxrss cannot go below this
    temp_peak_bytes: int
    temp_left_bytes: int
    stderr: str = ""

    def check(self) -> ChildRun:
        """``self``, or a ``RuntimeError`` naming the command and the end of its stderr."""
        if self.returncode != 0:
            tail = self.stderr.strip()[-3000:]
            raise RuntimeError(
                f"{' '.join(self.argv)[:300]} exited with status {self.returncode}\n{tail}"
            )
        return self


class Spawner:
    """The driver's end of :mod:`benchmarks.spawner`; use as a context manager."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.cat = shutil.which("cat") or "/bin/cat"
        self._proc: Optional[subprocess.Popen[str]] = None

    def __enter__(self) -> Spawner:
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-m", "benchmarks.spawner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            cwd=str(Path(__file__).resolve().parent.parent),
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the spawner is not running")
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the spawner died")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"spawner: {reply['error']}")
        return reply

    def run(
        self,
        argv: Sequence[str],
        *,
        tmpdir: Path,
        watch: Sequence[Path] = (),
        env: Optional[Mapping[str, str]] = None,
        stdout: str = "devnull",
        fd3: Fd3 = None,
        cwd: Optional[Path] = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ChildRun:
        """Run ``argv`` to completion with ``TMPDIR`` pointed at ``tmpdir`` (created empty).

        ``stdout`` is ``"devnull"`` or ``"drain"`` (a pipe emptied by ``cat``); ``fd3`` gives
        the child a pipe end as descriptor 3: ``"drain"``, or ``{"feed": path}`` to read the
        file through a pipe. ``watch`` names more directories whose growth counts as
        temporary bytes of this run. ``tmpdir`` is removed afterwards; the end of the child's
        stderr (spooled to a file beside it) is kept for error messages.
        """
        tmpdir.mkdir(parents=True, exist_ok=False)
        child_env = dict(self.env if env is None else env)
        child_env["TMPDIR"] = str(tmpdir)
        stderr_path = tmpdir.with_name(tmpdir.name + ".stderr")
        program = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0])
        if program is None:
            raise RuntimeError(f"{argv[0]} is not on PATH")
        request = {
            "argv": [program, *argv[1:]],
            "env": child_env,
            "cwd": str(cwd) if cwd is not None else None,
            "stderr": str(stderr_path),
            "stdout": stdout,
            "fd3": fd3,
            "cat": self.cat,
            "timeout": timeout,
        }
        with DirWatch([tmpdir, *watch]) as watcher:
            reply = self._ask(request)
        stderr = _tail(stderr_path)
        stderr_path.unlink()
        left = sum(dir_usage(path)[0] for path in [tmpdir, *watch]) - watcher.start_bytes
        shutil.rmtree(tmpdir, ignore_errors=True)
        return ChildRun(
            argv=tuple(argv),
            returncode=int(reply["returncode"]),
            wall_s=float(reply["wall_s"]),
            maxrss_bytes=int(reply["maxrss_bytes"]),
            cpu_s=float(reply["cpu_s"]),
            spawner_anon_bytes=int(reply["spawner_anon_bytes"]),
            temp_peak_bytes=max(0, watcher.peak_bytes - watcher.start_bytes),
            temp_left_bytes=max(0, left),
            stderr=stderr,
        )


def _tail(path: Path, size: int = 8192) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
