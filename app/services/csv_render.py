"""CSV output of the insight endpoints (spec/API.md §3.14): the JSON body flattened mechanically."""

from __future__ import annotations

import csv
import io
from typing import Any


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}.{index}" if prefix else str(index), out)
    else:
        out[prefix] = value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def render_csv(body: Any) -> str:
    """A non-array body is one row (so a paginated list is a single row, [PostHog quirk, copied])."""
    rows = body if isinstance(body, list) else [body]
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        _flatten(row, "", out)
        flat.append(out)
    header = sorted({key for row in flat for key in row})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in flat:
        writer.writerow([_cell(row.get(key)) for key in header])
    return buffer.getvalue()
