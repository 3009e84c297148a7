"""Store commands: ``images``, ``inspect``, ``tag`` and ``rmi``, as docker has them.

``images`` prints what ``docker images`` prints for the same images (rows, sizes, ages,
column layout); ``inspect`` the image config and manifest as JSON, or a ``--format``
template (see :mod:`tarexport.gotemplate`); ``tag`` and ``rmi`` edit an OCI layout (the
default store unless ``--store oci:DIR``), ``rmi`` deleting the blobs no other image uses.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

from .digest import Digest, chain_ids
from .errors import ImageNotFound, ReferenceNotFound, TarexportError
from .gotemplate import Template
from .gotime import GoTime
from .image import Image
from .reference import (
    DigestReference,
    Named,
    familiar_name,
    familiar_string,
    parse_any_reference,
    parse_normalized_named,
    tag_name_only,
)
from .save import Saver
from .sizes import content_size, human_duration, human_size
from .stores.oci_edit import remove
from .stores.oci_layout import OCILayoutStore, _manifest_bytes
from .transports.local import open_layout, open_store
from .transports.stores import AnyStore, latest_form, resolve_names

__all__ = ["add_parsers", "image_rows", "tabulate"]

_IMAGES_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}


# -- resolving ----------------------------------------------------------------------------


def resolve_one(store: AnyStore, name: str) -> Digest:
    """The image ``name`` names, as ``docker inspect`` finds it: a tag (a repository alone is
    its ``latest``), a digest reference, else an image ID or unique ID prefix."""
    latest = latest_form(name)
    if latest is not None:
        try:
            return store.get(latest)
        except ReferenceNotFound:
            return Saver(store, store, store)._search(name)
    return resolve_names(store, store, store, [name])[0].id


def _layer_sizes(store: AnyStore, image: Image) -> Optional[int]:
    total = 0
    try:
        for chain in chain_ids(image.diff_ids):
            with store.get_layer(chain).open() as stream:
                total += content_size(stream)
    except (TarexportError, OSError):
        return None
    return total


# -- images -------------------------------------------------------------------------------


def image_rows(
    store: AnyStore,
    *,
    digests: bool,
    all_images: bool,
    problems: Optional[list[str]] = None,
) -> list[dict[str, Any]]:
    """One row per name of every image, as ``docker images`` makes them, newest first.

    What is broken (an index entry of a layout, a config that does not read) is left out and
    described in ``problems``, when a list is given, instead of failing the listing.
    """
    listed = []
    parents = set()
    if isinstance(store, OCILayoutStore) and problems is not None:
        problems.extend(
            f"{entry.name or entry.digest or f'index entry {entry.position}'}: {entry.reason}"
            for entry in store.broken()
        )
    for image_id in store.search(""):
        try:
            image = Image.from_bytes(store.get_config(image_id))
        except TarexportError as exc:
            if problems is not None and not isinstance(store, OCILayoutStore):
                problems.append(f"image {image_id}: {exc}")  # a layout's broken() has it
            continue
        listed.append((image_id, image))
        parent = store.get_parent(image_id)
        if parent is not None:
            parents.add(parent)
    listed.sort(key=lambda pair: (_created_key(pair[1]), pair[0].hex), reverse=True)
    now = time.time()
    rows = []
    for image_id, image in listed:
        refs = store.references(image_id)
        if not refs and image_id in parents and not all_images:
            continue  # an intermediate image, as docker hides them without -a
        size = _layer_sizes(store, image)
        base = {
            "ID": image_id.hex[:12],
            "FullID": str(image_id),
            "CreatedSince": _created_since(image, now),
            "CreatedAt": _created_at(image),
            "Size": human_size(size) if size is not None else "?",
            "VirtualSize": human_size(size) if size is not None else "?",
            "Containers": "N/A",
        }
        for repository, tag, digest in _names(refs, digests):
            rows.append({**base, "Repository": repository, "Tag": tag, "Digest": digest})
    return rows


def _names(refs: Sequence[Named], digests: bool) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows for one image, by the docker CLI's rules."""
    tags: dict[str, list[str]] = {}
    by_digest: dict[str, list[str]] = {}
    for ref in refs:
        if ref.digest is not None:
            by_digest.setdefault(familiar_name(ref), []).append(str(ref.digest))
        elif ref.tag is not None:
            tags.setdefault(familiar_name(ref), []).append(ref.tag)
    rows = []
    for repository, repo_tags in tags.items():
        repo_digests = by_digest.pop(repository, []) if digests else []
        by_digest.pop(repository, None)
        for tag in repo_tags:
            if not repo_digests:
                rows.append((repository, tag, "<none>"))
            rows.extend((repository, tag, d) for d in repo_digests)
    for repository, repo_digests in by_digest.items():
        if digests:
            rows.extend((repository, "<none>", d) for d in repo_digests)
        else:
            rows.append((repository, "<none>", "<none>"))
    return rows or [("<none>", "<none>", "<none>")]


