"""``tarexport prune``: list and remove what killed loads and saves left behind.

A load killed by ``SIGKILL`` leaves its staging directory (``.tarexport-staging-*``) in the
layout; a killed ``save -o FILE`` leaves ``.FILE.tarexport-*.tmp``. The next load into the
layout, or the next save to the same ``FILE``, removes them anyway; this command does it on
demand, and with ``--dry-run`` only lists them. What a live process is still writing is
never removed (see :mod:`tarexport.leftovers`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from .display import format_size
from .leftovers import Leftover, find_leftovers, remove_leftovers

__all__ = ["add_parser", "leftovers_at"]


def leftovers_at(location: str) -> list[Leftover]:
    """The leftovers a ``prune`` LOCATION names.

    ``oci:DIR`` or a directory: every staging directory and partial archive in it; a file
    (existing or not): the partial archives of that file, beside it.
    """
    path = location[len("oci:"):] if location.startswith("oci:") else location
    if location.startswith("oci:") or os.path.isdir(path):
        if not os.path.isdir(path):
            raise OSError(f"{path}: no such directory")
        return find_leftovers(os.path.abspath(path))
    directory, base = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OSError(f"{directory}: no such directory")
    return find_leftovers(directory, base)


def _run(args: argparse.Namespace) -> int:
    from .cli import CommandError, default_store_path

    default = default_store_path()
    # The default store, not created yet, has nothing left in it.
    locations: Sequence[str] = args.locations or (
        [f"oci:{default}"] if default.is_dir() else []
    )
    found: list[Leftover] = []
    for location in locations:
        if location.startswith("oci:") and not location[4:]:
            raise CommandError(f"{location!r}: the oci: store needs a path")
        try:
            found.extend(leftovers_at(location))
        except OSError as exc:
            raise CommandError(str(exc)) from exc
    dead = [x for x in found if not x.in_use]
    for leftover in found:
        if leftover.in_use:
            print(f"In use: {leftover.path}")
    if args.dry_run:
        for leftover in dead:
            print(f"Would delete: {leftover.path} ({format_size(leftover.size)})")
        print(f"Total reclaimable space: {format_size(sum(x.size for x in dead))}")
        return 0
    removed = remove_leftovers(dead)
    for leftover in removed:
        print(f"Deleted: {leftover.path}")
    print(f"Total reclaimed space: {format_size(sum(x.size for x in removed))}")
    return 0


def add_parser(commands: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add ``prune`` to the subcommands ``commands`` (from ``add_subparsers``)."""
    prune = commands.add_parser(
        "prune",
        parents=list(parents),
        help="remove what killed loads and saves left behind",
        description="Remove the staging directories of killed loads and the partial "
        "archives of killed saves. What a running tarexport still writes is never touched.",
    )
    prune.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="only list what would be removed",
    )
    prune.add_argument(
        "locations",
        nargs="*",
        metavar="LOCATION",
        help="oci:DIR or a directory (its staging and partial archives), or FILE (the "
        "partial archives of `save -o FILE`); default: the default store",
    )
    prune.set_defaults(run=_run)
