"""A ClickHouse server (or cluster) over its HTTP interface.

Reads, DDL and the cancel/progress look-ups are plain POSTs on one `httpx.AsyncClient`:
aiochclient formats its `params=` into the SQL text on the client (`query.format(...)`),
which is exactly what we must never do, and it cannot send `param_<name>` values. Those
requests put the SQL in the body and everything else in the URL: `param_<name>` for each
`{name:Type}` placeholder (encoded by `encode_param`), `query_id`, `database`,
`default_format=JSONCompact`, the limits from `ExecuteSettings`, and `readonly=2` for
`execute` when the executor is read-only (DDL and inserts go without it).
`wait_end_of_query=1` makes the server buffer the (row-capped) result, so an error half-way
through a query arrives as an HTTP error instead of a truncated 200. The ClickHouse user must
be allowed to set `readonly` (its profile has `readonly` 0 or 2; with 1 every query fails
with code 164), and needs write grants for migrations and inserts.

Parameters travel in the URL, so a very large `IN` list is bounded by the server's
`http_max_uri_size` (1 MiB by default).

Inserts go through aiochclient's `insert_file` on the same session: the body is our
`JSONCompactEachRow` encoding (JSON escaping, so any string content is safe), the statement
names only catalog identifiers, and no client-side formatting happens.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import httpx
from aiochclient import ChClient, ChClientError

from app.query_engine.executor.base import (
    ClickHouseError,
    ClickHouseTimeout,
    ClickHouseUnavailable,
    ExecuteSettings,
    QueryProgress,
    QueryResult,
    check_query_id,
    encode_params,
    encode_rows,
    error_from_message,
    parse_json_compact,
    quote_identifier,
    settings_dict,
)

_OUTPUT_SETTINGS: dict[str, str | int] = {
    "default_format": "JSONCompact",
    "output_format_json_quote_64bit_integers": 0,
}
# Seconds the HTTP read may take beyond the query's own max_execution_time before we give up.
_READ_MARGIN = 10.0
_DEFAULT_READ_TIMEOUT = 300.0
_CODE_RE = re.compile(r"Code:\s*(\d+)")


class HttpExecutor:
    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        database: str,
        *,
        readonly: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        cluster: str | None = None,
    ) -> None:
        quote_identifier(database)
        if cluster is not None:
            quote_identifier(cluster)
        self.url = url.rstrip("/") + "/"
        self.database = database
        self.readonly = readonly
        self.cluster = cluster
        self._session = httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(_DEFAULT_READ_TIMEOUT, connect=5.0)
        )
        # Credentials as headers, not URL parameters, so they stay out of access logs.
        self._headers = {"X-ClickHouse-User": user}
        if password:
            self._headers["X-ClickHouse-Key"] = password
        self._inserts = ChClient(
            self._session,
            url=self.url,
            user=user,
            password=password,
            database=database,
            # As base.INSERT_SETTINGS (sent as request settings here).
            date_time_input_format="best_effort",
            input_format_json_read_objects_as_strings=1,
        )

    async def execute(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        query_id: str | None = None,
        settings: ExecuteSettings | None = None,
    ) -> QueryResult:
        limits = settings_dict(settings)
        url_params: dict[str, Any] = {**_OUTPUT_SETTINGS, **limits, "wait_end_of_query": 1}
        if query_id is not None:
            url_params["query_id"] = check_query_id(query_id)
        if self.readonly:
            # readonly=2: no writes or DDL, but per-query settings (our limits) are allowed.
            url_params["readonly"] = 2
            url_params["cancel_http_readonly_queries_on_client_close"] = 1
        timeout = _DEFAULT_READ_TIMEOUT
        if isinstance(limits.get("max_execution_time"), int) and limits["max_execution_time"]:
            timeout = float(limits["max_execution_time"]) + _READ_MARGIN
        body = await self._post(sql, params, url_params, timeout=timeout)
        return parse_json_compact(body)

    async def command(
        self, sql: str, params: dict[str, Any] | None = None, *, use_database: bool = True
    ) -> None:
        await self._post(sql, params, {"wait_end_of_query": 1}, use_database=use_database)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cols = ", ".join(quote_identifier(c) for c in columns)
        target = f"{quote_identifier(self.database)}.{quote_identifier(table)}"
        try:
            await self._inserts.insert_file(
                f"INSERT INTO {target} ({cols}) FORMAT JSONCompactEachRow", encode_rows(rows)
            )
        except ChClientError as exc:
            raise error_from_message(str(exc)) from None
        except httpx.TimeoutException as exc:
            raise ClickHouseUnavailable(f"insert timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise ClickHouseUnavailable(f"ClickHouse unreachable: {exc!r}") from exc

    async def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # A ClickHouse server merges on its own cores, and several API processes may write: no staging.
        await self.insert(table, columns, rows)

    async def recover(self) -> None:
        return None

    async def cancel(self, query_id: str) -> bool:
        qid = {"qid": check_query_id(query_id)}
        if not self.cluster:
            # Without SYNC the kill is only requested; the running request then fails with
            # QUERY_WAS_CANCELLED. The answer lists the queries it found.
            body = await self._post(
                "KILL QUERY WHERE query_id = {qid:String} ASYNC", qid, dict(_OUTPUT_SETTINGS)
            )
            return bool(parse_json_compact(body).rows)
        # On a cluster the answer of KILL … ON CLUSTER lists hosts, not queries: look first.
        if await self.progress(query_id) is None:
            return False
        await self._post(
            f"KILL QUERY ON CLUSTER {quote_identifier(self.cluster)} WHERE query_id = {{qid:String}} ASYNC",
            qid,
            dict(_OUTPUT_SETTINGS),
        )
        return True

    async def progress(self, query_id: str) -> QueryProgress | None:
        source = "system.processes"
        if self.cluster:
            # The query may run on any node behind the load balancer.
            source = f"clusterAllReplicas('{self.cluster}', system.processes)"
        result = await self.execute(
            "SELECT read_rows, read_bytes, elapsed, total_rows_approx"
            f" FROM {source} WHERE query_id = {{qid:String}} LIMIT 1",
            {"qid": check_query_id(query_id)},
        )
        if not result.rows:
            return None
        read_rows, read_bytes, elapsed, total = result.rows[0]
        return QueryProgress(query_id, int(read_rows), int(read_bytes), float(elapsed), int(total))

    async def ping(self) -> bool:
        try:
            response = await self._session.get(self.url + "ping", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        await self._session.aclose()

    async def _post(
        self,
        sql: str,
        params: dict[str, Any] | None,
        url_params: dict[str, Any],
        *,
        use_database: bool = True,
        timeout: float | None = None,
    ) -> bytes:
        query: dict[str, Any] = dict(url_params)
        if use_database:
            query["database"] = self.database
        for name, value in encode_params(params).items():
            query[f"param_{name}"] = value
        try:
            response = await self._session.post(
                self.url,
                params=query,
                content=sql.encode(),
                headers=self._headers,
                timeout=httpx.Timeout(timeout or _DEFAULT_READ_TIMEOUT, connect=5.0),
            )
        except httpx.ReadTimeout as exc:
            # The server is still working past max_execution_time + margin.
            raise ClickHouseTimeout(f"no answer from ClickHouse in time: {exc!r}", 159) from exc
        except httpx.TransportError as exc:
            raise ClickHouseUnavailable(f"ClickHouse unreachable: {exc!r}") from exc
        return _check(response)


def _check(response: httpx.Response) -> bytes:
    body = response.content
    header_code = response.headers.get("X-ClickHouse-Exception-Code")
    if response.status_code == 200 and not header_code:
        return body
    text = body.decode("utf-8", errors="replace").strip()
    code = int(header_code) if header_code and header_code.isdigit() else None
    if code is None and (match := _CODE_RE.search(text)):
        code = int(match.group(1))
    if code is None:
        # No ClickHouse exception: a proxy or load balancer answered (502/503/504, …).
        message = f"ClickHouse HTTP {response.status_code}: {text[:500]}"
        if response.status_code in (502, 503, 504):
            raise ClickHouseUnavailable(message)
        raise ClickHouseError(message)
    raise error_from_message(text or f"ClickHouse error code {code}", code)
