"""The ``tarexport`` command: ``docker save`` and ``docker load`` without a daemon.

Commands: ``save``, ``load``, ``images`` and ``ref``. Images come from (and go to) a store
named on the command line (``oci:DIR``, ``docker-archive:FILE``, ``docker-root:DIR``) or,
by default, the embedded store: an OCI image layout in the user's data directory.

Errors are one line on stderr (``tarexport: <message>``) and exit 1; usage errors exit 2; an
interrupted command exits 130 and a closed output pipe ends the process by ``SIGPIPE``, as
``cat`` would end. A failed save never leaves a partial file behind: the archive is written
to a temporary name beside the target and renamed over it only once it is complete.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Callable,
    Mapping,
    NamedTuple,
    NoReturn,
    Optional,
    TextIO,
    Union,
)

from . import __version__
from .errors import InvalidArchive, TarexportError

# What only some commands need is imported by them (start-up stays that of the interpreter).
if TYPE_CHECKING:
    from .display import Display
    from .profiles import Profile
    from .stores.docker_archive import DockerArchiveStore
    from .stores.docker_root import DockerRootStore
    from .stores.memory import MemoryStore
    from .stores.oci_layout import OCILayoutStore, Platform

__all__ = ["StoreSpec", "build_parser", "default_store_path", "main"]

PROG = "tarexport"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM

STORE_KINDS = ("oci", "docker-archive", "docker-root")
PROGRESS_MODES = ("auto", "tty", "plain", "json", "none")

# Docker's own words, so that scripts matching on them keep working.
REFUSE_TERMINAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"
REFUSE_STDIN_TERMINAL = (
    "requested load from stdin, but stdin is empty (use -i FILE, or pipe an archive in)"
)


class CommandError(Exception):
    """A command cannot go on; ``str()`` is the one line shown after ``tarexport:``."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs."""


# -- stores -------------------------------------------------------------------------------


class StoreSpec(NamedTuple):
    """A store named on the command line: ``KIND:PATH``, a kind of ``STORE_KINDS``."""

    kind: str
    path: str

    @classmethod
    def parse(cls, text: str) -> StoreSpec:
        """Parse ``KIND:PATH``; raises ``ValueError`` naming the bad input."""
        kind, colon, path = text.partition(":")
        if not colon or kind not in STORE_KINDS:
            raise ValueError(
                f"{text!r}: expected oci:DIR, docker-archive:FILE or docker-root:DIR"
            )
        if not path:
            raise ValueError(f"{text!r}: the {kind}: store needs a path")
        return cls(kind, path)

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def default_store_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    """Where the embedded default store lives: ``$TAREXPORT_STORE``, else
    ``$XDG_DATA_HOME/tarexport``, else ``~/.local/share/tarexport``."""
    from .transports.local import default_store_path as where

    return where(environ)


AnyStore = Union["OCILayoutStore", "DockerArchiveStore", "DockerRootStore", "MemoryStore"]


def _open_source(spec: Optional[StoreSpec]) -> AnyStore:
    """The store images are read from; the default store, missing, reads as empty."""
    from .stores.oci_layout import OCILayoutStore

    if spec is None:
        path = default_store_path()
        if not (path / "oci-layout").exists() and _missing_or_empty(path):
            from .stores.memory import MemoryStore

            return MemoryStore()  # not created yet: nothing in it
        return OCILayoutStore(str(path))
    try:
        if spec.kind == "oci":
            return OCILayoutStore(spec.path)
        if spec.kind == "docker-root":
            from .stores.docker_root import DockerRootStore

            return DockerRootStore(spec.path)
        from .stores.docker_archive import DockerArchiveStore

        return DockerArchiveStore(spec.path)
    except TarexportError as exc:
        raise _naming(exc, spec.path) from exc


def _missing_or_empty(path: Path) -> bool:
    try:
        return not any(path.iterdir())
    except FileNotFoundError:
        return True
    except OSError:
        return False  # let the store say what is wrong with it


