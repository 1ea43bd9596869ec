"""Hostile HogQL: every input is either refused with a 400 validation error (never a 500) or runs
inside the caller's environment. Environment B holds recognisable rows ("leak", "LEAK", "secret_b",
999999) in the same ClickHouse tables; no answer of environment A may contain any of them."""

from __future__ import annotations

import pytest

from tests.hogql.conftest import post

# Must be refused: reaching other tables, other statements, server settings or output files.
REJECT = [
    # system and raw tables, databases
    "SELECT name FROM system.tables", "SELECT * FROM system.one", "SELECT 1 FROM system.numbers",
    "SELECT event FROM default.events", "SELECT event FROM `default`.`events`", "SELECT 1 FROM `system`.`tables`",
    "SELECT count() FROM person", "SELECT count() FROM person_distinct_id2", "SELECT count() FROM raw_events",
    "SELECT count() FROM person_distinct_id_overrides", "SELECT count() FROM INFORMATION_SCHEMA.TABLES",
    "SELECT event FROM events e JOIN system.tables t ON t.name = e.event",
    "SELECT event FROM events WHERE event IN (SELECT name FROM system.tables)",
    "SELECT (SELECT count() FROM system.processes)",
    "WITH t AS (SELECT name FROM system.tables) SELECT * FROM t",
    "SELECT event FROM events UNION ALL SELECT name FROM system.tables",
    # the tenant column is not a field
    "SELECT team_id FROM events", "SELECT count() FROM events WHERE team_id = 1", "SELECT e.team_id FROM events e",
    "SELECT `team_id` FROM events", "SELECT events.team_id FROM events", "SELECT id FROM persons WHERE team_id > 0",
    # table functions
    "SELECT * FROM numbers(10)", "SELECT * FROM url('http://example.com/x', CSV, 'a String')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT * FROM remote('127.0.0.1', default.events)",
    "SELECT * FROM s3('http://x/y.csv')", "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')",
    "SELECT * FROM cluster('default', system.one)", "SELECT * FROM merge('default', '^e')",
    "SELECT * FROM executable('ls', TSV, 'x String')", "SELECT * FROM generateRandom('a Int8')",
    "SELECT * FROM view(SELECT * FROM events)", "SELECT * FROM postgresql('h', 'd', 't', 'u', 'p')",
    "SELECT * FROM input('a String')", "SELECT * FROM values('a Int8', 1)", "SELECT * FROM jdbc('x', 'y')",
    "SELECT * FROM hdfs('hdfs://x')", "SELECT * FROM clusterAllReplicas('default', system.one)",
    # dangerous or introspecting functions
    "SELECT file('/etc/passwd')", "SELECT url('http://x')", "SELECT currentDatabase()", "SELECT version()",
    "SELECT hostName()", "SELECT getSetting('readonly')", "SELECT sleep(3)", "SELECT sleepEachRow(1) FROM events",
    "SELECT throwIf(1)", "SELECT dictGet('d', 'a', 1)", "SELECT joinGet('j', 'v', 1)", "SELECT currentUser()",
    "SELECT filesystemFree()", "SELECT getMacro('x')", "SELECT runningDifference(1)",
    "SELECT CAST(1 AS UUID)", "SELECT sum(1) OVER w FROM events", "SELECT toStartOfInterval(timestamp) FROM events",
    "SELECT event FROM events WHERE getServerPort('tcp_port') > 0",
    # other statements and multiple statements
    "SELECT 1; SELECT 2", "SELECT 1;", "SELECT 1; DROP TABLE events", "DROP TABLE events",
    "INSERT INTO events (event) VALUES ('x')", "ALTER TABLE events DELETE WHERE 1", "CREATE TABLE x (a Int8)",
    "TRUNCATE TABLE events", "SYSTEM SHUTDOWN", "KILL QUERY WHERE 1", "OPTIMIZE TABLE events",
    "SET max_execution_time = 0", "USE system", "SHOW TABLES", "DESCRIBE TABLE events", "EXPLAIN SELECT 1",
    "GRANT ALL ON *.* TO x", "DETACH TABLE events", "RENAME TABLE events TO x", "EXISTS TABLE events",
    "SELECT 1 INTO OUTFILE '/tmp/x'", "SELECT event FROM events INTO OUTFILE 'x.csv'",
    # SETTINGS and FORMAT
    "SELECT 1 SETTINGS max_execution_time = 1000", "SELECT event FROM events SETTINGS readonly = 0",
    "SELECT 1 FORMAT JSON", "SELECT event FROM events FORMAT TabSeparated",
    "SELECT event FROM (SELECT event FROM events SETTINGS max_threads = 1)",
    # comments (could hide the rest of a statement)
    "SELECT 1 -- comment", "SELECT 1 /* c */", "SELECT 1 # c", "SELECT event FROM events -- WHERE 1",
    "SELECT /*+ hint */ 1",
    # placeholders and dollar strings
    "SELECT {team_id}", "SELECT {p0:Int64}", "SELECT $1", "SELECT $$x$$", "SELECT $ FROM events",
    # joins and clauses we do not support
    "SELECT 1 FROM events, events", "SELECT 1 FROM events e JOIN persons p USING (id)",
    "SELECT 1 FROM events ARRAY JOIN [1] AS x",
    "SELECT 1 FROM events e GLOBAL JOIN persons p ON p.id = e.person_id",
    "SELECT 1 FROM events SAMPLE 1/10", "SELECT 1 FROM events FINAL", "SELECT 1 FROM events PREWHERE 1",
    "SELECT event FROM events LIMIT 1 BY event", "SELECT count() FROM events GROUP BY event WITH TOTALS",
    # unicode homoglyphs and invisible characters outside strings
    "SELECT ｅvent FROM events", "SELECT event FROM еvents", "SELECT\u200bevent FROM events",
    "SELECT 1；SELECT 2", "SELECT event FROM events WHERE event ＝ 'x'", "ＳＥＬＥＣＴ 1",
    # a string escape that closes the literal early, leaving a comment
    "SELECT 'x'' OR ''1''=''1' -- '", "SELECT 'a\\\\' OR 1=1 --'",
    # huge and deeply nested input
    "SELECT " + "1+" * 40000 + "1", "SELECT " + "(" * 1000 + "1" + ")" * 1000, "SELECT " + "[" * 200 + "]" * 200,
    "SELECT " + "concat(" * 100 + "'a'" + ", 'b')" * 100, "SELECT " + " + ".join(["1"] * 3000),
    "SELECT " + " AND ".join(["1 = 1"] * 3000), "SELECT range(100000000)", "SELECT arrayJoin(range(1000000000))",
    "SELECT leftPad('a', 100000000)", "SELECT concat(" + ", ".join(["'a'"] * 101) + ")",
    # malformed numbers and limits
    "SELECT 99999999999999999999999999", "SELECT 1 LIMIT -1", "SELECT 1 LIMIT 99999999999999", "SELECT quantile(5)(1)", "SELECT quantile('0.5')(1)",
    # empty and odd
    "", "   ", "SELECT", "SELECT FROM events", "SELECT 1 FROM", "(SELECT 1", "\x00", "SELECT \x00 FROM events",
    "WITH RECURSIVE t AS (SELECT 1) SELECT * FROM t",
    # RIGHT / FULL / CROSS joins and USING must not reach raw or system tables either
    "SELECT 1 FROM events e RIGHT JOIN system.tables t ON t.name = e.event",
    "SELECT 1 FROM events e FULL OUTER JOIN person p ON p.id = e.person_id",
    "SELECT 1 FROM events CROSS JOIN system.one", "SELECT 1 FROM events e, system.tables t",
    "SELECT 1 FROM events e FULL JOIN numbers(10) n ON 1 = 1", "SELECT 1 FROM persons p RIGHT JOIN raw_events e ON 1 = 1",
    "SELECT 1 FROM events e RIGHT JOIN persons p USING (team_id)", "SELECT 1 FROM events e JOIN events f USING (nope)",
    "SELECT 1 FROM events CROSS JOIN persons ON 1 = 1", "SELECT 1 FROM events e FULL JOIN persons p",
    "SELECT 1 FROM events e LEFT SEMI JOIN persons p ON p.id = e.person_id",
    "SELECT 1 FROM events e ANY LEFT JOIN persons p ON p.id = e.person_id",
    "SELECT 1 FROM events e ASOF JOIN persons p ON p.id = e.person_id",
    "SELECT 1 FROM events e GLOBAL RIGHT JOIN persons p ON p.id = e.person_id",
    # INTERSECT / EXCEPT / UNION DISTINCT: each side is checked on its own
    "SELECT event FROM events INTERSECT SELECT name FROM system.tables",
    "SELECT event FROM events EXCEPT SELECT * FROM numbers(1)",
    "SELECT event FROM events UNION DISTINCT SELECT name FROM system.databases",
    "SELECT 1 INTERSECT SELECT 1, 2", "SELECT event FROM events UNION SELECT event FROM events",
    "SELECT 1 EXCEPT SELECT 1 SETTINGS readonly = 0",
    # lambdas: arguments are plain names, bodies are checked like any expression
    "SELECT x -> x", "SELECT arrayMap(1, [1])", "SELECT arrayMap([1])", "SELECT arrayMap((x, x) -> x, [1], [1])",
    "SELECT arrayMap((x, y) -> x, [1])", "SELECT arrayMap(x -> file(x), ['/etc/passwd'])",
    "SELECT arrayMap(x -> (SELECT name FROM system.tables), [1])", "SELECT arrayMap(system.tables -> 1, [1])",
    "SELECT arrayMap(x -> team_id, [1]) FROM events", "SELECT arrayFilter(x -> sleep(x), [1])",
    "SELECT arrayMap(`a b` -> 1, [1])", "SELECT has(x -> x, 1)", "SELECT arrayFold((acc, x) -> acc + x, [1], 0)",
    # window frames and named windows
    "SELECT row_number() FROM events", "SELECT lag(event, 1, '', 4) OVER () FROM events",
    "SELECT rank(1) OVER () FROM events", "SELECT sum(1) OVER nope FROM events",
    "SELECT sum(1) OVER (ROWS BETWEEN 99999999999 PRECEDING AND CURRENT ROW) FROM events",
    "SELECT sum(1) OVER (ROWS BETWEEN 'a' PRECEDING AND CURRENT ROW) FROM events",
    "SELECT sum(1) OVER (ROWS BETWEEN (SELECT 1) PRECEDING AND CURRENT ROW) FROM events",
    "SELECT sum(1) OVER w FROM events WINDOW w AS (ORDER BY timestamp), w AS (ORDER BY event)",
    "SELECT sum(1) OVER (ROWS BETWEEN {n} PRECEDING AND CURRENT ROW) FROM events",
    "SELECT ntile(system.one) OVER () FROM events",
    "SELECT arrayMap(1)(x)", "SELECT lag(1)(event) OVER () FROM events", "SELECT lead(event) FROM events",
    "SELECT arraySum(1)([1])",
    # variables: unknown names and odd forms
    "SELECT {variables.nope}", "SELECT {variables.}", "SELECT {variables.a.b}", "SELECT {variables.team_id}",
    "SELECT {variables}", "SELECT {variables.x y}",
    # longer than APP_HOGQL_MAX_LENGTH, and nested deeper than the depth limit without brackets
    "SELECT '" + "a" * 100_000 + "'", "SELECT " + "NOT " * 5000 + "1", "SELECT " + "- " * 5000 + "1",
    "SELECT " + "CASE WHEN 1 THEN " * 500 + "1" + " END" * 500, "SELECT arrayMap(" + "x -> " * 3000 + "x, [1])",
    " UNION ALL ".join(["SELECT 1"] * 3000), " INTERSECT ".join(["SELECT 1"] * 3000),
    "SELECT 1 FROM events " + " ".join(f"CROSS JOIN persons p{i}" for i in range(300)),
]

