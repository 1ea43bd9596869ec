"""What lowering needs to know about the environment and the query: team, zone, clock, property
types and the persons-on-events mode, plus the joins that property and actor access asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from app.query_engine import ir
from app.schemas.query.base import PersonsOnEventsMode

EVENTS_ALIAS = "e"


@dataclass(frozen=True)
class CohortInfo:
    """PostgreSQL metadata of one cohort (app/models/cohort.py)."""

    id: int
    name: str
    is_static: bool
    version: int | None
    deleted: bool = False


@dataclass
class Scope:
    team_id: int
    timezone: str
    now: datetime
    week_start_day: int = 0
    # (PropertyDefinition.type, group_type_index or -1, name) → property_type ("Numeric", …)
    property_types: dict[tuple[int, int, str], str] = field(default_factory=dict)
    poe_mode: PersonsOnEventsMode = PersonsOnEventsMode.person_id_override_properties_on_events
    joins: set[str] = field(default_factory=set)  # "overrides", "pdi", "person", "group_<n>"
    # False once the runner saw that the team has no person overrides: the override join can then
    # only ever return the event's own person_id, so it is skipped (it costs a hash probe per event).
    has_overrides: bool = True
    # The environment's cohorts that the query names, by id (loaded by the query service).
    cohorts: dict[int, CohortInfo] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def fork(self) -> "Scope":
        """A scope for another SELECT over events: same settings, its own join set."""
        return Scope(self.team_id, self.timezone, self.now, self.week_start_day, self.property_types, self.poe_mode,
                     has_overrides=self.has_overrides, cohorts=self.cohorts)

    def col(self, name: str) -> ir.Column:
        return ir.Column(name, EVENTS_ALIAS)

    def team(self) -> ir.Param:
        return ir.Param(self.team_id, "Int64")

    def tz_param(self) -> ir.Param:
        return ir.Param(self.timezone, "String")

    def timestamp(self) -> ir.Expr:
        return ir.call("toTimeZone", self.col("timestamp"), self.tz_param())

    def person_id(self) -> ir.Expr:
        """The event's person id under the persons-on-events mode (§11.3)."""
        mode = self.poe_mode
        if mode == PersonsOnEventsMode.disabled:
            self.joins.add("pdi")
            return ir.Column("person_id", "pdi")
        if mode == PersonsOnEventsMode.person_id_no_override_properties_on_events or not self.has_overrides:
            return self.col("person_id")
        self.joins.add("overrides")
        return ir.call(
            "if", ir.call("empty", ir.Column("distinct_id", "overrides")),
            self.col("person_id"), ir.Column("person_id", "overrides"),
        )

    def person_properties(self) -> ir.Expr:
        if self.poe_mode in (PersonsOnEventsMode.disabled, PersonsOnEventsMode.person_id_override_properties_joined):
            self.person_id()
            self.joins.add("person")
            return ir.Column("properties", "person")
        return self.col("person_properties")

    def session_field(self, name: str) -> ir.Expr:
        """A column of the per-session aggregate (see `_session_join`). Events without a session id
        match no session and read the column's default, as PostHog's sessions join gives them:
        a duration and pageview count of 0, '' for URLs, the zero time for timestamps."""
        self.joins.add("session")
        column = ir.Column(name, "session")
        if name in ("duration", "pageview_count"):  # 0 whatever join_use_nulls says
            return ir.call("ifNull", column, ir.Const(0))
        return column

    def group_properties(self, index: int) -> ir.Expr:
        self.joins.add(f"group_{int(index)}")
        return ir.Column("properties", f"group_{int(index)}")

    def _session_join(self, team: ir.Expr) -> ir.Join:
        """Sessions from the events themselves (there is no sessions table yet): duration from the
        first to the last event of any kind, entry/exit URL, pageview count (spec §11.2)."""
        ts, sid = ir.Column("timestamp"), ir.Column("$session_id")
        url = ir.call("JSONExtractString", ir.Column("properties"), ir.string("$current_url"))
        sub = ir.Select(
            columns=(
                ir.Alias(sid, "session_id"),
                ir.Alias(ir.call("dateDiff", ir.string("second"), ir.call("min", ts), ir.call("max", ts)), "duration"),
                ir.Alias(ir.call("min", ts), "start_timestamp"),
                ir.Alias(ir.call("max", ts), "end_timestamp"),
                ir.Alias(ir.call("argMin", url, ts), "entry_url"),
                ir.Alias(ir.call("argMax", url, ts), "exit_url"),
                ir.Alias(ir.call("countIf", ir.eq(ir.Column("event"), ir.string("$pageview"))), "pageview_count"),
            ),
            from_=ir.Table("events"), where=ir.and_(team, ir.call("notEmpty", sid)), group_by=(ir.Column("session_id"),),
        )
        return ir.Join(ir.JoinKind.LEFT, sub, "session", ir.eq(self.col("$session_id"), ir.Column("session_id", "session")))

    def build_joins(self) -> tuple[ir.Join, ...]:
        """The LEFT JOINs asked for, in a fixed order (the person join needs the person id one)."""
        out: list[ir.Join] = []
        team = ir.eq(ir.Column("team_id"), self.team())
        for name, table in (("overrides", "person_distinct_id_overrides"), ("pdi", "person_distinct_id2")):
            if name in self.joins:
                sub = ir.Select(
                    columns=(ir.Column("distinct_id"),
                             ir.Alias(ir.call("argMax", ir.Column("person_id"), ir.Column("version")), "person_id")),
                    from_=ir.Table(table), where=team, group_by=(ir.Column("distinct_id"),),
                    having=ir.eq(ir.call("argMax", ir.Column("is_deleted"), ir.Column("version")), ir.Const(0)),
                )
                out.append(ir.Join(ir.JoinKind.LEFT, sub, name,
                                   ir.eq(self.col("distinct_id"), ir.Column("distinct_id", name))))
        if "person" in self.joins:
            sub = ir.Select(
                columns=(ir.Column("id"),
                         ir.Alias(ir.call("argMax", ir.Column("properties"), ir.Column("version")), "properties")),
                from_=ir.Table("person"), where=team, group_by=(ir.Column("id"),),
                having=ir.eq(ir.call("argMax", ir.Column("is_deleted"), ir.Column("version")), ir.Const(0)),
            )
            out.append(ir.Join(ir.JoinKind.LEFT, sub, "person", ir.eq(ir.Column("id", "person"), self.person_id())))
        if "session" in self.joins:
            out.append(self._session_join(team))
        for index in range(5):
            name = f"group_{index}"
            if name in self.joins:
                sub = ir.Select(
                    columns=(ir.Column("group_key"), ir.Alias(
                        ir.call("argMax", ir.Column("group_properties"), ir.Column("updated_at")), "properties")),
                    from_=ir.Table("groups"),
                    where=ir.and_(team, ir.eq(ir.Column("group_type_index"), ir.Const(index))),
                    group_by=(ir.Column("group_key"),),
                )
                out.append(ir.Join(ir.JoinKind.LEFT, sub, name,
                                   ir.eq(self.col(f"$group_{index}"), ir.Column("group_key", name))))
        return tuple(out)
