"""Image references (``name[:tag][@digest]``), parsed, normalised and printed as Docker does.

This is the distribution/reference API in Python form. Its grammar exists in two generations and
every parsing function takes ``legacy`` to choose one:

* ``legacy=False`` (default): the current ``github.com/distribution/reference``, which Docker 25
  and later use. IPv6 literal hosts (``[::1]:5000/x``) are allowed, the 255-character limit
  applies to the path only, and a first component with an uppercase letter is a domain.
* ``legacy=True``: docker/distribution 2.7/2.8, which Docker 20.10 uses. No IPv6 hosts, and the
  255-character limit applies to the whole normalised name (``docker.io/library/`` included).

Errors are :class:`~tarexport.errors.InvalidReference` whose ``str()`` is Docker's own message.
``docs/reference.md`` describes the grammar, the normalisation rules and every message.
"""

from __future__ import annotations

import re
from typing import Optional, Union, overload

import attrs

from .digest import Digest
from .errors import InvalidDigest, InvalidReference

__all__ = [
    "DigestReference",
    "Named",
    "Reference",
    "familiar_name",
    "familiar_string",
    "is_name_only",
    "parse",
    "parse_any_reference",
    "parse_docker_ref",
    "parse_named",
    "parse_normalized_named",
    "split_docker_domain",
    "split_domain",
    "tag_name_only",
    "trim_named",
    "with_digest",
    "with_name",
    "with_tag",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
NAME_TOTAL_LENGTH_MAX = 255

ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid digest format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_NAME_NOT_CANONICAL = "repository name must be canonical"


# -- the grammar ----------------------------------------------------------------------------
#
# The pieces carry distribution's names so that the two can be read side by side. Patterns are
# only ever used with fullmatch: Go anchors with ^...$, and Python's $ would also accept a
# trailing newline. re.ASCII because Go's \w is ASCII-only.


def _optional(*parts: str) -> str:
    return "(?:" + "".join(parts) + ")?"


def _any_times(*parts: str) -> str:
    return "(?:" + "".join(parts) + ")*"


def _capture(*parts: str) -> str:
    return "(" + "".join(parts) + ")"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


# Lowercase letters and digits: the atom of a path component.
ALPHANUMERIC = r"[a-z0-9]+"
# One period, one or two underscores, or a run of dashes. docker/distribution 2.x writes the dash
# run as [-]* and the current module as [-]+. Both accept the same names (an empty separator only
# splits one alphanumeric run in two), but under a backtracking engine such as Python's the empty
# alternative makes the path pattern exponential on inputs like "aaaa...!", so both generations
# use [-]+ here.
SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = ALPHANUMERIC + _any_times(SEPARATOR, ALPHANUMERIC)
# The path, which distribution also calls the remote name: "library/ubuntu".
REMOTE_NAME = PATH_COMPONENT + _any_times("/", PATH_COMPONENT)
DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN_NAME = DOMAIN_NAME_COMPONENT + _any_times(r"\.", DOMAIN_NAME_COMPONENT)
# Current generation only: an IPv6 literal in brackets, without a zone.
IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
OPTIONAL_PORT = r"(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
IDENTIFIER = r"[a-f0-9]{64}"

_ANCHORED_TAG = _compile(TAG)
_ANCHORED_DIGEST = _compile(DIGEST)
_ANCHORED_IDENTIFIER = _compile(IDENTIFIER)
_ANCHORED_REMOTE_NAME = _compile(REMOTE_NAME)


@attrs.frozen
class _Grammar:
    """One generation's compiled patterns and length rule."""

    legacy: bool
    domain_and_port: re.Pattern[str]
    # name: optional "domain/", then the path; groups: domain, path.
    anchored_name: re.Pattern[str]
    # the whole reference; groups: name, tag, digest.
    reference: re.Pattern[str]


def _build_grammar(host: str, *, legacy: bool) -> _Grammar:
    domain_and_port = host + OPTIONAL_PORT
    name = _optional(domain_and_port, "/") + REMOTE_NAME
    anchored_name = _optional(_capture(domain_and_port), "/") + _capture(REMOTE_NAME)
    reference = _capture(name) + _optional(":", _capture(TAG)) + _optional("@", _capture(DIGEST))
    return _Grammar(
        legacy=legacy,
        domain_and_port=_compile(domain_and_port),
        anchored_name=_compile(anchored_name),
        reference=_compile(reference),
    )


# docker/distribution 2.7/2.8:   host := domain-name
_LEGACY = _build_grammar(DOMAIN_NAME, legacy=True)
# distribution/reference:        host := domain-name | "[" ipv6-address "]"
_CURRENT = _build_grammar(f"(?:{DOMAIN_NAME}|{IPV6_ADDRESS})", legacy=False)


def _grammar(legacy: bool) -> _Grammar:
    return _LEGACY if legacy else _CURRENT


# -- values ---------------------------------------------------------------------------------


def _check_domain(instance: object, attribute: object, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"domain must be a str, not {type(value).__name__}")
    # The current host grammar is a superset of the legacy one.
    if value and not _CURRENT.domain_and_port.fullmatch(value):
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT, value)


