"""``tarexport push`` and ``tarexport pull``: the docker-like spellings of copies to and from
a registry (``copy store:NAME docker://...`` and back).

Progress is one line per blob on a terminal, as ``docker push`` draws it (retry notices show
there only), or JSON events (``--progress json``). A failed command ends with exactly one
error line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional, TextIO

from .display import format_size, printable
from .reference import familiar_string, parse_normalized_named, tag_name_only
from .stores.oci_layout import Platform
from .transports import distribution as proto
from .transports.copier import copy, open_destination, open_source
from .transports.docker_registry import RegistryDestination, RegistrySettings, RegistrySource
from .transports.events import RegistryEvent, RegistryProgress

__all__ = ["BlobLines", "add_parsers"]

PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")


class BlobLines:
    """Progress per blob: on a terminal the current blob's line is redrawn, and each blob
    ends with a line saying what happened to it (``Pushed``, ``Layer already exists``...)."""

    def __init__(self, stream: TextIO, mode: str, *, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.mode = mode  # "tty", "plain" or "json"
        self.interval = interval
        self.clock = clock
        self.last = 0.0
        self.open_line = False

    def __call__(self, event: RegistryEvent) -> None:
        if self.mode == "json":
            self._write(json.dumps(event.to_json()) + "\n")
            return
        short = event.blob.rpartition(":")[2][:12]
        if event.phase == "retry":
            if self.mode == "tty":  # a retry is no news in a log: the outcome is
                self._line(f"{printable(event.message)}")
        elif event.phase == "blob-done":
            self._line(f"{short}: {_STATUS.get(event.status, event.status.capitalize())}")
        elif event.phase == "bytes" and self.mode == "tty":
            now = self.clock()
            if now - self.last < self.interval:
                return
            self.last = now
            total = f" / {format_size(event.total)}" if event.total else ""
            self._draw(f"{short}: transferring {format_size(event.done)}{total}")
        elif event.phase == "manifest":
            self._line(f"digest: {event.blob}")

    def _draw(self, text: str) -> None:
        self._write("\r" + text + "\x1b[K")
        self.open_line = True

    def _line(self, text: str) -> None:
        if self.open_line and self.mode == "tty":
            self._write("\r" + text + "\x1b[K\n")
        else:
            self._write(text + "\n")
        self.open_line = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.open_line:
            self._write("\n")
            self.open_line = False


_STATUS = {
    "pushed": "Pushed",
    "exists": "Layer already exists",
    "pulled": "Pull complete",
    "present": "Already exists",
}


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _display(args: argparse.Namespace) -> Iterator[Optional[RegistryProgress]]:
    mode = "none" if args.quiet else args.progress
    if mode == "auto":
        mode = "tty" if _isatty(sys.stderr) else "none"
    if mode == "none":
        yield None
        return
    display = BlobLines(sys.stderr, mode)
    try:
        yield display
    finally:
        with contextlib.suppress(OSError, ValueError):
            display.close()


def _settings(args: argparse.Namespace, progress: Optional[RegistryProgress]) -> RegistrySettings:
    retry = proto.RetryPolicy(attempts=max(1, args.retry_times + 1))
    platform = Platform.parse(args.platform) if getattr(args, "platform", None) else None
    return RegistrySettings(
        insecure=tuple(args.insecure or ()),
        compression=getattr(args, "compression", "gzip"),
        manifest_format=getattr(args, "format", "docker"),
        platform=platform,
        retry=retry,
        progress=progress,
    )


def _platform(text: str) -> str:
    try:
        Platform.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _registry_place(text: str) -> str:
    return text if text.startswith("docker://") else "docker://" + text


def _cmd_push(args: argparse.Namespace) -> int:
    source = f"{args.source or 'store'}:{args.name}"
    target = args.destination
    if target is None:
        # As `docker push NAME`: to the registry and repository the name says.
        target = str(tag_name_only(parse_normalized_named(args.name)))
    with _display(args) as display:
        settings = _settings(args, display)
        destination = RegistryDestination.parse(_registry_place(target), settings)
        result = copy(open_source(source), destination)
    for message in result.messages:
        print(message)
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    with _display(args) as display:
        settings = _settings(args, display)
        source = RegistrySource.parse(_registry_place(args.reference), settings)
        target = args.target if args.target is not None else "store:"
        result = copy(source, open_destination(target))
    for image in result.images:
        names = ", ".join(familiar_string(r) for r in image.references) or str(image.id)
        print(f"Pulled {names} ({image.id})")
    return 0


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure", action="append", metavar="HOST",
        help="allow plain HTTP and unverified TLS for HOST[:PORT] (loopback hosts always "
        "may use plain HTTP); repeatable",
    )
    parser.add_argument("--retry-times", type=int, default=4, metavar="N",
                        help="retry a failing request N times, with backoff (default: 4)")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="progress on stderr: auto, tty (a line per blob), plain, json "
                        "(one event per line) or none (default: auto)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress")


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``push`` and ``pull`` to the ``tarexport`` command's subparsers."""
    push = commands.add_parser(
        "push", parents=[common], help="push an image to a registry",
        description="Push an image to a registry (docker://HOST[:PORT]/REPO[:TAG]). Layers "
        "go up gzip-compressed (the same bytes every time), what the registry holds is not "
        "sent again, and the tag is set only once every blob is in place.",
    )
    push.add_argument("--from", dest="source", metavar="SOURCE",
                      help="where the image is: oci:DIR, docker-archive:FILE, docker-root:DIR "
                      "(default: the default store)")
    push.add_argument("--compression", choices=("gzip", "none"), default="gzip",
                      help="how layers stored uncompressed are sent (default: gzip; a layer "
                      "stored compressed is sent as it is)")
    push.add_argument("--format", choices=("docker", "oci"), default="docker",
                      help="manifest format (default: docker, as docker push writes)")
    push.add_argument("name", metavar="NAME", help="the image: name:tag, name@digest or ID")
    push.add_argument("destination", nargs="?", metavar="DESTINATION",
                      help="docker://HOST[:PORT]/REPO[:TAG] (default: where NAME says)")
    _common_options(push)
    push.set_defaults(run=_cmd_push)

    pull = commands.add_parser(
        "pull", parents=[common], help="pull an image from a registry into a store",
        description="Pull an image (docker://HOST[:PORT]/REPO[:TAG|@DIGEST]) into a store, "
        "every blob verified.",
    )
    pull.add_argument("--into", dest="target", metavar="TARGET",
                      help="where to put it: oci:DIR, or any copy destination (default: the "
                      "default store)")
    pull.add_argument("--platform", type=_platform, metavar="OS/ARCH[/VARIANT]",
                      help="the image to take from a multi-platform index (default: this "
                      "machine's)")
    pull.add_argument("reference", metavar="REFERENCE")
    _common_options(pull)
    pull.set_defaults(run=_cmd_pull)

