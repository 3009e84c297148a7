"""``python -m benchmarks.save``: tarexport's save and load beside ``cp``, sha256 and Docker.

Builds two images with tarexport's own code (a large one of random files, and one of many
small files), each as a file-backed ``MemoryStore``, an ``OCILayoutStore`` and a docker
archive, then measures in rounds, every operation once per round and the order reversed
every other round:

- tarexport save from each store to a file, to ``/dev/null`` and into a pipe, with
  ``verify`` on and off; tarexport load of the archive (from a file and from a pipe) into a
  new OCI image layout, and once into one that does not fsync;
- the floors: ``cp`` of the archive, ``cp`` then ``sync`` (a durable copy),
  ``hashlib.sha256`` over it, ``cat | cat`` through a pipe, and ``shutil.copyfileobj``;
- ``docker save -o`` and ``docker load -i`` of the same image, when a daemon answers.

Each operation runs in a child process of its own; its peak RSS is that child's
``ru_maxrss`` and its temporary disk is what appears in an empty ``TMPDIR`` (and, for
Docker, in the daemon's temporary directory). A final run saves and loads an image
``--scale-factor`` times larger, to show that peak RSS does not grow with the image.

The report is printed as a table; ``--json`` and ``--markdown`` write it in those forms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

from . import dockerd, report
from .children import ChildRun, Fd3, Spawner, worker_argv, worker_path
from .machine import CpuMeter, describe
from .report import MiB, Op, Row

__all__ = ["main"]

GiB = 1 << 30
STORES = ("memory", "oci", "archive")
SINKS = ("file", "null", "pipe")
QUICK_SIZE = 24 * MiB  # layers above the copy engine's 4 MiB threading threshold
QUICK_SMALL_FILES = 200
ROOT = Path(__file__).resolve().parent.parent

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``1GiB``, ``512MiB``, ``4G``, ``100M``, ``65536``: binary units, in bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 512MiB)")
    number, unit = match.groups()
    size = int(float(number) * (1 << (10 * " KMGT".index(unit.upper() or " "))))
    if size < 4 * 1024:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least 4 KiB)")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.save",
        description="Measure tarexport save and load against cp, sha256 and docker.",
    )
    parser.add_argument("--size", type=parse_size, default=None,
                        help="size of the big image's layers (default 1GiB; --quick: 24MiB)")
    parser.add_argument("--small-files", type=int, default=None, metavar="N",
                        help="files in the small-file image (default 20000; --quick: 200)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="measured rounds (default 5; --quick: 1)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="unmeasured rounds first (default 0: the set-up already read "
                             "every input once)")
    parser.add_argument("--docker-rounds", type=int, default=None, metavar="N",
                        help="measure docker in the first N rounds only (default 3)")
    parser.add_argument("--scale-factor", type=int, default=4,
                        help="the memory-scaling run uses an image this many times larger")
    parser.add_argument("--no-scaling", action="store_true", help="skip the memory-scaling run")
    parser.add_argument("--quick", action="store_true",
                        help="tiny images and one round: a smoke test, not a measurement")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="create the scratch directory inside this one (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the results as JSON to PATH ('-': stdout)")
    parser.add_argument("--markdown", metavar="PATH", default=None,
                        help="write the report as Markdown to PATH ('-': stdout)")
    parser.add_argument("--docker-host", default=None,
                        help="daemon to compare with (default: $TAREXPORT_BENCH_DOCKER_HOST, "
                             "$DOCKER_HOST)")
    parser.add_argument("--start-dockerd", action="store_true",
                        help="start a private dockerd (vfs storage) for the run, and stop it")
    parser.add_argument("--no-docker", action="store_true", help="skip the docker rows")
    parser.add_argument("--profile", default="docker-20.10",
                        help="tarexport profile of the archives (default docker-20.10)")
    parser.add_argument("--owner-name", default=None,
                        help="tar owner name of the archives (default: 'root' for a "
                             "distribution build of Docker, else empty)")
    parser.add_argument("--report", default=None, metavar="JSON",
                        help="measure nothing: print the reports of an earlier --json run "
                             "(with --json/--markdown, write them again)")
    parser.add_argument("--only", default=None, metavar="REGEX",
                        help="measure only the operations whose key matches (e.g. 'big/save')")
    return parser


_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


class Bench:
    """One benchmark run in its scratch directory."""

    def __init__(self, args: argparse.Namespace, workdir: Path, spawner: Spawner,
                 docker: Optional[dockerd.Docker], owner_name: str) -> None:
        self.args = args
        self.spawner = spawner
        self.workdir = workdir
        self.docker = docker
        self.owner_name = owner_name
        self.token = secrets.token_hex(3)
        self.images: dict[str, dict[str, Any]] = {}
        self.archive_sha256: dict[str, str] = {}
        self.docker_has: dict[str, bool] = {}
        self.docker_compared: set[str] = set()
        self.checks: list[str] = []
        self.problems: list[str] = []
        self._runs = 0
        for sub in ("tmp", "out", "results"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self.env = worker_env()

    # -- children ---------------------------------------------------------------------------

    def _next(self) -> int:
        self._runs += 1
        return self._runs

    def tmpdir(self, n: int) -> Path:
        return self.workdir / "tmp" / f"run-{n:05d}"

    def worker(self, spec: dict[str, Any], *, fd3: Fd3 = None) -> tuple[ChildRun, dict[str, Any]]:
        n = self._next()
        result_path = self.workdir / "results" / f"{n:05d}.json"
        spec = {**spec, "result": str(result_path)}
        run = self.spawner.run(
            [*worker_argv(), json.dumps(spec)],
            tmpdir=self.tmpdir(n),
            env=self.env,
            fd3=fd3,
            cwd=ROOT,
        ).check()
        result: dict[str, Any] = json.loads(result_path.read_text())
        result_path.unlink()
        return run, result

    def command(self, argv: Sequence[str], *, watch: Sequence[Path] = (),
                env: Optional[dict[str, str]] = None, stdout: str = "devnull") -> ChildRun:
        n = self._next()
        return self.spawner.run(argv, tmpdir=self.tmpdir(n), watch=watch, env=env or self.env,
                                stdout=stdout).check()

    # -- inputs -----------------------------------------------------------------------------

    def reference(self, key: str) -> str:
        return f"tarexport-bench/{key}-{self.token}:latest"

    def build(self, items: list[dict[str, Any]]) -> None:
        inputs = self.workdir / f"inputs-{self._runs}.json"
        for item in items:
            item.setdefault("dir", str(self.workdir / "images" / item["key"]))
            item.setdefault("reference", self.reference(item["key"]))
        _, result = self.worker({
            "op": "build",
            "images": items,
            "inputs": str(inputs),
            "profile": self.args.profile,
            "owner_name": self.owner_name,
        })
        for image in json.loads(inputs.read_text()):
            self.images[image["key"]] = image
            if image["archive_path"]:
                self.archive_sha256[image["key"]] = sha256_file(Path(image["archive_path"]))
        inputs.unlink()
        log(f"built {', '.join(i['key'] for i in items)} in {result['op_s']:.1f} s")

    def check_outputs(self, keys: Sequence[str]) -> None:
        """Every store's save must give the archive's exact bytes: else nothing is comparable."""
        for key in keys:
            image = self.images[key]
            for store in STORES:
                out = self.workdir / "out" / f"check-{key}-{store}.tar"
                _, result = self.worker({
                    "op": "save", "store": store, "image": image, "sink": "file", "verify": True,
                    "profile": self.args.profile, "owner_name": self.owner_name,
                    "out": str(out), "digest": True,
                })
                out.unlink()
                if result["sha256"] != self.archive_sha256[key]:
                    self.problems.append(
                        f"{key} image: the save from the {store} store differs from the archive "
                        f"written from the memory store ({result['out_size']} bytes vs "
                        f"{image['archive_size']})"
                    )
        if not self.problems:
            self.checks.append(
                "every store's save (memory, oci, archive) is byte-identical to the archive "
                "the benchmark built"
            )

    def noop_rss(self, times: int = 3) -> int:
        """Peak RSS of a worker that only imports tarexport: the interpreter's own floor."""
        values = [self.worker({"op": "noop"})[0].maxrss_bytes for _ in range(times)]
        return int(statistics.median(values))

    def fork_floor(self, times: int = 3) -> int:
        """``ru_maxrss`` of ``true``: the least any child can report (the fork's own share)."""
        values = [self.command(["true"]).maxrss_bytes for _ in range(times)]
        return max(values)

    # -- docker state -----------------------------------------------------------------------

    def docker_load(self, key: str) -> None:
        assert self.docker is not None
        self.docker.run("load", "-i", self.images[key]["archive_path"])
        self.docker_has[key] = True

    def docker_rmi(self, key: str) -> None:
        assert self.docker is not None
        self.docker.run("rmi", "--force", self.images[key]["reference"], check=False)
        self.docker_has[key] = False

    # -- one operation ----------------------------------------------------------------------

    def ops(self, key: str) -> list[Op]:
        ops = [
            Op(key, "cp", "cp"),
            Op(key, "python", "sha256"),
            Op(key, "cat", "cat"),
            Op(key, "python", "copyfileobj"),
            Op(key, "cp", "cp-sync"),
            Op(key, "python", "layer-copy"),
        ]
        for store in STORES:
            for sink in SINKS:
                for verify in (False, True):
                    ops.append(Op(key, "tarexport", "save", store, sink, verify))
        ops += [Op(key, "tarexport", "load", sink=source) for source in ("file", "pipe")]
        ops.append(Op(key, "tarexport", "load", sink="file", fsync=False))
        if self.docker is not None:
            ops += [Op(key, "docker", "docker-save"), Op(key, "docker", "docker-load")]
        return ops

    def run_op(self, op: Op) -> dict[str, Any]:
        image = self.images[op.image]
        archive = image["archive_path"]
        n = self._runs + 1
        out = self.workdir / "out" / f"{n:05d}.tar"
        try:
            if op.kind == "save":
                return self._save(op, image, out)
            if op.kind == "load":
                return self._load(op, image, self.workdir / "out" / f"load-{n:05d}")
            if op.kind == "layer-copy":
                layers = self._layer_placements(image)
                run, result = self.worker({"op": op.kind, "layers": layers, "out": str(out)})
                return sample(run, result)
            if op.kind in ("sha256", "copyfileobj"):
                run, result = self.worker({"op": op.kind, "path": archive, "out": str(out)})
                return sample(run, result)
            if op.kind == "cp":
                run = self.command(["cp", archive, str(out)])
                return sample(run, {"op_s": run.wall_s, "bytes": image["archive_size"]})
            if op.kind == "cp-sync":  # a durable copy: what a load into a store must do
                run = self.command(["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", archive,
                                    str(out)])
                return sample(run, {"op_s": run.wall_s, "bytes": image["archive_size"]})
            if op.kind == "cat":
                run = self.command(["cat", archive], stdout="drain")
                return sample(run, {"op_s": run.wall_s, "bytes": image["archive_size"]})
            if op.kind == "docker-save":
                return self._docker_save(op, image, out)
            if op.kind == "docker-load":
                return self._docker_load(op, image)
            raise ValueError(f"unknown operation {op.kind}")
        finally:
            if out.exists():
                out.unlink()

    def _layer_placements(self, image: dict[str, Any]) -> list[tuple[str, int, int]]:
        """Each layer file with the offset and length of its bytes in the archive."""
        with tarfile.open(image["archive_path"]) as tar:
            manifest_file = tar.extractfile("manifest.json")
            assert manifest_file is not None
            (item,) = json.load(manifest_file)
            members = [tar.getmember(name) for name in item["Layers"]]
        return [
            (path, member.offset_data, member.size)
            for path, member in zip(image["layer_paths"], members)
        ]

    def _save(self, op: Op, image: dict[str, Any], out: Path) -> dict[str, Any]:
        spec = {
            "op": "save", "store": op.store, "image": image, "sink": op.sink,
            "verify": op.verify, "profile": self.args.profile, "owner_name": self.owner_name,
            "out": str(out),
        }
        if op.sink == "pipe":
            run, result = self.worker({**spec, "fd": 3}, fd3="drain")
        else:
            run, result = self.worker(spec)
        return sample(run, result)

    def _load(self, op: Op, image: dict[str, Any], into: Path) -> dict[str, Any]:
        spec = {"op": "load", "source": op.sink, "archive": image["archive_path"],
                "into": str(into), "bytes": image["archive_size"], "fsync": op.fsync is not False}
        try:
            if op.sink == "pipe":
                run, result = self.worker({**spec, "fd": 3}, fd3={"feed": image["archive_path"]})
            else:
                run, result = self.worker(spec)
        finally:
            shutil.rmtree(into, ignore_errors=True)
        return sample(run, result)

    def _docker_save(self, op: Op, image: dict[str, Any], out: Path) -> dict[str, Any]:
        docker = self.docker
        assert docker is not None
        if not self.docker_has.get(op.image):
            self.docker_load(op.image)
        watch = [docker.tmp_dir] if docker.tmp_dir is not None else []
        run = self.command(docker.argv("save", "-o", str(out), image["reference"]),
                           watch=watch, env=docker.env)
        if op.image not in self.docker_compared:
            self.docker_compared.add(op.image)
            digest = sha256_file(out)
            same = digest == self.archive_sha256[op.image]
            self.checks.append(
                f"{op.image} image: `docker save -o` wrote "
                + ("the same bytes as tarexport" if same else
                   f"different bytes from tarexport ({out.stat().st_size} bytes vs "
                   f"{image['archive_size']}; compare profiles/owner name)")
            )
        result = {"op_s": run.wall_s, "bytes": out.stat().st_size}
        return sample(run, result, temp_known=docker.tmp_dir is not None)

    def _docker_load(self, op: Op, image: dict[str, Any]) -> dict[str, Any]:
        docker = self.docker
        assert docker is not None
        if self.docker_has.get(op.image, False):
            self.docker_rmi(op.image)
        watch = [docker.tmp_dir] if docker.tmp_dir is not None else []
        run = self.command(docker.argv("load", "-i", image["archive_path"]), watch=watch,
                           env=docker.env)
        self.docker_has[op.image] = True
        return sample(run, {"op_s": run.wall_s, "bytes": image["archive_size"]},
                      temp_known=docker.tmp_dir is not None)

    # -- rounds -----------------------------------------------------------------------------

    def rounds(
        self, ops: Sequence[Op], rounds: int, warmup: int, docker_rounds: int = 0
    ) -> dict[str, list[dict[str, Any]]]:
        """Every operation once per round, the order reversed every other round.

        Docker's operations take ten times longer than ours and vary less in relative
        terms, so they run only in the first ``docker_rounds`` measured rounds.
        """
        samples: dict[str, list[dict[str, Any]]] = {op.key: [] for op in ops}
        for number in range(warmup + rounds):
            measured = number >= warmup
            with_docker = measured and number - warmup < docker_rounds
            order = list(ops) if number % 2 == 0 else list(reversed(ops))
            order = [op for op in order if with_docker or op.tool != "docker"]
            started = time.monotonic()
            os.sync()  # nobody's dirty pages are written back during a measurement
            for op in order:
                result = self.run_op(op)
                if measured:
                    samples[op.key].append(result)
                if op.tool == "docker":
                    os.sync()  # the daemon's layer writes, outside anyone's timing
            what = f"round {number - warmup + 1}/{rounds}" if measured else "warm-up round"
            log(f"{what} of {len(order)} operations: {time.monotonic() - started:.1f} s")
        return samples


