"""``python -m benchmarks.copy``: ``tarexport copy`` beside ``cp``, sha256 and Docker's own.

One image of random files (``--size``, four layers) is written as an OCI layout and as a
docker archive; then, in rounds (the order reversed every other round), each of these runs
in a child process of its own, its wall time and peak RSS (``wait4``) recorded:

- floors: ``cp`` of the archive, ``sha256sum`` of it, one ``hashlib.sha256`` pass over it
  (the least a verified copy must do);
- ``tarexport copy`` from the layout into a new layout and into an archive file;
- with a daemon (``--host``, else ``DOCKER_HOST``): ``tarexport copy`` from the layout into
  ``docker-daemon:`` beside ``docker load -i`` of the archive, and ``tarexport copy`` from
  ``docker-daemon:`` into a layout beside ``docker save -o``.

Every figure is printed with its ratio to ``cp`` of the same bytes in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional

__all__ = ["main"]

MiB = 1 << 20


def build(directory: Path, size: int, token: str) -> tuple[Path, Path, str]:
    """An OCI layout and a docker archive of one image of ``size`` bytes of random files."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import hashlib
    import json

    from tarexport import OCILayoutStore, transports

    rng = random.Random(1)
    layers, diff_ids = [], []
    for n in range(4):
        path = directory / f"layer{n}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            left, i = size // 4, 0
            while left > 0:
                chunk = min(left, 8 * MiB)
                data = rng.randbytes(chunk)
                info = tarfile.TarInfo(f"d{n}/f{i}")
                info.size, info.mtime = len(data), 1704164645
                import io

                tar.addfile(info, io.BytesIO(data))
                left -= chunk
                i += 1
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        layers.append(path)
        diff_ids.append(f"sha256:{digest}")
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": [f"TOKEN={token}"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    name = f"bench-copy-{token}:1"
    layout = directory / "layout"
    OCILayoutStore(layout, create=True).add_image(config, layers, [name])
    archive = directory / "image.tar"
    transports.copy(f"oci:{layout}", f"docker-archive:{archive}")
    for path in layers:
        path.unlink()
    return layout, archive, name


_HASH = (
    "import hashlib, sys\n"
    "h = hashlib.sha256()\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    for chunk in iter(lambda: f.read(1 << 20), b''):\n"
    "        h.update(chunk)\n"
)
_TIME = "/usr/bin/time"  # GNU time: its own small child's peak RSS, not this process's


def run(argv: list[str], env: Optional[dict[str, str]] = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    report = tempfile.NamedTemporaryFile(prefix="bench-rss-", delete=False)  # noqa: SIM115
    report.close()
    timed = [_TIME, "-q", "-f", "%M", "-o", report.name, *argv] if os.path.exists(_TIME) \
        else argv
    start = time.perf_counter()
    proc = subprocess.run(timed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
    text = Path(report.name).read_text().strip()
    os.unlink(report.name)
    return elapsed, int(text.splitlines()[-1]) * 1024 if text else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.copy", description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="image size in MiB (256)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--host", default=os.environ.get("DOCKER_HOST", ""),
                        help="the Docker daemon to compare with (default: DOCKER_HOST)")
    parser.add_argument("--docker", default=shutil.which("docker") or "",
                        help="the docker CLI for the comparison")
    args = parser.parse_args(argv)
    token = secrets.token_hex(4)
    tarexport = [sys.executable, "-m", "tarexport"]
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        work = Path(tmp)
        layout, archive, name = build(work, args.size * MiB, token)
        if args.rounds and not os.path.exists(_TIME):
            print("(no /usr/bin/time: peak RSS includes this process's own)")
        size = archive.stat().st_size
        env = dict(os.environ, DOCKER_HOST=args.host) if args.host else dict(os.environ)
        docker = [args.docker, "-H", args.host] if args.host and args.docker else []
        ops: dict[str, list[str]] = {
            "cp archive": ["cp", str(archive), str(work / "cp.tar")],
            "sha256sum archive": ["sha256sum", str(archive)],
            "hashlib sha256 archive": [sys.executable, "-c", _HASH, str(archive)],
            "copy oci -> oci": [*tarexport, "copy", f"oci:{layout}", f"oci:{work / 'out'}"],
            "copy oci -> docker-archive": [*tarexport, "copy", f"oci:{layout}",
                                           f"docker-archive:{work / 'out.tar'}"],
        }
        if docker:
            ops["copy oci -> docker-daemon"] = [*tarexport, "copy", f"oci:{layout}",
                                                f"docker-daemon:{name}"]
            ops["docker load -i"] = [*docker, "load", "-q", "-i", str(archive)]
            ops["copy docker-daemon -> oci"] = [*tarexport, "copy", f"docker-daemon:{name}",
                                                f"oci:{work / 'back'}"]
            ops["docker save -o"] = [*docker, "save", "-o", str(work / "saved.tar"), name]
        results: dict[str, list[tuple[float, int]]] = {op: [] for op in ops}
        try:
            for n in range(args.rounds):
                order = list(ops) if n % 2 == 0 else list(reversed(ops))
                if docker:  # the daemon must hold the image before it is read back
                    subprocess.run([*docker, "load", "-q", "-i", str(archive)], check=True,
                                   capture_output=True)
                for op in order:
                    for leftover in ("cp.tar", "out", "out.tar", "back", "saved.tar"):
                        target = work / leftover
                        if target.is_dir():
                            shutil.rmtree(target)
                        elif target.exists():
                            target.unlink()
                    if docker and op in ("copy oci -> docker-daemon", "docker load -i"):
                        # A load of an image the daemon holds would skip the layers.
                        subprocess.run([*docker, "rmi", "-f", name], capture_output=True)
                    results[op].append(run(ops[op], env))
        finally:
            if docker:
                subprocess.run([*docker, "rmi", "-f", name], capture_output=True)
        floor = statistics.median(t for t, _ in results["cp archive"])
        print(f"image: {size / MiB:.0f} MiB archive, 4 layers; {args.rounds} rounds, medians")
        print(f"{'operation':30} {'seconds':>8} {'MiB/s':>8} {'x cp':>6} {'peak RSS':>9}")
        for op, samples in results.items():
            seconds = statistics.median(t for t, _ in samples)
            rss = max(r for _, r in samples)
            print(f"{op:30} {seconds:8.2f} {size / MiB / seconds:8.0f} {seconds / floor:6.2f} "
                  f"{rss / MiB:7.0f}MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
