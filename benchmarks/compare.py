"""``python -m benchmarks.compare``: tarexport beside every peer, each table with its machine load.

What :mod:`benchmarks.save` measures in depth for one image, this measures across the images
and peers a user compares with, in a form anyone can rerun:

- **start-up**: ``python -c pass``, ``python -c "import tarexport"``, ``tarexport --version``
  and ``docker --version``, many times each, interleaved;
- **images**: ``1g`` and ``4g`` (one layer of random files), ``500x100k`` (500 layers of
  100 KiB), each as layer files (a file-backed ``MemoryStore``), an OCI image layout and a
  docker archive, all made by tarexport (the save of every store must give the archive's bytes);
- per image, with the other core **free** and with it **busy** (a CPU hog pinned to core 1,
  ``--no-busy`` skips it): one ``hashlib.sha256`` pass over the archive, ``cp`` of it, and
  tarexport saves (verified from each store; from the OCI layout also unverified and with
  ``trust_ingested``) and a load into a new OCI layout;
- per image, with the core free: ``skopeo copy`` both ways, ``docker save -o`` and
  ``docker load -i`` on every daemon of ``TAREXPORT_TEST_DAEMONS`` (or ``--daemon NAME=HOST``),
  and tarexport saves from the data root of one daemon (``DockerRootStore``, verified and not).

Every write goes to a new file (overwriting a file just written costs ext4 a truncate and a
flush no real save pays), removed after. Each row gives the median and minimum over the
rounds, CPU seconds (all threads), and its ratio to the hashlib pass **of the same round**
(median of the per-round ratios), which cancels much of what other work on the machine does
to both. Each table records the machine's load while it was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from . import dockerd
from .children import Spawner
from .machine import CpuMeter, describe
from .save import Bench, log, parse_size, worker_env

__all__ = ["main"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
IMAGES: dict[str, dict[str, int]] = {
    "1g": {"total_bytes": GiB, "layers": 1},
    "4g": {"total_bytes": 4 * GiB, "layers": 1},
    "500x100k": {"total_bytes": 500 * 100 * KiB, "layers": 500},
}
QUICK_IMAGES: dict[str, dict[str, int]] = {
    "1g": {"total_bytes": 24 * MiB, "layers": 1},
    "500x100k": {"total_bytes": 20 * 100 * KiB, "layers": 20},
}
ROOT = Path(__file__).resolve().parent.parent
Operation = Callable[[], Optional[dict[str, Any]]]  # None: a step between measurements


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--images", default=",".join(IMAGES),
                        help=f"comma-separated images to measure (default {','.join(IMAGES)})")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="override the size of the single-layer images (e.g. 512MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--peer-rounds", type=int, default=1,
                        help="rounds of the docker and skopeo operations (default 1)")
    parser.add_argument("--no-busy", action="store_true",
                        help="skip the tables with the other core busy")
    parser.add_argument("--no-peers", action="store_true", help="skip docker and skopeo")
    parser.add_argument("--daemon", action="append", default=[], metavar="NAME=HOST[,CLI]",
                        help="a daemon to compare with (default: every daemon in "
                             "$TAREXPORT_TEST_DAEMONS)")
    parser.add_argument("--root-daemon", default="28",
                        help="the daemon whose data root tarexport saves from (default 28; "
                             "needs the graphdriver store and read access to its data root)")
    parser.add_argument("--startup-runs", type=int, default=30,
                        help="runs of each start-up command (default 30)")
    parser.add_argument("--only", choices=("startup", "images"), default=None)
    parser.add_argument("--quick", action="store_true",
                        help="tiny images, one round, no peers: a smoke test")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--markdown", metavar="PATH", default=None)
    parser.add_argument("--json", metavar="PATH", default=None)
    parser.add_argument("--profile", default="docker-28")
    return parser


# -- conditions -------------------------------------------------------------------------------


@contextmanager
def cpu_hog(core: int) -> Iterator[int]:
    """A busy loop pinned to ``core`` for the duration; yields its pid, stopped by pid."""
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c",
         f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"],
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)  # pinned and spinning before the first measurement
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait()


class Table:
    """Rows of one image under one condition, with the machine's load while measured."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.notes: list[str] = []
        self.meter = CpuMeter()
        self.load: dict[str, Any] = {}

    def add(self, label: str, sample: dict[str, Any]) -> None:
        """One sample of the operation ``label``."""
        self.samples.setdefault(label, []).append(sample)

    def close(self) -> None:
        self.load = {
            "busy_cores": round(self.meter.busy_cores(), 2),
            "loadavg_start": self.meter.start_loadavg,
            "loadavg_end": self.meter.loadavg(),
            "seconds": round(self.meter.elapsed(), 1),
        }

    def rows(self, floor: str = "hashlib.sha256 pass") -> list[dict[str, Any]]:
        base = self.samples.get(floor, [])
        out = []
        for label, items in self.samples.items():
            walls = [s["s"] for s in items]
            row: dict[str, Any] = {
                "operation": label,
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "cpu_s": statistics.median(s["cpu_s"] for s in items),
                "mib_s": items[0]["bytes"] / MiB / statistics.median(walls),
                "n": len(items),
            }
            ratios = [b["s"] / s["s"] for b, s in zip(base, items) if b.get("round") == s.get(
                "round")]
            row["vs_sha256"] = statistics.median(ratios) if ratios and label != floor else None
            out.append(row)
        return out


