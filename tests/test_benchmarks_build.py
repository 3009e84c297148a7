"""Smoke test of ``python -m benchmarks.build`` on tiny trees: it runs and reports every row.

Nothing here asserts a time: only that each operation ran and was measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_build_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.build", "--big-size", "8MiB", "--big-files", "2",
         "--small-files", "30", "--rounds", "1", "--workdir", str(tmp_path / "work"),
         "--json", str(report_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["trees"]["big"] == {"files": 2, "bytes": 8 << 20}
    assert report["trees"]["small"]["files"] == 30
    ops = {(row["tree"], row["op"]) for row in report["rows"]}
    assert len(ops) == 10
    for row in report["rows"]:
        assert row["seconds"] > 0 and row["peak_rss"] > 0
    assert "tar | sha256sum" in proc.stdout
