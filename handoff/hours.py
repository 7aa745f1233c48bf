"""Business hours of a support team (time zone, weekly schedule, holidays) and the out-of-hours
acknowledgement that tells a shopper, in their language and their own local time, when a person replies
(or, when their time zone is unknown, within how many hours)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time
from babel.units import format_unit

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEARCH_DAYS = 400  # a year of holidays plus margin: a schedule with no open day at all is an error


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai'") from exc


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("business-hours arithmetic needs timezone-aware datetimes")


def _parse_time(value: str | time) -> time:
    if isinstance(value, time):
        return value
    try:
        hour, minute = value.split(":")
        if hour == "24" and minute == "00":
            return time.max
        return time(int(hour), int(minute))
    except ValueError as exc:
        raise ValueError(f"bad time {value!r} in business hours: write it as HH:MM, e.g. '09:00'") from exc


@dataclass(frozen=True)
class BusinessHours:
    """Opening intervals per weekday (0 = Monday) in the team's time zone, closed on holidays."""

    timezone: str
    weekly: Mapping[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _zone(self.timezone)
        for day, intervals in self.weekly.items():
            if day not in range(7):
                raise ValueError(f"weekday {day} is out of range: use 0 (Monday) to 6 (Sunday)")
            for start, end in intervals:
                if not start < end:
                    raise ValueError(f"opening interval {start}-{end} on {WEEKDAYS[day]} ends before it starts")

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    @classmethod
    def always_open(cls) -> BusinessHours:
        return cls("UTC", {d: ((time(0, 0), time.max),) for d in range(7)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessHours:
        """Read `{"timezone": "Asia/Shanghai", "hours": {"mon": ["09:00-18:00"], ...}, "holidays": [...]}`."""
        weekly: dict[int, tuple[tuple[time, time], ...]] = {}
        for key, spans in (data.get("hours") or {}).items():
            name = str(key).lower()[:3]
            if name not in WEEKDAYS:
                raise ValueError(f"unknown weekday {key!r} in business hours: use mon, tue, ... sun")
            intervals = []
            for span in spans:
                start, _, end = str(span).partition("-")
                intervals.append((_parse_time(start.strip()), _parse_time(end.strip())))
            weekly[WEEKDAYS.index(name)] = tuple(sorted(intervals))
        holidays = frozenset(date.fromisoformat(str(d)) for d in data.get("holidays") or ())
        return cls(str(data.get("timezone", "UTC")), weekly, holidays)

    def to_dict(self) -> dict[str, Any]:
        def fmt(t: time) -> str:
            return "24:00" if t == time.max else t.strftime("%H:%M")

        return {
            "timezone": self.timezone,
            "hours": {WEEKDAYS[d]: [f"{fmt(a)}-{fmt(b)}" for a, b in spans] for d, spans in sorted(self.weekly.items())},
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    def _intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening intervals as aware datetimes (DST-correct via zoneinfo)."""
        if day in self.holidays:
            return []
        zone = self.zone
        out = []
        for start, end in self.weekly.get(day.weekday(), ()):
            begin = datetime.combine(day, start, zone)
            finish = (datetime.combine(day + timedelta(days=1), time(0), zone) if end == time.max
                      else datetime.combine(day, end, zone))
            out.append((begin, finish))
        return out

    def _intervals_from(self, at: datetime) -> Iterable[tuple[datetime, datetime]]:
        """Opening intervals that end after `at`, in order, clipped to start no earlier than `at`."""
        day = at.astimezone(self.zone).date()
        for offset in range(_SEARCH_DAYS):
            for begin, finish in self._intervals_on(day + timedelta(days=offset)):
                if finish > at:
                    yield max(begin, at), finish

    def is_open(self, at: datetime) -> bool:
        _require_aware(at)
        day = at.astimezone(self.zone).date()
        return any(begin <= at < finish for begin, finish in self._intervals_on(day))

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the start of the next opening interval (in the team's zone)."""
        _require_aware(at)
        for begin, _ in self._intervals_from(at):
            return begin.astimezone(self.zone)
        raise ValueError("these business hours are never open: add opening hours to the team")

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment when `duration` of open time has passed after `start` (the clock stops while closed)."""
        _require_aware(start)
        remaining = duration
        if remaining <= timedelta(0):
            return start
        for begin, finish in self._intervals_from(start):
            available = finish - begin
            if remaining <= available:
                return (begin + remaining).astimezone(self.zone)
            remaining -= available
        raise ValueError("these business hours are never open: add opening hours to the team")

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time between two moments (zero when `end` is not after `start`)."""
        _require_aware(start)
        _require_aware(end)
        total = timedelta(0)
        if end <= start:
            return total
        for begin, finish in self._intervals_from(start):
            if begin >= end:
                break
            total += min(finish, end) - begin
        return total


# --- out-of-hours acknowledgement -------------------------------------------------------------------------

@dataclass(frozen=True)
class _AckPhrases:
    sentence: str
    today: str
    tomorrow: str
    weekday: str
    later: str
    within: str  # the sentence when the shopper's time zone is unknown: {duration} from now
    time_pattern: str | None = None  # None: the locale's short time format


# One sentence per supported language; {when} is the relative reply time in the shopper's zone.
_ACK: dict[str, _AckPhrases] = {
    "en": _AckPhrases("Thanks for your message. Our team is offline right now; a person will reply {when} your time.",
                      "by {time} today", "by {time} tomorrow", "by {time} on {weekday}", "by {time} on {date}",
                      "Thanks for your message. Our team is offline right now; a person will reply within {duration}."),
    "de": _AckPhrases("Danke für Ihre Nachricht. Unser Team ist gerade nicht erreichbar; "
                      "eine Person antwortet Ihnen {when} Ihrer Zeit.",
                      "bis heute {time} Uhr", "bis morgen {time} Uhr", "bis {weekday}, {time} Uhr",
                      "bis {date}, {time} Uhr",
                      "Danke für Ihre Nachricht. Unser Team ist gerade nicht erreichbar; "
                      "eine Person antwortet Ihnen innerhalb von {duration}.", "H:mm"),
    "es": _AckPhrases("Gracias por tu mensaje. Nuestro equipo no está disponible ahora; "
                      "una persona te responderá {when} (tu hora local).",
                      "hoy antes de las {time}", "mañana antes de las {time}", "el {weekday} antes de las {time}",
                      "el {date} antes de las {time}",
                      "Gracias por tu mensaje. Nuestro equipo no está disponible ahora; "
                      "una persona te responderá en un plazo de {duration}.", "H:mm"),
    "fr": _AckPhrases("Merci pour votre message. Notre équipe est absente pour le moment ; "
                      "une personne vous répondra {when} (votre heure locale).",
                      "aujourd’hui avant {time}", "demain avant {time}", "{weekday} avant {time}",
                      "le {date} avant {time}",
                      "Merci pour votre message. Notre équipe est absente pour le moment ; "
                      "une personne vous répondra sous {duration}.", "H'h'mm"),
    "it": _AckPhrases("Grazie per il messaggio. Il nostro team al momento non è disponibile; "
                      "una persona ti risponderà {when} (tua ora locale).",
                      "oggi entro le {time}", "domani entro le {time}", "{weekday} entro le {time}",
                      "il {date} entro le {time}",
                      "Grazie per il messaggio. Il nostro team al momento non è disponibile; "
                      "una persona ti risponderà entro {duration}.", "H:mm"),
    "pt": _AckPhrases("Obrigado pela sua mensagem. Nossa equipe não está disponível agora; "
                      "uma pessoa responderá {when} (no seu horário local).",
                      "hoje até as {time}", "amanhã até as {time}", "{weekday} até as {time}",
                      "em {date} até as {time}",
                      "Obrigado pela sua mensagem. Nossa equipe não está disponível agora; "
                      "uma pessoa responderá em até {duration}.", "H:mm"),
    "nl": _AckPhrases("Bedankt voor je bericht. Ons team is nu niet bereikbaar; "
                      "een medewerker antwoordt {when} (jouw lokale tijd).",
                      "vandaag vóór {time}", "morgen vóór {time}", "{weekday} vóór {time}",
                      "op {date} vóór {time}",
                      "Bedankt voor je bericht. Ons team is nu niet bereikbaar; "
                      "een medewerker antwoordt binnen {duration}.", "H:mm"),
    "ja": _AckPhrases("メッセージありがとうございます。ただいま担当者が不在のため、"
                      "お客様の現地時間で{when}までに担当者よりご返信いたします。",
                      "本日{time}", "明日{time}", "{weekday}{time}", "{date}{time}",
                      "メッセージありがとうございます。ただいま担当者が不在のため、"
                      "{duration}以内に担当者よりご返信いたします。", "H:mm"),
    "zh": _AckPhrases("感谢您的留言。我们的团队目前不在线，工作人员将在您当地时间{when}前回复您。",
                      "今天{time}", "明天{time}", "{weekday}{time}", "{date}{time}",
                      "感谢您的留言。我们的团队目前不在线，工作人员将在{duration}内回复您。", "H:mm"),
}
ACK_LANGUAGES = tuple(_ACK)
_FALLBACK_LANGUAGE = "en"


def _ack_language(language: str) -> str:
    """The acknowledgement language for a shopper's language tag ("pt-BR", "de_AT"): its base, else English."""
    lang = language.split("-")[0].split("_")[0].lower()
    return lang if lang in _ACK else _FALLBACK_LANGUAGE


def reply_time_phrase(reply_by: datetime, now: datetime, shopper_timezone: str, language: str) -> str:
    """"by 9:00 PM tomorrow" / "bis morgen 9:00 Uhr": relative to the shopper's own local date."""
    _require_aware(reply_by)
    _require_aware(now)
    lang = _ack_language(language)
    phrases = _ACK[lang]
    zone = _zone(shopper_timezone)
    local_reply = reply_by.astimezone(zone)
    local_today = now.astimezone(zone).date()
    shown_time = format_time(local_reply.timetz(), phrases.time_pattern or "short", locale=lang)
    shown_time = shown_time.replace("\u202f", " ")  # CLDR's narrow space breaks some SMS/e-mail clients
    days_ahead = (local_reply.date() - local_today).days
    if days_ahead <= 0:
        template = phrases.today
    elif days_ahead == 1:
        template = phrases.tomorrow
    elif days_ahead < 7:
        template = phrases.weekday
    else:
        template = phrases.later
    return template.format(
        time=shown_time,
        weekday=format_date(local_reply.date(), "EEEE", locale=lang),
        date=format_date(local_reply.date(), "long", locale=lang),
    )


def reply_within_phrase(reply_by: datetime, now: datetime, language: str) -> str:
    """"14 hours" / "14 Stunden" / "45 minutes": the wait, rounded up, in hours (minutes under an hour).
    Hours, not days, even for a long weekend: "innerhalb von 3 Tagen" would need the dative."""
    _require_aware(reply_by)
    _require_aware(now)
    lang = _ack_language(language)
    wait = max(reply_by - now, timedelta(minutes=1))
    if wait <= timedelta(hours=1):
        minutes = max(5, 5 * math.ceil(wait / timedelta(minutes=5)))
        amount, unit = (1, "duration-hour") if minutes >= 60 else (minutes, "duration-minute")
    else:
        amount, unit = math.ceil(wait / timedelta(hours=1)), "duration-hour"
    return str(format_unit(amount, unit, length="long", locale=lang)).replace("\u202f", " ")


def out_of_hours_acknowledgement(
    hours: BusinessHours,
    now: datetime,
    shopper_timezone: str | None,
    language: str,
    first_response: timedelta = timedelta(0),
) -> tuple[str, datetime]:
    """The acknowledgement text and the promised reply time: the team's next opening plus the
    first-response target counted in business time. The time is the shopper's local time when their zone
    is known (the widget's browser, a phone number's country); otherwise the wait in hours, since a clock
    time in the team's zone called "your time" would be wrong for most shoppers."""
    reply_by = hours.add_business_time(hours.next_open(now), first_response)
    phrases = _ACK[_ack_language(language)]
    if not shopper_timezone:
        return phrases.within.format(duration=reply_within_phrase(reply_by, now, language)), reply_by.astimezone(UTC)
    when = reply_time_phrase(reply_by, now, shopper_timezone, language)
    return phrases.sentence.format(when=when), reply_by.astimezone(UTC)
