"""Image config JSON for a built image, byte for byte as Docker writes it. Pure.

The top level is written as moby's ``image.Image`` marshals (its keys sorted, as its
``MarshalJSON`` goes through a map); ``config`` is ``container.Config`` in struct order
(:meth:`~tarexport.image.ContainerConfig.to_go`); times are Go RFC 3339 (``2009-02-13T23:31:30Z``).
A base image's config is the starting point: its fields (``Healthcheck``, ``OnBuild``, ...)
are kept, and only what the build sets changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import attrs

from .. import gojson, profiles
from ..digest import Digest
from ..errors import InvalidBuildOption
from ..gotime import GoTime
from ..image import ContainerConfig, History, Image

__all__ = ["ConfigEdit", "HistoryStep", "Platform", "apply_edit", "config_bytes", "parse_platform"]

_PORT = re.compile(r"^[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp|sctp))?$")


@attrs.frozen
class Platform:
    """``os/architecture[/variant]``."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(re.fullmatch(r"[a-z0-9._-]+", p) for p in parts):
        raise InvalidBuildOption("platform", f"{text!r}: expected OS/ARCH[/VARIANT]")
    return Platform(*parts)


@attrs.frozen
class ConfigEdit:
    """Changes to a container config; ``None`` leaves a field as the base has it.

    ``env`` entries are ``KEY=VALUE``; one whose key the config already has replaces it in
    place (as Docker's ``ENV`` does). ``labels`` are merged; ``exposed_ports`` and
    ``volumes`` added.
    """

    env: Sequence[str] = ()
    entrypoint: Optional[Sequence[str]] = None
    cmd: Optional[Sequence[str]] = None
    working_dir: Optional[str] = None
    user: Optional[str] = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    exposed_ports: Sequence[str] = ()
    volumes: Sequence[str] = ()
    stop_signal: Optional[str] = None


@attrs.frozen
class HistoryStep:
    """One history entry: a layer, or a config-only step (``empty_layer``)."""

    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False


def _check_env(item: str) -> str:
    key, eq, _ = item.partition("=")
    if not eq or not key:
        raise InvalidBuildOption("env", f"{item!r}: expected KEY=VALUE")
    return key


def _port(text: str) -> str:
    if not _PORT.match(text):
        raise InvalidBuildOption("expose", f"{text!r}: expected PORT[/PROTO] (tcp, udp, sctp)")
    return text if "/" in text else f"{text}/tcp"


def apply_edit(config: ContainerConfig, edit: ConfigEdit) -> ContainerConfig:
    """``config`` with ``edit`` applied (the base's other fields kept)."""
    changes: dict[str, Any] = {}
    if edit.env:
        env = list(config.env or ())
        for item in edit.env:
            key = _check_env(item)
            keys = [e.partition("=")[0] for e in env]
            if key in keys:  # replaced where it was, as Docker's ENV does
                env[keys.index(key)] = item
            else:
                env.append(item)
        changes["env"] = tuple(env)
    if edit.entrypoint is not None:
        changes["entrypoint"] = tuple(edit.entrypoint)
        if edit.cmd is None:
            changes["cmd"] = None  # Docker: a new ENTRYPOINT resets the base's CMD
    if edit.cmd is not None:
        changes["cmd"] = tuple(edit.cmd)
    if edit.working_dir is not None:
        if edit.working_dir and not edit.working_dir.startswith("/"):
            raise InvalidBuildOption("workdir", f"{edit.working_dir!r}: must be absolute")
        changes["working_dir"] = edit.working_dir
    if edit.user is not None:
        changes["user"] = edit.user
    if edit.labels:
        for key in edit.labels:
            if not key:
                raise InvalidBuildOption("label", "empty label key")
        changes["labels"] = gojson.Map({**(config.labels or {}), **edit.labels})
    if edit.exposed_ports:
        ports = dict(config.exposed_ports or {})
        ports.update({_port(p): gojson.Map() for p in edit.exposed_ports})
        changes["exposed_ports"] = gojson.Map(ports)
    if edit.volumes:
        volumes = dict(config.volumes or {})
        for volume in edit.volumes:
            if not volume.startswith("/"):
                raise InvalidBuildOption("volume", f"{volume!r}: must be absolute")
            volumes[volume] = gojson.Map()
        changes["volumes"] = gojson.Map(volumes)
    if edit.stop_signal is not None:
        changes["stop_signal"] = edit.stop_signal
    return attrs.evolve(config, **changes)


def _history_json(entry: History) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.created is not None:
        out["created"] = entry.created.format()
    if entry.author:
        out["author"] = entry.author
    if entry.created_by:
        out["created_by"] = entry.created_by
    if entry.comment:
        out["comment"] = entry.comment
    if entry.empty_layer:
        out["empty_layer"] = True
    return out


def config_bytes(
    *,
    base: Optional[Image],
    config: ContainerConfig,
    platform: Platform,
    created: GoTime,
    diff_ids: Sequence[Digest],
    history: Sequence[HistoryStep],
) -> bytes:
    """The config of an image: ``base``'s layers and history extended by this build's."""
    entries = list(base.history) if base is not None else []
    entries += [
        History(created=created, created_by=step.created_by, comment=step.comment,
                empty_layer=step.empty_layer)
        for step in history
    ]
    fields: dict[str, Any] = {
        "architecture": platform.architecture,
        "config": config.to_go(profiles.DEFAULT),
        "created": created.format(),
        "history": [_history_json(entry) for entry in entries],
        "os": platform.os,
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
    }
    if platform.variant:
        fields["variant"] = platform.variant
    if base is not None:
        if base.os_version:
            fields["os.version"] = base.os_version
        if base.os_features:
            fields["os.features"] = list(base.os_features)
        if base.author:
            fields["author"] = base.author
    return gojson.dumps(gojson.Map(fields))
