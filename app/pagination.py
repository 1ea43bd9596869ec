"""Plain list pagination (spec/API.md §1.7): lenient `limit`/`offset`, absolute next/previous links."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from fastapi import Request

DEFAULT_LIMIT = 100
# No maximum (§1.7), but PostgreSQL's LIMIT/OFFSET are bigints: larger values mean "all" / "past the end".
_MAX = 2**63 - 1


def replace_query_params(url: str, **changes: object) -> str:
    """Set (or, with None, remove) query parameters; like PostHog (DRF), the query string is
    re-encoded with its keys sorted."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = [str(value)]
    return urlunsplit(parts._replace(query=urlencode(sorted(query.items()), doseq=True)))


def _positive_int(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    @classmethod
    def from_request(cls, request: Request, default_limit: int = DEFAULT_LIMIT) -> "Page":
        """Bad values fall back silently: no 400 is ever produced by these params. The operator's
        `list_max_limit` setting (unset by default: §1.7 has no maximum) clamps `limit` silently too."""
        limit = _positive_int(request.query_params.get("limit")) or default_limit
        cap = getattr(getattr(request.app.state, "settings", None), "list_max_limit", None)
        if cap is not None:
            limit = min(limit, cap)
        raw_offset = request.query_params.get("offset")
        try:
            offset = max(0, int(raw_offset)) if raw_offset is not None else 0
        except ValueError:
            offset = 0
        return cls(limit=min(limit, _MAX), offset=min(offset, _MAX))

    def links(self, request: Request, count: int) -> tuple[str | None, str | None]:
        url = str(request.url)
        next_url = None
        if self.offset + self.limit < count:
            next_url = replace_query_params(url, limit=self.limit, offset=self.offset + self.limit)
        previous_url = None
        if self.offset > 0:
            if self.offset - self.limit <= 0:
                previous_url = replace_query_params(url, limit=self.limit, offset=None)
            else:
                previous_url = replace_query_params(url, limit=self.limit, offset=self.offset - self.limit)
        return next_url, previous_url

    def envelope(self, request: Request, count: int, results: list) -> dict:
        next_url, previous_url = self.links(request, count)
        return {"count": count, "next": next_url, "previous": previous_url, "results": results}
