"""Out-of-hours acknowledgements: a team in Shenzhen promises shoppers in New York and Berlin a reply
time in their own local time, in their language, right across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from handoff.hours import ACK_LANGUAGES, BusinessHours, out_of_hours_acknowledgement

SHENZHEN = BusinessHours.from_dict({
    "timezone": "Asia/Shanghai",
    "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-10-01", "2026-10-02"],
})
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def test_open_and_next_open_follow_the_team_time_zone() -> None:
    tuesday_10_shenzhen = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    assert SHENZHEN.is_open(tuesday_10_shenzhen)
    friday_evening = datetime(2026, 3, 13, 19, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert not SHENZHEN.is_open(friday_evening)
    assert SHENZHEN.next_open(friday_evening) == datetime(2026, 3, 16, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_holidays_are_closed_all_day() -> None:
    national_day_morning = datetime(2026, 10, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Thursday
    assert not SHENZHEN.is_open(national_day_morning)
    assert SHENZHEN.next_open(national_day_morning) == datetime(2026, 10, 5, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_business_time_skips_nights_and_weekends() -> None:
    friday_1750 = datetime(2026, 3, 13, 17, 50, tzinfo=ZoneInfo("Asia/Shanghai"))
    due = SHENZHEN.add_business_time(friday_1750, timedelta(minutes=30))
    assert due == datetime(2026, 3, 16, 9, 20, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert SHENZHEN.business_time_between(friday_1750, due) == timedelta(minutes=30)


def test_new_york_shopper_on_saturday_hears_tomorrow_evening_in_her_time() -> None:
    # 14 March 2026: New York is already on daylight time (UTC-4), Shenzhen opens Monday 09:00 = Sunday 21:00.
    saturday = datetime(2026, 3, 14, 10, 0, tzinfo=NY)
    text, reply_by = out_of_hours_acknowledgement(SHENZHEN, saturday, "America/New_York", "en")
    assert reply_by == datetime(2026, 3, 16, 1, 0, tzinfo=UTC)
    assert "by 9:00 PM tomorrow your time" in text


def test_new_york_before_dst_change_is_an_hour_earlier() -> None:
    # 28 February 2026: standard time (UTC-5), so Monday 09:00 in Shenzhen is Sunday 20:00 in New York.
    saturday = datetime(2026, 2, 28, 10, 0, tzinfo=NY)
    text, _ = out_of_hours_acknowledgement(SHENZHEN, saturday, "America/New_York", "en")
    assert "by 8:00 PM tomorrow your time" in text


def test_berlin_shopper_gets_german_text_with_monday_morning() -> None:
    saturday = datetime(2026, 3, 14, 16, 0, tzinfo=BERLIN)  # Berlin on CET (UTC+1) until 29 March
    text, _ = out_of_hours_acknowledgement(SHENZHEN, saturday, "Europe/Berlin", "de")
    assert "bis Montag, 2:00 Uhr Ihrer Zeit" in text


def test_berlin_after_its_dst_change_and_late_evening_means_tomorrow() -> None:
    # Monday 30 March 2026, 23:30 Berlin (CEST, UTC+2) = Tuesday 05:30 Shenzhen: opens 09:00 = 03:00 Berlin.
    monday_night = datetime(2026, 3, 30, 23, 30, tzinfo=BERLIN)
    text, _ = out_of_hours_acknowledgement(SHENZHEN, monday_night, "Europe/Berlin", "de")
    assert "bis morgen 3:00 Uhr Ihrer Zeit" in text


def test_same_local_day_says_today() -> None:
    # Sunday 15 March 14:00 in New York = Monday 02:00 in Shenzhen; it opens at 21:00 New York time.
    sunday = datetime(2026, 3, 15, 14, 0, tzinfo=NY)
    text, _ = out_of_hours_acknowledgement(SHENZHEN, sunday, "America/New_York", "en")
    assert "by 9:00 PM today your time" in text


def test_first_response_target_moves_the_promise_in_business_time() -> None:
    saturday = datetime(2026, 3, 14, 10, 0, tzinfo=NY)
    text, reply_by = out_of_hours_acknowledgement(SHENZHEN, saturday, "America/New_York", "en",
                                                  first_response=timedelta(hours=1))
    assert reply_by == datetime(2026, 3, 16, 2, 0, tzinfo=UTC)
    assert "by 10:00 PM tomorrow" in text


@pytest.mark.parametrize("language, expected", [
    ("es", "mañana antes de las 21:00"), ("fr", "demain avant 21h00"), ("it", "domani entro le 21:00"),
    ("pt", "amanhã até as 21:00"), ("nl", "morgen vóór 21:00"), ("ja", "明日21:00"), ("zh", "明天21:00"),
])
def test_every_supported_language_states_the_local_time(language: str, expected: str) -> None:
    saturday = datetime(2026, 3, 14, 10, 0, tzinfo=NY)
    text, _ = out_of_hours_acknowledgement(SHENZHEN, saturday, "America/New_York", language)
    assert expected in text
    assert language in ACK_LANGUAGES


def test_unknown_language_falls_back_to_english() -> None:
    saturday = datetime(2026, 3, 14, 10, 0, tzinfo=NY)
    text, _ = out_of_hours_acknowledgement(SHENZHEN, saturday, "America/New_York", "sw")
    assert text.startswith("Thanks for your message")


def test_bad_configuration_says_what_to_fix() -> None:
    with pytest.raises(ValueError, match="IANA"):
        BusinessHours.from_dict({"timezone": "Shenzhen", "hours": {"mon": ["09:00-18:00"]}})
    with pytest.raises(ValueError, match="HH:MM"):
        BusinessHours.from_dict({"timezone": "UTC", "hours": {"mon": ["9am-6pm"]}})


def test_unknown_time_zone_gets_the_wait_in_hours_not_a_clock_time_called_yours() -> None:
    # Wednesday 20:10 in Shenzhen; it opens Thursday 09:00 and answers within an hour: 13 h 50 min -> 14 hours.
    wednesday_evening = datetime(2026, 12, 2, 20, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
    text, reply_by = out_of_hours_acknowledgement(SHENZHEN, wednesday_evening, None, "en",
                                                  first_response=timedelta(hours=1))
    assert reply_by == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert text == "Thanks for your message. Our team is offline right now; a person will reply within 14 hours."
    assert "your time" not in text
    text, _ = out_of_hours_acknowledgement(SHENZHEN, wednesday_evening, None, "de",
                                           first_response=timedelta(hours=1))
    assert "innerhalb von 14 Stunden." in text and "Ihrer Zeit" not in text


def test_a_short_wait_is_said_in_minutes_and_a_weekend_in_hours() -> None:
    just_before_opening = datetime(2026, 3, 16, 8, 22, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday
    text, _ = out_of_hours_acknowledgement(SHENZHEN, just_before_opening, None, "en")
    assert text.endswith("within 40 minutes.")
    friday_night = datetime(2026, 3, 13, 19, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    text, _ = out_of_hours_acknowledgement(SHENZHEN, friday_night, None, "fr")
    assert "sous 62\u00a0heures." in text  # CLDR keeps the number and the unit together


@pytest.mark.parametrize("language, expected", [
    ("es", "en un plazo de 14 horas"), ("fr", "sous 14\u00a0heures"), ("it", "entro 14 ore"), ("pt", "em até 14 horas"),
    ("nl", "binnen 14 uur"), ("ja", "14 時間以内"), ("zh", "在14小时内"), ("sw", "within 14 hours"),
])
def test_every_supported_language_states_the_wait(language: str, expected: str) -> None:
    wednesday_evening = datetime(2026, 12, 2, 20, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
    text, _ = out_of_hours_acknowledgement(SHENZHEN, wednesday_evening, None, language,
                                           first_response=timedelta(hours=1))
    assert expected in text