def _check_path(instance: object, attribute: object, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"path must be a str, not {type(value).__name__}")
    if not _ANCHORED_REMOTE_NAME.fullmatch(value):
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT, value)


def _check_tag(instance: object, attribute: object, value: Optional[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"tag must be a str or None, not {type(value).__name__}")
    if not _ANCHORED_TAG.fullmatch(value):
        raise InvalidReference(ERR_TAG_INVALID_FORMAT, value)


def _check_digest(instance: object, attribute: object, value: Optional[Digest]) -> None:
    if value is not None and not isinstance(value, Digest):
        raise TypeError(f"digest must be a Digest or None, not {type(value).__name__}")


@attrs.frozen
class Named:
    """A repository name with an optional tag and digest: ``docker.io/library/app:1@sha256:…``.

    One class covers distribution's repository, tagged, canonical and tagged+canonical types;
    ``tag`` and ``digest`` are ``None`` when absent. ``str()`` is the full reference.
    """

    domain: str = attrs.field(validator=_check_domain)
    path: str = attrs.field(validator=_check_path)
    tag: Optional[str] = attrs.field(default=None, validator=_check_tag)
    digest: Optional[Digest] = attrs.field(default=None, validator=_check_digest)

    @property
    def name(self) -> str:
        """``domain/path``, or just the path when there is no domain."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + str(self.digest)
        return text


@attrs.frozen
class DigestReference:
    """A bare digest, as :func:`parse_any_reference` returns for an image ID."""

    digest: Digest = attrs.field(validator=attrs.validators.instance_of(Digest))

    def __str__(self) -> str:
        return str(self.digest)


Reference = Union[Named, DigestReference]


# -- helpers --------------------------------------------------------------------------------


def _require_str(value: object, what: str = "reference") -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


def _require_named(value: object) -> None:
    if not isinstance(value, Named):
        raise TypeError(f"expected a Named reference, not {type(value).__name__}")


def _go_lower(text: str) -> str:
    """Go's ``strings.ToLower``, which maps each character on its own.

    Python's ``str.lower`` applies the full Unicode mapping, which differs only for U+0130
    (Go gives ``i``, Python ``i`` + U+0307). It matters: Go's result can then match the grammar.
    """
    return text.replace("\u0130", "i").lower()


def _parse_digest(text: str, original: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidDigest as err:
        raise InvalidReference(err.message, original) from err


def _parse(text: str, grammar: _Grammar, original: str) -> Named:
    """distribution's ``Parse`` on ``text``; errors name ``original`` (the caller's input)."""
    if not text:
        raise InvalidReference(ERR_NAME_EMPTY, original)
    match = grammar.reference.fullmatch(text)
    if match is None:
        lowered = _go_lower(text)
        if lowered != text and grammar.reference.fullmatch(lowered):
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE, original)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT, original)
    name, tag, digest_text = match.group(1, 2, 3)
    if grammar.legacy and len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG, original)
    # Always matches: the name was just matched by the same pieces.
    name_match = grammar.anchored_name.fullmatch(name)
    assert name_match is not None
    domain, path = name_match.group(1) or "", name_match.group(2)
    if not grammar.legacy and len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG, original)
    digest = _parse_digest(digest_text, original) if digest_text else None
    return Named(domain, path, tag, digest)


def _familiarize(named: Named) -> Named:
    """Drop ``docker.io`` and, for an official image (``library/x``), the ``library/``."""
    if named.domain != DEFAULT_DOMAIN:
        return named
    path = named.path
    if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]:
        path = path[len(OFFICIAL_REPO_PREFIX) :]
    return attrs.evolve(named, domain="", path=path)


# -- parsing --------------------------------------------------------------------------------


def parse(s: str, *, legacy: bool = False) -> Named:
    """Parse a reference exactly as written, without normalising (distribution's ``Parse``).

    ``parse("ubuntu")`` has no domain, and ``parse("a/b")`` takes ``a`` as the domain.
    """
    _require_str(s)
    return _parse(s, _grammar(legacy), s)


def split_domain(name: str, *, legacy: bool = False) -> tuple[str, str]:
    """Split a repository name into ``(domain, path)`` by the grammar alone.

    A first component that can be a domain is one (``a/b`` gives ``("a", "b")``). A string that is
    not a name gives ``("", name)``.
    """
    _require_str(name, "name")
    match = _grammar(legacy).anchored_name.fullmatch(name)
    if match is None:
        return "", name
    return match.group(1) or "", match.group(2)


def split_docker_domain(name: str, *, legacy: bool = False) -> tuple[str, str]:
    """Split a familiar name into ``(domain, remainder)`` the way Docker normalises it.

    The first component is a domain only if it contains ``.`` or ``:`` or is exactly
    ``localhost`` (current generation: or has an uppercase letter). Otherwise the domain is
    ``docker.io``; ``index.docker.io`` becomes ``docker.io``; a one-component name on
    ``docker.io`` gets ``library/``. The remainder keeps any tag or digest; nothing is validated.
    """
    _require_str(name, "name")
    first, slash, rest = name.partition("/")
    is_domain = bool(slash) and (
        "." in first
        or ":" in first
        or first == LOCALHOST
        or (not legacy and _go_lower(first) != first)
    )
    domain, remainder = (first, rest) if is_domain else (DEFAULT_DOMAIN, name)
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_normalized_named(s: str, *, legacy: bool = False) -> Named:
    """Parse a name as the Docker CLI and API accept it: ``ubuntu`` → ``docker.io/library/ubuntu``.

    A 64-hex string is refused (it would be an image ID); use :func:`parse_any_reference` when
    an ID is acceptable.
    """
    _require_str(s)
    if _ANCHORED_IDENTIFIER.fullmatch(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings", s
        )
    domain, remainder = split_docker_domain(s, legacy=legacy)
    remote = remainder.partition(":")[0]
    if _go_lower(remote) != remote:
        if legacy:
            message = "invalid reference format: repository name must be lowercase"
        else:
            message = f"invalid reference format: repository name ({remote}) must be lowercase"
        raise InvalidReference(message, s)
    return _parse(domain + "/" + remainder, _grammar(legacy), s)


def parse_named(s: str, *, legacy: bool = False) -> Named:
    """Parse a name that must already be in full normalised form (``docker.io/library/x``)."""
    named = parse_normalized_named(s, legacy=legacy)
    if str(named) != s:
        raise InvalidReference(ERR_NAME_NOT_CANONICAL, s)
    return named


def parse_any_reference(s: str, *, legacy: bool = False) -> Reference:
    """Parse a name or an image ID, as ``docker save`` and ``docker inspect`` do.

    A 64-hex string or a valid digest gives a :class:`DigestReference`; anything else is parsed
    by :func:`parse_normalized_named`.
    """
    _require_str(s)
    if _ANCHORED_IDENTIFIER.fullmatch(s):
        return DigestReference(Digest("sha256", s))
    try:
        return DigestReference(Digest.parse(s))
    except InvalidDigest:
        pass
    return parse_normalized_named(s, legacy=legacy)


def parse_docker_ref(s: str, *, legacy: bool = False) -> Named:
    """Parse and normalise to a reference with exactly one of tag or digest.

    A bare name gets ``:latest``; a reference with both a tag and a digest loses the tag.
    """
    named = parse_normalized_named(s, legacy=legacy)
    if named.tag is not None and named.digest is not None:
        return with_digest(with_name(named.name, legacy=legacy), named.digest)
    return tag_name_only(named)


# -- building and transforming --------------------------------------------------------------


def with_name(name: str, *, legacy: bool = False) -> Named:
    """A repository (no tag, no digest) from a full name, split by the grammar; not normalised."""
    _require_str(name, "name")
    grammar = _grammar(legacy)
    if legacy and len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG, name)
    match = grammar.anchored_name.fullmatch(name)
    if match is None:
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT, name)
    domain, path = match.group(1) or "", match.group(2)
    if not legacy and len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG, name)
    return Named(domain, path)


def with_tag(named: Named, tag: str) -> Named:
    """``named`` with its tag set to ``tag`` (a digest is kept)."""
    _require_named(named)
    _require_str(tag, "tag")
    if not _ANCHORED_TAG.fullmatch(tag):
        raise InvalidReference(ERR_TAG_INVALID_FORMAT, tag)
    return attrs.evolve(named, tag=tag)


def with_digest(named: Named, digest: Union[Digest, str]) -> Named:
    """``named`` with its digest set (a tag is kept). A string is validated like a parsed one."""
    _require_named(named)
    if isinstance(digest, str):
        if not _ANCHORED_DIGEST.fullmatch(digest):
            raise InvalidReference(ERR_DIGEST_INVALID_FORMAT, digest)
        digest = _parse_digest(digest, digest)
    elif not isinstance(digest, Digest):
        raise TypeError(f"digest must be a Digest or a str, not {type(digest).__name__}")
    return attrs.evolve(named, digest=digest)


def trim_named(named: Named) -> Named:
    """The repository alone: ``named`` without tag or digest."""
    _require_named(named)
    return Named(named.domain, named.path)


def is_name_only(named: Named) -> bool:
    """True if ``named`` has neither a tag nor a digest."""
    _require_named(named)
    return named.tag is None and named.digest is None


@overload
def tag_name_only(ref: Named) -> Named: ...


@overload
def tag_name_only(ref: DigestReference) -> DigestReference: ...


def tag_name_only(ref: Reference) -> Reference:
    """Add ``:latest`` to a bare name; anything else (a digest reference too) is returned as is."""
    if isinstance(ref, DigestReference):
        return ref
    if is_name_only(ref):
        return with_tag(ref, DEFAULT_TAG)
    return ref


# -- familiar forms -------------------------------------------------------------------------


def familiar_name(named: Named) -> str:
    """The name as Docker shows it: ``docker.io/library/x`` → ``x``, ``docker.io/a/b`` → ``a/b``."""
    _require_named(named)
    return _familiarize(named).name


def familiar_string(ref: Reference) -> str:
    """The whole reference as Docker shows it (RepoTags, ``repositories``, messages).

    A digest reference is shown as the digest.
    """
    if isinstance(ref, DigestReference):
        return str(ref)
    _require_named(ref)
    return str(_familiarize(ref))
