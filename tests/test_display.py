"""Progress displays: the units they print, the redraw throttle, and the JSON event lines."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarexport.display import (
    JsonLines,
    LogLines,
    StatusLine,
    format_duration,
    format_size,
    printable,
    status_text,
)
from tarexport.progress import Progress

MiB = 1 << 20
LAYER = "sha256:" + "0123456789abcdef" * 4


class FakeClock:
    """A clock the test moves by hand: throttling is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    """A text stream with no file descriptor; its width comes from ``COLUMNS``."""


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * MiB, "5.0 MiB"),
        (3 * (1 << 30) // 2, "1.5 GiB"),
        (1 << 40, "1.0 TiB"),
    ],
)
def test_format_size_uses_binary_units(n: int, text: str) -> None:
    assert format_size(n) == text


_UNIT_FACTORS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


@given(st.integers(min_value=0, max_value=1 << 50))
def test_format_size_reads_back_within_rounding(n: int) -> None:
    number, unit = format_size(n).split(" ")
    factor = _UNIT_FACTORS.get(unit, 1 << 50)
    assert abs(float(number) * factor - n) <= 0.05 * factor
    assert float(number) < 1024 or unit == "PiB"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0s"),
        (0.24, "0.2s"),
        (59.5, "59.5s"),
        (59.96, "1:00"),
        (60.2, "1:01"),
        (61, "1:01"),
        (3661, "1:01:01"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_printable_neutralises_escape_sequences() -> None:
    assert printable("evil\x1b]0;title\x07\r\nname") == "evil?]0;title???name"
    assert printable("blobs/sha256/ab") == "blobs/sha256/ab"


def test_status_text_shows_bytes_total_rate_eta_and_layer() -> None:
    text = status_text("saving", 1 * MiB, 4 * MiB, 1.0, "layer 0123456789ab")
    assert text == "saving 1.0 MiB / 4.0 MiB 25% 1.0 MiB/s ETA 3.0s layer 0123456789ab"


def test_status_text_without_a_total_or_a_rate_yet() -> None:
    assert status_text("loading", 2048, None, 0.1) == "loading 2.0 KiB"


def _events(total: int, steps: int) -> list[Progress]:
    events = [Progress("start", 0, total)]
    for i in range(1, steps + 1):
        events.append(Progress("bytes", total * i // steps, total, "blobs/sha256/x", LAYER))
    events.append(Progress("done", total, total))
    return events


def test_status_line_throttles_redraws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    clock = FakeClock()
    out = FakeTerminal()
    line = StatusLine(out, "saving", "saved", interval=0.1, clock=clock)
    events = _events(1000 * MiB, 1000)
    line(events[0])
    for event in events[1:-1]:
        clock.now += 0.001  # a thousand events in one second
        line(event)
    line(events[-1])
    draws = out.getvalue().count("\r")
    # start + at most one redraw per 0.1 s of the second + done
    assert 3 <= draws <= 1 + 10 + 1
    assert out.getvalue().endswith("\x1b[K\n")


def test_status_line_final_line_reports_the_whole_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    clock = FakeClock()
    out = FakeTerminal()
    line = StatusLine(out, "saving", "saved", clock=clock)
    for event in _events(8 * MiB, 4):
        clock.now += 0.5
        line(event)
    last = out.getvalue().rsplit("\r", 1)[1]
    assert last == "saved 8.0 MiB / 8.0 MiB 100% in 2.5s (3.2 MiB/s)\x1b[K\n"
    line.close()  # a second close adds nothing
    assert out.getvalue().endswith("\x1b[K\n")
    assert not out.getvalue().endswith("\n\n")


def test_status_line_fits_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "20")
    out = FakeTerminal()
    line = StatusLine(out, "saving", "saved", clock=FakeClock())
    line(Progress("start", 0, 123456789))
    drawn = out.getvalue()
    assert drawn.startswith("\r") and drawn.endswith("\x1b[K")
    assert len(drawn) - len("\r") - len("\x1b[K") == 19


def test_status_line_close_ends_an_interrupted_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = FakeTerminal()
    line = StatusLine(out, "saving", "saved", clock=FakeClock())
    line(Progress("start", 0, 10))
    assert not out.getvalue().endswith("\n")
    line.close()
    assert out.getvalue().endswith("\n")


@given(st.text())
def test_status_line_never_prints_control_characters_from_names(name: str) -> None:
    out = FakeTerminal()
    line = StatusLine(out, "loading", "loaded", clock=FakeClock())
    line(Progress("entry", 0, None, name))
    drawn = out.getvalue()
    assert drawn.startswith("\r") and drawn.endswith("\x1b[K")
    assert printable(drawn[1 : -len("\x1b[K")]) == drawn[1 : -len("\x1b[K")]


def test_log_lines_print_start_each_layer_and_done() -> None:
    clock = FakeClock()
    out = io.StringIO()
    log = LogLines(out, "saving", "saved", clock=clock)
    other = "sha256:" + "f" * 64
    events = [
        Progress("start", 0, 3 * MiB),
        Progress("entry", 0, 3 * MiB, "blobs/sha256/a"),
        Progress("bytes", MiB, 3 * MiB, "blobs/sha256/a", LAYER),
        Progress("bytes", 2 * MiB, 3 * MiB, "blobs/sha256/a", LAYER),
        Progress("bytes", 3 * MiB, 3 * MiB, "blobs/sha256/b", other),
        Progress("done", 3 * MiB, 3 * MiB),
    ]
    for event in events:
        log(event)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0] == "saving 0 B / 3.0 MiB 0%"
    assert lines[1].endswith("layer 0123456789ab")
    assert lines[2].endswith("layer ffffffffffff")
    assert re.fullmatch(r"saved 3\.0 MiB / 3\.0 MiB 100% in \d+\.\ds", lines[3])


def test_json_lines_carry_every_field_of_every_event() -> None:
    out = io.StringIO()
    sink = JsonLines(out)
    events = [
        Progress("start", 0, 2048),
        Progress("entry", 0, 2048, "manifest.json"),
        Progress("bytes", 1024, 2048, "blobs/sha256/a", LAYER),
        Progress("done", 2048, 2048),
    ]
    for event in events:
        sink(event)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [
        {"phase": e.phase, "done": e.done, "total": e.total, "entry": e.entry, "layer": e.layer}
        for e in events
    ]