# -- the run ----------------------------------------------------------------------------------


class Compare:
    def __init__(self, args: argparse.Namespace, workdir: Path, stack: ExitStack) -> None:
        self.args = args
        self.workdir = workdir
        self.spawner = stack.enter_context(Spawner(worker_env()))
        owner = ""  # tar owner names do not change what is measured
        self.bench = Bench(argparse.Namespace(profile=args.profile), workdir, self.spawner,
                           None, owner)
        self.tables: list[Table] = []
        self.notes: list[str] = []
        self.data_roots: dict[str, tuple[str, bool]] = {}
        self.daemons = self._daemons() if not (args.no_peers or args.quick) else {}
        self.on_table: Callable[[], object] = lambda: None
        self._n = 0

    def fresh(self, suffix: str = ".tar") -> Path:
        self._n += 1
        return self.workdir / "out" / f"w{self._n:05d}-{secrets.token_hex(2)}{suffix}"

    # -- peers ------------------------------------------------------------------------------

    def _daemons(self) -> dict[str, dockerd.Docker]:
        wanted: dict[str, tuple[str, str]] = {}
        for text in self.args.daemon:
            name, _, rest = text.partition("=")
            host, _, cli = rest.partition(",")
            wanted[name] = (host, cli or shutil.which("docker") or "docker")
        if not wanted:
            table = json.loads(os.environ.get("TAREXPORT_TEST_DAEMONS", "{}") or "{}")
            for name, info in table.items():
                wanted[name] = (info["host"], info["cli"])
                self.data_roots[name] = (info.get("data_root", ""), bool(info.get("containerd")))
        found = {}
        for name, (host, cli) in wanted.items():
            probe = dockerd.Docker(host, cli, "", None)
            try:
                version = probe.run("version", "--format", "{{.Server.Version}}",
                                    timeout=20).strip()
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.notes.append(f"daemon {name} at {host} skipped: {exc}")
                continue
            found[name] = dockerd.Docker(host, cli, version, None)
        return found

    # -- operations -------------------------------------------------------------------------

    def worker(self, spec: dict[str, Any]) -> dict[str, Any]:
        run, result = self.bench.worker(spec)
        return {"s": result["op_s"], "cpu_s": result.get("op_cpu_s", run.cpu_s),
                "bytes": result["bytes"]}

    def command(self, argv: Sequence[str], nbytes: int, env: Optional[dict[str, str]] = None
                ) -> dict[str, Any]:
        run = self.bench.command(argv, env=env)
        return {"s": run.wall_s, "cpu_s": run.cpu_s, "bytes": nbytes}

    def save(self, image: dict[str, Any], store: str, *, verify: bool = True,
             trust: bool = False, **extra: Any) -> dict[str, Any]:
        out = self.fresh()
        try:
            return self.worker({
                "op": "save", "store": store, "image": image, "sink": "file", "verify": verify,
                "trust_ingested": trust, "profile": self.args.profile,
                "owner_name": self.bench.owner_name, "out": str(out), **extra,
            })
        finally:
            out.unlink(missing_ok=True)

    def load(self, image: dict[str, Any]) -> dict[str, Any]:
        into = self.fresh(".oci")
        try:
            return self.worker({"op": "load", "source": "file", "archive": image["archive_path"],
                                "into": str(into), "bytes": image["archive_size"]})
        finally:
            shutil.rmtree(into, ignore_errors=True)

    def cp(self, image: dict[str, Any]) -> dict[str, Any]:
        out = self.fresh()
        try:
            return self.command(["cp", image["archive_path"], str(out)], image["archive_size"])
        finally:
            out.unlink(missing_ok=True)

    def core_ops(self, image: dict[str, Any]) -> list[tuple[str, Operation]]:
        archive = image["archive_path"]
        return [
            ("hashlib.sha256 pass", lambda: self.worker(
                {"op": "sha256", "path": archive, "out": ""})),
            ("cp archive -> new file", lambda: self.cp(image)),
            ("save memory -> file, verify", lambda: self.save(image, "memory")),
            ("save oci -> file, verify", lambda: self.save(image, "oci")),
            ("save archive -> file, verify", lambda: self.save(image, "archive")),
            ("save oci -> file, trust_ingested", lambda: self.save(image, "oci", trust=True)),
            ("save oci -> file, no verify", lambda: self.save(image, "oci", verify=False)),
            ("load file -> new oci layout", lambda: self.load(image)),
        ]

    def measure(self, table: Table, ops: Sequence[tuple[str, Operation]], rounds: int, *,
                alternate: bool = True) -> None:
        """Every operation once per round, in reverse order every other round (``alternate``).

        An operation that returns ``None`` is a step between measurements (a clean-up).
        """
        for number in range(rounds):
            order = list(ops) if number % 2 == 0 or not alternate else list(reversed(ops))
            os.sync()
            for label, op in order:
                try:
                    sample = op()
                except RuntimeError as exc:  # a peer refused (Docker's layer limit, ...)
                    why = str(exc).strip().splitlines()[-1][:200]
                    table.notes.append(f"{label}: failed: {why}")
                    continue
                if sample is None:
                    continue
                sample["round"] = number
                table.add(label, sample)
            log(f"{table.title}: round {number + 1}/{rounds}")

    def peer_ops(self, key: str, image: dict[str, Any]
                 ) -> list[tuple[str, Operation]]:
        ops: list[tuple[str, Operation]] = [
            ("hashlib.sha256 pass", lambda: self.worker(
                {"op": "sha256", "path": image["archive_path"], "out": ""})),
            ("save oci -> file, verify", lambda: self.save(image, "oci")),
            ("load file -> new oci layout", lambda: self.load(image)),
        ]
        skopeo = shutil.which("skopeo")
        if skopeo is not None:
            def skopeo_save() -> dict[str, Any]:
                out = self.fresh()
                try:
                    return self.command([skopeo, "copy", "-q", f"oci:{image['oci_dir']}:latest",
                                         f"docker-archive:{out}:{image['reference']}"],
                                        image["archive_size"])
                finally:
                    out.unlink(missing_ok=True)

            def skopeo_load() -> dict[str, Any]:
                into = self.fresh(".oci")
                try:
                    return self.command([skopeo, "copy", "-q",
                                         f"docker-archive:{image['archive_path']}",
                                         f"oci:{into}:latest"], image["archive_size"])
                finally:
                    shutil.rmtree(into, ignore_errors=True)

            ops += [("skopeo copy oci: docker-archive:", skopeo_save),
                    ("skopeo copy docker-archive: oci:", skopeo_load)]
        for name, docker in self.daemons.items():
            ops += [(f"docker {name} load -i", self._docker_load(docker, image)),
                    (f"docker {name} save -o", self._docker_save(docker, image))]
            root, containerd = self.data_roots.get(name, ("", True))
            if name == self.args.root_daemon and root and not containerd:
                extra = {"data_root": root}
                ops += [
                    (f"save docker-root ({name}) -> file, verify",
                     lambda extra=extra: self.save(image, "root", **extra)),
                    (f"save docker-root ({name}) -> file, no verify",
                     lambda extra=extra: self.save(image, "root", verify=False, **extra)),
                ]
            # One daemon at a time holds the image: its disk is given back before the next.
            ops.append((f"docker {name} rmi", self._docker_rmi(docker, image)))
        return ops

    def _docker_rmi(self, docker: dockerd.Docker, image: dict[str, Any]
                    ) -> Callable[[], None]:
        def run() -> None:
            docker.run("rmi", "--force", image["reference"], check=False)
        return run

    def _docker_load(self, docker: dockerd.Docker, image: dict[str, Any]
                     ) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            docker.run("rmi", "--force", image["reference"], check=False)
            return self.command(docker.argv("load", "-q", "-i", image["archive_path"]),
                                image["archive_size"], env=docker.env)
        return run

    def _docker_save(self, docker: dockerd.Docker, image: dict[str, Any]
                     ) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            if not docker.has_image(image["reference"]):
                docker.run("load", "-q", "-i", image["archive_path"])
            out = self.fresh()
            try:
                return self.command(docker.argv("save", "-o", str(out), image["reference"]),
                                    image["archive_size"], env=docker.env)
            finally:
                out.unlink(missing_ok=True)
        return run

    # -- start-up ---------------------------------------------------------------------------

    def startup(self) -> None:
        python = sys.executable
        cli = Path(python).with_name("tarexport")
        tarexport = [str(cli)] if cli.exists() else [python, "-m", "tarexport"]
        commands = [
            ("python -c pass", [python, "-c", "pass"]),
            ("python -c 'import tarexport'", [python, "-c", "import tarexport"]),
            ("tarexport --version", [*tarexport, "--version"]),
            ("tarexport ref alpine", [*tarexport, "ref", "alpine"]),
        ]
        docker_cli = shutil.which("docker")
        if docker_cli is not None:
            commands.append(("docker --version", [docker_cli, "--version"]))
        table = Table("start-up")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # as a user runs it: the installed package
        for number in range(self.args.startup_runs):
            order = commands if number % 2 == 0 else commands[::-1]
            for label, argv in order:
                run = self.bench.command(argv, env=env)
                table.add(label, {"s": run.wall_s, "cpu_s": run.cpu_s, "bytes": 0,
                                  "round": number})
        table.close()
        self.tables.append(table)
        self.on_table()
        self.notes.append(_import_time(python, env))

    # -- all --------------------------------------------------------------------------------

    def images(self) -> None:
        catalog = QUICK_IMAGES if self.args.quick else IMAGES
        keys = [k for k in self.args.images.split(",") if k in catalog]
        rounds = 1 if self.args.quick else self.args.rounds
        for key in keys:
            spec = dict(catalog[key])
            if self.args.size is not None and spec["layers"] == 1:
                spec["total_bytes"] = self.args.size
            self.bench.build([{"key": key, **spec}])
            self.bench.check_outputs([key])
            if self.bench.problems:
                raise RuntimeError("; ".join(self.bench.problems))
            image = self.bench.images[key]
            size = image["archive_size"]
            label = f"{key}: {image['layer_bytes'] / MiB:.0f} MiB in {spec['layers']} layer(s), " \
                    f"archive {size / MiB:.0f} MiB"
            table = Table(f"{label} — other core free")
            self.measure(table, self.core_ops(image), rounds)
            table.close()
            self.tables.append(table)
            self.on_table()
            if not self.args.no_busy:
                table = Table(f"{label} — other core busy (a CPU hog pinned to core 1)")
                with cpu_hog(1 if (os.cpu_count() or 1) > 1 else 0):
                    self.measure(table, self.core_ops(image), rounds)
                table.close()
                self.tables.append(table)
                self.on_table()
            if self.daemons or (not self.args.no_peers and not self.args.quick):
                table = Table(f"{label} — peers, other core free")
                try:
                    self.measure(table, self.peer_ops(key, image), self.args.peer_rounds,
                                 alternate=False)
                finally:
                    for docker in self.daemons.values():
                        docker.run("rmi", "--force", image["reference"], check=False)
                table.close()
                self.tables.append(table)
                self.on_table()
            shutil.rmtree(self.workdir / "images" / key, ignore_errors=True)


