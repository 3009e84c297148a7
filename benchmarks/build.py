"""``python -m benchmarks.build``: build + save of a directory tree beside ``tar | sha256sum``.

Two trees are made once: a big one (``--big-files`` files, ``--big-size`` in all, random
bytes: 10 files of 1 GiB by default) and a small-file one (``--small-files`` files of 0 to
4 KiB in nested directories, 50,000 by default). Then, in rounds (the order reversed every
other round, the page cache warmed first), each operation runs in a child process of its own:

- the floor, ``tar -cf - DIR | sha256sum``: one read of the tree, the tar stream hashed;
- ``tar -cf - DIR | python -c hashlib.sha256``: the same with OpenSSL's sha256 (SHA-NI where
  the CPU has it), which tarexport uses, where coreutils' ``sha256sum`` may not;
- ``tarexport build --layer DIR -t bench:1 -o OUT``, the whole command (Python start-up,
  planning, the hashing pass, the archive written), with ``OUT`` ``/dev/null`` and a file
  on the tree's file system, and once with ``--verify`` (every layer hashed again while
  being written) to a file.

Each row gives the median wall time and its ratio to the floor of the same tree in the same
run, the median CPU time (user + system, the child and what it waited for; less disturbed by
other work on shared cores) and its ratio, and the child's peak RSS (``ru_maxrss`` from
``wait4``, the largest of the process and the children it waited for). The machine's load
before and after, and how many cores were busy on average (anyone's work), are printed with
the report, since the cores may be shared. The "floor" of the ratios is ``tar | sha256sum``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from .children import Spawner, worker_path
from .machine import CpuMeter, describe
from .save import parse_size

__all__ = ["main"]

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def make_big_tree(root: Path, files: int, total: int) -> None:
    root.mkdir(parents=True)
    each = total // files
    chunk = os.urandom(4 * MiB)
    for i in range(files):
        with open(root / f"blob-{i:02d}.bin", "wb") as f:
            left = each
            salt = i.to_bytes(8, "big")
            while left:
                piece = (salt + chunk)[: min(left, len(chunk) + 8)]
                f.write(piece)
                left -= len(piece)


def make_small_tree(root: Path, files: int, seed: int = 14) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    per_dir = 100
    for i in range(files):
        directory = root / f"d{i // (per_dir * 10):03d}" / f"e{(i // per_dir) % 10}"
        if i % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(0, 4096)))


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def run_child(spawner: Spawner, argv: list[str], workdir: Path) -> tuple[float, int, float]:
    """Wall seconds, peak RSS in bytes and CPU seconds of one child (and what it waited for).

    Children are forked by the lean spawner process (see :mod:`benchmarks.spawner`), so a
    peak RSS is the child's own, not the driver's inherited at fork.
    """
    run = spawner.run(argv, tmpdir=workdir / "tmp").check()
    return run.wall_s, run.maxrss_bytes, run.cpu_s


_HASHLIB = (
    "import hashlib, sys; h = hashlib.sha256(); r = sys.stdin.buffer.raw; b = bytearray(1 << 20)\n"
    "while (n := r.readinto(b)): h.update(memoryview(b)[:n])\nprint(h.hexdigest())"
)


def operations(tree: Path, out_file: Path) -> dict[str, list[str]]:
    build = [sys.executable, "-m", "tarexport", "build", "--layer", f"{tree}:/data",
             "-t", "bench:1", "-q"]
    return {
        "tar | sha256sum": ["bash", "-c", f"set -o pipefail; tar -cf - -C {tree} . | sha256sum"],
        "tar | hashlib.sha256": ["bash", "-c", f"set -o pipefail; tar -cf - -C {tree} . | "
                                 f"{sys.executable} -S -c '{_HASHLIB}'"],
        "build+save -> /dev/null": [*build, "-o", "/dev/null"],
        "build+save -> file": [*build, "-o", str(out_file)],
        "build+save --verify -> file": [*build, "--verify", "-o", str(out_file)],
    }


def measure(trees: dict[str, Path], workdir: Path, rounds: int) -> list[dict[str, Any]]:
    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    env["PYTHONPATH"] = worker_path(ROOT)
    with Spawner(env) as spawner:
        return _measure(spawner, trees, workdir, rounds)


def _measure(
    spawner: Spawner, trees: dict[str, Path], workdir: Path, rounds: int
) -> list[dict[str, Any]]:
    rows = []
    for name, tree in trees.items():
        out_file = workdir / f"{name}.tar"
        ops = operations(tree, out_file)
        for argv in ops.values():  # warm the page cache and the interpreter's files
            run_child(spawner, argv, workdir)
        samples: dict[str, list[tuple[float, int, float]]] = {op: [] for op in ops}
        for i in range(rounds):
            order = list(ops) if i % 2 == 0 else list(reversed(ops))
            for op in order:
                samples[op].append(run_child(spawner, ops[op], workdir))
                if out_file.exists():
                    out_file.unlink()
        floor = statistics.median(s[0] for s in samples["tar | sha256sum"])
        cpu_floor = statistics.median(s[2] for s in samples["tar | sha256sum"])
        for op, values in samples.items():
            wall = statistics.median(v[0] for v in values)
            rows.append({
                "tree": name,
                "op": op,
                "seconds": wall,
                "min_seconds": min(v[0] for v in values),
                "ratio": wall / floor,
                "peak_rss": max(v[1] for v in values),
                "cpu_seconds": statistics.median(v[2] for v in values),
                "cpu_ratio": statistics.median(v[2] for v in values) / cpu_floor,
            })
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.build", description=__doc__)
    parser.add_argument("--big-size", type=parse_size, default=1 << 30,
                        help="total size of the big tree (default 1GiB)")
    parser.add_argument("--big-files", type=int, default=10, help="files in the big tree")
    parser.add_argument("--small-files", type=int, default=50_000,
                        help="files in the small-file tree (default 50000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the trees and outputs go (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    return parser


def main(argv: Any = None) -> int:
    args = build_parser().parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tarexport-build-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        trees = {"big": workdir / "big", "small": workdir / "small"}
        if not trees["big"].exists():
            make_big_tree(trees["big"], args.big_files, args.big_size)
        if not trees["small"].exists():
            make_small_tree(trees["small"], args.small_files)
        meter = CpuMeter()
        rows = measure(trees, workdir, args.rounds)
        report = {
            "machine": describe(workdir),
            "trees": {name: {"files": sum(1 for p in t.rglob("*") if p.is_file()),
                             "bytes": tree_bytes(t)} for name, t in trees.items()},
            "rounds": args.rounds,
            "load": {"before": meter.start_loadavg, "after": meter.loadavg(),
                     "busy_cores": round(meter.busy_cores(), 2),
                     "seconds": round(meter.elapsed(), 1)},
            "rows": rows,
        }
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def print_report(report: dict[str, Any]) -> None:
    machine = report["machine"]
    print(f"machine: {machine['cpu']} ({machine['cores']} cores, "
          f"{', '.join(machine['cpu_flags']) or 'no sha_ni'}), {machine['kernel']}, "
          f"{machine['python']}, {machine['filesystem']}")
    for name, tree in report["trees"].items():
        print(f"tree {name}: {tree['files']} files, {tree['bytes'] / MiB:.1f} MiB")
    load = report["load"]
    print(f"load average before {load['before']}, after {load['after']}; "
          f"{load['busy_cores']} cores busy on average over {load['seconds']} s; "
          f"{report['rounds']} rounds, medians")
    print(f"{'tree':6} {'operation':30} {'median':>9} {'min':>9} {'ratio':>7} "
          f"{'CPU':>8} {'ratio':>7} {'peak RSS':>10}")
    for row in report["rows"]:
        print(f"{row['tree']:6} {row['op']:30} {row['seconds']:8.3f}s {row['min_seconds']:8.3f}s "
              f"{row['ratio']:6.2f}x {row['cpu_seconds']:7.3f}s {row['cpu_ratio']:6.2f}x "
              f"{row['peak_rss'] / MiB:8.1f} MiB")


if __name__ == "__main__":
    raise SystemExit(main())
