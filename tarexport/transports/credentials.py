"""Registry credentials where Docker keeps them: ``~/.docker/config.json`` and its helpers.

The lookup follows the docker CLI: ``$DOCKER_CONFIG/config.json`` (else ``~/.docker``); a
``credHelpers`` entry for the host, else the ``credsStore`` helper, else the ``auths`` entry
(``auth`` is base64 ``user:password``; ``identitytoken`` an OAuth refresh token). Docker Hub
is filed under ``https://index.docker.io/v1/``. Secrets never reach a message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import attrs

from ..errors import RegistryAuthError

__all__ = ["CredentialLookup", "Credentials", "docker_config_credentials", "static_credentials"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_HELPER_TIMEOUT = 30.0


@attrs.frozen
class Credentials:
    """A user name and password, or an identity (refresh) token."""

    username: str = attrs.field(default="", repr=False)
    password: str = attrs.field(default="", repr=False)
    identity_token: str = attrs.field(default="", repr=False)


CredentialLookup = Callable[[str], Optional[Credentials]]
"""Credentials for a registry host (``host[:port]`` as in the reference), or ``None``."""


def static_credentials(
    username: str, password: str, *, host: Optional[str] = None
) -> CredentialLookup:
    """The same credentials for ``host`` (every host when ``None``)."""
    creds = Credentials(username, password)

    def lookup(registry: str) -> Optional[Credentials]:
        return creds if host is None or registry == host else None

    return lookup


def _config_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"])
    return Path(environ.get("HOME") or Path.home()) / ".docker"


def _keys(host: str) -> list[str]:
    """The ``auths`` keys a host may be filed under, most specific first."""
    if host in _HUB_HOSTS:
        return [DOCKER_HUB_KEY, "index.docker.io", "docker.io", "registry-1.docker.io"]
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/",
            f"https://{host}/v2/", f"http://{host}/v1/"]


def _matches(key: str, host: str) -> bool:
    stripped = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return key in _keys(host) or stripped == host


def _run_helper(helper: str, host: str, runner: Runner) -> Optional[Credentials]:
    server = DOCKER_HUB_KEY if host in _HUB_HOSTS else host
    program = f"docker-credential-{helper}"
    try:
        out = runner(program, server)
    except FileNotFoundError:
        raise RegistryAuthError(
            f"{host}: the credential helper {program} is configured but not installed"
        ) from None
    except subprocess.SubprocessError:
        raise RegistryAuthError(f"{host}: the credential helper {program} failed") from None
    if out is None:
        return None
    try:
        value = json.loads(out)
        username, secret = value["Username"], value["Secret"]
        if not isinstance(username, str) or not isinstance(secret, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RegistryAuthError(f"{host}: the credential helper {program} gave no credentials"
                                ) from None
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


Runner = Callable[[str, str], Optional[bytes]]


def _default_runner(program: str, server: str) -> Optional[bytes]:
    done = subprocess.run(
        [program, "get"], input=server.encode(), capture_output=True,
        timeout=_HELPER_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        # "credentials not found in native keychain" is no credentials, not an error.
        if b"not found" in done.stdout.lower() or b"not found" in done.stderr.lower():
            return None
        raise subprocess.SubprocessError("helper failed")
    return done.stdout


def _from_auths(auths: Any, host: str) -> Optional[Credentials]:
    if not isinstance(auths, dict):
        return None
    entry = None
    for key in _keys(host):
        if isinstance(auths.get(key), dict):
            entry = auths[key]
            break
    else:
        for key, value in auths.items():
            if isinstance(key, str) and _matches(key, host) and isinstance(value, dict):
                entry = value
                break
    if entry is None:
        return None
    token = entry.get("identitytoken")
    username, password = entry.get("username") or "", entry.get("password") or ""
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryAuthError(f"{host}: the docker config's auth entry is not valid base64"
                                    ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryAuthError(f"{host}: the docker config's auth entry is not user:password")
    if isinstance(token, str) and token:
        return Credentials(username if isinstance(username, str) else "", "", token)
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return None
    return Credentials(username, password)


def docker_config_credentials(
    environ: Optional[Mapping[str, str]] = None, *, runner: Runner = _default_runner
) -> CredentialLookup:
    """A lookup reading the docker CLI's config (read afresh at each call, it is small)."""
    env = os.environ if environ is None else environ

    def lookup(host: str) -> Optional[Credentials]:
        path = _config_dir(env) / "config.json"
        try:
            config = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise RegistryAuthError(f"{path}: not a readable docker config file") from None
        if not isinstance(config, dict):
            return None
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if isinstance(key, str) and isinstance(helper, str) and _matches(key, host):
                    return _run_helper(helper, host, runner)
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            found = _run_helper(store, host, runner)
            if found is not None:
                return found
        return _from_auths(config.get("auths"), host)

    return lookup
