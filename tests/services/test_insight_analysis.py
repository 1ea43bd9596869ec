"""The facts and text of insight analyses (app/services/insight_analysis.py) over hand-built trends results."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app import clock
from app.schemas.query import parse_query
from app.services.insight_analysis import anomalies, as_text, fmt, fmt_pct, period_states, trends_facts


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze("2020-01-13T12:00:00Z")  # every bucket up to 2020-01-12 is complete
    yield
    clock.freeze(None)


def q(**extra):
    return parse_query({"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}], **extra})


def row(values, *, start="2020-01-06", label="$pageview", order=0, **extra) -> dict:
    first = date.fromisoformat(start)
    days = [(first + timedelta(days=i)).isoformat() for i in range(len(values))]
    labels = [f"{(first + timedelta(days=i)).day}-{(first + timedelta(days=i)).strftime('%b-%Y')}" for i in range(len(values))]
    action = {"name": label, "custom_name": None, "order": order}
    return {"data": values, "days": days, "labels": labels, "count": float(sum(values)), "label": label,
            "order": order, "action": action, **extra}


class TestFormatting:
    def test_numbers(self):
        assert fmt(1234.0) == "1,234" and fmt(2.5) == "2.5" and fmt(1 / 3) == "0.33"
        assert fmt_pct(1.5) == "+150%" and fmt_pct(-0.5) == "-50%" and fmt_pct(0.123) == "+12.3%"


class TestTrendsFacts:
    def test_rising(self):
        a = trends_facts(q(), [row([4, 5, 6, 7, 8, 9, 10])], timezone="UTC")
        s = a.series[0]
        assert (s.first.value, s.first.day, s.last.value, s.last.day) == (4, "2020-01-06", 10, "2020-01-12")
        assert s.change == 6 and s.change_pct == 1.5 and s.direction == "up" and s.total == 49
        assert (s.peak.value, s.peak.label, s.trough.value, s.trough.label) == (10, "12-Jan-2020", 4, "6-Jan-2020")
        assert s.anomalies == [] and s.incomplete is None
        assert a.headline == "$pageview rose 150% from 4 on 6-Jan-2020 to 10 on 12-Jan-2020."
        assert a.bullets[0] == "Peak: 10 on 12-Jan-2020; lowest: 4 on 6-Jan-2020."
        assert a.bullets[1] == "Total over the 7 complete periods: 49."
        assert a.takeaway == "The trend is up; check whether the growth holds over the next periods."
        assert as_text(a).splitlines() == [a.headline, f"- {a.bullets[0]}", f"- {a.bullets[1]}", a.takeaway]

    def test_falling(self):
        a = trends_facts(q(), [row([100, 90, 80, 70, 60, 55, 50])], timezone="UTC")
        s = a.series[0]
        assert s.change == -50 and s.change_pct == -0.5 and s.direction == "down"
        assert a.headline == "$pageview fell 50% from 100 on 6-Jan-2020 to 50 on 12-Jan-2020."
        assert "drop" in a.takeaway and "12-Jan-2020" in a.takeaway

    def test_flat(self):
        a = trends_facts(q(), [row([100, 101, 99, 100, 102, 100, 102])], timezone="UTC")
        assert a.series[0].direction == "flat" and a.series[0].change_pct == 0.02
        assert a.headline == "$pageview was flat (+2%): 100 on 6-Jan-2020, 102 on 12-Jan-2020."
        assert a.takeaway.startswith("No meaningful change")

    def test_anomaly(self):
        a = trends_facts(q(), [row([10, 11, 9, 10, 60, 10, 11, 9, 10], start="2020-01-04")], timezone="UTC")
        [anomaly] = a.series[0].anomalies
        assert (anomaly.day, anomaly.value, anomaly.rolling_median, anomaly.direction) == ("2020-01-08", 60, 10, "above")
        assert anomaly.robust_deviations == 33.7  # (60 − 10) / (1.4826 · MAD 1)
        assert "Unusual period: 60 on 8-Jan-2020 is 33.7 robust deviations above the rolling median of 10." in a.bullets
        assert a.takeaway.startswith("Check what happened on 8-Jan-2020")

    def test_anomaly_floor_ignores_small_wiggles(self):
        assert anomalies([10, 10, 10, 11, 10, 10, 10]) == []
        assert anomalies([1, 2, 3, 4, 5, 6, 7, 8]) == []

    def test_incomplete_current_period_is_not_a_drop(self):
        clock.freeze("2020-01-12T09:00:00Z")
        a = trends_facts(q(), [row([4, 5, 6, 7, 8, 9, 1])], timezone="UTC")
        s = a.series[0]
        assert s.incomplete.day == "2020-01-12" and s.incomplete.value == 1
        assert s.last.day == "2020-01-11" and s.direction == "up" and s.trough.value == 4
        assert a.headline == ("$pageview rose 125% from 4 on 6-Jan-2020 to 9 on 11-Jan-2020. "
                              "12-Jan-2020 is still in progress (1 so far) and is not counted as a change.")

    def test_incomplete_follows_project_timezone(self):
        clock.freeze("2020-01-12T03:00:00Z")  # 2020-01-11 22:00 in New York: the 11th is still running
        states = period_states(["2020-01-10", "2020-01-11", "2020-01-12"], "day", "America/New_York")
        assert states == ["complete", "incomplete", "future"]

    def test_breakdown_contributors(self):
        rows = [row([10, 12, 30], breakdown_value="Chrome", label="Chrome"),
                row([8, 8, 6], breakdown_value="Safari", label="Safari"),
                row([0, 1, 1], breakdown_value="$$_posthog_breakdown_null_$$", label="$$_posthog_breakdown_null_$$")]
        a = trends_facts(q(breakdownFilter={"breakdown": "$browser"}), rows, timezone="UTC")
        s = a.series[0]
        assert s.first.value == 18 and s.last.value == 37 and s.breakdown_rows == 3
        assert [(c.label, c.change, c.share_of_change) for c in s.contributors] == [
            ("Chrome", 20, 1.0526), ("Safari", -2, -0.1053), ("None", 1, 0.0526)]
        assert "Largest contributors to the change (+19): Chrome +20, Safari -2, None +1." in a.bullets
        assert a.takeaway.startswith("The growth comes mostly from Chrome (+20)")

    def test_compare_delta(self):
        rows = [row([5, 6, 7], compare=True, compare_label="current"),
                row([4, 4, 4], start="2020-01-03", compare=True, compare_label="previous")]
        a = trends_facts(q(compareFilter={"compare": True}), rows, timezone="UTC")
        [s] = a.series
        assert s.compare.model_dump() == {"current": 18, "previous": 12, "change": 6, "change_pct": 0.5, "periods": 3,
                                         "basis": "sum"}
        assert "Compared with the previous period: 18 vs 12 (+50%)." in a.bullets

    def test_unique_users_are_averaged_not_summed(self):
        query = parse_query({"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
                             "compareFilter": {"compare": True}})
        rows = [row([5, 6, 7], compare=True, compare_label="current"),
                row([4, 4, 4], start="2020-01-03", compare=True, compare_label="previous")]
        a = trends_facts(query, rows, timezone="UTC")
        s = a.series[0]
        assert s.additive is False and s.mean == 6 and s.compare.basis == "average"
        assert (s.compare.current, s.compare.previous, s.compare.change) == (6, 4, 2)
        assert "Compared with the previous period (average per period): 6 vs 4 (+50%)." in a.bullets
        single = trends_facts(parse_query({"kind": "TrendsQuery", "series": [
            {"kind": "EventsNode", "event": "$pageview", "math": "dau"}]}), [row([3, 4, 8])], timezone="UTC")
        assert "Average over the 3 complete periods: 5." in single.bullets
        assert single.headline.startswith("$pageview (unique users) rose 166.7% from 3 on 6-Jan-2020")

    def test_cumulative_is_analysed_per_period(self):
        a = trends_facts(q(trendsFilter={"display": "ActionsLineGraphCumulative"}), [row([2, 5, 9])], timezone="UTC")
        assert (a.series[0].first.value, a.series[0].last.value) == (2, 4)

    def test_total_value_display(self):
        rows = [{**row([]), "data": [], "days": [], "aggregated_value": 60, "breakdown_value": "Chrome"},
                {**row([]), "data": [], "days": [], "aggregated_value": 40, "breakdown_value": "Safari"}]
        a = trends_facts(q(trendsFilter={"display": "ActionsPie"}, breakdownFilter={"breakdown": "$browser"}), rows,
                         timezone="UTC")
        assert a.series[0].total == 100 and a.headline == "$pageview: 100."
        assert a.bullets == ["Largest breakdown values: Chrome 60 (60%), Safari 40 (40%)."]

    def test_several_series_and_formula(self):
        rows = [row([1, 2, 4]), row([10, 10, 10], label="signup", order=1)]
        a = trends_facts(q(), rows, timezone="UTC")
        assert [s.name for s in a.series] == ["$pageview", "signup"]
        assert a.headline == ("$pageview rose 300% from 1 on 6-Jan-2020 to 4 on 8-Jan-2020; "
                              "signup was flat (+0%): 10 on 6-Jan-2020, 10 on 8-Jan-2020.")
        formula = {**row([2, 4]), "action": None, "label": "Formula (A*2)"}
        assert trends_facts(q(), [formula], timezone="UTC").series[0].name == "Formula (A*2)"

    def test_no_rows(self):
        a = trends_facts(q(), [], timezone="UTC")
        assert a.series == [] and a.headline.startswith("No data")

    def test_single_complete_period(self):
        a = trends_facts(q(), [row([3])], timezone="UTC")
        assert a.headline == "$pageview was 3 on 6-Jan-2020, the only complete period, so there is no trend yet."
