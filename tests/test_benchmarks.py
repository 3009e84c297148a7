"""Smoke tests of ``python -m benchmarks.save``: it runs end to end on tiny images.

Nothing here asserts a time or a speed: only that every operation ran, that the measuring
machinery measures what it says (a worker's ``ru_maxrss`` is its own peak, saves write no
temporary files), and that the reports are produced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from peers import DockerCLI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Op  # noqa: E402
from benchmarks.save import parse_size  # noqa: E402

# A safety net against a wedged run, not a performance assertion.
RUN_TIMEOUT = 900

STORES = ("memory", "oci", "archive")
SINKS = ("file", "null", "pipe")


def expected_keys(image: str, docker: bool) -> set[str]:
    kinds = ("cp", "cp-sync", "sha256", "cat", "copyfileobj", "layer-copy")
    keys = {f"{image}/{kind}" for kind in kinds}
    keys |= {
        f"{image}/save/{store}/{sink}/{verify}"
        for store in STORES
        for sink in SINKS
        for verify in ("verify", "noverify")
    }
    keys |= {f"{image}/load/file", f"{image}/load/pipe", f"{image}/load/file/nosync"}
    if docker:
        keys |= {f"{image}/docker-save", f"{image}/docker-load"}
    return keys


def run_quick(workdir: Path, *extra: str) -> dict[str, Any]:
    """Run the benchmark with ``--quick``; its JSON, Markdown, stdout and work dir."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_HOST", "TAREXPORT_BENCH_DOCKER_HOST")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.save", "--quick", "--workdir", str(workdir),
         "--json", str(workdir / "results.json"), "--markdown", str(workdir / "report.md"),
         *extra],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, f"benchmark failed:\n{proc.stderr[-4000:]}"
    return {
        "json": json.loads((workdir / "results.json").read_text()),
        "markdown": (workdir / "report.md").read_text(),
        "stdout": proc.stdout,
        "workdir": workdir,
    }


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_quick(tmp_path_factory.mktemp("bench"), "--no-docker")


def rows_by_key(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in result["json"]["rows"]}


@pytest.mark.parametrize("image", ["big", "small"])
def test_every_operation_ran(quick: dict[str, Any], image: str) -> None:
    rows = rows_by_key(quick)
    measured = {key for key in rows if key.startswith(f"{image}/")}
    assert measured == expected_keys(image, docker=False)
    for key in measured:
        row = rows[key]
        assert row["rounds"] == 1, key
        assert row["bytes"] > 0, key
        assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"], key


def test_saves_use_no_temporary_disk(quick: dict[str, Any]) -> None:
    saves = [row for row in quick["json"]["rows"] if row["kind"] == "save"]
    assert len(saves) == 2 * len(STORES) * len(SINKS) * 2
    for row in saves:
        assert row["temp_peak_bytes"] == 0, row["key"]
        assert row["temp_left_bytes"] == 0, row["key"]


def test_loads_leave_no_temporary_files(quick: dict[str, Any]) -> None:
    loads = [row for row in quick["json"]["rows"] if row["kind"] == "load"]
    assert loads
    for row in loads:
        assert row["temp_left_bytes"] == 0, row["key"]


def test_every_store_writes_the_same_archive(quick: dict[str, Any]) -> None:
    checks = quick["json"]["checks"]
    assert not [line for line in checks if line.startswith("PROBLEM")], checks
    assert any("byte-identical" in line for line in checks), checks


def test_peak_rss_is_the_workers_own(quick: dict[str, Any]) -> None:
    """``ru_maxrss`` from ``os.wait4`` agrees with the worker's own ``VmHWM``.

    Were the driver's memory folded into its children's figures, the two would differ.
    """
    compared = 0
    for row in quick["json"]["rows"] + quick["json"]["scale_rows"]:
        for item in row["samples"]:
            if "vm_hwm_bytes" in item:
                assert abs(item["maxrss_bytes"] - item["vm_hwm_bytes"]) <= 2 << 20, row["key"]
                compared += 1
    assert compared >= 2 * (len(STORES) * len(SINKS) * 2 + 2)


def test_scaling_run_compares_both_sizes(quick: dict[str, Any]) -> None:
    scaling = quick["json"]["scaling"]
    assert len(scaling) == 4
    for item in scaling:
        assert item["scaled_bytes"] > 3 * item["base_bytes"]
        assert item["base_rss"] > 0 and item["scaled_rss"] > 0


def test_reports_are_written(quick: dict[str, Any]) -> None:
    machine = quick["json"]["machine"]
    assert machine["cores"] >= 1 and machine["memory_bytes"] > 0
    assert "docker: skipped (--no-docker)" in quick["stdout"]
    assert "tarexport save memory -> file, verify" in quick["stdout"]
    for heading in ("### Machine", "### Targets", "### Memory scaling", "| operation |"):
        assert heading in quick["markdown"], heading
    assert [t["what"] for t in quick["json"]["targets"]]


def test_report_renders_again_from_json(quick: dict[str, Any]) -> None:
    """``--report`` rebuilds the same tables from the JSON alone, measuring nothing."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.save", "--report",
         str(quick["workdir"] / "results.json"), "--markdown", "-"],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=RUN_TIMEOUT, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == quick["markdown"]
    assert proc.stderr == quick["stdout"]  # the text table goes to stderr when stdout is taken


def test_scratch_directory_removed(quick: dict[str, Any]) -> None:
    leftovers = [p.name for p in quick["workdir"].iterdir() if p.name.startswith("txbench.")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("1GiB", 1 << 30), ("512MiB", 512 << 20), ("4G", 4 << 30), ("65536", 65536), ("8 KiB", 8192)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1 parsec", "-1GiB", "1KiB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="size"):
        parse_size(text)


def test_operation_keys_are_distinct() -> None:
    ops = [Op("big", "tarexport", "save", store, sink, verify)
           for store in STORES for sink in SINKS for verify in (False, True)]
    assert len({op.key for op in ops}) == len(ops)
    assert len({op.label for op in ops}) == len(ops)


def test_against_docker(docker_cli: DockerCLI, tmp_path: Path) -> None:
    """With a daemon, the docker rows run, and ``docker save`` writes tarexport's bytes."""
    before = set(docker_cli.image_ids())
    result = run_quick(tmp_path, "--docker-host", docker_cli.host, "--no-scaling")
    rows = rows_by_key(result)
    for image in ("big", "small"):
        assert {key for key in rows if key.startswith(f"{image}/")} == expected_keys(image, True)
    identity = [line for line in result["json"]["checks"] if "docker save -o" in line]
    assert len(identity) == 2
    assert all("the same bytes as tarexport" in line for line in identity), identity
    assert set(docker_cli.image_ids()) == before  # the benchmark removed what it loaded
