"""The query schema: PostHog's node names and enum values, unknown keys tolerated, bad values
reported with their JSON path."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from app.schemas.query import (
    AnyPropertyFilter, DataTableNode, DataVisualizationNode, FunnelsQuery, GroupNode, HogQLQuery, InsightVizNode,
    LifecycleQuery, PathsQuery, PropertyFilterList, PropertyGroupFilter, PropertyOperator, RetentionQuery,
    StickinessQuery, TrendsQuery, parse_query,
)

FULL_TRENDS = {
    "kind": "TrendsQuery",
    "series": [
        {"kind": "EventsNode", "event": "$pageview", "name": "$pageview", "custom_name": "Views", "math": "p90",
         "math_property": "price", "math_property_type": "event_properties", "math_multiplier": 100,
         "math_property_revenue_currency": {"static": "USD"}, "properties": [{"key": "a", "value": 1}],
         "fixedProperties": [], "limit": 10, "orderBy": ["timestamp"]},
        {"kind": "ActionsNode", "id": 3, "math": "unique_group", "math_group_type_index": 1},
        {"kind": "DataWarehouseNode", "id": "t", "table_name": "t", "id_field": "id", "timestamp_field": "ts",
         "distinct_id_field": "d", "dw_source_type": "stripe"},
        {"kind": "GroupNode", "operator": "OR", "nodes": [{"kind": "EventsNode", "event": "a"},
                                                          {"kind": "EventsNode", "event": "b"}]},
    ],
    "interval": "second",
    "dateRange": {"date_from": "-7d", "date_to": None, "explicitDate": True},
    "properties": {"type": "AND", "values": [{"type": "OR", "values": [{"key": "a", "type": "person", "value": "x"},
                                                                        {"type": "AND", "values": []}]}]},
    "filterTestAccounts": True,
    "breakdownFilter": {"breakdown_type": "group", "breakdown": "name", "breakdown_limit": 10,
                        "breakdown_group_type_index": 0, "breakdown_normalize_url": True,
                        "breakdown_histogram_bin_count": 5, "breakdown_hide_other_aggregation": True,
                        "breakdown_path_cleaning": False,
                        "breakdowns": [{"type": "person", "property": "p", "normalize_url": False,
                                        "group_type_index": None, "histogram_bin_count": 3}]},
    "compareFilter": {"compare": True, "compare_to": "-1w"},
    "trendsFilter": {"display": "ActionsLineGraphCumulative", "formulaNodes": [{"formula": "A/B", "custom_name": "r"}],
                     "formulas": ["A"], "formula": "A", "smoothingIntervals": 3, "showLegend": True,
                     "aggregationAxisFormat": "percentage", "decimalPlaces": 2, "yAxisScaleType": "log10",
                     "goalLines": [{"label": "g", "value": 1}], "resultCustomizationBy": "value",
                     "showMultipleYAxes": True, "hiddenLegendIndexes": [1], "detailedResultsAggregationType": "median"},
    "samplingFactor": 0.1,
    "aggregation_group_type_index": 2,
    "conversionGoal": {"customEventName": "signup"},
    "dataColorTheme": 1,
    "tags": {"productKey": "x"},
    "version": 2,
    "response": {"results": []},
    "modifiers": {"personsOnEventsMode": "person_id_override_properties_joined", "inCohortVia": "leftjoin_conjoined",
                  "materializationMode": "legacy_null_as_string", "propertyGroupsMode": "optimized",
                  "personsArgMaxVersion": "v2", "personsJoinMode": "left", "sessionTableVersion": "v3",
                  "convertToProjectTimezone": False, "optimizeJoinedFilters": True, "someFutureModifier": 1},
    "someFutureKey": {"x": 1},
}


class TestTrendsQuery:
    def test_every_field(self):
        q = parse_query(FULL_TRENDS)
        assert isinstance(q, TrendsQuery)
        assert q.interval.value == "second" and q.dateRange.explicitDate is True
        assert isinstance(q.properties, PropertyGroupFilter)
        assert isinstance(q.series[3], GroupNode) and q.series[3].nodes[1].event == "b"
        assert q.breakdownFilter.breakdowns[0].histogram_bin_count == 3
        assert q.modifiers.personsOnEventsMode.value == "person_id_override_properties_joined"

    def test_insight_viz_node(self):
        node = parse_query({"kind": "InsightVizNode", "source": FULL_TRENDS, "full": True, "showTable": True,
                            "vizSpecificOptions": {"ActionsPie": {"disableHoverOffset": True}}, "unknown": 1})
        assert isinstance(node, InsightVizNode) and isinstance(node.source, TrendsQuery)

    @pytest.mark.parametrize(("change", "path"), [
        ({"interval": "fortnight"}, "query.interval"),
        ({"series": [{"kind": "EventsNode", "math": "bogus"}]}, "query.series[0].math"),
        ({"series": [{"kind": "Nope"}]}, "query.series[0]"),
        ({"series": [{"kind": "EventsNode", "properties": [{"key": "a", "operator": "nope"}]}]},
         "query.series[0].properties[0].operator"),
        ({"breakdownFilter": {"breakdown_limit": "many"}}, "query.breakdownFilter.breakdown_limit"),
        ({"breakdownFilter": {"breakdowns": [{"property": "a"}] * 4}}, "query.breakdownFilter.breakdowns"),
        ({"samplingFactor": 2}, "query.samplingFactor"),
        ({"trendsFilter": {"display": "Nope"}}, "query.trendsFilter.display"),
        ({"properties": {"type": "XOR", "values": []}}, "query.properties.type"),
        ({"series": "x"}, "query.series"),
        ({"series": [{"kind": "EventsNode", "event": "x" * 401}]}, "query.series[0].event"),
        ({"series": [{"kind": "EventsNode", "event": 5}]}, "query.series[0].event"),
        ({"properties": [{"type": "event", "key": "a", "value": {"x": 1}}]}, "query.properties[0].value"),
    ])
    def test_invalid_value_names_path(self, change, path):
        with pytest.raises(QueryError) as exc:
            parse_query({**FULL_TRENDS, **change})
        assert exc.value.attr == path and exc.value.status_code == 400

    def test_series_required(self):
        with pytest.raises(QueryError) as exc:
            parse_query({"kind": "TrendsQuery"})
        assert exc.value.attr == "query.series"

    def test_not_an_object(self):
        with pytest.raises(QueryError):
            parse_query(["TrendsQuery"])


class TestOtherKinds:
    @pytest.mark.parametrize(("node", "cls"), [
        ({"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": "a"}],
          "funnelsFilter": {"funnelWindowInterval": 7, "funnelOrderType": "strict", "funnelVizType": "trends",
                            "exclusions": [{"kind": "EventsNode", "event": "x", "funnelFromStep": 0, "funnelToStep": 1}]}},
         FunnelsQuery),
        ({"kind": "RetentionQuery", "retentionFilter": {"period": "Week", "retentionType": "retention_first_time",
                                                         "targetEntity": {"id": "$pageview", "type": "events"}}},
         RetentionQuery),
        ({"kind": "StickinessQuery", "series": [], "stickinessFilter": {
            "stickinessCriteria": {"operator": "gte", "value": 2}, "computedAs": "cumulative"}}, StickinessQuery),
        ({"kind": "LifecycleQuery", "series": [], "lifecycleFilter": {"toggledLifecycles": ["new", "dormant"]}},
         LifecycleQuery),
        ({"kind": "PathsQuery", "pathsFilter": {"includeEventTypes": ["$pageview"], "stepLimit": 4}}, PathsQuery),
        ({"kind": "HogQLQuery", "query": "select 1"}, HogQLQuery),
        ({"kind": "DataTableNode", "source": {"kind": "EventsQuery", "select": ["*"]}}, DataTableNode),
        ({"kind": "DataVisualizationNode", "source": {"kind": "HogQLQuery", "query": "select 1"}},
         DataVisualizationNode),
    ])
    def test_shapes(self, node, cls):
        assert isinstance(parse_query(node), cls)

    def test_bad_funnel_order(self):
        with pytest.raises(QueryError) as exc:
            parse_query({"kind": "FunnelsQuery", "series": [], "funnelsFilter": {"funnelOrderType": "random"}})
        assert exc.value.attr == "query.funnelsFilter.funnelOrderType"


class TestPropertyFilters:
    def test_public_names_still_work(self):
        filters = PropertyFilterList(filters=[{"key": "email", "type": "person", "operator": "not_icontains",
                                               "value": "corp"}, {"key": "$host", "value": ["localhost"]}]).filters
        assert filters[0].operator == PropertyOperator.not_icontains and filters[1].type == "event"
        assert AnyPropertyFilter is not None

    def test_every_operator_value(self):
        for op in ("exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "gte", "lt", "lte",
                   "is_set", "is_not_set", "is_date_exact", "is_date_before", "is_date_after", "between",
                   "not_between", "min", "max", "in", "not_in", "is_cleaned_path_exact", "flag_evaluates_to",
                   "semver_gt", "icontains_multi"):
            assert PropertyOperator(op).value == op
