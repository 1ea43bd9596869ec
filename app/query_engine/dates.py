"""Date-range resolution (spec/QUERY_ENGINE.md §3): relative strings, rounding, SQL bounds, buckets,
labels and the previous period of §8. Pure Python on zone-aware datetimes; `now` comes from the caller
(which reads `app.clock`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from app.errors import QueryError

SUB_DAY = ("second", "minute", "hour")
_ABSOLUTE_RE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_RELATIVE_RE = re.compile(r"-?(?P<n>\d+)?(?P<unit>[hdwmqyMs])(?P<pos>Start|End)?")
END_OF_DAY = time(23, 59, 59, 999999)
FALLBACK_EARLIEST = datetime(2015, 1, 1)


@dataclass(frozen=True)
class Parsed:
    value: datetime  # aware, in tz
    relative: bool
    unit: str | None = None  # the relative unit, for the truncation rules


def _wall(dt: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall-clock datetime made aware in tz (the earlier instant of an ambiguous time)."""
    return dt.replace(tzinfo=tz)


def parse_date(text: str, tz: ZoneInfo, now: datetime, *, path: str) -> Parsed:
    text = text.strip()
    m = _ABSOLUTE_RE.match(text)
    if m:
        y, mo, d, hh, mm, ss, frac, off = m.groups()
        try:
            naive = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0),
                             int((frac or "0").ljust(6, "0")))
        except ValueError as exc:
            raise QueryError(f"{path}: invalid date {text!r} ({exc}).", attr=path) from None
        if off:
            off = "+00:00" if off == "Z" else off
            sign = 1 if off[0] == "+" else -1
            digits = off[1:].replace(":", "")
            offset = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
            return Parsed(naive.replace(tzinfo=offset).astimezone(tz), relative=False)
        return Parsed(_wall(naive, tz), relative=False)
    now_local = now.astimezone(tz)
    m = _RELATIVE_RE.search(text)
    if not m:
        return Parsed(now_local, relative=True)
    n = int(m.group("n") or 0)
    unit, pos = m.group("unit"), m.group("pos")
    if n > 100_000:
        raise QueryError(f"{path}: relative date {text!r} is too far back.", attr=path)
    naive = now_local.replace(tzinfo=None)
    if unit in ("h", "M", "s"):  # exact durations: step in absolute time
        seconds = {"h": 3600, "M": 60, "s": 1}[unit] * n
        value = (now - timedelta(seconds=seconds)).astimezone(tz)
        if unit == "h" and pos == "Start":
            value = _wall(value.replace(tzinfo=None, minute=0, second=0, microsecond=0), tz)
        elif unit == "h" and pos == "End":
            value = _wall(value.replace(tzinfo=None, minute=59, second=59, microsecond=999999), tz)
        return Parsed(value, relative=True, unit=unit)
    try:
        if unit == "d":
            naive -= timedelta(days=n)
            if pos == "Start":
                naive = datetime.combine(naive.date(), time())
            elif pos == "End":
                naive = datetime.combine(naive.date(), END_OF_DAY)
        elif unit == "w":
            naive -= timedelta(weeks=n)
        elif unit == "q":
            naive -= timedelta(weeks=13 * n)
        elif unit == "m":
            naive -= relativedelta(months=n)
            if pos == "Start":
                naive = datetime.combine(naive.date().replace(day=1), time())
            elif pos == "End":
                naive = datetime.combine(naive.date() + relativedelta(day=31), END_OF_DAY)
        elif unit == "y":
            naive -= relativedelta(years=n)
            if pos == "Start":
                naive = datetime(naive.year, 1, 1)
            elif pos == "End":
                naive = datetime.combine(naive.date() + relativedelta(day=31), END_OF_DAY)
    except (OverflowError, ValueError):
        raise QueryError(f"{path}: relative date {text!r} is out of range.", attr=path) from None
    return Parsed(_wall(naive, tz), relative=True, unit=unit)


def start_of_interval(dt: datetime, interval: str, week_start_day: int, *, week_as_day: bool = False) -> datetime:
    """Start of dt's bucket in dt's zone (`week_as_day`: the week snapping rule of §3.3)."""
    tz = dt.tzinfo
    naive = dt.replace(tzinfo=None)
    if interval == "second":
        naive = naive.replace(microsecond=0)
    elif interval == "minute":
        naive = naive.replace(second=0, microsecond=0)
    elif interval == "hour":
        naive = naive.replace(minute=0, second=0, microsecond=0)
    elif interval == "day" or (interval == "week" and week_as_day):
        naive = datetime.combine(naive.date(), time())
    elif interval == "week":
        back = naive.weekday() if week_start_day == 1 else (naive.weekday() + 1) % 7
        naive = datetime.combine(naive.date() - timedelta(days=back), time())
    elif interval == "month":
        naive = datetime(naive.year, naive.month, 1)
    return _wall(naive, tz)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Bucket:
    start: datetime  # aware, in tz
    key: str | int  # what the SQL bucket expression returns for it