def _open_target(spec: Optional[StoreSpec]) -> OCILayoutStore:
    """The store a load writes into, created when it does not exist yet."""
    from .stores.oci_layout import OCILayoutStore

    if spec is not None and spec.kind != "oci":
        what = "a docker-archive is written by `tarexport save`" if spec.kind == "docker-archive" \
            else "a Docker data root is read-only here; load into it with `docker load`"
        raise CommandError(f"cannot load into {spec}: {what}")
    path = _target_path(spec)
    try:
        return OCILayoutStore(path, create=True)
    except TarexportError as exc:
        raise _naming(exc, path) from exc


def _target_path(spec: Optional[StoreSpec]) -> str:
    return str(default_store_path()) if spec is None else spec.path


def _naming(exc: TarexportError, path: str) -> Exception:
    """``exc``, its message prefixed with ``path`` unless it already names it."""
    message = str(exc)
    if path in message:
        return exc
    return CommandError(f"{path}: {message}")


# -- progress -----------------------------------------------------------------------------


def _display(mode: str, stream: TextIO, verb: str, past: str) -> Optional[Display]:
    from .display import JsonLines, LogLines, StatusLine

    if mode == "auto":
        mode = "tty" if _isatty(stream) else "none"
    if mode == "tty":
        return StatusLine(stream, verb, past)
    if mode == "plain":
        return LogLines(stream, verb, past)
    if mode == "json":
        return JsonLines(stream)
    return None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _progress(args: argparse.Namespace, verb: str, past: str) -> Iterator[Optional[Display]]:
    mode = "none" if args.quiet else args.progress
    display = _display(mode, sys.stderr, verb, past)
    try:
        yield display
    finally:
        if display is not None:
            with contextlib.suppress(OSError, ValueError):
                display.close()


# -- output -------------------------------------------------------------------------------


def _output_file(path: str) -> contextlib.AbstractContextManager[BinaryIO]:
    """A file that appears at ``path`` only once the archive written to it is complete."""
    from .leftovers import replacing_file

    return replacing_file(path)


def _stdout_binary() -> BinaryIO:
    stdout: Optional[BinaryIO] = getattr(sys.stdout, "buffer", None)
    if stdout is None:
        raise CommandError("no binary standard output to write to")
    return stdout


# -- commands -----------------------------------------------------------------------------


def _cmd_save(args: argparse.Namespace) -> int:
    from .save import Saver

    to_stdout = args.output in (None, "-")
    if to_stdout and _isatty(sys.stdout):
        raise CommandError(REFUSE_TERMINAL)
    store = _open_source(args.source)
    saver = Saver(store, store, store, profile=args.profile, verify=args.verify,
                  platform=args.platform, trust_ingested=args.trust_ingested)
    # Resolve and plan before touching the output: bad names fail with nothing written.
    plan = saver.plan(args.names)
    with _progress(args, "saving", "saved") as display:
        if to_stdout:
            out = _stdout_binary()
            plan.write(out, display)
            out.flush()
        else:
            with _output_file(args.output) as out:
                plan.write(out, display)
    return EXIT_OK


