"""Process tuning a served app applies once its startup is done (app/main.py)."""

from __future__ import annotations

import gc
import sys

from app.main import GC_YOUNG_THRESHOLD, GIL_SWITCH_INTERVAL_SECONDS, tune_interpreter


def test_tune_interpreter_freezes_startup_objects_and_sets_gc_and_gil_intervals():
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_interpreter()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert abs(sys.getswitchinterval() - GIL_SWITCH_INTERVAL_SECONDS) < 1e-6
        assert GIL_SWITCH_INTERVAL_SECONDS < 0.005  # shorter than CPython's default
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