def _created_key(image: Image) -> tuple[int, int]:
    created = image.created
    return (created.unix, created.nanos) if created is not None else (-(1 << 63), 0)


def _created_since(image: Image, now: float) -> str:
    created = image.created
    if created is None or created.unix <= -62135596800:  # Go's zero time
        return "N/A"
    return human_duration(max(0.0, now - created.unix)) + " ago"


def _created_at(image: Image) -> str:
    created = image.created
    if created is None:
        return ""
    text = GoTime.from_unix(created.unix).format()
    return text.removesuffix("Z").replace("T", " ") + " +0000 UTC"


def _matches(row: dict[str, Any], pattern: str) -> bool:
    """docker images REPOSITORY[:TAG]: the repository (and tag) match the pattern."""
    repository, tag = row["Repository"], row["Tag"]
    want_repo, colon, want_tag = pattern.rpartition(":")
    if not colon or "/" in want_tag:
        want_repo, want_tag = pattern, ""
    # A plain name matches its normalised form too (docker.io/library/busybox is busybox).
    with contextlib.suppress(TarexportError):
        want_repo = familiar_name(parse_normalized_named(want_repo))
    if not fnmatch.fnmatchcase(repository, want_repo):
        return False
    return not want_tag or fnmatch.fnmatchcase(tag, want_tag)


def tabulate(lines: Sequence[str]) -> list[str]:
    """Tab-separated cells aligned as the docker CLI's tabwriter does (min 10, padding 3)."""
    table = [line.split("\t") for line in lines]
    columns = max((len(cells) for cells in table), default=0)
    widths = [0] * columns
    for cells in table:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths[i], len(cell))
    out = []
    for cells in table:
        padded = [cell.ljust(max(widths[i] + 3, 10)) for i, cell in enumerate(cells[:-1])]
        out.append("".join(padded) + cells[-1])
    return out


def _cmd_images(args: argparse.Namespace) -> int:
    store = open_store(args.source)
    problems: list[str] = []
    status = _list_images(args, image_rows(store, digests=args.digests, all_images=args.all,
                                           problems=problems))
    sys.stdout.flush()
    # What is broken is listed on stderr (status 1) and the rest still is, as ls does.
    for problem in problems:
        _complain(f"tarexport: broken: {problem}")
    return 1 if problems else status


def _list_images(args: argparse.Namespace, rows: list[dict[str, Any]]) -> int:
    if args.name:
        rows = [row for row in rows if _matches(row, args.name)]
    if args.quiet:
        seen = []
        for row in rows:
            value = row["FullID"] if args.no_trunc else row["ID"]
            if value not in seen:
                seen.append(value)
        for value in seen:
            print(value)
        return 0
    if args.no_trunc:
        rows = [{**row, "ID": row["FullID"]} for row in rows]
    if args.format and not args.format.startswith("table"):
        template = Template.parse(args.format)
        for row in rows:
            print(template.render(row))
        return 0
    text = args.format or (
        "table {{.Repository}}\t{{.Tag}}\t"
        + ("{{.Digest}}\t" if args.digests else "")
        + "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    )
    template = Template.parse(text)
    lines = [template.headers(_IMAGES_HEADERS)] + [template.render(row) for row in rows]
    for line in tabulate(lines):
        print(line.rstrip())
    return 0


# -- inspect ------------------------------------------------------------------------------


def inspect_image(store: AnyStore, image_id: Digest) -> dict[str, Any]:
    """``docker image inspect``'s fields for an image, plus its OCI ``Manifest``."""
    raw = store.get_config(image_id)
    image = Image.from_bytes(raw)
    config = json.loads(raw)
    refs = store.references(image_id)
    parent = store.get_parent(image_id)
    size = _layer_sizes(store, image)
    result: dict[str, Any] = {
        "Id": str(image_id),
        "RepoTags": [familiar_string(r) for r in refs if r.tag is not None],
        "RepoDigests": [familiar_string(r) for r in refs if r.digest is not None],
        "Parent": str(parent) if parent is not None else "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config"),
        "Architecture": config.get("architecture", ""),
    }
    if config.get("variant"):
        result["Variant"] = config["variant"]
    result.update({
        "Os": config.get("os", ""),
        "Size": size if size is not None else 0,
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in image.diff_ids]},
        "History": config.get("history", []),
        "Manifest": _manifest(store, image_id, image),
    })
    return result