# May run (the team filter keeps them inside environment A) or be refused; never 500, never a leak.
CONTAINED = [
    "SELECT event, distinct_id, properties.$browser, properties.price FROM events",
    "SELECT event FROM events WHERE 1 = 1 OR 1 = 1", "SELECT event FROM events WHERE event = 'x' OR 1 = 1",
    "SELECT event FROM events WHERE event = 'secret_b'", "SELECT distinct_id FROM events WHERE distinct_id = 'leak'",
    "SELECT event FROM events UNION ALL SELECT event FROM events",
    "SELECT x FROM (SELECT event AS x FROM events UNION ALL SELECT distinct_id FROM events)",
    "SELECT a.event, b.distinct_id FROM events a JOIN events b ON a.uuid = b.uuid",
    "SELECT a.event, b.event FROM events a LEFT JOIN events b ON a.distinct_id = b.distinct_id",
    "WITH x AS (SELECT event FROM events) SELECT event FROM x",
    "WITH x AS (SELECT event AS e FROM events), y AS (SELECT e FROM x) SELECT e FROM y",
    "SELECT (SELECT count() FROM events) FROM events",
    "SELECT event FROM events WHERE distinct_id IN (SELECT distinct_id FROM person_distinct_ids)",
    "SELECT properties.email FROM persons", "SELECT distinct_id, person_id FROM person_distinct_ids",
    "SELECT session_id FROM sessions", "SELECT key FROM groups",
    "SELECT p.properties.email FROM events e JOIN persons p ON 1 = 1",
    "SELECT p.properties.email FROM persons p JOIN events e ON e.person_id = p.id",
    "SELECT event AS team_id FROM events", "SELECT event AS c0, distinct_id AS t1 FROM events",
    "SELECT t1.event FROM events AS t1", "SELECT c0 FROM (SELECT event AS c0 FROM events)",
    "SELECT event FROM events AS system", "SELECT `event` FROM `events`",
    "SELECT properties['$browser'] FROM events", "SELECT properties.`$browser` FROM events",
    "SELECT event FROM events WHERE event = '\\' OR 1=1'", "SELECT event FROM events WHERE event = 'ѕecret_b'",
    "SELECT event FROM events WHERE event = '\\x27 OR 1=1'", "SELECT 'x'' UNION SELECT name FROM system.tables'",
    "SELECT 'SETTINGS readonly=0'", "SELECT '; DROP TABLE events'", "SELECT '{team_id}'",
    "SELECT event FROM events WHERE properties.price > 100000", "SELECT max(toFloat(properties.price)) FROM events",
    "SELECT count() FROM events WHERE distinct_id NOT IN ('u1')",
    "SELECT toFloat(properties.price) AS p FROM events ORDER BY p DESC",
    "SELECT e.event FROM events e WHERE e.person_id IN (SELECT id FROM persons)",
    "SELECT event FROM events WHERE timestamp > '1970-01-01' ORDER BY timestamp",
    "SELECT 1 AS x UNION ALL SELECT 2", "SELECT event FROM events LIMIT 1, 2",
    "SELECT 1", "SELECT NULL", "SELECT -1, 1.5, true, 'x'", "SELECT count() OVER () FROM events",
    "SELECT 'a\\' OR 1=1 --'",  # one string literal with an escaped quote: a parameter, nothing more
    "SELECT arrayMap(team_id -> team_id, [1])", "SELECT arrayMap(t1 -> t1, [1]) FROM events AS t1",
]

