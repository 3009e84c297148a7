"""A description of the machine a run was measured on."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["CpuMeter", "describe"]


class CpuMeter:
    """How busy the whole machine was between two points, from ``/proc/stat``."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.start = self._read()
        self.start_loadavg = self._loadavg()

    @staticmethod
    def _read() -> tuple[int, int]:
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return 0, 0
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
        return busy, busy + idle

    @staticmethod
    def _loadavg() -> str:
        try:
            with open("/proc/loadavg") as loadavg:
                return " ".join(loadavg.read().split()[:3])
        except OSError:
            return "unknown"

    def busy_cores(self) -> float:
        """Average cores busy (anyone's work) since this meter was made."""
        busy, total = self._read()
        d_busy, d_total = busy - self.start[0], total - self.start[1]
        if d_total <= 0:
            return 0.0
        return d_busy / d_total * (os.cpu_count() or 1)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def loadavg(self) -> str:
        return self._loadavg()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags(wanted: tuple[str, ...] = ("sha_ni", "avx2", "avx512f")) -> list[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _filesystem(path: Path) -> str:
    """The type and source of the mount holding ``path`` (longest mount-point prefix)."""
    target = os.path.realpath(path)
    best, found = "", "unknown"
    try:
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                point = fields[4]
                rest = fields[fields.index("-") + 1 :]
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, found = point, f"{rest[0]} on {rest[1]} (mounted at {point})"
    except (OSError, ValueError, IndexError):
        pass
    return found


def _tarexport_version() -> str:
    try:
        from importlib.metadata import version

        return version("tarexport")
    except Exception:  # not installed: read it from the source tree
        init = Path(__file__).resolve().parent.parent / "tarexport" / "__init__.py"
        for line in init.read_text().splitlines():
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


def describe(workdir: Path) -> dict[str, object]:
    """Cores, memory, kernel, Python, and the filesystem of the work directory."""
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count() or 0,
        "memory_bytes": _memory_bytes(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "filesystem": _filesystem(workdir),
        "tarexport": _tarexport_version(),
    }
