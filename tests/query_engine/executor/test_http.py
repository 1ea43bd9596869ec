"""HttpExecutor against recorded-looking ClickHouse HTTP answers (httpx.MockTransport). The live
check against a real server is tests/live/test_clickhouse_http.py (collected only when
APP_TEST_CLICKHOUSE_URL names a server)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from app.query_engine.executor.base import (
    ClickHouseCancelled,
    ClickHouseError,
    ClickHouseTimeout,
    ClickHouseUnavailable,
    ExecuteSettings,
)
from app.query_engine.executor.http import HttpExecutor

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "http://ch.internal:8123"


def json_compact(columns: list[tuple[str, str]], rows: list[list], rows_read: int = 1) -> bytes:
    """A body shaped like ClickHouse's JSONCompact output."""
    return json.dumps(
        {
            "meta": [{"name": n, "type": t} for n, t in columns],
            "data": rows,
            "rows": len(rows),
            "statistics": {"elapsed": 0.000512, "rows_read": rows_read, "bytes_read": 8},
        },
        indent="\t",
    ).encode()


def ch_exception(code: int, name: str, text: str, status: int = 500) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"X-ClickHouse-Exception-Code": str(code), "Content-Type": "text/plain; charset=UTF-8"},
        content=f"Code: {code}. DB::Exception: {text}. ({name}) (version 25.8.2.29 (official build))\n".encode(),
    )


class Recorder:
    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(response, Exception):
            raise response
        return response

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def executor(self, **kwargs) -> HttpExecutor:
        return HttpExecutor(URL, "tally_ro", "s3cret", "tally", transport=httpx.MockTransport(self), **kwargs)


class TestExecute:
    async def test_request_carries_params_settings_and_readonly(self):
        rec = Recorder(httpx.Response(200, content=json_compact([("v", "String"), ("n", "UInt64")], [["a'b", 18446744073709551615]])))
        executor = rec.executor()
        hostile = "a'b\\c\n{p1:String}\t😀"
        sql = "SELECT {p0:String} AS v, {p1:UInt64} AS n FROM events WHERE team_id = {p2:Int64}"
        result = await executor.execute(
            sql,
            {"p0": hostile, "p1": 5, "p2": 7},
            query_id="insight-1:abc",
            settings=ExecuteSettings(max_execution_time=30, max_memory_usage=10**9, max_result_rows=1000),
        )
        await executor.close()
        req = rec.last
        assert req.method == "POST"
        assert req.content.decode() == sql  # SQL untouched, values only in parameters
        q = dict(req.url.params)
        assert q["param_p0"] == "a'b\\\\c\\n{p1:String}\\t😀"
        assert q["param_p1"] == "5" and q["param_p2"] == "7"
        assert q["query_id"] == "insight-1:abc"
        assert q["readonly"] == "2"
        assert q["max_execution_time"] == "30"
        assert q["max_memory_usage"] == "1000000000"
        assert q["max_result_rows"] == "1000"
        assert q["database"] == "tally"
        assert q["default_format"] == "JSONCompact"
        assert q["output_format_json_quote_64bit_integers"] == "0"
        assert req.headers["X-ClickHouse-User"] == "tally_ro"
        assert req.headers["X-ClickHouse-Key"] == "s3cret"
        assert "s3cret" not in str(req.url)
        assert result.columns == ["v", "n"]
        assert result.rows == [("a'b", 18446744073709551615)]

    async def test_composite_and_typed_params(self):
        rec = Recorder(httpx.Response(200, content=json_compact([("x", "UInt8")], [[1]])))
        executor = rec.executor()
        await executor.execute(
            "SELECT 1",
            {
                "a": ["it's", "x\\y"],
                "n": None,
                "d": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                "u": uuid.UUID(int=1),
                "b": False,
            },
        )
        await executor.close()
        q = dict(rec.last.url.params)
        assert q["param_a"] == "['it\\'s', 'x\\\\y']"
        assert q["param_n"] == "\\N"
        assert q["param_d"] == "2024-01-02 03:04:05.000000"
        assert q["param_u"] == "00000000-0000-0000-0000-000000000001"
        assert q["param_b"] == "0"

    async def test_writable_executor_sends_no_readonly(self):
        rec = Recorder(httpx.Response(200, content=json_compact([("x", "UInt8")], [[1]])))
        executor = rec.executor(readonly=False)
        await executor.execute("SELECT 1")
        await executor.close()
        assert "readonly" not in rec.last.url.params
        assert "query_id" not in rec.last.url.params

    async def test_bad_query_id_is_refused_before_sending(self):
        rec = Recorder(httpx.Response(200))
        executor = rec.executor()
        with pytest.raises(ValueError):
            await executor.execute("SELECT 1", query_id="x&readonly=0")
        await executor.close()
        assert rec.requests == []