@dataclass(frozen=True)
class ResolvedRange:
    date_from: datetime
    date_to: datetime
    interval: str
    week_start_day: int
    snap: bool  # whether the lower SQL bound snaps to the start of the interval
    relative_from: bool = False
    from_text: str | None = None
    to_absent: bool = True
    to_text: str | None = None

    @property
    def lower(self) -> datetime:
        if not self.snap:
            return self.date_from
        return start_of_interval(self.date_from, self.interval, self.week_start_day, week_as_day=True)

    @property
    def upper(self) -> datetime:
        """date_to at second precision (§3.3: microseconds are dropped)."""
        return self.date_to.replace(microsecond=0)

    def buckets(self, limit: int = 10_000) -> list[Bucket]:
        first = start_of_interval(self.date_from, self.interval, self.week_start_day)
        last = start_of_interval(self.date_to, self.interval, self.week_start_day)
        out: list[Bucket] = []
        tz = self.date_from.tzinfo
        if self.interval in SUB_DAY:
            step = {"second": 1, "minute": 60, "hour": 3600}[self.interval]
            ts, end = int(first.timestamp()), int(last.timestamp())
            while ts <= end:
                out.append(Bucket(datetime.fromtimestamp(ts, tz), ts))
                ts += step
                if len(out) > limit:
                    break
        else:
            day = first.date()
            while day <= last.date():
                out.append(Bucket(_wall(datetime.combine(day, time()), tz), day.isoformat()))  # type: ignore[arg-type]
                day = day + (relativedelta(months=1) if self.interval == "month"
                             else timedelta(days=7 if self.interval == "week" else 1))
                if len(out) > limit:
                    break
        if len(out) > limit:
            raise QueryError(f"The date range has more than {limit} {self.interval} intervals; "
                             "use a shorter range or a longer interval.", attr="query.dateRange")
        return out

    def as_json(self) -> dict[str, str]:
        return {"date_from": iso(self.date_from), "date_to": iso(self.date_to)}


def iso(dt: datetime) -> str:
    text = dt.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def resolve(
    *, date_from: str | None, date_to: str | None, explicit: bool, interval: str, tz: ZoneInfo, now: datetime,
    week_start_day: int, exact: bool = False, earliest: datetime | None = None,
) -> ResolvedRange:
    """The current period of §3.2 (`exact`: the BoldNumber exact-time-range mode)."""
    now_local = now.astimezone(tz)
    relative_from, hour_delta = False, False
    if date_from == "all":
        start = (earliest or _wall(FALLBACK_EARLIEST, tz)).astimezone(tz)
    elif date_from:
        parsed = parse_date(date_from, tz, now, path="query.dateRange.date_from")
        start, relative_from = parsed.value, parsed.relative
        hour_delta = parsed.unit == "h"
        # §3.1/§3.2: an hours delta truncates to the hour, any other delta (minutes and seconds
        # included, as PostHog's relative_date_parse) to the day; not for minute (nor the finer
        # second) interval, nor in exact-time-range mode.
        if parsed.relative and not (interval in ("minute", "second") or exact):
            naive = start.replace(tzinfo=None)
            if parsed.unit == "h":
                naive = naive.replace(minute=0, second=0, microsecond=0)
            else:
                naive = datetime.combine(naive.date(), time())
            start = _wall(naive, tz)
    else:
        start = _wall(datetime.combine(now_local.date() - timedelta(days=7), time()), tz)
    to_relative = True
    if date_to:
        parsed_to = parse_date(date_to, tz, now, path="query.dateRange.date_to")
        end, to_relative = parsed_to.value, parsed_to.relative
    else:
        end = now_local
    if not (exact and not date_to) and not explicit:
        naive = end.replace(tzinfo=None)
        if interval not in SUB_DAY:
            naive = datetime.combine(naive.date(), END_OF_DAY)
        elif to_relative and interval == "hour":
            naive = naive.replace(minute=59, second=59, microsecond=999999)
        elif to_relative and interval == "minute":
            naive = naive.replace(second=59, microsecond=999999)
        elif to_relative and interval == "second":
            naive = naive.replace(microsecond=999999)
        end = _wall(naive, tz)
    snap = True
    if date_from and date_from != "all":
        if exact or explicit or (relative_from and interval in SUB_DAY) or (
            relative_from and hour_delta and interval == "day"
        ):
            snap = False
    elif exact or explicit:
        snap = False
    return ResolvedRange(start, end, interval, week_start_day, snap, relative_from, date_from, not date_to,
                         date_to or None)


