"""Go ``time.Time`` values as Docker reads and writes them: RFC 3339 with nanoseconds.

A :class:`GoTime` is an instant (whole seconds since the Unix epoch plus nanoseconds) and the
zone offset it was written with. Go keeps the offset of a parsed time and writes it back, so
``+02:00`` stays ``+02:00`` while ``+00:00`` comes back as ``Z``.

Parsing follows ``time.Parse(time.RFC3339, ...)`` as Go 1.19 does it (the Go release Docker
20.10 was built with), including its leniencies: a one-digit hour, a comma before the
fraction, more than nine fraction digits (truncated) and an offset hour or minute up to 99.
"""

from __future__ import annotations

import re
from typing import ClassVar, Optional, Union

import attrs

from .errors import InvalidTimestamp

__all__ = ["MAX_UNIX_NANOS", "GoTime", "tar_mtime"]

_SECONDS_PER_DAY = 86_400
_NANOS = 1_000_000_000

# Go's zero time, 0001-01-01T00:00:00Z, in seconds since the Unix epoch.
_ZERO_UNIX = -62_135_596_800

MAX_UNIX_NANOS = (1 << 63) - 1
"""The latest instant ``os.Chtimes`` accepts (2262-04-11T23:47:16.854775807Z) in Unix ns."""

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DIGITS = re.compile(r"[0-9]*")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in(month: int, year: int) -> int:
    if month == 2 and _is_leap(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, including 0)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The (year, month, day) of a day count since 1970-01-01."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _go_atoi(text: str) -> Optional[int]:
    """Go ``time.atoi``: an optional sign, then digits only; ``None`` when it fails."""
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not text.isdigit() or not text.isascii():
        # Go's leadingInt also accepts an empty remainder as 0.
        return 0 if text == "" else None
    return sign * int(text)


def _format_year(year: int) -> str:
    return f"-{-year:04d}" if year < 0 else f"{year:04d}"


@attrs.frozen
class GoTime:
    """An instant with the zone offset it was written in, as a Go ``time.Time`` holds it.

    ``unix`` is whole seconds since 1970-01-01T00:00:00Z (floored, so negative before it),
    ``nanos`` the nanoseconds within that second, ``offset`` the zone in seconds east of UTC.
    """

    unix: int
    nanos: int = attrs.field(default=0)
    offset: int = 0

    ZERO: ClassVar[GoTime]
    """Go's zero time, ``0001-01-01T00:00:00Z``: what a missing ``created`` decodes to."""

    @nanos.validator
    def _check_nanos(self, attribute: object, value: int) -> None:
        if not 0 <= value < _NANOS:
            raise ValueError(f"nanos must be in [0, 1e9), not {value}")

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_unix(cls, seconds: int, nanos: int = 0, offset: int = 0) -> GoTime:
        """Go's ``time.Unix(seconds, nanos)`` shown in a zone ``offset`` seconds east of UTC."""
        extra, nanos = divmod(nanos, _NANOS)
        return cls(seconds + extra, nanos, offset)

    @classmethod
    def parse(cls, text: Union[str, bytes]) -> GoTime:
        """Parse an RFC 3339 timestamp exactly as Go 1.19's ``time.Parse(RFC3339)`` does."""
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidTimestamp(
                    "timestamp is not RFC 3339 (non-ASCII bytes)", repr(text)
                ) from None
        result = _parse_rfc3339(text)
        if isinstance(result, str):
            raise InvalidTimestamp(f"cannot parse {text!r} as RFC 3339: {result}", text)
        return result

    # -- views -----------------------------------------------------------------------------

    @property
    def unix_seconds(self) -> int:
        """Whole seconds since the Unix epoch, floored (Go's ``Unix()`` for these values)."""
        return self.unix

    @property
    def unix_nanos(self) -> int:
        """Nanoseconds since the Unix epoch."""
        return self.unix * _NANOS + self.nanos

    @property
    def is_zero(self) -> bool:
        """Whether this is Go's zero instant (0001-01-01T00:00:00Z), whatever the zone."""
        return self.unix == _ZERO_UNIX and self.nanos == 0

    def format(self) -> str:
        """The text of Go's ``Format(time.RFC3339Nano)``, which ``json.Marshal`` writes."""
        local = self.unix + self.offset
        days, second_of_day = divmod(local, _SECONDS_PER_DAY)
        year, month, day = _civil_from_days(days)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        text = f"{_format_year(year)}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        if self.nanos:
            text += "." + f"{self.nanos:09d}".rstrip("0")
        if self.offset == 0:
            return text + "Z"
        # Go divides toward zero, then takes the sign from the minutes.
        minutes = abs(self.offset) // 60
        sign = "-" if self.offset < 0 and minutes else "+"
        return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"

    def __str__(self) -> str:
        return self.format()