class TestErrors:
    @pytest.mark.parametrize(
        ("response", "cls", "code"),
        [
            (ch_exception(159, "TIMEOUT_EXCEEDED", "Timeout exceeded: elapsed 1.000921 sec., maximum: 1"), ClickHouseTimeout, 159),
            (ch_exception(394, "QUERY_WAS_CANCELLED", "Query was cancelled"), ClickHouseCancelled, 394),
            (ch_exception(62, "SYNTAX_ERROR", "Syntax error: failed at position 1 ('SELEC')", 400), ClickHouseError, 62),
            (ch_exception(60, "UNKNOWN_TABLE", "Unknown table expression identifier 'nope'", 404), ClickHouseError, 60),
            # An older server or proxy that drops the header: the code is read from the body.
            (httpx.Response(500, content=b"Code: 159. DB::Exception: Timeout exceeded: elapsed 2 sec. (TIMEOUT_EXCEEDED)"), ClickHouseTimeout, 159),
            # Exception after the 200 status line was sent.
            (httpx.Response(200, headers={"X-ClickHouse-Exception-Code": "241"}, content=b"Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)"), ClickHouseError, 241),
            (httpx.Response(502, content=b"<html>Bad Gateway</html>"), ClickHouseUnavailable, None),
        ],
    )
    async def test_mapping(self, response, cls, code):
        executor = Recorder(response).executor()
        with pytest.raises(cls) as info:
            await executor.execute("SELECT 1")
        await executor.close()
        assert type(info.value) is cls
        assert info.value.code == code

    async def test_connection_error_is_unavailable(self):
        executor = Recorder(httpx.ConnectError("Connection refused")).executor()
        with pytest.raises(ClickHouseUnavailable):
            await executor.execute("SELECT 1")
        with pytest.raises(ClickHouseUnavailable):
            await executor.command("SELECT 1")
        with pytest.raises(ClickHouseUnavailable):
            await executor.insert("events", ["event"], [("x",)])
        assert await executor.ping() is False
        await executor.close()

    async def test_read_timeout_is_timeout(self):
        executor = Recorder(httpx.ReadTimeout("timed out")).executor()
        with pytest.raises(ClickHouseTimeout):
            await executor.execute("SELECT 1", settings=ExecuteSettings(max_execution_time=1))
        await executor.close()


class TestCommandAndInsert:
    async def test_command_is_not_readonly(self):
        rec = Recorder(httpx.Response(200, content=b""))
        executor = rec.executor()
        await executor.command("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory")
        await executor.command("CREATE DATABASE IF NOT EXISTS `tally`", use_database=False)
        await executor.close()
        first, second = rec.requests
        assert "readonly" not in first.url.params
        assert first.url.params["database"] == "tally"
        assert "database" not in second.url.params

    async def test_insert_sends_json_rows(self):
        rec = Recorder(httpx.Response(200, content=b""))
        executor = rec.executor()
        rows = [("it's \"x\"\n\\", 1, datetime(2024, 1, 2, tzinfo=timezone.utc)), ("😀", 2, datetime(2024, 1, 3, tzinfo=timezone.utc))]
        await executor.insert("events", ["event", "team_id", "timestamp"], rows)
        await executor.close()
        req = rec.last
        q = dict(req.url.params)
        assert q["query"] == "INSERT INTO `tally`.`events` (`event`, `team_id`, `timestamp`) FORMAT JSONCompactEachRow"
        assert q["date_time_input_format"] == "best_effort"
        assert "readonly" not in q
        assert req.headers["X-ClickHouse-User"] == "tally_ro"
        decoded = json.loads(b"[" + req.content + b"]")
        assert decoded == [["it's \"x\"\n\\", 1, "2024-01-02T00:00:00+00:00"], ["😀", 2, "2024-01-03T00:00:00+00:00"]]

    async def test_insert_error_is_mapped(self):
        rec = Recorder(ch_exception(16, "NO_SUCH_COLUMN_IN_TABLE", "No such column nope in table tally.events", 400))
        executor = rec.executor()
        with pytest.raises(ClickHouseError) as info:
            await executor.insert("events", ["nope"], [("x",)])
        await executor.close()
        assert info.value.code == 16


class TestCancelProgressPing:
    async def test_cancel_kills_by_parameter(self):
        found = json_compact(
            [("kill_status", "String"), ("query_id", "String"), ("user", "String"), ("query", "String")],
            [["waiting", "q-1", "tally_ro", "SELECT 1"]],
        )
        rec = Recorder(httpx.Response(200, content=found), httpx.Response(200, content=b""))
        executor = rec.executor()
        assert await executor.cancel("q-1") is True
        assert await executor.cancel("q-2") is False
        await executor.close()
        req = rec.requests[0]
        assert req.content.decode() == "KILL QUERY WHERE query_id = {qid:String} ASYNC"
        assert req.url.params["param_qid"] == "q-1"
        assert "readonly" not in req.url.params

    async def test_progress(self):
        body = json_compact(
            [("read_rows", "UInt64"), ("read_bytes", "UInt64"), ("elapsed", "Float64"), ("total_rows_approx", "UInt64")],
            [[1000, 8000, 0.25, 5000]],
        )
        rec = Recorder(httpx.Response(200, content=body), httpx.Response(200, content=json_compact([], [])))
        executor = rec.executor()
        progress = await executor.progress("q-1")
        assert (progress.rows_read, progress.bytes_read, progress.elapsed, progress.total_rows_approx) == (1000, 8000, 0.25, 5000)
        assert rec.last.url.params["param_qid"] == "q-1"
        assert await executor.progress("q-2") is None
        await executor.close()

    async def test_cluster_progress_reads_every_replica(self):
        rec = Recorder(httpx.Response(200, content=json_compact([], [])))
        executor = rec.executor(cluster="tally_cluster")
        assert await executor.progress("q-1") is None
        await executor.close()
        assert "clusterAllReplicas('tally_cluster', system.processes)" in rec.last.content.decode()

    async def test_ping(self):
        rec = Recorder(httpx.Response(200, content=b"Ok.\n"))
        executor = rec.executor()
        assert await executor.ping() is True
        await executor.close()
        assert rec.last.url.path == "/ping"