# New constructs that must run (200) and stay inside environment A, including NULL-padded rows of outer
# joins, whichever side the events or persons are on.
RUNS = [
    "SELECT e.event, p.properties.email FROM events e RIGHT JOIN persons p ON p.id = e.person_id",
    "SELECT e.event, p.properties.email FROM persons p RIGHT JOIN events e ON p.id = e.person_id",
    "SELECT e.distinct_id, p.properties.email FROM events e FULL OUTER JOIN persons p ON p.id = e.person_id",
    "SELECT e.distinct_id, p.properties.email FROM persons p FULL JOIN events e ON p.id = e.person_id",
    "SELECT e.distinct_id, p.properties.email FROM events e FULL JOIN persons p ON 1 = 0",
    "SELECT a.distinct_id, b.distinct_id FROM events a FULL JOIN events b ON a.uuid = b.uuid AND 1 = 0",
    "SELECT e.event, pdi.distinct_id FROM events e RIGHT JOIN person_distinct_ids pdi ON pdi.distinct_id = e.distinct_id AND pdi.distinct_id != 'u1'",
    "SELECT e.event, p.properties.email FROM events e CROSS JOIN persons p",
    "SELECT e.event, p.properties.email FROM events e, persons p",
    "SELECT e.event, s.session_id FROM events e FULL JOIN sessions s ON s.session_id = e.$session_id",
    "SELECT g.key, e.event FROM groups g FULL JOIN events e ON e.$group_0 = g.key",
    "SELECT e.event, pdi.person_id FROM events e RIGHT JOIN person_distinct_ids pdi USING (distinct_id)",
    "SELECT x.d, p.properties.email FROM (SELECT distinct_id AS d, person_id AS pid FROM events) x "
    "FULL JOIN persons p ON p.id = x.pid",
    "WITH e AS (SELECT distinct_id FROM events) SELECT e.distinct_id, f.distinct_id FROM e FULL JOIN e AS f ON 1 = 0",
    "SELECT distinct_id FROM events INTERSECT SELECT distinct_id FROM person_distinct_ids",
    "SELECT distinct_id FROM person_distinct_ids EXCEPT SELECT distinct_id FROM events WHERE event = 'x'",
    "SELECT event FROM events EXCEPT DISTINCT SELECT 'secret_b'",
    "SELECT event FROM events UNION DISTINCT SELECT event FROM events WHERE distinct_id = 'leak'",
    "SELECT arrayMap(x -> concat(x, event), ['a']) FROM events",
    "SELECT arrayFilter(x -> x = 'leak', groupArray(distinct_id)) FROM events",
    "SELECT arrayMap(x -> (SELECT count() FROM events WHERE distinct_id = 'leak'), [1])",
    "SELECT arraySum(x -> ifNull(toFloat(x), 0.0), groupArray(properties.price)) FROM events",
    "SELECT sum(toFloat(properties.price)) OVER (ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND "
    "UNBOUNDED FOLLOWING) FROM events",
    "SELECT lead(distinct_id) OVER (ORDER BY timestamp), lag(distinct_id, 1, 'x') OVER w FROM events "
    "WINDOW w AS (ORDER BY timestamp)",
    "SELECT count() OVER (PARTITION BY person.properties.email RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) "
    "FROM events",
]


