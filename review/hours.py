"""When a person answers handoffs: the weekly support hours set in admin, read in SUPPORT_TIME_ZONE. Outside
them a visitor who asks for a person is told when someone will reply. With no hours set, support counts as
always open, so a deployment that never configures them behaves as before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from .models import SupportHours

DAY_NAMES = [label for _, label in SupportHours.Weekday.choices]


@dataclass(frozen=True)
class Span:
    weekday: int
    opens: time
    closes: time


def support_zone() -> ZoneInfo:
    return ZoneInfo(settings.SUPPORT_TIME_ZONE)


def _spans() -> list[Span]:
    return [Span(weekday, opens, closes) for weekday, opens, closes
            in SupportHours.objects.order_by("weekday", "opens").values_list("weekday", "opens", "closes")]


def _local(at: datetime | None) -> datetime:
    return (at or timezone.now()).astimezone(support_zone())


def _open_in(spans: list[Span], local: datetime) -> bool:
    return any(s.weekday == local.weekday() and s.opens <= local.time() < s.closes for s in spans)


def support_open(*, at: datetime | None = None) -> bool:
    """Whether a person is on duty at `at` (now by default). No support hours set: always."""
    spans = _spans()
    return not spans or _open_in(spans, _local(at))


def next_opening(*, at: datetime | None = None) -> datetime | None:
    """When support next opens, in SUPPORT_TIME_ZONE, if it is closed at `at`; None while it is open (and so
    always with no hours set): there is nothing to wait for."""
    spans, local = _spans(), _local(at)
    if not spans or _open_in(spans, local):
        return None
    return _first_opening_after(spans, local)


def _first_opening_after(spans: list[Span], local: datetime) -> datetime | None:
    # Eight days: today's later opening, or the same weekday next week when that is the only one.
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        for span in spans:
            opening = datetime.combine(day, span.opens, tzinfo=local.tzinfo)
            if span.weekday == day.weekday() and opening > local:
                return opening
    return None


def availability_message(*, at: datetime | None = None) -> str:
    """What a visitor asking for a person is told outside support hours, e.g. "Our team answers
    Monday–Friday 09:00–17:00 (Europe/Berlin). A person will reply from Monday 09:00." Empty while open."""
    spans, local = _spans(), _local(at)
    opening = None if not spans or _open_in(spans, local) else _first_opening_after(spans, local)
    if opening is None:
        return ""
    return (f"Our team answers {schedule_text(spans)} ({settings.SUPPORT_TIME_ZONE}). "
            f"A person will reply from {_when(opening, today=local.date())}.")


def schedule_text(spans: list[Span]) -> str:
    """The week in a line: runs of consecutive days with the same hours share one entry."""
    by_day = {day: tuple((s.opens, s.closes) for s in day_spans)
              for day, day_spans in groupby(spans, key=lambda s: s.weekday)}
    runs: list[tuple[list[int], tuple[tuple[time, time], ...]]] = []
    for day in sorted(by_day):
        if runs and runs[-1][0][-1] == day - 1 and runs[-1][1] == by_day[day]:
            runs[-1][0].append(day)
        else:
            runs.append(([day], by_day[day]))
    return ", ".join(f"{_days(days)} {_ranges(hours)}" for days, hours in runs)


def _days(days: list[int]) -> str:
    return DAY_NAMES[days[0]] if len(days) == 1 else f"{DAY_NAMES[days[0]]}–{DAY_NAMES[days[-1]]}"


def _ranges(hours: tuple[tuple[time, time], ...]) -> str:
    return " and ".join(f"{opens:%H:%M}–{closes:%H:%M}" for opens, closes in hours)


def _when(opening: datetime, *, today: date) -> str:
    if opening.date() == today:
        return f"{opening:%H:%M} today"
    if opening.date() == today + timedelta(days=1):
        return f"tomorrow {opening:%H:%M}"
    return f"{DAY_NAMES[opening.weekday()]} {opening:%H:%M}"
