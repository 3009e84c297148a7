"""Go RFC 3339 timestamps: parsing, formatting, and the tar mtime clamp.

Expected values come from the spec (§1.3 timestamps, §4.1 times), from the goldens (each
image's ``created`` as ``docker inspect`` printed it and the mtime Docker gave its config
file), and from ``data/go119/times.jsonl``: what Go 1.19.8's ``time.Time`` JSON methods
did with each input (see ``data/go119/README.md``).
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA_DIR, golden_cases, golden_params, read_tar
from hypothesis import given
from hypothesis import strategies as st

from tarexport.errors import InvalidTimestamp
from tarexport.gotime import MAX_UNIX_NANOS, GoTime, tar_mtime
from tarexport.image import Image

GO119 = DATA_DIR / "go119"


def _records(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


# -- formatting (spec §4.1 "Times") -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("2019-06-07T08:09:10.900000000Z", "2019-06-07T08:09:10.9Z"),
        ("2019-06-07T08:09:10.120Z", "2019-06-07T08:09:10.12Z"),
        ("2019-06-07T08:09:10.000Z", "2019-06-07T08:09:10Z"),
        ("2019-06-07T08:09:10Z", "2019-06-07T08:09:10Z"),
        ("2019-06-07T08:09:10+00:00", "2019-06-07T08:09:10Z"),
        ("2019-06-07T08:09:10.987654321+02:00", "2019-06-07T08:09:10.987654321+02:00"),
        ("2019-06-07T08:09:10.1234567891234Z", "2019-06-07T08:09:10.123456789Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("2250-01-01T00:00:00Z", "2250-01-01T00:00:00Z"),
        ("2300-06-07T00:00:00.5Z", "2300-06-07T00:00:00.5Z"),
    ],
)
def test_format_as_go_rfc3339nano(text: str, formatted: str) -> None:
    assert GoTime.parse(text).format() == formatted
    assert str(GoTime.parse(text)) == formatted


def test_offset_is_kept_and_instant_is_utc() -> None:
    t = GoTime.parse("2019-06-07T08:09:10.987654321+02:00")
    assert t.offset == 7200
    assert t.unix_seconds == GoTime.parse("2019-06-07T06:09:10Z").unix_seconds
    assert t.nanos == 987654321


def test_zero_time() -> None:
    assert GoTime.ZERO.format() == "0001-01-01T00:00:00Z"
    assert GoTime.ZERO.is_zero
    assert GoTime.parse("0001-01-01T00:00:00Z") == GoTime.ZERO
    assert not GoTime.from_unix(0).is_zero


def test_epoch_in_a_zone() -> None:
    # time.Unix(0, 0) in a daemon's Local zone (spec §1.3, time-zone caveat).
    assert GoTime.from_unix(0, 0, 3600).format() == "1970-01-01T01:00:00+01:00"
    assert GoTime.from_unix(0, 0, -3600).format() == "1969-12-31T23:00:00-01:00"
    assert GoTime.from_unix(0).format() == "1970-01-01T00:00:00Z"


def test_from_unix_normalizes_nanoseconds() -> None:
    assert GoTime.from_unix(0, -1) == GoTime(-1, 999_999_999)
    assert GoTime.from_unix(5, 2_500_000_000) == GoTime(7, 500_000_000)
    with pytest.raises(ValueError):
        GoTime(0, 1_000_000_000)


@pytest.mark.parametrize(
    "text",
    [
        "2019-02-29T00:00:00Z",  # not a leap year
        "2019-06-07 08:09:10Z",
        "2019-06-07T08:09:10",  # no zone
        "2019-06-07T08:09:10z",
        "2019-06-07T24:00:00Z",
        "2019-06-07T08:60:00Z",
        "2019-06-07T08:09:60Z",  # no leap seconds
        "2019-13-07T08:09:10Z",
        "2019-06-07T08:09:10+0200",
        "2019-06-07T08:09:10Z ",
        "19-06-07T08:09:10Z",
        "",
        "2019-06-07T08:09:10Z\u00e9",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidTimestamp) as caught:
        GoTime.parse(text)
    assert caught.value.input == text


def test_parse_accepts_bytes() -> None:
    assert GoTime.parse(b"2019-06-07T08:09:10Z") == GoTime.parse("2019-06-07T08:09:10Z")
    with pytest.raises(InvalidTimestamp):
        GoTime.parse(b"2019-06-07T08:09:10Z\xff")


# -- Go 1.19 itself -------------------------------------------------------------------------


TIME_RECORDS = _records(GO119 / "times.jsonl")


@pytest.mark.parametrize("record", TIME_RECORDS, ids=[r["name"] for r in TIME_RECORDS])
def test_parse_and_format_match_go(record: dict[str, Any]) -> None:
    text = base64.b64decode(record["input"]).decode("ascii")
    if "error" in record:
        with pytest.raises(InvalidTimestamp):
            GoTime.parse(text)
        return
    parsed = GoTime.parse(text)
    assert f'"{parsed.format()}"' == record["json"], text
    assert (parsed.unix_seconds, parsed.nanos) == (record["unix"], record["nanos"]), text


# -- properties -----------------------------------------------------------------------------

# Instants whose local date stays within years 1..9999 (Python's datetime range).
_UNIX_RANGE = st.integers(min_value=-62_135_596_800 + 86_400, max_value=253_402_300_799 - 86_400)
_OFFSETS = st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1).map(lambda m: m * 60)


@given(_UNIX_RANGE, st.integers(0, 999_999_999), _OFFSETS)
def test_format_agrees_with_datetime(unix: int, nanos: int, offset: int) -> None:
    zone = datetime.timezone(datetime.timedelta(seconds=offset))
    local = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        seconds=unix
    )
    local = local.astimezone(zone)
    expected = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
        f"T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    )
    if nanos:
        expected += "." + f"{nanos:09d}".rstrip("0")
    if offset == 0:
        expected += "Z"
    else:
        sign = "+" if offset > 0 else "-"
        expected += f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    assert GoTime(unix, nanos, offset).format() == expected


@given(_UNIX_RANGE, st.integers(0, 999_999_999), _OFFSETS)
def test_format_parse_round_trip(unix: int, nanos: int, offset: int) -> None:
    t = GoTime(unix, nanos, offset)
    assert GoTime.parse(t.format()) == t


# -- tar mtimes (spec §1.3 "Timestamps", §8 rule 7) --------------------------------------------


@pytest.mark.parametrize(
    ("created", "mtime"),
    [
        ("2019-06-07T08:09:05.9Z", GoTime.parse("2019-06-07T08:09:05Z").unix_seconds),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.999999999Z", 0),
        ("1970-01-01T00:00:01Z", 1),
        ("1969-12-31T23:59:59.999999999Z", 0),
        ("1969-07-20T20:17:40Z", 0),
        ("0001-01-01T00:00:00Z", 0),
        ("2250-01-01T00:00:00Z", 8_835_955_200),  # the spec's PAX example: mtime=8835955200
        ("2262-04-11T23:47:16.854775807Z", 9_223_372_036),
        ("2262-04-11T23:47:16.854775808Z", 0),
        ("2300-06-07T00:00:00.5Z", 0),
        ("2262-04-12T00:47:16.854775807+01:00", 9_223_372_036),
    ],
)
def test_tar_mtime(created: str, mtime: int) -> None:
    assert tar_mtime(GoTime.parse(created)) == mtime


def test_tar_mtime_of_a_missing_created_is_zero() -> None:
    assert tar_mtime(None) == 0
    assert tar_mtime(GoTime.ZERO) == 0
    assert GoTime.from_unix(0, MAX_UNIX_NANOS).format() == "2262-04-11T23:47:16.854775807Z"


# -- goldens --------------------------------------------------------------------------------


SAVED = [c for c in golden_cases() if c.save_tar is not None]


@pytest.mark.parametrize("case", golden_params(SAVED))
def test_golden_created_and_config_mtime(case: Any) -> None:
    """``created`` formats as ``docker inspect`` printed it; the config file has its mtime."""
    members = {info.name: (info, body) for info, body in read_tar(case.save_tar)}
    inspected = {image["id"]: image for image in case.case["images"]}
    for entry in case.case["manifest"]:
        info, body = members[entry["Config"]]
        assert body is not None
        image = Image.from_bytes(body)
        assert image.created is not None
        if str(image.id) in inspected:  # a name-only save lists only the named image
            assert image.created.format() == inspected[str(image.id)]["created"]
        assert tar_mtime(image.created) == info.mtime, entry["Config"]
