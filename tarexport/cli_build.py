"""``tarexport build``, ``append`` and ``mutate``: images made from files, layer tars and edits.

Registered by :func:`add_parsers`; the commands write as ``save`` does (``-o FILE|-``, the
file appearing only once complete) or add the image to an OCI layout (``--into oci:DIR``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from . import cli, profiles
from .build import BuiltImage, ImageBuilder, LayerOptions, Tree
from .build.layer import BuiltLayer, TarLayer
from .build.oci import add_to_layout, index_archive
from .build.plan import plan_layer
from .build.sources import resolve
from .errors import InvalidBuildOption
from .save import SavePlan

__all__ = ["add_parsers"]


def _layer_dir(text: str) -> tuple[str, str, str]:
    """``DIR[:PATH]``: PATH (absolute) is where DIR goes in the image, ``/`` by default."""
    directory, colon, at = text.rpartition(":")
    if colon and at.startswith("/") and directory:
        return ("dir", directory, at)
    return ("dir", text, "/")


def _layer_tar(text: str) -> tuple[str, str, str]:
    return ("tar", text, "/")


def _key_value(text: str) -> str:
    if "=" not in text or text.startswith("="):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return text


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("config")
    group.add_argument("--env", action="append", default=[], type=_key_value,
                       metavar="K=V", help="set an environment variable (repeatable)")
    group.add_argument("--entrypoint", action="append", metavar="ARG",
                       help="one entrypoint argument (repeat for each; '' alone clears it)")
    group.add_argument("--cmd", action="append", metavar="ARG",
                       help="one command argument (repeat for each; '' alone clears it)")
    group.add_argument("--workdir", metavar="P", help="working directory (absolute)")
    group.add_argument("--user", metavar="U", help="user[:group] the process runs as")
    group.add_argument("--label", action="append", default=[], type=_key_value,
                       metavar="K=V", help="add a label (repeatable)")
    group.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]",
                       help="expose a port, tcp unless /udp or /sctp (repeatable)")
    group.add_argument("--volume", action="append", default=[], metavar="PATH",
                       help="declare a volume (repeatable)")
    group.add_argument("--stop-signal", metavar="SIG", help="the signal that stops a container")
    group.add_argument("--platform", action="append", default=[], metavar="OS/ARCH[/VARIANT]",
                       help="the image's platform (default: the base's, else linux/amd64); "
                       "repeat with -o for one archive with an image index over several")
    group.add_argument("--created", metavar="RFC3339",
                       help="the image's creation time (default: $SOURCE_DATE_EPOCH, else "
                       "1970-01-01T00:00:00Z)")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--tag", dest="tags", action="append", required=True,
                        metavar="NAME[:TAG]", help="name of the new image (repeatable)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE",
                     help="write a docker archive to FILE; '-' (or no -o/--into) writes to "
                     "stdout when it is not a terminal")
    out.add_argument("--into", dest="target", metavar="oci:DIR", type=cli._store_spec,
                     help="add the image to the OCI image layout DIR (created if needed)")
    parser.add_argument("--gzip", action="store_true",
                        help="with --into: store the new layers gzip-compressed")
    parser.add_argument("--profile", type=cli._profile, default=profiles.DEFAULT,
                        metavar="NAME", help="with -o: the Docker generation whose archive to "
                        f"write (default: {profiles.DEFAULT.name})")
    parser.add_argument("--verify", action="store_true",
                        help="re-hash every layer while writing (base layers included)")
    cli._add_progress_options(parser)


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``build``, ``append`` and ``mutate`` to the ``tarexport`` subcommands."""
    build = commands.add_parser(
        "build", parents=[common], help="build an image from directories and layer tars",
        description="Build an image: each --layer (a directory) and --layer-tar (a tar, plain "
        "or gzip) is one layer, in the order given. The same inputs give the same bytes; "
        "SOURCE_DATE_EPOCH sets the creation time and every file's mtime.")
    build.add_argument("--base", nargs=2, metavar=("SRC", "NAME"),
                       help="start from image NAME of SRC (oci:DIR, docker-archive:FILE or "
                       "docker-root:DIR); its layers are used as they are")
    build.add_argument("--layer", dest="layers", action="append", type=_layer_dir,
                       metavar="DIR[:PATH]", help="a layer of the tree DIR, at PATH (default /)")
    build.add_argument("--layer-tar", dest="layers", action="append", type=_layer_tar,
                       metavar="TAR", help="a layer from an existing layer tar")
    build.add_argument("--exact-modes", action="store_true",
                       help="keep file modes as found (default: 0755/0644 as git does)")
    _add_config_options(build)
    _add_output_options(build)
    build.set_defaults(run=_cmd_build)

    append = commands.add_parser(
        "append", parents=[common], help="add layer tars on top of an image",
        description="Add existing layer tars (plain or gzip) on top of an image.")
    append.add_argument("--from", dest="base", nargs=2, required=True, metavar=("SRC", "NAME"),
                        help="the image to extend: NAME in SRC (oci:DIR, docker-archive:FILE, "
                        "docker-root:DIR)")
    append.add_argument("--layer-tar", dest="layers", action="append", type=_layer_tar,
                        required=True, metavar="TAR", help="a layer tar (repeatable, in order)")
    _add_output_options(append)
    append.set_defaults(run=_cmd_build, platform=[], env=[], label=[], expose=[], volume=[],
                        entrypoint=None, cmd=None, workdir=None, user=None, stop_signal=None,
                        created=None, exact_modes=False)

    mutate = commands.add_parser(
        "mutate", parents=[common], help="change an image's config",
        description="Change the config of an image; its layers stay as they are.")
    mutate.add_argument("--from", dest="base", nargs=2, required=True, metavar=("SRC", "NAME"),
                        help="the image to change: NAME in SRC")
    _add_config_options(mutate)
    _add_output_options(mutate)
    mutate.set_defaults(run=_cmd_build, layers=None, exact_modes=False)


