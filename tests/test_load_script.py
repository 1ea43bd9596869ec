"""The load script (benchmarks/load.py) in its smoke size: a few seconds, 100k events, one small
level. It must finish by itself and report zero errors and zero lost events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_run_reports_no_errors_and_no_lost_events():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--duration", "3", "--events", "100000", "--levels", "10",
         "--json", "--no-record"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    (level,) = summary["levels"]
    assert level["errors"] == 0, level["error_samples"]
    assert all(kind["n"] > 0 for kind in level["kinds"].values()), level["kinds"]  # every kind ran
    assert summary["acknowledged_events"] > 0
    assert summary["lost_events"] == 0 and summary["stored_events"] == summary["acknowledged_events"]
    assert level["rss_peak_mib"] > 0


def test_bounded_arguments():
    out = subprocess.run([sys.executable, "-m", "benchmarks.load", "--duration", "100000"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--duration" in out.stderr
