"""GET /elements/values/ (spec/API.md §2.9)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.routers.test_elements_data import BUY, LOGIN, SIGNUP, insert, row

LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)  # no date range applies to values
CHAINS = {
    SIGNUP: 3,
    BUY: 2,
    LOGIN: 1,
    'span.x:nth-child="1"nth-of-type="1"text="axb";a:href="/a.b"nth-child="1"nth-of-type="1"text="a.b"': 1,
}


async def values(client, env, expect=200, **params):
    r = await client.get(f"/api/environments/{env.id}/elements/values/", params=params, headers=env.headers)
    assert r.status_code == expect, r.text
    return r.json()


@pytest.fixture
async def seeded(env, backends):
    rows = [row(env.id, "$autocapture", chain, LONG_AGO + timedelta(minutes=i))
            for chain, n in CHAINS.items() for i in range(n)]
    # Other event types never count.
    rows += [row(env.id, "$rageclick", 'em:nth-child="1"nth-of-type="1"text="rage"', LONG_AGO) for _ in range(5)]
    await insert(backends.clickhouse, rows)
    return env


class TestKeys:
    async def test_tag_name_is_the_clicked_element(self, client, seeded):
        assert await values(client, seeded, key="tag_name") == [{"name": "a"}, {"name": "button"}, {"name": "span"}]

    async def test_text_first_in_chain_most_frequent_first(self, client, seeded):
        assert await values(client, seeded, key="text") == [
            {"name": "Sign up"}, {"name": 'Buy \\"now\\"'}, {"name": "Log in"}, {"name": "axb"}]

    async def test_href_and_attr_id(self, client, seeded):
        assert await values(client, seeded, key="href") == [{"name": "#signup"}, {"name": "/a.b"}, {"name": "/login"}]  # ties by value
        assert await values(client, seeded, key="attr_id") == [{"name": "signup"}]

    async def test_selector_is_empty(self, client, seeded):
        assert await values(client, seeded, key="selector") == []

    @pytest.mark.parametrize("params", [{}, {"key": "attr_class"}, {"key": "nth_child"}, {"key": "x' OR 1=1 --"}])
    async def test_other_keys_are_400(self, client, env, params):
        assert await values(client, env, expect=400, **params) == {
            "type": "validation_error", "code": "invalid_input",
            "detail": "key must be one of attr_id, href, tag_name, text", "attr": None}


class TestValueFilter:
    async def test_substring_case_sensitive(self, client, seeded):
        assert await values(client, seeded, key="tag_name", value="utt") == [{"name": "button"}]
        assert await values(client, seeded, key="text", value="Log") == [{"name": "Log in"}]
        assert await values(client, seeded, key="text", value="log") == []

    async def test_value_is_literal(self, client, seeded):
        # "a.b" must not match "axb" as a pattern would; the chain with text "a.b" in its second
        # element yields its *first* text (PostHog quirk, copied).
        assert await values(client, seeded, key="text", value="a.b") == [{"name": "axb"}]
        assert await values(client, seeded, key="href", value=".b") == [{"name": "/a.b"}]
        assert await values(client, seeded, key="text", value='Buy "now"') == [{"name": 'Buy \\"now\\"'}]
        for hostile in ("(", "[", "\\", "*", "'", '"', "$^"):
            assert await values(client, seeded, key="text", value=hostile) in ([], [{"name": 'Buy \\"now\\"'}]), hostile

    async def test_empty_value_means_no_filter(self, client, seeded):
        assert len(await values(client, seeded, key="tag_name", value="")) == 3


class TestScope:
    async def test_other_environment_is_invisible(self, client, seeded, other_env):
        assert await values(client, other_env, key="text") == []

    async def test_top_hundred(self, client, env, backends):
        rows = [row(env.id, "$autocapture", f'b:nth-child="1"nth-of-type="1"text="t{i:03d}"', LONG_AGO)
                for i in range(120)]
        rows += [row(env.id, "$autocapture", 'b:nth-child="1"nth-of-type="1"text="t119"', LONG_AGO) for _ in range(3)]
        await insert(backends.clickhouse, rows)
        result = await values(client, env, key="text")
        assert len(result) == 100 and result[0] == {"name": "t119"}