def _import_time(python: str, env: dict[str, str]) -> str:
    """``-X importtime``: the cumulative microseconds of ``import tarexport``, best of five."""
    best = None
    for _ in range(5):
        proc = subprocess.run([python, "-X", "importtime", "-c", "import tarexport"],
                              capture_output=True, text=True, env=env, check=True)
        for line in proc.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == "tarexport":
                value = int(parts[1])
                best = value if best is None else min(best, value)
    return (f"`python -X importtime -c 'import tarexport'`: {best / 1000:.1f} ms cumulative "
            "for `tarexport` (best of 5)") if best is not None else "importtime: not found"


# -- reports ----------------------------------------------------------------------------------


def fmt(value: Optional[float], unit: str = "") -> str:
    if value is None:
        return ""
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"- Machine: {m['cores']} cores, {m['cpu']} ({', '.join(m['cpu_flags'])}), "
        f"{m['kernel']}, {m['python']}, tarexport {m['tarexport']}; work directory on "
        f"{m['filesystem']}",
        f"- Command: `{doc['command']}`",
    ]
    lines += [f"- {note}" for note in doc["notes"]]
    for table in doc["tables"]:
        load = table["load"]
        lines += [
            "",
            f"### {table['title']}",
            "",
            f"Machine load while measured ({load['seconds']} s): {load['busy_cores']} of "
            f"{m['cores']} cores busy on average; load average {load['loadavg_start']} at the "
            f"start, {load['loadavg_end']} at the end.",
            "",
            *[f"- {note}" for note in table.get("notes", [])],
            *([""] if table.get("notes") else []),
            "| operation | median s | min s | CPU s | MiB/s | vs sha256 (same round) | n |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in table["rows"]:
            speed = f"{row['mib_s']:.0f}" if row["mib_s"] else ""
            lines.append(
                f"| {row['operation']} | {fmt(row['median_s'])} | {fmt(row['min_s'])} | "
                f"{fmt(row['cpu_s'])} | {speed} | {fmt(row['vs_sha256'], 'x')} | {row['n']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # A stopped run still removes its scratch directory and stops its CPU hog.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.quick:
        args.startup_runs = min(args.startup_runs, 3)
    parent = args.workdir if args.workdir is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="txcompare.", dir=parent))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        compare = Compare(args, workdir, stack)
        machine = describe(workdir)

        def report() -> str:
            doc = {
                "machine": machine,
                "command": "python -m benchmarks.compare " + " ".join(_shown(argv)),
                "notes": compare.notes,
                "tables": [{"title": t.title, "load": t.load, "rows": t.rows(),
                            "notes": t.notes} for t in compare.tables],
            }
            text = markdown(doc)
            if args.markdown:
                Path(args.markdown).write_text(text)
            if args.json:
                Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
            return text

        compare.on_table = report  # each finished table is written at once
        if args.only in (None, "startup"):
            compare.startup()
        if args.only in (None, "images"):
            compare.images()
        text = report()
    print(text)
    return 0


def _shown(argv: Optional[Sequence[str]]) -> list[str]:
    """The command line as run, without where it wrote its reports."""
    args = list(argv if argv is not None else sys.argv[1:])
    shown = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--markdown", "--json", "--workdir"):
            skip = True
            continue
        if arg.split("=", 1)[0] in ("--markdown", "--json", "--workdir"):
            continue
        shown.append(arg)
    return shown


if __name__ == "__main__":
    sys.exit(main())
