"""A job's labels: its name and tags (``submit --name``, ``--tag``), checked before a job is
written. They describe the job for its users and are not part of the spec: two jobs with the
same spec and different names give the same rows.

A name is 1-128 printable characters, not all digits and without a comma (``--job`` takes a
comma-separated list of ids and names); a tag is 1-64 characters of letters, digits and
``._:-``; at most 32 tags.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from xaiq.scheduler.errors import SpecError

NAME_MAX = 128
TAG_MAX = 64
TAGS_MAX = 32
_TAG = re.compile(r"[A-Za-z0-9._:-]+")


def check_name(name: str | None) -> str | None:
    """``name`` stripped, or None; :class:`SpecError` naming a bad one."""
    if name is None:
        return None
    text = name.strip()
    if not text or len(text) > NAME_MAX:
        raise SpecError(f"name must be 1-{NAME_MAX} characters, got {name!r}")
    if not text.isprintable():
        raise SpecError(f"name must be printable text, got {name!r}")
    if text.isdigit():
        raise SpecError(f"name {name!r} is a number; it would read as a job id")
    if "," in text:
        raise SpecError(f"name {name!r} has a comma; --job lists are comma-separated")
    return text


def check_tags(tags: Iterable[str] | None) -> list[str]:
    """The tags, each checked, duplicates dropped, in the order given."""
    out: list[str] = []
    for tag in tags or []:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag) or len(tag) > TAG_MAX:
            raise SpecError(
                f"tag must be 1-{TAG_MAX} letters, digits or ._:- characters, got {tag!r}"
            )
        if tag not in out:
            out.append(tag)
    if len(out) > TAGS_MAX:
        raise SpecError(f"a job takes at most {TAGS_MAX} tags, got {len(out)}")
    return out
