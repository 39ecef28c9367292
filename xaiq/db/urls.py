"""Database and broker URLs: printing them without secrets, and reading the forms users type.

Passwords hide in three places: the user part (``user:pw@host``, where an unescaped ``@`` in
the password is common: everything up to the *last* ``@`` before the host is user info),
query parameters (libpq's ``?password=``), and error messages that quote a mis-parsed host.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

_SECRET_KEYS = ("pass", "secret", "token", "key")  # query keys whose values are masked


def _split(url: str) -> tuple[str, str, str, str] | None:
    """``(scheme, userinfo, host_and_path, query)`` or None when ``url`` has no scheme."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        return None
    base, _, query = rest.partition("?")
    userinfo, host = base.rsplit("@", 1) if "@" in base else ("", base)
    return scheme, userinfo, host, query


def _secret_query_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_KEYS)


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (safe to print or log)."""
    parts = _split(url)
    if parts is None:
        text = str(url)
        return "<unparseable database URL>" if ("@" in text or "pass" in text) else text
    scheme, userinfo, host, query = parts
    if userinfo:
        user, colon, _ = userinfo.partition(":")
        host = f"{user}:***@{host}" if colon else f"{user}@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, "***" if _secret_query_key(k) else v) for k, v in pairs]
        query = "?" + urlencode(masked, safe="*/:", quote_via=quote)
    return f"{scheme}://{host}{query}"


def secrets_of(url: str) -> list[str]:
    """The secret substrings of ``url`` (its password and secret query values), longest
    first, for scrubbing error messages that quote a piece of the URL."""
    parts = _split(url)
    if parts is None:
        return []
    _, userinfo, _, query = parts
    found = []
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        found += [password, *[p for p in password.split("@") if len(p) >= 3]]
    found += [v for k, v in parse_qsl(query) if _secret_query_key(k) and v]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(message: str, url: str) -> str:
    """``message`` with every secret of ``url`` replaced by ``***``."""
    for secret in secrets_of(url):
        message = message.replace(secret, "***")
    return message


def normalise_url(url: str) -> str:
    """``url`` with ``@`` and ``:`` inside the password percent-encoded (as the URL grammar
    requires, and as users forget), so that ``user:p@ss@host`` reaches ``host``."""
    parts = _split(url)
    if parts is None or ":" not in parts[1]:
        return url
    scheme, userinfo, host, query = parts
    user, password = userinfo.split(":", 1)
    if "@" not in password:
        return url
    return f"{scheme}://{user}:{quote(password, safe='%')}@{host}" + (f"?{query}" if query else "")