def _cmd_load(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        if args.input in (None, "-"):
            stdin = getattr(sys.stdin, "buffer", None)
            if stdin is None or _isatty(sys.stdin):
                raise CommandError(REFUSE_STDIN_TERMINAL)
            stream: BinaryIO = stdin
        else:
            try:
                stream = stack.enter_context(open(args.input, "rb"))
            except OSError as exc:
                raise CommandError(f"cannot read {args.input}: {exc.strerror}") from exc
        # A new target that a failed load made is not left behind, empty.
        from .leftovers import undone_on_failure

        stack.enter_context(undone_on_failure(_target_path(args.target)))
        store = _open_target(args.target)
        from .load import load

        display = stack.enter_context(_progress(args, "loading", "loaded"))
        try:
            result = load(stream, into=store, progress=display)
        except InvalidArchive as exc:
            raise _naming(exc, args.input or "stdin (no -i FILE given)") from exc
    for line in result.messages():
        print(line)
    return EXIT_OK


def _cmd_ref(args: argparse.Namespace) -> int:
    from .reference import familiar_string, parse_normalized_named, tag_name_only

    status = EXIT_OK
    for text in args.refs:
        try:
            named = tag_name_only(parse_normalized_named(text, legacy=args.legacy))
        except TarexportError as exc:
            _error(str(exc))
            status = EXIT_ERROR
            continue
        if args.json:
            record = {
                "input": text,
                "reference": str(named),
                "name": named.name,
                "domain": named.domain,
                "path": named.path,
                "tag": named.tag,
                "digest": None if named.digest is None else str(named.digest),
                "familiar": familiar_string(named),
            }
            print(json.dumps(record))
        else:
            print(named)
    return status


# -- the parser ---------------------------------------------------------------------------


def _store_spec(text: str) -> StoreSpec:
    try:
        return StoreSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _platform(text: str) -> Platform:
    from .stores.oci_layout import Platform

    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The names `--help` lists without importing the profiles (a test checks them).
PROFILE_NAMES = ("docker-1.11", "docker-20.10", "docker-25", "docker-26", "docker-28",
                 "docker-28-containerd", "docker-29", "default")


def _profile(name: str) -> Profile:
    try:
        from . import profiles

        return profiles.parse(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_progress_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="progress on stderr: auto (a status line when stderr is a terminal), tty, "
        "plain (log lines), json (one event per line) or none (default: auto)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress (same as --progress=none)"
    )


# Commands that live in modules of their own, imported only for the command that runs, so
# that start-up stays small: module -> its commands with the help line `--help` lists. A test
# checks these lines against the modules' own.
_COMMAND_MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "cli_store": (
        ("images", "list the images of a store"),
        ("inspect", "show an image's config and manifest"),
        ("tag", "give an image another name"),
        ("rmi", "remove names and images"),
    ),
    "cli_copy": (("copy", "copy images between places"),),
    "cli_prune": (("prune", "remove what killed loads and saves left behind"),),
    "cli_registry": (
        ("push", "push an image to a registry"),
        ("pull", "pull an image from a registry into a store"),
    ),
    "cli_build": (
        ("build", "build an image from directories and layer tars"),
        ("append", "add layer tars on top of an image"),
        ("mutate", "change an image's config"),
    ),
}
ALL_COMMANDS = None
"""``build_parser(ALL_COMMANDS)``: every command's whole parser."""


def _add_module_commands(
    module: str, commands: Any, common: argparse.ArgumentParser, command: Optional[str]
) -> None:
    """The module's real parsers when ``command`` is one of its (or all are wanted), else
    stand-ins that only name the commands for ``--help``."""
    names = _COMMAND_MODULES[module]
    if command is ALL_COMMANDS or any(name == command for name, _ in names):
        loaded: Any = importlib.import_module(f"{__package__}.{module}")
        register = getattr(loaded, "add_parsers", None) or loaded.add_parser
        if module == "cli_prune":
            register(commands, parents=[common])
        else:
            register(commands, common)
        return
    for name, help_line in names:
        commands.add_parser(name, help=help_line, add_help=False).set_defaults(run=None)


def _command_word(argv: Sequence[str]) -> str:
    """The command of a command line: its first word that is not an option."""
    return next((arg for arg in argv if not arg.startswith("-")), "")