def worker_env() -> dict[str, str]:
    """The environment of the spawner and the workers: ours, with this tree importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = worker_path(ROOT)
    return env


def sample(run: ChildRun, result: dict[str, Any], *, temp_known: bool = True) -> dict[str, Any]:
    """One measurement: the worker's own figures plus what the driver saw of the child."""
    data = dict(result)
    data["wall_s"] = run.wall_s
    data["maxrss_bytes"] = run.maxrss_bytes
    data["process_cpu_s"] = run.cpu_s
    # A worker's own figure leaves out interpreter start-up; a plain command has only this.
    data["cpu_s"] = result.get("op_cpu_s", run.cpu_s)
    data["spawner_anon_bytes"] = run.spawner_anon_bytes
    data["temp_peak_bytes"] = run.temp_peak_bytes if temp_known else None
    data["temp_left_bytes"] = run.temp_left_bytes if temp_known else None
    return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- the whole run ----------------------------------------------------------------------------


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the defaults that depend on ``--quick``."""
    if args.size is None:
        args.size = QUICK_SIZE if args.quick else GiB
    if args.small_files is None:
        args.small_files = QUICK_SMALL_FILES if args.quick else 20_000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.docker_rounds is None:
        args.docker_rounds = min(args.rounds, 3)
    if args.rounds < 1 or args.warmup < 0 or args.scale_factor < 2 or args.small_files < 4:
        raise SystemExit("need --rounds >= 1, --warmup >= 0, --scale-factor >= 2, "
                         "--small-files >= 4")
    return args


def find_docker(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[Optional[dockerd.Docker], str]:
    if args.no_docker:
        return None, "skipped (--no-docker)"
    if args.start_dockerd:
        base = Path(tempfile.mkdtemp(prefix="txbd.", dir="/tmp"))  # short: socket paths
        stack.callback(shutil.rmtree, base, True)
        host = stack.enter_context(dockerd.private_daemon(base))
        docker, why = dockerd.connect(host, base / "d" / "tmp")
    else:
        docker, why = dockerd.connect(dockerd.host_from(args.docker_host, os.environ))
    if docker is None:
        return None, f"skipped: {why}"
    where = ("its temporary directory watched" if docker.tmp_dir
             else "its temporary directory not visible from here")
    return docker, f"Docker Engine {docker.server_version}, vfs storage driver ({where})"


def run(args: argparse.Namespace, workdir: Path, stack: ExitStack) -> int:
    log(f"work directory {workdir}")
    meter = CpuMeter()
    docker, docker_text = find_docker(args, stack)
    log(f"docker: {docker_text}")
    owner = args.owner_name
    if owner is None:
        owner = "root" if docker is not None and "dfsg" in docker.server_version else ""
    spawner = stack.enter_context(Spawner(worker_env()))
    bench = Bench(args, workdir, spawner, docker, owner)
    if docker is not None:
        stack.callback(cleanup_docker, bench)
    only = re.compile(args.only) if args.only else None

    bench.build([
        {"key": "big", "total_bytes": args.size},
        {"key": "small", "small_files": args.small_files},
    ])
    bench.check_outputs(["big", "small"])
    noop = bench.noop_rss()
    floor = bench.fork_floor()
    bench.checks.append(
        f"peak RSS of a worker that only runs `import tarexport`: {noop / MiB:.1f} MiB; "
        f"a child of the spawner reports at least {floor / MiB:.1f} MiB (shown as '<=')"
    )
    if docker is not None:
        for key in ("big", "small"):
            bench.docker_load(key)

    ops = [op for key in ("big", "small") for op in bench.ops(key)]
    if only is not None:
        ops = [op for op in ops if only.search(op.key)]
    samples = bench.rounds(ops, args.rounds, args.warmup, args.docker_rounds)
    rows = [report.summarize(op, samples[op.key], floor) for op in ops if samples[op.key]]

    scale_rows: list[Row] = []
    if not args.no_scaling:
        if docker is not None:
            for key in ("big", "small"):
                bench.docker_rmi(key)  # the daemon's copies are no longer needed
        bench.build([{"key": "scale", "total_bytes": args.size * args.scale_factor,
                      "oci": False, "archive": True}])
        scale_ops = [
            Op("scale", "tarexport", "save", "memory", "file", True),
            Op("scale", "tarexport", "save", "memory", "file", False),
            Op("scale", "tarexport", "save", "memory", "pipe", True),
            Op("scale", "tarexport", "load", sink="file"),
        ]
        if only is not None:
            scale_ops = [op for op in scale_ops if only.search(op.key.replace("scale/", "big/"))]
        scale_samples = bench.rounds(scale_ops, min(args.rounds, 2), 0)
        scale_rows = [report.summarize(op, scale_samples[op.key], floor) for op in scale_ops]
        shutil.rmtree(workdir / "images" / "scale", ignore_errors=True)

    rss_checks(bench, rows + scale_rows)
    ours = sum(s.get("process_cpu_s", 0.0) for r in [*rows, *scale_rows] for s in r.samples)
    load = {
        "busy_cores": meter.busy_cores(),
        "measured_cores": ours / meter.elapsed(),
        "loadavg_start": meter.start_loadavg,
        "loadavg_end": meter.loadavg(),
        "seconds": meter.elapsed(),
    }
    scaling = report.scaling_rows(rows, scale_rows)
    targets = report.target_rows(rows, scaling)
    doc: dict[str, Any] = {
        "machine": describe(workdir),
        "docker": docker_text,
        "parameters": {
            "size": args.size, "small_files": args.small_files, "rounds": args.rounds,
            "warmup": args.warmup, "docker_rounds": args.docker_rounds,
            "scale_factor": args.scale_factor, "quick": args.quick,
            "profile": args.profile, "owner_name": owner,
        },
        "rounds": args.rounds,
        "warmup": args.warmup,
        "docker_rounds": args.docker_rounds if docker is not None else 0,
        "images": list(bench.images.values()),
        "load": load,
        "scaling": scaling,
        "target_objects": targets,
        "checks": bench.checks + [f"PROBLEM: {p}" for p in bench.problems],
        "headlines": report.headlines(rows, scaling, noop),
        "noop_rss_bytes": noop,
        "rss_floor_bytes": floor,
    }
    write_outputs(args, doc, rows, scale_rows)
    return 1 if bench.problems else 0


def rerender(args: argparse.Namespace) -> int:
    """Print (and write) the reports again from the JSON of an earlier run."""
    data = json.loads(Path(args.report).read_text())
    floor = int(data["rss_floor_bytes"])

    def rows_of(items: list[dict[str, Any]]) -> list[Row]:
        return [
            report.summarize(
                Op(item["image"], item["tool"], item["kind"], item["store"] or "",
                   item["sink"] or "", item["verify"], item.get("fsync")),
                item["samples"],
                floor,
            )
            for item in items
        ]

    rows, scale_rows = rows_of(data["rows"]), rows_of(data["scale_rows"])
    scaling = report.scaling_rows(rows, scale_rows)
    doc = {k: v for k, v in data.items() if k not in ("rows", "scale_rows", "targets")}
    doc["scaling"] = scaling
    doc["target_objects"] = report.target_rows(rows, scaling)
    doc["headlines"] = report.headlines(rows, scaling, data.get("noop_rss_bytes"))
    write_outputs(args, doc, rows, scale_rows)
    return 0


def rss_checks(bench: Bench, rows: Sequence[Row]) -> None:
    """``ru_maxrss`` of a worker must match its own ``VmHWM``: else the parent leaked into it."""
    worst = 0
    for row in rows:
        for item in row.samples:
            if "vm_hwm_bytes" in item:
                worst = max(worst, abs(item["maxrss_bytes"] - item["vm_hwm_bytes"]))
    if worst > 2 * MiB:
        bench.problems.append(
            f"a worker's ru_maxrss differs from its own VmHWM by {worst / MiB:.1f} MiB: the "
            "driver's memory is leaking into the figures"
        )
    else:
        bench.checks.append(
            f"ru_maxrss of every worker matches its own VmHWM (largest gap {worst / 1024:.0f} KiB)"
        )


def write_outputs(args: argparse.Namespace, doc: dict[str, Any], rows: Sequence[Row],
                  scale_rows: Sequence[Row]) -> None:
    text = report.text_report(doc, rows, scale_rows)
    to_stdout = "-" in (args.json, args.markdown)
    print(text, file=sys.stderr if to_stdout else sys.stdout, end="")
    if args.json:
        floors_by_image = {img: report.floors_of(rows, img) for img in ("big", "small")}
        data = {k: v for k, v in doc.items() if k != "target_objects"}
        data["targets"] = [t.__dict__ for t in doc["target_objects"]]
        data["rows"] = [r.to_json(floors_by_image.get(r.op.image, {})) for r in rows]
        data["scale_rows"] = [r.to_json({}) for r in scale_rows]
        emit(args.json, json.dumps(data, indent=2) + "\n")
    if args.markdown:
        emit(args.markdown, report.markdown_report(doc, rows, scale_rows))


def emit(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)


def cleanup_docker(bench: Bench) -> None:
    for key, present in list(bench.docker_has.items()):
        if present:
            bench.docker_rmi(key)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        return rerender(args)
    args = settle(args)
    parent = args.workdir if args.workdir is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="txbench.", dir=parent))
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        try:
            return run(args, workdir, stack)
        except RuntimeError as exc:  # a child failed: its message ends with its stderr
            log(f"benchmark failed: {exc}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