# "This week/month/quarter/year" so far: compared with the whole previous calendar unit (§8, newest).
_CALENDAR_UNITS = {"wStart": relativedelta(weeks=1), "mStart": relativedelta(months=1),
                   "qStart": relativedelta(months=3), "yStart": relativedelta(years=1)}
_ONE_MICROSECOND = timedelta(microseconds=1)


def _whole_weeks_of_days(date_from: str | None) -> bool:
    """Whether date_from is relative in days, a multiple of 7 of them (`-7d`, `-14dStart`); an absent
    date_from is the default `-7d`."""
    if date_from is None:
        return True
    if _ABSOLUTE_RE.match(date_from.strip()) or date_from == "all":
        return False
    m = _RELATIVE_RE.search(date_from)
    return bool(m and m.group("unit") == "d" and m.group("n") and int(m.group("n")) > 0
                and int(m.group("n")) % 7 == 0)


def _to_has_delta(date_to: str | None) -> bool:
    """Whether date_to is relative with a non-empty delta (PostHog's date_to delta mapping): absent,
    absolute, and relative strings that shift nothing (`now`, `w`) have none."""
    if not date_to or _ABSOLUTE_RE.match(date_to.strip()):
        return False
    m = _RELATIVE_RE.search(date_to)
    if not m:
        return False
    unit, n, pos = m.group("unit"), m.group("n"), m.group("pos")
    return bool(n and int(n) > 0) or (pos is not None and unit in ("h", "d", "m", "y"))


def previous_period(current: ResolvedRange, compare_to: str | None, interval: str, tz: ZoneInfo) -> ResolvedRange:
    """§8: the period compared with `current` (with `query.interval`, even for total-value displays).
    All arithmetic is on wall-clock times in tz, like PostHog's on zone-aware datetimes."""
    f, t = current.date_from.replace(tzinfo=None), current.date_to.replace(tzinfo=None)
    span = t - f
    unit = _CALENDAR_UNITS.get(current.from_text or "") if current.to_absent else None
    if compare_to:
        start = parse_date(compare_to, tz, current.date_from, path="query.compareFilter.compare_to").value
        start = start.replace(tzinfo=None)
        end = start + span
    elif unit is not None:  # the whole previous calendar unit, ending just before F
        start, end = f - unit, f - _ONE_MICROSECOND
    elif current.from_text == "all":  # an equal span ending just before the first event
        end = f - _ONE_MICROSECOND
        start = end - span
    elif interval == "minute" or interval == "second":
        start, end = f - span, f
    elif interval == "hour":  # F's time of day on the start, T's minutes/seconds on the end
        start = datetime.combine((f - span).date(), f.time())
        end = (start + span).replace(minute=t.minute, second=t.second, microsecond=t.microsecond)
    else:  # keep F's time of day and T's on the end
        start = datetime.combine((f - span).date(), f.time())
        if interval == "day" and _whole_weeks_of_days(current.from_text) and not _to_has_delta(current.to_text):
            start += timedelta(days=1)  # `-7d` spans 8 days: keep weekdays aligned
        end = datetime.combine((start + span).date(), t.time())
    return replace(current, date_from=_wall(start, tz), date_to=_wall(end, tz), interval=interval)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day_label(d: date) -> str:
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}"


def labels(rng: ResolvedRange, buckets: list[Bucket]) -> tuple[list[str], list[str]]:
    """(`labels`, `days`) of §10.2/§10.6."""
    out_labels, days = [], []
    lo, hi = rng.date_from.date(), rng.date_to.date()
    for b in buckets:
        s = b.start
        if rng.interval in SUB_DAY:
            days.append(s.strftime("%Y-%m-%d %H:%M:%S"))
            out_labels.append(f"{s.day}-{_MONTHS[s.month - 1]} {s.strftime('%H:%M')}" +
                              (f":{s.strftime('%S')}" if rng.interval == "second" else ""))
            continue
        days.append(s.date().isoformat())
        if rng.interval == "day":
            out_labels.append(_day_label(s.date()))
        elif rng.interval == "month":
            out_labels.append(f"{_MONTHS[s.month - 1]} {s.year}")
        else:
            a, z = max(s.date(), lo), min(s.date() + timedelta(days=6), hi)
            if a >= z:
                out_labels.append(_day_label(a))
            elif a.year != z.year:
                out_labels.append(f"{_day_label(a)} – {_day_label(z)}")
            elif a.month != z.month:
                out_labels.append(f"{a.day}-{_MONTHS[a.month - 1]} – {z.day}-{_MONTHS[z.month - 1]}")
            else:
                out_labels.append(f"{a.day}–{z.day} {_MONTHS[a.month - 1]}")
    return out_labels, days
