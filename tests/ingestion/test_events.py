"""Timestamp resolution (§5), distinct ids (§4.2) and the §9.1 normalisation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.ingestion.events import EventRejected, normalize, parse_timestamp, resolve_timestamp, sent_at_from_query

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def ts(raw=None, offset=None, sent_at=None, ignore=False):
    return resolve_timestamp(raw, offset, now=NOW, sent_at=sent_at, ignore_sent_at=ignore)


class TestTimestamps:
    def test_no_timestamp_is_now(self):
        assert ts() == NOW

    def test_timestamp_without_sent_at_is_kept(self):
        assert ts("2026-01-02T03:04:05.123456Z") == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)

    def test_skew_corrected_with_sent_at(self):
        # client clock one hour ahead: event 10 s before sending lands 10 s before now
        sent_at = NOW + timedelta(hours=1)
        assert ts((sent_at - timedelta(seconds=10)).isoformat(), sent_at=sent_at) == NOW - timedelta(seconds=10)

    def test_ignore_sent_at(self):
        assert ts("2026-01-02T00:00:00Z", sent_at=NOW, ignore=True) == datetime(2026, 1, 2, tzinfo=timezone.utc)

    def test_offset_wins(self):
        assert ts("2020-01-01T00:00:00Z", offset=5000) == NOW - timedelta(seconds=5)

    def test_future_clamped(self):
        assert ts((NOW + timedelta(days=2)).isoformat()) == NOW
        assert ts((NOW + timedelta(hours=22)).isoformat()) == NOW + timedelta(hours=22)

    @pytest.mark.parametrize("raw,expected", [
        ("2026-01-02", datetime(2026, 1, 2, tzinfo=timezone.utc)),
        ("2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5, tzinfo=timezone.utc)),
        ("2026-01-02T03:04:05+02", datetime(2026, 1, 2, 1, 4, 5, tzinfo=timezone.utc)),
        (1767225600, datetime(2026, 1, 1, tzinfo=timezone.utc)),
        (1767225600000, datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("1767225600", datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),  # RFC 3339 lower case
        ("yesterday", None),
    ])
    def test_parse(self, raw, expected):
        assert parse_timestamp(raw) == expected

    def test_query_sent_at_ms_only(self):
        assert sent_at_from_query("1767225600000") == datetime(2026, 1, 1, tzinfo=timezone.utc)
        assert sent_at_from_query("1767225600") is None  # seconds → year 1970: ignored


def norm(raw, **kw):
    return normalize(raw, now=NOW, sent_at=kw.get("sent_at"), client_ip=kw.get("ip", "10.0.0.1"))


class TestNormalize:
    def test_distinct_id_sources_and_conversion(self):
        assert norm({"event": "e", "distinct_id": 42}).distinct_id == "42"
        assert norm({"event": "e", "$distinct_id": "a"}).distinct_id == "a"
        assert norm({"event": "e", "properties": {"distinct_id": "p"}}).distinct_id == "p"
        assert norm({"event": "e", "distinct_id": "a\x00b" + "x" * 300}).distinct_id == "a\ufffdb" + "x" * 197

    @pytest.mark.parametrize("raw,code", [
        ({"event": "e"}, "missing_distinct_id"),
        ({"event": "e", "distinct_id": None}, "missing_distinct_id"),
        ({"event": "", "distinct_id": "d"}, "missing_event_name"),
        ({"event": "e", "distinct_id": "d", "uuid": "nope"}, "invalid_uuid"),
        ({"event": "e", "distinct_id": "d", "properties": []}, "invalid_properties"),
        ({"event": "e", "distinct_id": "d", "properties": {"$cookieless_mode": "yes"}}, "invalid_cookieless_mode"),
    ])
    def test_rejections(self, raw, code):
        with pytest.raises(EventRejected) as exc:
            norm(raw)
        assert exc.value.code == code

    def test_performance_event_dropped(self):
        assert norm({"event": "$performance_event", "distinct_id": "d"}) is None

    def test_long_name_truncated_and_uuid_generated(self):
        ev = norm({"event": "x" * 300, "distinct_id": "d"})
        assert len(ev.event) == 200 and ev.uuid.version == 7

    def test_person_fields(self):
        ev = norm({"event": "$pageview", "distinct_id": "d", "$set": {"a": 1},
                   "properties": {"$browser": "Chrome", "$set": {"a": 0, "b": 2}, "utm_source": "x"}})
        assert ev.properties["$set"] == {"a": 1, "b": 2, "$browser": "Chrome", "utm_source": "x"}
        assert ev.properties["$set_once"] == {"$initial_browser": "Chrome", "$initial_utm_source": "x"}
        assert ev.properties["$ip"] == "10.0.0.1"

    def test_server_os_not_copied(self):
        ev = norm({"event": "e", "distinct_id": "d", "properties": {"$os": "Linux", "$is_server": True}})
        assert "$set" not in ev.properties

    def test_personless_strips_person_updates(self):
        ev = norm({"event": "e", "distinct_id": "d", "$set": {"a": 1},
                   "properties": {"$process_person_profile": False}})
        assert not ev.process_person
        assert "$set" not in ev.properties and ev.properties["$process_person_profile"] is False

    def test_elements_chain_kept_and_elements_serialised(self):
        ev = norm({"event": "$autocapture", "distinct_id": "d", "properties": {"$elements_chain": 'a:text="x"'}})
        assert ev.elements_chain == 'a:text="x"' and "$elements_chain" not in ev.properties
        ev = norm({"event": "$autocapture", "distinct_id": "d",
                   "properties": {"$elements": [{"tag_name": "img"}]}})
        assert ev.elements_chain == 'img:nth-child="0"nth-of-type="0"' and "$elements" not in ev.properties
