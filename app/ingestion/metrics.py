"""Ingestion counters (in-process). Exposed in Prometheus text format at `GET /_metrics/ingestion`.

A plain dict of counters is enough here: one process owns the embedded engines, and the
numbers are for operators, not billing."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("app.ingestion")

_counters: Counter[tuple[str, str]] = Counter()


def incr(name: str, label: str = "", amount: int = 1) -> None:
    _counters[(name, label)] += amount


def get(name: str, label: str = "") -> int:
    return _counters[(name, label)]


def rejected(code: str, detail: str, *, path: str) -> None:
    """Every refused request is counted and logged once, with the spec's reason code."""
    incr("capture_requests_rejected_total", code)
    log.warning("capture rejected: %s", detail, extra={"code": code, "path": path})


def render() -> str:
    lines = []
    for (name, label), value in sorted(_counters.items()):
        key = "path" if name == "capture_requests_total" else "reason"
        labels = f'{{{key}="{label}"}}' if label else ""
        lines.append(f"tally_{name}{labels} {value}")
    return "\n".join(lines) + "\n"
