"""Smoke test of ``python -m benchmarks.compare``: it runs end to end on tiny images.

No time or speed is asserted: only that every table and row is there, with its conditions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 600  # a safety net against a wedged run, not a performance assertion


def test_compare_quick_runs_every_table(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    env = {k: v for k, v in os.environ.items() if k != "TAREXPORT_TEST_DAEMONS"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--images", "500x100k",
         "--startup-runs", "2", "--workdir", str(tmp_path), "--json", str(out)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        timeout=RUN_TIMEOUT, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    titles = [table["title"] for table in doc["tables"]]
    assert titles[0] == "start-up"
    assert any("other core free" in t for t in titles)
    assert any("other core busy" in t for t in titles)
    startup = {row["operation"] for row in doc["tables"][0]["rows"]}
    assert {"python -c pass", "python -c 'import tarexport'", "tarexport --version"} <= startup
    image_rows = {row["operation"] for row in doc["tables"][1]["rows"]}
    assert {"hashlib.sha256 pass", "save oci -> file, verify", "save oci -> file, trust_ingested",
            "load file -> new oci layout", "cp archive -> new file"} <= image_rows
    for table in doc["tables"]:
        assert table["load"]["loadavg_start"] and table["load"]["busy_cores"] >= 0
    assert "importtime" in " ".join(doc["notes"])
    assert list(tmp_path.glob("txcompare.*")) == []  # the scratch directory is removed