def _leaks(value) -> bool:
    text = repr(value)
    return any(marker in text for marker in ("leak", "LEAK", "secret_b", "999999"))


@pytest.mark.parametrize("text", REJECT, ids=[f"r{i}" for i in range(len(REJECT))])
async def test_rejected(client, data, text):
    r = await post(client, data, {"kind": "HogQLQuery", "query": text})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "validation_error" and body["attr"].startswith("query") and body["detail"]


@pytest.mark.parametrize("text", CONTAINED, ids=[f"c{i}" for i in range(len(CONTAINED))])
async def test_contained(client, data, text):
    r = await post(client, data, {"kind": "HogQLQuery", "query": text})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["type"] == "validation_error"
    else:
        assert not _leaks(r.json()["results"])


@pytest.mark.parametrize("text", RUNS, ids=[f"n{i}" for i in range(len(RUNS))])
async def test_new_constructs_run_inside_the_environment(client, data, text):
    r = await post(client, data, {"kind": "HogQLQuery", "query": text})
    assert r.status_code == 200, r.text
    assert not _leaks(r.json()["results"]), r.json()["results"]


@pytest.mark.parametrize("mode", ["disabled", "person_id_no_override_properties_on_events",
                                  "person_id_override_properties_on_events", "person_id_override_properties_joined"])
