"""``python -m benchmarks.registry``: push and pull over a loopback registry, beside skopeo.

Builds an image of random (incompressible) layers in an OCI layout with tarexport's own
code, starts a private ``docker-registry`` (distribution) on a free loopback port, and then
measures, in the same run and each in a child process:

- ``tarexport push`` of the image (gzip, the default) and ``skopeo copy oci:... docker://...``
  (which gzips too) — each into a fresh registry, so neither finds blobs already there;
- the same push again (everything is in the registry: only ``HEAD`` requests);
- ``tarexport push --compression none``;
- ``tarexport pull`` into a new OCI layout (download, verify, decompress, verify again) and
  ``skopeo copy docker://... oci:...`` (download and verify, kept compressed).

Wall time, the children's CPU time and MiB/s of the image's uncompressed size are printed as
a table (``--json FILE`` writes them too). Nothing is asserted: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
GiB = 1 << 30

__all__ = ["main"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        root.mkdir(parents=True)
        (root / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: {self.host}\n  secret: {secrets.token_hex(8)}\n")
        self.proc = subprocess.Popen(
            [shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve",
             str(root / "config.yml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def build_image(layout_dir: Path, size: int, layers: int) -> str:
    """An OCI layout holding ``big/app:1``: ``layers`` layers of random data, ``size`` in all."""
    sys.path.insert(0, str(ROOT))
    from tarexport import OCILayoutStore
    from tarexport.digest import Digest

    layout = OCILayoutStore(str(layout_dir), create=True)
    paths = []
    diff_ids = []
    per_layer = size // layers
    for n in range(layers):
        path = layout_dir.parent / f"layer{n}.tar"
        with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w",
                                                 format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data/{n}.bin")
            info.size = per_layer
            tar.addfile(info, _RandomReader(per_layer))
        with open(path, "rb") as f:
            import hashlib

            digest = hashlib.file_digest(f, "sha256").hexdigest()
        diff_ids.append(str(Digest("sha256", digest)))
        paths.append(str(path))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    layout.add_image(config, paths, references=["big/app:1"])
    for path in paths:
        os.unlink(path)
    return "big/app:1"


class _RandomReader(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, 4 * MiB)
        buffer[:n] = os.urandom(n)
        self.left -= n
        return n


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(size: int, layers: int, rounds: int, workdir: Path) -> list[dict[str, Any]]:
    layout = workdir / "layout"
    name = build_image(layout, size, layers)
    tarexport = [sys.executable, "-m", "tarexport"]
    skopeo = shutil.which("skopeo")
    results: dict[str, list[tuple[float, float]]] = {}

    def measure(key: str, argv: list[str], env: dict[str, str]) -> None:
        results.setdefault(key, []).append(_timed(argv, env))

    for round_ in range(rounds):
        env = dict(os.environ, XDG_CACHE_HOME=str(workdir / f"cache{round_}"),
                   TAREXPORT_STORE=str(workdir / f"store{round_}"),
                   HOME=str(workdir / f"home{round_}"), PYTHONPATH=str(ROOT))
        Path(env["HOME"]).mkdir()
        ours = _Registry(workdir / f"reg-ours{round_}")
        theirs = _Registry(workdir / f"reg-skopeo{round_}")
        try:
            dest = f"{ours.host}/bench/app:1"
            push = [*tarexport, "push", "-q", "--from", f"oci:{layout}", name, dest]
            measure("push gzip: tarexport push", push, env)
            measure("push again: tarexport push", push, env)
            measure("push none: tarexport push --compression none",
                    [*tarexport, "push", "-q", "--compression", "none", "--from",
                     f"oci:{layout}", name, f"{ours.host}/bench/plain:1"], env)
            pulled = workdir / f"pulled{round_}"
            measure("pull: tarexport pull --into oci:DIR",
                    [*tarexport, "pull", "-q", "--into", f"oci:{pulled}", dest], env)
            shutil.rmtree(pulled, ignore_errors=True)
            if skopeo:
                sk_dest = f"docker://{theirs.host}/bench/app:1"
                copy = [skopeo, "copy", "-q", "--dest-tls-verify=false",
                        f"oci:{layout}:{name}", sk_dest]
                measure("push gzip: skopeo copy oci: docker://", copy, env)
                measure("push again: skopeo copy oci: docker://", copy, env)
                sk_pulled = workdir / f"sk-pulled{round_}"
                measure("pull: skopeo copy docker:// oci:",
                        [skopeo, "copy", "-q", "--src-tls-verify=false", sk_dest,
                         f"oci:{sk_pulled}:app"], env)
                shutil.rmtree(sk_pulled, ignore_errors=True)
        finally:
            ours.stop()
            theirs.stop()
    rows = []
    for key, samples in results.items():
        wall = min(s[0] for s in samples)
        cpu = min(s[1] for s in samples)
        rows.append({"operation": key, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "MiB_per_s": round(size / MiB / wall, 1), "runs": len(samples)})
    return rows


def _report(rows: list[dict[str, Any]], size: int) -> str:
    lines = [f"image: {size / MiB:.0f} MiB of random data (uncompressed); best of the runs",
             f"{'operation':50} {'wall s':>8} {'cpu s':>8} {'MiB/s':>8}"]
    by_key = {row["operation"]: row for row in rows}
    for row in rows:
        lines.append(f"{row['operation']:50} {row['wall_s']:8.2f} {row['cpu_s']:8.2f} "
                     f"{row['MiB_per_s']:8.1f}")
    for kind in ("push gzip", "push again", "pull"):
        ours = [r for k, r in by_key.items() if k.startswith(kind + ": tarexport")]
        theirs = [r for k, r in by_key.items() if k.startswith(kind + ": skopeo")]
        if ours and theirs:
            lines.append(f"{kind}: tarexport / skopeo wall time = "
                         f"{ours[0]['wall_s'] / theirs[0]['wall_s']:.2f}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.registry",
                                     description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--size", type=int, default=1024, help="image size in MiB (1024)")
    parser.add_argument("--layers", type=int, default=4, help="layers (4)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the best is kept (1)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tarexport-bench-registry-") as tmp:
        rows = run(args.size * MiB, args.layers, args.rounds, Path(tmp))
    print(_report(rows, args.size * MiB))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
