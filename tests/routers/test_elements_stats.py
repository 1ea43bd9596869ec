"""GET /elements/stats/ (spec/API.md §2.8) over events in the real chDB."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from app import clock
from app.clickhouse.ddl import GROUPS_COLUMNS
from tests.routers.test_elements_data import BUY, LOGIN, SIGNUP, insert, row

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=timezone.utc)
HOUR_AGO = NOW - timedelta(hours=1)


@pytest.fixture
def frozen():
    clock.freeze(NOW)
    yield NOW
    clock.freeze(None)


def url(env, **params) -> str:
    return f"/api/environments/{env.id}/elements/stats/"


async def stats(client, env, params=None, expect=200):
    r = await client.get(f"/api/environments/{env.id}/elements/stats/", params=params or {}, headers=env.headers)
    assert r.status_code == expect, r.text
    return r.json()


async def seed(backends, env, **kw):
    """3 × SIGNUP and 2 × BUY autocaptures, 1 BUY rageclick, 1 LOGIN dead click, all an hour ago."""
    rows = [row(env.id, "$autocapture", SIGNUP, HOUR_AGO, **kw) for _ in range(3)]
    rows += [row(env.id, "$autocapture", BUY, HOUR_AGO, **kw) for _ in range(2)]
    rows += [row(env.id, "$rageclick", BUY, HOUR_AGO, **kw), row(env.id, "$dead_click", LOGIN, HOUR_AGO, **kw)]
    rows += [row(env.id, "$pageview", "", HOUR_AGO), row(env.id, "custom", LOGIN, HOUR_AGO)]
    await insert(backends.clickhouse, rows)


def summary(body) -> list[tuple[int, str, str]]:
    return [(r["count"], r["type"], r["elements"][0]["tag_name"]) for r in body["results"]]


class TestGrouping:
    async def test_counts_by_chain_and_type(self, client, env, backends, frozen):
        await seed(backends, env)
        body = await stats(client, env)
        assert sorted(summary(body)[2:]) == [(1, "$dead_click", "a"), (1, "$rageclick", "button")]  # tie
        assert summary(body)[:2] == [(3, "$autocapture", "a"), (2, "$autocapture", "button")]
        assert body["next"] is None and body["previous"] is None

    async def test_hash_and_element_shape(self, client, env, backends, frozen):
        await seed(backends, env)
        results = (await stats(client, env))["results"]
        by_type = {(r["type"], r["elements"][0]["tag_name"]): r for r in results}
        buy_auto, buy_rage = by_type[("$autocapture", "button")], by_type[("$rageclick", "button")]
        assert buy_auto["hash"] == buy_rage["hash"] != by_type[("$autocapture", "a")]["hash"]
        assert all(re.fullmatch(r"[0-9a-f]+", r["hash"]) for r in results)
        hashed = await backends.clickhouse.execute("SELECT cityHash64({c:String})", {"c": BUY})
        assert buy_auto["hash"] == format(int(hashed.rows[0][0]), "x")
        first = buy_auto["elements"][0]
        assert list(first) == ["text", "tag_name", "attr_class", "href", "attr_id", "nth_child", "nth_of_type",
                               "attributes", "order"]
        assert first["attr_class"] == ["buy", "hover:bg-red"] and first["text"] == 'Buy \\"now\\"'

    async def test_headers_and_legacy_param(self, client, env, backends, frozen):
        r = await client.get(url(env), params={"paginate_response": "false"}, headers=env.headers)
        assert r.status_code == 200 and r.json() == {"results": [], "next": None, "previous": None}
        assert r.headers["cache-control"] == "public, max-age=30"
        assert r.headers["vary"] == "Accept, Accept-Encoding, Query-String"

    async def test_other_environment_is_invisible(self, client, env, other_env, backends, frozen):
        await seed(backends, other_env)
        assert (await stats(client, env))["results"] == []
        assert len((await stats(client, other_env))["results"]) == 4


class TestInclude:
    @pytest.mark.parametrize("params, expected", [
        ([("include", "$rageclick")], {"$rageclick"}),
        ([("include", "$rageclick"), ("include", "$dead_click")], {"$rageclick", "$dead_click"}),
        ([("include", '["$rageclick", "$autocapture"]')], {"$rageclick", "$autocapture"}),
        ([("include", "$rageclick, $dead_click,")], {"$rageclick", "$dead_click"}),
        ([("include", '["$dead_click"]'), ("include", "$rageclick")], {"$rageclick", "$dead_click"}),
        ([("include", "")], {"$autocapture", "$rageclick", "$dead_click"}),
        ([("include", "[]")], {"$autocapture", "$rageclick", "$dead_click"}),
    ])
    async def test_forms(self, client, env, backends, frozen, params, expected):
        await seed(backends, env)
        assert {r["type"] for r in (await stats(client, env, params))["results"]} == expected

    @pytest.mark.parametrize("value, detail", [
        ("$pageview", "Only $autocapture, $rageclick, and $dead_click are supported."),
        ("$autocapture,custom", "Only $autocapture, $rageclick, and $dead_click are supported."),
        ('["$autocapture"', "include must be a valid JSON array when passed as one"),
        ('[1, 2]', "include must be a JSON array of event names"),
        ('["$autocapture", null]', "include must be a JSON array of event names"),
    ])
    async def test_errors(self, client, env, value, detail):
        body = await stats(client, env, {"include": value}, expect=400)
        assert body == {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": None}


class TestValidation:
    @pytest.mark.parametrize("params, detail", [
        ({"limit": "ten"}, "limit must be an integer"),
        ({"limit": "1.5"}, "limit must be an integer"),
        ({"limit": "0"}, "limit must be between 1 and 999999"),
        ({"limit": "1000000"}, "limit must be between 1 and 999999"),
        ({"offset": "x"}, "offset must be an integer"),
        ({"offset": "-1"}, "offset must be zero or greater"),
        ({"sampling_factor": "half"}, "sampling_factor must be a float"),
        ({"sampling_factor": "0"}, "sampling_factor must be greater than 0 and at most 1"),
        ({"sampling_factor": "1.01"}, "sampling_factor must be greater than 0 and at most 1"),
        ({"sampling_factor": "nan"}, "sampling_factor must be greater than 0 and at most 1"),
        ({"max_element_chain_depth": "deep"}, "max_element_chain_depth must be an integer"),
        ({"max_element_chain_depth": "0"}, "max_element_chain_depth must be greater than zero"),
        ({"properties": "{not json"}, "Properties are unparsable!"),
    ])
    async def test_bad_values(self, client, env, params, detail):
        body = await stats(client, env, params, expect=400)
        assert body == {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": None}

    async def test_bad_filters_are_400(self, client, env):
        for props in ('[{"key": "x", "type": "nonsense"}]', '{"a": 1}', '[{"key": "x", "operator": "between", "value": 3}]'):
            body = await stats(client, env, {"properties": props}, expect=400)
            assert body["type"] == "validation_error" and body["attr"] is None and body["detail"]

    async def test_deep_nesting_is_400(self, client, env):
        deep = '{"type": "AND", "values": [' * 400 + ']}' * 400
        for params in ({"properties": "[" * 20_000}, {"include": "[" * 20_000}, {"properties": deep}):
            r = await client.get(url(env), params=params, headers=env.headers)
            assert r.status_code == 400 and r.json()["type"] == "validation_error"

    async def test_limit_bounds_accepted(self, client, env):
        await stats(client, env, {"limit": "999999", "offset": "0", "sampling_factor": "1"})
        await stats(client, env, {"limit": "1", "sampling_factor": "1e-9"})

    async def test_huge_numbers_are_never_500(self, client, env):
        body = await stats(client, env, {"offset": str(10**30), "limit": "5"})
        assert body["results"] == [] and body["next"] is None
        assert parse_qs(urlsplit(body["previous"]).query)["offset"] == [str(10**30 - 5)]
        r = await client.get(url(env), params={"date_from": "2026-13-45"}, headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] is None
        r = await client.get(url(env), params={"properties": '[{"key": "id", "type": "cohort", "value": 3}]'},
                             headers=env.headers)
        assert r.status_code == 400 and "cohort" in r.json()["detail"]


class TestPaging:
    async def test_next_and_previous(self, client, env, backends, frozen):
        await seed(backends, env)
        first = await stats(client, env, {"limit": "1", "include": "$autocapture"})
        assert summary(first) == [(3, "$autocapture", "a")] and first["previous"] is None
        q = parse_qs(urlsplit(first["next"]).query)
        assert q["offset"] == ["1"] and q["limit"] == ["1"] and q["include"] == ["$autocapture"]
        assert first["next"].startswith("http://testserver/api/environments/")
        second = await stats(client, env, {"limit": "1", "offset": "1", "include": "$autocapture"})
        assert summary(second) == [(2, "$autocapture", "button")]
        assert second["next"] is None  # exactly two autocapture chains
        assert parse_qs(urlsplit(second["previous"]).query)["offset"] == ["0"]  # Q11

    async def test_offset_page_in_the_middle(self, client, env, backends, frozen):
        await seed(backends, env)
        body = await stats(client, env, {"limit": "2", "offset": "1"})
        assert len(body["results"]) == 2
        assert body["previous"] is None  # 1 - 2 < 0
        assert parse_qs(urlsplit(body["next"]).query)["offset"] == ["3"]
        assert (await stats(client, env, {"limit": "2", "offset": "3"}))["next"] is None


class TestDates:
    async def test_day_truncation_in_environment_timezone(self, client, backends, frozen):
        from tests.conftest import new_env

        env = await new_env(backends, timezone="America/New_York")  # now = 10:30 on the 20th there
        stamps = {
            "before": datetime(2026, 11, 19, 4, 30, tzinfo=timezone.utc),   # 23:30 on the 18th in New York
            "first": datetime(2026, 11, 19, 5, 30, tzinfo=timezone.utc),    # 00:30 on the 19th
            "last": datetime(2026, 11, 20, 4, 30, tzinfo=timezone.utc),     # 23:30 on the 19th
            "after": datetime(2026, 11, 20, 5, 30, tzinfo=timezone.utc),    # 00:30 on the 20th
        }
        await insert(backends.clickhouse, [
            row(env.id, "$autocapture", f'a:nth-child="1"nth-of-type="1"text="{name}"', ts) for name, ts in stamps.items()
        ])

        async def texts(**params):
            return sorted(r["elements"][0]["text"] for r in (await stats(client, env, params))["results"])

        assert await texts(date_from="-1d", date_to="2026-11-19") == ["first", "last"]
        assert await texts(date_from="2026-11-19T18:00:00", date_to="-1d") == ["first", "last"]
        assert await texts(date_from="-2d") == ["after", "before", "first", "last"]
        assert await texts(date_from="-1d") == ["after", "first", "last"]

    async def test_default_seven_days_and_all(self, client, env, backends, frozen):
        await insert(backends.clickhouse, [
            row(env.id, "$autocapture", SIGNUP, NOW - timedelta(days=6, hours=15)),  # 13th, 00:30: in
            row(env.id, "$autocapture", BUY, NOW - timedelta(days=7, hours=16)),     # 12th: out
            row(env.id, "$autocapture", LOGIN, NOW - timedelta(days=400)),
        ])
        assert [r["elements"][0]["tag_name"] for r in (await stats(client, env))["results"]] == ["a"]
        assert len((await stats(client, env, {"date_from": "all"}))["results"]) == 3
        assert len((await stats(client, env, {"date_from": "-500d", "date_to": "-300d"}))["results"]) == 1


class TestSampling:
    async def test_counts_scale_up(self, client, env, backends, frozen):
        ids = await backends.clickhouse.execute(
            "SELECT arrayFilter(x -> cityHash64(x) < 9223372036854775808, arrayMap(n -> concat('u', toString(n)), range(50)))"
        )
        inside = ids.rows[0][0][0]
        outside = next(f"u{n}" for n in range(50) if f"u{n}" not in ids.rows[0][0])
        await insert(backends.clickhouse, [row(env.id, "$autocapture", SIGNUP, HOUR_AGO, distinct_id=inside)
                                           for _ in range(3)]
                     + [row(env.id, "$autocapture", SIGNUP, HOUR_AGO, distinct_id=outside) for _ in range(2)])
        assert summary(await stats(client, env)) == [(5, "$autocapture", "a")]
        assert summary(await stats(client, env, {"sampling_factor": "0.5"})) == [(6, "$autocapture", "a")]


class TestShaping:
    async def test_data_attributes_and_depth(self, client, env, backends, frozen):
        await seed(backends, env)
        full = await stats(client, env, {"include": "$rageclick"})
        body = await stats(client, env, {"include": "$rageclick", "data_attributes": "data-*, ,type",
                                         "max_element_chain_depth": "2"})
        (result,) = body["results"]
        assert result["hash"] == full["results"][0]["hash"]
        assert [e["tag_name"] for e in result["elements"]] == ["button", "form"]
        assert result["elements"][0]["attributes"] == {"attr__data-attr": "buy-button", "attr__type": "button"}
        assert result["elements"][1]["attributes"] == {}
        assert result["elements"][0]["attr_class"] == ["buy", "hover:bg-red"]


class TestProperties:
    async def _seed(self, backends, env):
        await insert(backends.clickhouse, [
            row(env.id, "$autocapture", SIGNUP, HOUR_AGO, properties={"plan": "pro", "n": 5},
                person_properties={"email": "a@corp.com"}, group0="acme"),
            row(env.id, "$autocapture", BUY, HOUR_AGO, properties={"plan": "free", "n": 1},
                person_properties={"email": "qa@test.com"}, group0="other"),
            row(env.id, "$rageclick", LOGIN, HOUR_AGO, properties={"plan": "free"},
                person_properties={"email": "b@corp.com"}),
        ])
        await backends.clickhouse.insert("groups", GROUPS_COLUMNS, [
            (0, "acme", "2026-01-01 00:00:00", env.id, '{"industry": "retail"}', "2026-01-01 00:00:00"),
            (0, "other", "2026-01-01 00:00:00", env.id, '{"industry": "tech"}', "2026-01-01 00:00:00"),
        ])

    async def tags(self, client, env, properties) -> list[str]:
        import json

        body = await stats(client, env, {"properties": json.dumps(properties)})
        return sorted(r["elements"][0]["tag_name"] for r in body["results"])

    async def test_event_person_element_group(self, client, env, backends, frozen):
        await self._seed(backends, env)
        assert await self.tags(client, env, [{"key": "plan", "value": "pro"}]) == ["a"]
        assert await self.tags(client, env, [{"key": "plan", "value": "free", "type": "event"}]) == ["a", "button"]
        assert await self.tags(client, env, [{"key": "email", "value": "corp.com", "operator": "icontains",
                                              "type": "person"}]) == ["a", "a"]
        assert await self.tags(client, env, [{"key": "tag_name", "value": "button", "type": "element"}]) == ["button"]
        assert await self.tags(client, env, [{"key": "text", "value": "Log in", "type": "element"}]) == ["a"]
        assert await self.tags(client, env, [{"key": "industry", "value": "retail", "type": "group",
                                              "group_type_index": 0}]) == ["a"]

    async def test_groups_and_hostile_values(self, client, env, backends, frozen):
        await self._seed(backends, env)
        group = {"type": "OR", "values": [{"key": "plan", "value": "pro"},
                                          {"type": "AND", "values": [{"key": "n", "value": 1}]}]}
        assert await self.tags(client, env, group) == ["a", "button"]
        hostile = "x'); DROP TABLE events; --"
        assert await self.tags(client, env, [{"key": hostile, "value": hostile}]) == []
        assert await self.tags(client, env, []) == ["a", "a", "button"]

    async def test_filter_test_accounts(self, client, env, backends, frozen):
        await self._seed(backends, env)
        r = await client.patch(f"/api/environments/{env.id}/", headers=env.headers, json={"test_account_filters": [
            {"key": "email", "value": "@test.com", "operator": "not_icontains", "type": "person"}]})
        assert r.status_code == 200, r.text
        on = await stats(client, env, {"filter_test_accounts": "true"})
        assert sorted(r["elements"][0]["tag_name"] for r in on["results"]) == ["a", "a"]
        for other in ("True", "1", "false"):
            assert len((await stats(client, env, {"filter_test_accounts": other}))["results"]) == 3


class TestThroughCapture:
    """Events sent the way SDKs send them, through the capture endpoints."""

    async def test_posthog_js_fixture_replay(self, client, env):
        import base64
        import gzip
        import json
        from pathlib import Path

        fixture = Path("/work/shared/fixtures/posthog-js-1.449.2/requests.jsonl")
        for line in fixture.read_text().splitlines():
            recorded = json.loads(line)
            if not recorded["path"].startswith("/e/"):
                continue
            doc = json.loads(gzip.decompress(base64.b64decode(recorded["body_b64"])))
            doc["api_key"] = env.creds.project_api_key
            for ev in doc["batch"]:
                ev["properties"]["token"] = env.creds.project_api_key
            r = await client.post(recorded["path"], content=gzip.compress(json.dumps(doc).encode()),
                                  headers={"Content-Type": "text/plain"})
            assert r.status_code == 200, r.text
        # The recording is from 2026-11-26; an explicit range keeps this independent of today.
        body = await stats(client, env, {"date_from": "2026-11-01", "date_to": "2026-12-31"})
        got = [(r["count"], r["type"], r["elements"][0]["tag_name"], r["elements"][0]["attr_class"])
               for r in body["results"]]
        assert got == [(5, "$autocapture", "button", ["buy", "hover:bg-red"]),
                       (1, "$autocapture", "a", ["btn", "btn-primary"]),
                       (1, "$rageclick", "button", ["buy", "hover:bg-red"])] or got == [
                       (5, "$autocapture", "button", ["buy", "hover:bg-red"]),
                       (1, "$rageclick", "button", ["buy", "hover:bg-red"]),
                       (1, "$autocapture", "a", ["btn", "btn-primary"])]
        signup = next(r for r in body["results"] if r["elements"][0]["tag_name"] == "a")
        assert signup["elements"][0]["attr_id"] == "signup" and signup["elements"][1]["attr_class"] == ["hero"]
        assert [e["order"] for e in signup["elements"]] == [0, 1, 2]

    async def test_elements_array_of_older_clients(self, client, env, frozen):
        elements = [
            {"tag_name": "button", "$el_text": "Save", "attr__class": "btn primary", "attr__data-attr": "save",
             "nth_child": 2, "nth_of_type": 1},
            {"tag_name": "form", "attr__id": "settings", "nth_child": 1, "nth_of_type": 1},
        ]
        batch = [{"event": "$autocapture", "distinct_id": "old-sdk", "timestamp": HOUR_AGO.isoformat(),
                  "properties": {"$elements": elements}} for _ in range(2)]
        r = await client.post("/batch/", json={"api_key": env.creds.project_api_key, "batch": batch})
        assert r.status_code == 200, r.text
        (result,) = (await stats(client, env))["results"]
        assert result["count"] == 2
        button, form = result["elements"]
        assert button["text"] == "Save" and button["attr_class"] == ["btn", "primary"]
        assert button["attributes"] == {"attr__class": "btn primary", "attr__data-attr": "save"}
        assert form["attr_id"] == "settings" and form["nth_child"] == 1
