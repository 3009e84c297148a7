"""``tarexport copy SRC DST``: one image (or a whole store) from any place to any other.

Places are spelt as skopeo spells them (``oci:DIR[:REF]``, ``docker-archive:PATH[:REF]``,
``oci-archive:PATH[:REF]``, ``docker-root:DIR[:REF]``, ``docker-daemon:REF``), or are names
in the default store (``app:1``, or ``store:NAME`` for one that reads as a place).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from .display import Display, JsonLines, LogLines, StatusLine
from .transports.copier import copy

__all__ = ["add_parser"]


def _display(mode: str, verb: str, past: str) -> Any:
    stream = sys.stderr
    if mode == "auto":
        try:
            mode = "tty" if stream.isatty() else "none"
        except (AttributeError, ValueError):
            mode = "none"
    if mode == "tty":
        return StatusLine(stream, verb, past)
    if mode == "plain":
        return LogLines(stream, verb, past)
    if mode == "json":
        return JsonLines(stream)
    return None


def _cmd_copy(args: argparse.Namespace) -> int:
    display: Display = _display("none" if args.quiet else args.progress, "copying", "copied")
    try:
        result = copy(args.source, args.destination, verify=args.verify, progress=display)
    finally:
        if display is not None:
            with contextlib.suppress(OSError, ValueError):
                display.close()
    for line in result.messages:
        print(line)
    return 0


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``copy`` on the command's subparsers."""
    copy_ = commands.add_parser(
        "copy", parents=[common], help="copy images between places",
        description="Copy images from SOURCE to DESTINATION: oci:DIR[:REF], "
        "docker-archive:PATH[:REF], oci-archive:PATH[:REF], docker-root:DIR[:REF] (read only), "
        "docker-daemon:REF, or a name in the default store (store:NAME). Without a REF the "
        "source's every image is copied with its names.",
    )
    copy_.add_argument("source", metavar="SOURCE")
    copy_.add_argument("destination", metavar="DESTINATION")
    copy_.add_argument("--no-verify", dest="verify", action="store_false",
                       help="do not check layer digests while copying")
    copy_.add_argument("--progress", choices=("auto", "tty", "plain", "json", "none"),
                       default="auto", help="progress on stderr (default: auto)")
    copy_.add_argument("-q", "--quiet", action="store_true", help="no progress")
    copy_.set_defaults(run=_cmd_copy)
