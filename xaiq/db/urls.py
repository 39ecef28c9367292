"""Database and broker URLs: printing them without secrets, and reading the forms users type.

Passwords hide in three places: the user part (``user:pw@host``), query parameters (libpq's
``?password=``), and error messages that quote a mis-parsed piece of the URL.

Users (and docker-compose, which pastes ``POSTGRES_PASSWORD`` into the URL) write passwords
unescaped, so the user part may hold any of ``@ : / ? # & =``. The grammar read here is the
one that never lets such a password out: the user part is everything before the *last* ``@``
of the URL; the host follows it and ends at the first ``/`` or ``?``; the path ends at the
first ``?``. The one form this reads differently from RFC 3986 is an unescaped
``@`` after the host when the URL has a password (``u:pw@h/db?options=a@b``): it must be
written ``%40`` there, and until it is, the URL is printed with more of it masked rather than
less. A user name holding ``/`` or ``?`` means the ``@`` comes after the host: such a URL is
read as RFC 3986 reads it. A ``#`` after the host is part
of the query value it sits in (SQLAlchemy reads it so; a database URL has no fragment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode

_SECRET_KEYS = ("pass", "secret", "token", "key")  # query keys whose values are masked
# where parsers cut a URL: a piece of a password between two of these may be quoted alone
_CUTS = re.compile(r"[@:/?#&=;,\[\]%\s]")
_MIN_PIECE = 3  # pieces shorter than this are too common to scrub from messages
_FILE_SCHEMES = ("sqlite",)  # a path follows ``://``: an ``@`` in it is part of the path


@dataclass(frozen=True)
class UrlParts:
    """One URL cut into the parts that matter for secrets (see the module docstring)."""

    scheme: str
    userinfo: str  # "" when there is no ``@``
    host: str  # host[:port] (possibly several, comma-separated)
    path: str  # from the first "/" after the host, or ""
    query: str  # without its "?" (to the end: a "#" is part of a value, as SQLAlchemy reads it)

    @property
    def user(self) -> str:
        return self.userinfo.partition(":")[0]

    @property
    def password(self) -> str | None:
        user, colon, password = self.userinfo.partition(":")
        return password if colon else None


def split_url(url: str, *, strict: bool = False) -> UrlParts | None:
    """``url`` cut as the module docstring says, or None when it has no ``scheme://``.
    ``strict``: cut as RFC 3986 does instead (the user part ends at the last ``@`` before the
    first ``/``, ``?`` or ``#``), the reading of a URL whose password is escaped but whose
    query holds an ``@``; its secrets are masked too."""
    scheme, sep, rest = str(url).partition("://")
    if not sep or not scheme:
        return None
    userinfo = ""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0] if strict else rest
    if not scheme.lower().startswith(_FILE_SCHEMES) and "@" in authority:
        at = authority.rindex("@")
        userinfo, rest = rest[:at], rest[at + 1 :]
        if not strict and re.search(r"[/?]", userinfo.partition(":")[0]):
            return split_url(url, strict=True)  # no user name holds "/" or "?": the "@" is later
    rest, _, query = rest.partition("?")
    slash = rest.find("/")
    host, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    return UrlParts(scheme, userinfo, host, path, query)


def _secret_query_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_KEYS)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (safe to print or log): masked as the
    module docstring reads it, then scrubbed of what the RFC 3986 reading calls secret."""
    parts = split_url(url)
    if parts is None:
        text = str(url)
        return "<unparseable URL>" if ("@" in text or "pass" in text.lower()) else text
    shown = f"{parts.scheme}://"
    if parts.userinfo:
        masked = "" if parts.password is None else ":***"
        shown += f"{parts.user}{masked}@"
    shown += parts.host + parts.path
    if parts.query:
        pairs = [(k, "***" if _secret_query_key(k) else v) for k, v in _query_pairs(parts.query)]
        shown += "?" + urlencode(pairs, safe="*/:", quote_via=quote)
    return scrub(shown, url)


def _forms(secret: str, pieces: bool = True) -> set[str]:
    """``secret`` as typed, percent-decoded, percent-encoded and repr-escaped, and (with
    ``pieces``) its pieces between the characters where parsers cut URLs (a mis-parse quotes
    such a piece alone)."""
    decoded = {secret, unquote(secret), unquote_plus(secret)}
    whole = decoded | {quote(s, safe=q) for s in decoded for q in ("", "%")}
    whole |= {repr(s)[1:-1] for s in decoded}  # as Python's ``{value!r}`` quotes it
    if pieces:
        whole |= {p for form in whole for p in _CUTS.split(form) if len(p) >= _MIN_PIECE}
    return {s for s in whole if s}


def secrets_of(url: str) -> list[str]:
    """The secret substrings of ``url`` (its password and secret query values, in every form
    an error message may quote them), longest first, for scrubbing messages. The RFC 3986
    reading adds its secrets whole: its pieces would be the host and path of the other."""
    found: set[str] = set()
    for strict in (False, True):
        parts = split_url(url, strict=strict)
        if parts is None:
            return []
        if parts.password:
            found |= _forms(parts.password, pieces=not strict)
        raw = [chunk.partition("=")[::2] for chunk in re.split("[&;]", parts.query)]
        for key, value in [*_query_pairs(parts.query), *raw]:
            if _secret_query_key(key) and value:
                found |= _forms(value, pieces=not strict)
    return sorted(found, key=len, reverse=True)


def scrub(message: str, url: str) -> str:
    """``message`` with every secret of ``url`` replaced by ``***``."""
    for secret in secrets_of(url):
        message = message.replace(secret, "***")
    return message


def normalise_url(url: str) -> str:
    """``url`` with its user part percent-encoded (as the URL grammar requires, and as users
    and docker-compose forget), so that ``user:p@s?s/w#d@host`` reaches ``host`` with that
    password: SQLAlchemy, kombu and redis-py all decode it again. An existing ``%XX`` is kept,
    so an already-encoded URL is unchanged."""
    parts = split_url(url)
    if parts is None or parts.password is None:
        return url
    userinfo = quote(parts.user, safe="%")
    if parts.password is not None:
        userinfo += ":" + quote(parts.password, safe="%")
    if userinfo == parts.userinfo:
        return url
    tail = parts.host + parts.path
    tail += f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{userinfo}@{tail}"