GoTime.ZERO = GoTime(_ZERO_UNIX, 0, 0)


def _parse_rfc3339(text: str) -> Union[GoTime, str]:
    """The parsed time, or a short reason why Go would refuse ``text``."""
    if not text.isascii():
        return "non-ASCII text"
    pos = 0
    n = len(text)

    def two_digits(at: int) -> Optional[int]:
        if at + 2 <= n and text[at].isdigit() and text[at + 1].isdigit():
            return int(text[at : at + 2])
        return None

    def literal(at: int, char: str) -> bool:
        return at < n and text[at] == char

    # Year: exactly four digits.
    if n < 4 or not text[:4].isdigit():
        return "bad year"
    year = int(text[:4])
    pos = 4
    if not literal(pos, "-"):
        return "expected '-' after the year"
    month = two_digits(pos + 1)
    if month is None:
        return "bad month"
    if not 1 <= month <= 12:
        return "month out of range"
    pos += 3
    if not literal(pos, "-"):
        return "expected '-' after the month"
    day = two_digits(pos + 1)
    if day is None:
        return "bad day"
    pos += 3
    if not literal(pos, "T"):
        return "expected 'T' after the date"
    pos += 1
    # Hour: one or two digits (Go's "15" layout element).
    if pos < n and text[pos].isdigit():
        if pos + 1 < n and text[pos + 1].isdigit():
            hour = int(text[pos : pos + 2])
            pos += 2
        else:
            hour = int(text[pos])
            pos += 1
    else:
        return "bad hour"
    if hour >= 24:
        return "hour out of range"
    if not literal(pos, ":"):
        return "expected ':' after the hour"
    minute = two_digits(pos + 1)
    if minute is None:
        return "bad minute"
    if minute >= 60:
        return "minute out of range"
    pos += 3
    if not literal(pos, ":"):
        return "expected ':' after the minute"
    pos += 1
    second = two_digits(pos)
    if second is not None:
        if second >= 60:
            return "second out of range"
        pos += 2
    elif not (pos + 1 < n and text[pos] in ".," and text[pos + 1].isdigit()):
        return "bad second"
    else:
        # Go 1.19 quirk: a fraction right after the colon ("04:.5") stands for second 0,
        # because parsing the fraction overwrites the error of the missing seconds.
        second = 0
    nanos = 0
    if pos + 1 < n and text[pos] in ".," and text[pos + 1].isdigit():
        match = _DIGITS.match(text, pos + 1)
        assert match is not None
        digits = match.group()
        nanos = int(digits[:9].ljust(9, "0"))
        pos = match.end()
    # Zone: "Z", or sign, two characters, ':', two characters.
    if literal(pos, "Z"):
        offset = 0
        pos += 1
    else:
        if n - pos < 6 or text[pos + 3] != ":":
            return "bad zone offset"
        hours = _go_atoi(text[pos + 1 : pos + 3])
        minutes = _go_atoi(text[pos + 4 : pos + 6])
        if hours is None or minutes is None or text[pos] not in "+-":
            return "bad zone offset"
        offset = (hours * 60 + minutes) * 60
        if text[pos] == "-":
            offset = -offset
        pos += 6
    if pos != n:
        return f"extra text {text[pos:]!r}"
    if not 1 <= day <= _days_in(month, year):
        return "day out of range"
    days = _days_from_civil(year, month, day)
    unix = days * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset
    return GoTime(unix, nanos, offset)


def tar_mtime(created: Optional[GoTime]) -> int:
    """The tar mtime Docker gives files stamped with ``created``: whole seconds, clamped.

    moby's ``system.Chtimes`` replaces a time before the Unix epoch or after
    2262-04-11T23:47:16.854775807Z with the epoch, and the tar header keeps whole seconds.
    A missing ``created`` (``None``, or Go's zero time) is before the epoch, so it gives 0.
    """
    if created is None or created.unix < 0:
        return 0
    if created.unix_nanos > MAX_UNIX_NANOS:
        return 0
    return created.unix