def _argv_list(values: Optional[list[str]]) -> Optional[list[str]]:
    """Repeated ``--cmd``/``--entrypoint`` values; a single empty one clears the field."""
    if values is None:
        return None
    return [] if values == [""] else values


def _builder(args: argparse.Namespace, platform: Optional[str]) -> ImageBuilder:
    kwargs: dict[str, Any] = {"created": args.created}
    if platform is not None:
        kwargs["platform"] = platform
    if args.base is None:
        return ImageBuilder(**kwargs)
    spec = _spec(args.base[0])
    store = cli._open_source(spec)
    return ImageBuilder.from_stores(store, store, store, args.base[1], **kwargs)


def _spec(text: str) -> cli.StoreSpec:
    try:
        return cli.StoreSpec.parse(text)
    except ValueError as exc:
        raise cli.CommandError(str(exc)) from None


def _new_layers(args: argparse.Namespace, mtime: int) -> list[tuple[Any, str]]:
    """Every --layer / --layer-tar, planned (and hashed) once for all platforms."""
    options = LayerOptions(mtime=mtime, exact_modes=args.exact_modes)
    layers: list[tuple[Any, str]] = []
    for kind, source, at in args.layers or ():
        if kind == "dir":
            plan = plan_layer(resolve([Tree(source, at)], options), options)
            layers.append((BuiltLayer(plan), f"COPY . {at}"))
        else:
            layers.append((TarLayer(source), "ADD layer.tar /"))
    return layers


def _images(args: argparse.Namespace) -> list[BuiltImage]:
    platforms: list[Optional[str]] = list(args.platform) or [None]
    first = _builder(args, platforms[0])
    layers = _new_layers(args, first.created.unix_seconds)
    images = []
    for i, platform in enumerate(platforms):
        builder = first if i == 0 else _builder(args, platform)
        for layer, created_by in layers:
            builder.add_layer_tar(layer, created_by=created_by)
        edit: dict[str, Any] = dict(
            env=args.env, entrypoint=_argv_list(args.entrypoint), cmd=_argv_list(args.cmd),
            working_dir=args.workdir, user=args.user,
            labels=dict(item.split("=", 1) for item in args.label),
            exposed_ports=args.expose, volumes=args.volume, stop_signal=args.stop_signal,
        )
        if any(value not in (None, [], {}) for value in edit.values()):
            builder.configure(**edit)
        images.append(builder.build(args.tags))
    return images


def _cmd_build(args: argparse.Namespace) -> int:
    to_stdout = args.target is None and args.output in (None, "-")
    if to_stdout and cli._isatty(sys.stdout):
        raise cli.CommandError(cli.REFUSE_TERMINAL)
    if args.gzip and args.target is None:
        raise cli.CommandError("--gzip needs --into oci:DIR (docker archives are uncompressed)")
    images = _images(args)  # every input read and checked before any output
    if args.target is not None:
        if args.target.kind != "oci":
            raise cli.CommandError(f"cannot add images to {args.target}: only to oci:DIR")
        if len(images) > 1:
            raise InvalidBuildOption("platform", "several platforms need -o (an OCI index "
                                     "archive), not --into")
        add_to_layout(images, args.target.path, compression="gzip" if args.gzip else None)
        print(images[0].id)
        return cli.EXIT_OK
    plan: SavePlan
    if len(images) > 1:
        plan = index_archive(images, verify=args.verify)
    else:
        plan = images[0].plan(profile=args.profile, verify=args.verify)
    with cli._progress(args, "writing", "wrote") as display:
        if to_stdout:
            out = cli._stdout_binary()
            plan.write(out, display)
            out.flush()
        else:
            with cli._output_file(args.output) as out:
                plan.write(out, display)
    return cli.EXIT_OK
