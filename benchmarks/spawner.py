"""A lean process that starts each measured command and reads its rusage with ``os.wait4``.

Why a separate process: Linux folds the memory of the process a child was forked from into
the child's ``ru_maxrss`` at ``exec``; ``subprocess`` (which uses ``vfork``) even folds in the
parent's whole peak. The driver is a full Python program, so it forks nothing itself that it
measures. This spawner imports almost nothing and forks (never vforks), so a measured child
starts from the spawner's few MiB of anonymous memory and reports its own peak above that.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.

Request: ``argv`` (``argv[0]`` an absolute path), ``env``, ``cwd``, ``stderr`` (a file path),
``stdout`` (``"devnull"`` or ``"drain"``: a pipe that ``cat`` empties into ``/dev/null``),
``fd3`` (absent, ``"drain"``, or ``{"feed": path}``: a pipe that ``cat path`` fills), ``cat``
(the absolute path of ``cat``) and ``timeout`` in seconds.

Reply: ``returncode``, ``wall_s``, ``maxrss_bytes`` (the child's ``ru_maxrss``), ``cpu_s``
(its user plus system time) and ``spawner_anon_bytes`` (this process's anonymous RSS when it
forked, for reference).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from typing import Any, Optional

_child = 0


def _anon_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _spawn(argv: list[str], env: Optional[dict[str, str]], cwd: Optional[str],
           fds: dict[int, int]) -> int:
    """Fork and exec ``argv`` with ``fds`` (target -> source) in place; return the pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            # Move every source out of the way first, so no dup2 clobbers a later source.
            high = {t: fcntl.fcntl(s, fcntl.F_DUPFD, 100) for t, s in fds.items()}
            for target, source in high.items():
                os.dup2(source, target)  # the new descriptor is inheritable
            os.closerange(max(fds) + 1, 4096)
            if cwd:
                os.chdir(cwd)
            if env is None:
                os.execv(argv[0], argv)
            os.execve(argv[0], argv, env)
        except BaseException as exc:
            os.write(2, f"spawner: cannot run {argv[0]}: {exc}\n".encode())
        finally:
            os._exit(127)
    return pid


def _kill_child(signum: int, frame: Any) -> None:
    if _child:
        os.kill(_child, signal.SIGKILL)


def run(request: dict[str, Any]) -> dict[str, Any]:
    global _child
    devnull = os.open(os.devnull, os.O_RDWR)
    stderr = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    cat = request.get("cat", "/bin/cat")
    helpers: list[int] = []
    to_close: list[int] = [devnull, stderr]
    fds = {0: devnull, 1: devnull, 2: stderr}

    def drain() -> int:
        r, w = os.pipe()
        helpers.append(_spawn([cat], None, None, {0: r, 1: devnull, 2: stderr}))
        os.close(r)
        to_close.append(w)
        return w

    if request.get("stdout") == "drain":
        fds[1] = drain()
    fd3 = request.get("fd3")
    if fd3 == "drain":
        fds[3] = drain()
    elif isinstance(fd3, dict):
        r, w = os.pipe()
        helpers.append(_spawn([cat, fd3["feed"]], None, None, {0: devnull, 1: w, 2: stderr}))
        os.close(w)
        to_close.append(r)
        fds[3] = r

    anon = _anon_rss()
    started = time.perf_counter()
    _child = _spawn(request["argv"], request.get("env"), request.get("cwd"), fds)
    signal.alarm(max(1, int(request.get("timeout", 900))))
    try:
        _, status, usage = os.wait4(_child, 0)
    finally:
        signal.alarm(0)
        _child = 0
    wall = time.perf_counter() - started
    for fd in to_close:
        os.close(fd)  # the helpers see end-of-file (or a closed pipe) and exit
    for pid in helpers:
        os.waitpid(pid, 0)
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "maxrss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "spawner_anon_bytes": anon,
    }


def main() -> int:
    signal.signal(signal.SIGALRM, _kill_child)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = run(json.loads(line))
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