async def test_person_fields_stay_inside_the_environment_in_every_poe_mode(client, data, mode):
    text = ("SELECT e.person_id, e.person.properties.email, p.properties.email FROM events e "
            "FULL JOIN persons p ON p.id = e.person_id")
    r = await post(client, data, {"kind": "HogQLQuery", "query": text, "modifiers": {"personsOnEventsMode": mode}})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 5 and not _leaks(r.json()["results"])


async def test_hostile_variable_values_are_parameters(client, data):
    hostile = "' OR 1=1 UNION SELECT name FROM system.tables --"
    r = await post(client, data, {"kind": "HogQLQuery", "query": "SELECT count() FROM events WHERE event = {variables.v}",
                                  "variables": {"x": {"variableId": "x", "code_name": "v", "value": hostile}}})
    assert r.status_code == 200 and r.json()["results"] == [[0]]
    assert hostile not in r.json()["clickhouse"] and "system" not in r.json()["clickhouse"]


def test_counts():
    assert len(REJECT) + len(CONTAINED) + len(RUNS) >= 100


async def test_other_environment_sees_only_its_rows(client, data, other_env):
    r = await post(client, other_env, {"kind": "HogQLQuery", "query": "SELECT DISTINCT distinct_id FROM events"})
    assert r.status_code == 200 and r.json()["results"] == [["leak"]]
