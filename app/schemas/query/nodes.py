"""Wrapper nodes (InsightVizNode, DataTableNode, DataVisualizationNode) and `parse_query`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from app.errors import QueryError
from app.schemas.query.base import Node
from app.schemas.query.insights import (
    EventsQuery, FunnelsQuery, HogQLQuery, LifecycleQuery, PathsQuery, RetentionQuery, StickinessQuery,
)
from app.schemas.query.trends import TrendsQuery


def _kind(value: Any) -> str | None:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


InsightQuery = Annotated[
    Union[
        Annotated[TrendsQuery, Tag("TrendsQuery")],
        Annotated[FunnelsQuery, Tag("FunnelsQuery")],
        Annotated[RetentionQuery, Tag("RetentionQuery")],
        Annotated[StickinessQuery, Tag("StickinessQuery")],
        Annotated[LifecycleQuery, Tag("LifecycleQuery")],
        Annotated[PathsQuery, Tag("PathsQuery")],
    ],
    Discriminator(_kind, custom_error_type="invalid_kind", custom_error_message="Unknown insight query kind"),
]


class InsightVizNode(Node):
    """Presentation wrapper: the engine runs `source` and ignores every other key."""

    kind: Literal["InsightVizNode"] = "InsightVizNode"
    source: InsightQuery
    full: bool | None = None
    showHeader: bool | None = None
    showTable: bool | None = None
    showCorrelationTable: bool | None = None
    showLastComputation: bool | None = None
    showLastComputationRefresh: bool | None = None
    showFilters: bool | None = None
    showResults: bool | None = None
    showResults_: bool | None = None
    embedded: bool | None = None
    hidePersonsModal: bool | None = None
    hideTooltipOnScroll: bool | None = None
    suppressSessionAnalysisWarning: bool | None = None
    vizSpecificOptions: dict[str, Any] | None = None


DataSource = Annotated[
    Union[
        Annotated[EventsQuery, Tag("EventsQuery")],
        Annotated[HogQLQuery, Tag("HogQLQuery")],
        Annotated[TrendsQuery, Tag("TrendsQuery")],
    ],
    Discriminator(_kind, custom_error_type="invalid_kind", custom_error_message="Unknown data table source kind"),
]


class DataTableNode(Node):
    kind: Literal["DataTableNode"] = "DataTableNode"
    source: DataSource
    columns: list[str] | None = None
    hiddenColumns: list[str] | None = None
    full: bool | None = None
    showActions: bool | None = None
    embedded: bool | None = None


class DataVisualizationNode(Node):
    kind: Literal["DataVisualizationNode"] = "DataVisualizationNode"
    source: HogQLQuery
    display: str | None = None
    chartSettings: dict[str, Any] | None = None
    tableSettings: dict[str, Any] | None = None


AnyQuery = Annotated[
    Union[
        Annotated[InsightVizNode, Tag("InsightVizNode")],
        Annotated[DataTableNode, Tag("DataTableNode")],
        Annotated[DataVisualizationNode, Tag("DataVisualizationNode")],
        Annotated[TrendsQuery, Tag("TrendsQuery")],
        Annotated[FunnelsQuery, Tag("FunnelsQuery")],
        Annotated[RetentionQuery, Tag("RetentionQuery")],
        Annotated[StickinessQuery, Tag("StickinessQuery")],
        Annotated[LifecycleQuery, Tag("LifecycleQuery")],
        Annotated[PathsQuery, Tag("PathsQuery")],
        Annotated[HogQLQuery, Tag("HogQLQuery")],
        Annotated[EventsQuery, Tag("EventsQuery")],
    ],
    Discriminator(_kind, custom_error_type="invalid_kind", custom_error_message="Unknown query kind"),
]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyQuery)

# Pydantic puts union tags and validator names into `loc`; they are not JSON path segments.
_TAGS = {
    "InsightVizNode", "DataTableNode", "DataVisualizationNode", "TrendsQuery", "FunnelsQuery", "RetentionQuery",
    "StickinessQuery", "LifecycleQuery", "PathsQuery", "HogQLQuery", "EventsQuery", "EventsNode", "ActionsNode",
    "DataWarehouseNode", "GroupNode", "filter", "group", "list", "event", "person", "element", "session",
    "event_metadata", "cohort", "hogql", "feature", "data_warehouse",
}
# Names pydantic gives plain union members; never field names in this schema.
_MEMBERS = {"str", "int", "float", "bool", "none"}


def json_path(loc: tuple[Any, ...], prefix: str = "query") -> str:
    parts = [prefix]
    for n, item in enumerate(loc):
        last = n == len(loc) - 1
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str) and (
            (item in _TAGS and not last) or item in _MEMBERS
            or item.startswith(("function-", "tagged-union", "list[", "dict["))
        ):  # a union tag is followed by the field inside it; a field named like a tag ends the path
            continue
        else:
            parts.append(f".{item}")
    return "".join(parts)


def parse_query(data: Any, *, path: str = "query") -> Any:
    """Validate a query node; a bad value is a QueryError whose `attr` is its JSON path."""
    if not isinstance(data, dict):
        raise QueryError("The query must be a JSON object with a `kind`.", attr=path)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = json_path(tuple(err.get("loc", ())), path)
        msg = str(err.get("msg", "Invalid value.")).removeprefix("Value error, ")
        raise QueryError(f"{where}: {msg}", attr=where) from None
