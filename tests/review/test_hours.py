"""Support hours: whether a person is on duty, when one next is, and what a visitor is told meanwhile, in
SUPPORT_TIME_ZONE whatever the server's zone."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from review.hours import availability_message, next_opening, support_open
from review.models import SupportHours

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


@pytest.fixture(autouse=True)
def berlin(settings):
    settings.SUPPORT_TIME_ZONE = "Europe/Berlin"


def weekdays(opens: str = "09:00", closes: str = "17:00", days: range = range(5)) -> None:
    for day in days:
        SupportHours.objects.create(weekday=day, opens=time.fromisoformat(opens), closes=time.fromisoformat(closes))


def berlin_at(day: int, hh_mm: str) -> datetime:
    """A moment in the week of Monday 13 January 2025, Berlin time (CET, UTC+1)."""
    return datetime.combine(datetime(2025, 1, 13 + day).date(), time.fromisoformat(hh_mm), tzinfo=BERLIN)


def test_with_no_hours_set_a_person_is_always_available():
    at = berlin_at(6, "03:00")
    assert support_open(at=at) is True
    assert next_opening(at=at) is None and availability_message(at=at) == ""


def test_it_is_open_inside_the_hours_and_says_nothing():
    weekdays()
    assert support_open(at=berlin_at(2, "09:00")) and support_open(at=berlin_at(2, "16:59"))
    assert availability_message(at=berlin_at(2, "10:00")) == "" and next_opening(at=berlin_at(2, "10:00")) is None


def test_closing_time_is_already_closed():
    weekdays()
    assert not support_open(at=berlin_at(2, "17:00"))


def test_hours_are_read_in_the_support_time_zone():
    weekdays()
    assert support_open(at=datetime(2025, 1, 15, 8, 30, tzinfo=UTC))  # 09:30 in Berlin (CET)
    assert not support_open(at=datetime(2025, 1, 15, 7, 30, tzinfo=UTC))  # 08:30 in Berlin
    assert support_open(at=datetime(2025, 7, 16, 7, 30, tzinfo=UTC))  # 09:30 in Berlin (CEST)


def test_on_friday_evening_the_visitor_is_told_monday_morning():
    weekdays()
    friday_evening = berlin_at(4, "17:30")
    assert next_opening(at=friday_evening) == berlin_at(7, "09:00")
    assert availability_message(at=friday_evening) == (
        "Our team answers Monday–Friday 09:00–17:00 (Europe/Berlin). A person will reply from Monday 09:00.")


def test_it_says_tomorrow_after_closing_and_today_before_opening():
    weekdays()
    assert availability_message(at=berlin_at(2, "18:00")).endswith("A person will reply from tomorrow 09:00.")
    assert availability_message(at=berlin_at(0, "07:15")).endswith("A person will reply from 09:00 today.")


def test_a_lunch_break_and_a_short_saturday_read_as_one_line():
    weekdays("09:00", "12:00")
    weekdays("13:00", "17:00")
    weekdays("10:00", "14:00", days=range(5, 6))
    assert next_opening(at=berlin_at(2, "12:30")) == berlin_at(2, "13:00")
    assert availability_message(at=berlin_at(2, "12:30")) == (
        "Our team answers Monday–Friday 09:00–12:00 and 13:00–17:00, Saturday 10:00–14:00 (Europe/Berlin). "
        "A person will reply from 13:00 today.")


def test_a_single_weekly_slot_that_has_passed_opens_again_a_week_later():
    weekdays("10:00", "12:00", days=range(6, 7))
    assert next_opening(at=berlin_at(6, "12:30")) == berlin_at(13, "10:00")
    assert "Our team answers Sunday 10:00–12:00" in availability_message(at=berlin_at(6, "12:30"))