def build_parser(command: Optional[str] = ALL_COMMANDS) -> argparse.ArgumentParser:
    """The argument parser of the ``tarexport`` command (for ``command``, or for every one)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write and read `docker save` archives without a Docker daemon.",
        epilog=(
            "Without --from/--into the default store is used: an OCI image layout at "
            "$TAREXPORT_STORE, else $XDG_DATA_HOME/tarexport, else ~/.local/share/tarexport."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback when a command fails"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    # Accepted after the command too; SUPPRESS keeps the top-level value when absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    save = commands.add_parser(
        "save",
        parents=[common],
        help="write images as a docker save archive",
        description="Write one or more images, with their tags, as a `docker save` archive.",
    )
    save.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        type=_store_spec,
        help="where the images are: oci:DIR, docker-archive:FILE or docker-root:DIR "
        "(default: the default store)",
    )
    save.add_argument(
        "--profile",
        type=_profile,
        default="default",  # argparse converts a string default with `type`
        metavar="NAME[,KNOB=VALUE...]",
        help="the Docker generation whose output to reproduce: "
        + ", ".join(PROFILE_NAMES)
        + " (default: default); knobs change one field each, e.g. "
        "docker-20.10,owner_name=root (see docs/cli.md)",
    )
    save.add_argument(
        "--platform",
        type=_platform,
        metavar="OS/ARCH[/VARIANT]",
        help="save only images of this platform; fail, writing nothing, if one is not",
    )
    save.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="do not check layer digests while copying",
    )
    save.add_argument(
        "--trust-ingested",
        action="store_true",
        help="do not hash again uncompressed layers the store verified when it took them in "
        "(oci: blobs); trusts that nothing wrote the store's files since",
    )
    save.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the archive to FILE; '-' or no -o writes to stdout when it is not a terminal",
    )
    save.add_argument(
        "names", nargs="+", metavar="NAME", help="image name, name:tag, name@digest or image ID"
    )
    _add_progress_options(save)
    save.set_defaults(run=_cmd_save)

    load_ = commands.add_parser(
        "load",
        parents=[common],
        help="load images from a docker save archive into a store",
        description="Load the images of a `docker save` archive (plain or compressed).",
    )
    load_.add_argument(
        "--into",
        dest="target",
        metavar="TARGET",
        type=_store_spec,
        help="the store to load into: oci:DIR, created if needed (default: the default store)",
    )
    load_.add_argument(
        "-i", "--input", metavar="FILE", help="read the archive from FILE; '-' or no -i: stdin"
    )
    _add_progress_options(load_)
    load_.set_defaults(run=_cmd_load)

    _add_module_commands("cli_store", commands, common, command)
    _add_module_commands("cli_copy", commands, common, command)

    ref = commands.add_parser(
        "ref",
        parents=[common],
        help="normalise image references",
        description="Print each reference in its full normalised form, as Docker stores it "
        "(busybox is docker.io/library/busybox:latest).",
    )
    ref.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per reference: reference, name, domain, path, tag, digest, familiar",
    )
    ref.add_argument(
        "--legacy",
        action="store_true",
        help="use the docker/distribution 2.x grammar of Docker 20.10 and earlier",
    )
    ref.add_argument("refs", nargs="+", metavar="REF")
    ref.set_defaults(run=_cmd_ref)
    _add_module_commands("cli_prune", commands, common, command)
    _add_module_commands("cli_registry", commands, common, command)
    _add_module_commands("cli_build", commands, common, command)
    return parser


# -- running ------------------------------------------------------------------------------


def _error(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # no stderr left to complain on
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` is (or was caused by) writing to a pipe nobody reads any more."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BrokenPipeError) or (
            isinstance(current, OSError) and current.errno == errno.EPIPE
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _die_of_sigpipe() -> NoReturn:
    """End as a process whose reader went away ends: killed by SIGPIPE, silently."""
    # Whatever is still buffered for stdout goes nowhere, not into an error at exit.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    sigpipe = getattr(signal, "SIGPIPE", None)
    if sigpipe is not None:
        signal.signal(sigpipe, signal.SIG_DFL)
        os.kill(os.getpid(), sigpipe)
    raise SystemExit(EXIT_ERROR)


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command_word(words)).parse_args(words)
        if getattr(args, "run", None) is None:  # a stand-in matched: parse with every parser
            args = build_parser(ALL_COMMANDS).parse_args(words)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run: Callable[[argparse.Namespace], int] = args.run
    previous: Any = None
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        status = run(args)
        if sys.stdout is not None:
            sys.stdout.flush()
        return status
    except _Terminated:
        _error("terminated")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _broken_pipe(exc):
            _die_of_sigpipe()
        if args.debug:
            traceback.print_exc()
        _error(_message(exc))
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _message(exc: Exception) -> str:
    if isinstance(exc, (CommandError, TarexportError)):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)"