def _manifest(store: AnyStore, image_id: Digest, image: Image) -> Any:
    if isinstance(store, OCILayoutStore):
        found = store._snapshot().images.get(image_id)
        if found is not None:
            manifest = found.manifest.digest
            return store._read_json_blob(manifest, f"manifest of image {image_id}")
    try:
        sizes = {
            diff_id: store.get_layer(chain).size
            for chain, diff_id in zip(chain_ids(image.diff_ids), image.diff_ids)
        }
    except TarexportError:
        return None
    return json.loads(_manifest_bytes(image_id, len(image.raw), list(image.diff_ids), sizes,
                                      None))


def _cmd_inspect(args: argparse.Namespace) -> int:
    store = open_store(args.source)
    template = Template.parse(args.format) if args.format else None
    found, status = [], 0
    for name in args.names:
        try:
            image_id = resolve_one(store, name)
        except (ImageNotFound, ReferenceNotFound):
            _complain(f"Error: No such image: {name}")
            status = 1
            continue
        found.append(inspect_image(store, image_id))
    if template is not None:
        for item in found:
            print(template.render(item))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return status


def _complain(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- tag and rmi --------------------------------------------------------------------------


def _cmd_tag(args: argparse.Namespace) -> int:
    store = open_layout(args.store)
    image_id = resolve_one(store, args.source)
    target = tag_name_only(parse_normalized_named(args.target))
    store.add_reference(target, image_id)
    return 0


def _cmd_rmi(args: argparse.Namespace) -> int:
    store = open_layout(args.store)
    status = 0
    for name in args.names:
        try:
            removal = _remove_one(store, name, args.force)
        except (ImageNotFound, ReferenceNotFound):
            _complain(f"Error: No such image: {name}")
            status = 1
            continue
        except TarexportError as exc:
            _complain(f"Error: {exc}")
            status = 1
            continue
        for line in removal.messages():
            print(line)
    return status


def _remove_one(store: OCILayoutStore, name: str, force: bool) -> Any:
    ref = parse_any_reference(name)
    if isinstance(ref, DigestReference):
        return remove(store, image_id=ref.digest, force=force)
    if familiar_name(ref) != "sha256":
        named = tag_name_only(ref)
        if named.digest is None:
            try:
                store.get(named)
            except ReferenceNotFound:
                pass
            else:
                return remove(store, reference=named)
    return remove(store, image_id=resolve_one(store, name), force=force)


# -- the parsers --------------------------------------------------------------------------


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``images``, ``inspect``, ``tag`` and ``rmi`` on the command's subparsers."""
    where = "oci:DIR, docker-archive:FILE or docker-root:DIR (default: the default store)"
    images = commands.add_parser(
        "images", parents=[common], help="list the images of a store",
        description="List the images of a store, one line per tag, as `docker images` does.",
    )
    images.add_argument("--from", dest="source", metavar="SOURCE", help=where)
    images.add_argument("name", nargs="?", metavar="REPOSITORY[:TAG]",
                        help="only the images whose name matches (shell patterns allowed)")
    images.add_argument("-a", "--all", action="store_true",
                        help="also list intermediate images (untagged parents)")
    images.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    images.add_argument("--digests", action="store_true", help="show digests")
    images.add_argument("--no-trunc", action="store_true", help="full image IDs")
    images.add_argument("--format", metavar="TEMPLATE",
                        help="a Go template: {{.Repository}} {{.Tag}} {{.ID}} {{.Digest}} "
                        "{{.CreatedSince}} {{.CreatedAt}} {{.Size}}; 'table ...' for columns")
    images.set_defaults(run=_cmd_images)

    inspect = commands.add_parser(
        "inspect", parents=[common], help="show an image's config and manifest",
        description="Show images as JSON, with the fields of `docker image inspect` and the "
        "OCI manifest.",
    )
    inspect.add_argument("--from", dest="source", metavar="SOURCE", help=where)
    inspect.add_argument("-f", "--format", metavar="TEMPLATE",
                         help="a Go template such as {{.Id}} or {{json .Config.Env}}")
    inspect.add_argument("names", nargs="+", metavar="NAME")
    inspect.set_defaults(run=_cmd_inspect)

    layout = "oci:DIR (default: the default store)"
    tag = commands.add_parser(
        "tag", parents=[common], help="give an image another name",
        description="Point TARGET at the image SOURCE names (moving it from any other image).",
    )
    tag.add_argument("--store", metavar="STORE", help=layout)
    tag.add_argument("source", metavar="SOURCE")
    tag.add_argument("target", metavar="TARGET")
    tag.set_defaults(run=_cmd_tag)

    rmi = commands.add_parser(
        "rmi", parents=[common], help="remove names and images",
        description="Untag each NAME; an image whose last name goes is deleted with the blobs "
        "no other image uses.",
    )
    rmi.add_argument("--store", metavar="STORE", help=layout)
    rmi.add_argument("-f", "--force", action="store_true",
                     help="delete an image named in several repositories, by ID")
    rmi.add_argument("names", nargs="+", metavar="NAME")
    rmi.set_defaults(run=_cmd_rmi)
