"""One measured operation, run as ``python -m benchmarks.worker SPEC_JSON``.

The driver starts a fresh interpreter for every operation so that each peak RSS is that
operation's alone. The worker times only the operation itself (opening the store included,
interpreter start-up and imports excluded) and writes a JSON result to ``spec["result"]``.

Operations (``spec["op"]``):

- ``noop``: ``import tarexport``, then stop (the RSS floor of a save);
- ``build``: make the benchmark images (see :mod:`benchmarks.inputs`);
- ``save``: open a store, plan and write one image to a file, ``/dev/null`` or a pipe;
- ``load``: load an archive, from a file or a pipe, into a new OCI image layout;
- ``sha256``: hash a file with ``hashlib`` (a floor for verified copies);
- ``copyfileobj``: copy a file with ``shutil.copyfileobj`` (Python's plain copy loop).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

__all__ = ["main"]

_BUFFER = 1 << 20


def memory_status() -> dict[str, int]:
    """``VmHWM`` (peak) and ``VmRSS`` of this process in bytes, from ``/proc/self/status``."""
    wanted = {"VmHWM": "vm_hwm_bytes", "VmRSS": "vm_rss_bytes", "RssAnon": "rss_anon_bytes"}
    found: dict[str, int] = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in wanted:
                    found[wanted[key]] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


def _open_store(spec: dict[str, Any]) -> Any:
    kind = spec["store"]
    image = spec["image"]
    if kind == "memory":
        from tarexport import MemoryStore

        store = MemoryStore()
        config = Path(image["config_path"]).read_bytes()
        store.add_image(config, image["layer_paths"], references=[image["reference"]])
        return store
    if kind == "oci":
        from tarexport.stores.oci_layout import OCILayoutStore

        return OCILayoutStore(image["oci_dir"])
    if kind == "archive":
        from tarexport.stores.docker_archive import DockerArchiveStore

        return DockerArchiveStore(image["archive_path"])
    if kind == "root":
        from tarexport.stores.docker_root import DockerRootStore

        return DockerRootStore(spec["data_root"])
    raise SystemExit(f"unknown store {kind!r}")


def _open_sink(spec: dict[str, Any]) -> BinaryIO:
    sink = spec["sink"]
    if sink == "file":
        return open(spec["out"], "wb")
    if sink == "null":
        return open(os.devnull, "wb")
    if sink == "pipe":
        return open(int(spec["fd"]), "wb", closefd=True)
    raise SystemExit(f"unknown sink {sink!r}")


def op_save(spec: dict[str, Any]) -> dict[str, Any]:
    from tarexport import Saver

    from .inputs import make_profile

    profile = make_profile(spec["profile"], spec["owner_name"])
    started = time.perf_counter()
    store = _open_store(spec)
    opened = time.perf_counter()
    saver = Saver(store, store, store, profile=profile, verify=bool(spec["verify"]),
                  trust_ingested=bool(spec.get("trust_ingested", False)))
    plan = saver.plan([spec["image"]["reference"]])
    planned = time.perf_counter()
    with _open_sink(spec) as out:
        plan.write(out)
    finished = time.perf_counter()
    result: dict[str, Any] = {
        "op_s": finished - started,
        "open_s": opened - started,
        "plan_s": planned - opened,
        "write_s": finished - planned,
        "bytes": plan.total_size,
    }
    if spec.get("digest") and spec["sink"] == "file":
        result["sha256"] = _sha256_file(spec["out"])  # after the clock stopped
        result["out_size"] = os.stat(spec["out"]).st_size
    return result


def op_load(spec: dict[str, Any]) -> dict[str, Any]:
    from tarexport.load import load
    from tarexport.stores.oci_layout import OCILayoutStore

    source = int(spec["fd"]) if spec["source"] == "pipe" else spec["archive"]
    started = time.perf_counter()
    with open(source, "rb") as stream:
        layout = OCILayoutStore(spec["into"], create=True, fsync=spec.get("fsync", True))
        load(stream, into=layout)
    finished = time.perf_counter()
    return {"op_s": finished - started, "bytes": int(spec["bytes"])}


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_BUFFER)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while True:
            n = source.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def op_sha256(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    _sha256_file(spec["path"])
    return {"op_s": time.perf_counter() - started, "bytes": os.stat(spec["path"]).st_size}


def op_copyfileobj(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    with open(spec["path"], "rb") as source, open(spec["out"], "wb") as out:
        shutil.copyfileobj(source, out)
    return {"op_s": time.perf_counter() - started, "bytes": os.stat(spec["path"]).st_size}


def op_layer_copy(spec: dict[str, Any]) -> dict[str, Any]:
    """The layer files copied by the kernel to where the archive holds them, and nothing else.

    This is the floor of an unverified save: the same kernel copies, to the same offsets. A
    layer's bytes follow its 512-byte tar header, so source and destination offsets differ
    modulo the page size, which the kernel copies more slowly than ``cp``'s whole file.
    """
    started = time.perf_counter()
    total = 0
    out = os.open(spec["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for path, offset, length in spec["layers"]:
            source = os.open(path, os.O_RDONLY)
            try:
                done = 0
                while done < length:
                    n = os.copy_file_range(source, out, length - done, done, offset + done)
                    if n == 0:
                        raise SystemExit(f"{path}: copy_file_range made no progress")
                    done += n
            finally:
                os.close(source)
            total += length
    finally:
        os.close(out)
    return {"op_s": time.perf_counter() - started, "bytes": total}


def op_noop(spec: dict[str, Any]) -> dict[str, Any]:
    return {"op_s": 0.0, "bytes": 0}  # the imports happened in _import_for


def op_build(spec: dict[str, Any]) -> dict[str, Any]:
    from .inputs import build_image, write_inputs

    started = time.perf_counter()
    images = [
        build_image(
            item["key"],
            Path(item["dir"]),
            total_bytes=int(item.get("total_bytes", 0)),
            small_files=int(item.get("small_files", 0)),
            reference=item["reference"],
            profile_name=spec["profile"],
            owner_name=spec["owner_name"],
            oci=bool(item.get("oci", True)),
            archive=bool(item.get("archive", True)),
            layers=int(item.get("layers", 4)),
        )
        for item in spec["images"]
    ]
    write_inputs(Path(spec["inputs"]), images)
    return {"op_s": time.perf_counter() - started, "bytes": sum(i.layer_bytes for i in images)}


OPERATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "noop": op_noop,
    "build": op_build,
    "save": op_save,
    "load": op_load,
    "sha256": op_sha256,
    "copyfileobj": op_copyfileobj,
    "layer-copy": op_layer_copy,
}


_STORE_MODULES = {
    "memory": "tarexport.stores.memory",
    "oci": "tarexport.stores.oci_layout",
    "archive": "tarexport.stores.docker_archive",
    "root": "tarexport.stores.docker_root",
}


def _import_for(spec: dict[str, Any]) -> None:
    """Import what the operation needs before the "before" RSS is read."""
    import importlib

    op = spec["op"]
    if op == "noop":
        importlib.import_module("tarexport")
    elif op == "save":
        importlib.import_module("tarexport.save")
        importlib.import_module(_STORE_MODULES[spec["store"]])
    elif op == "load":
        importlib.import_module("tarexport.load")
        importlib.import_module("tarexport.stores.oci_layout")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.worker SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    _import_for(spec)
    before = memory_status()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = OPERATIONS[spec["op"]](spec)
    after = resource.getrusage(resource.RUSAGE_SELF)
    # All threads of this process, from just before the operation to just after it.
    result["op_cpu_s"] = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    result.update(memory_status())
    result["vm_hwm_ready_bytes"] = before.get("vm_hwm_bytes", 0)
    result["self_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
