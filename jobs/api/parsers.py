"""Request parsers that refuse, at the door, data the platform could not store or show.

- Text no UTF-8 can encode (a lone surrogate: JSON's ``"\\ud800"`` escape makes one) and
  NUL characters. SQLite stores them inside JSON, and then every read of the row fails
  as it encodes the response; PostgreSQL refuses them at insert (JSONB and text alike).
- JSON nested deeper than ``JOBSITE_MAX_JSON_DEPTH``: the stdlib parser recurses (a
  RecursionError near 1,000 levels), and so do pydantic and the encoders after it.
- A multipart form field given twice (two ``file`` parts): Django keeps the last, silently.

Each is a 400 in the API's error shape (``jobs.api.errors``) before any service sees the
data. ``check_json`` is the one rule; anything else that takes JSON from outside calls it.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from typing import Any

from django.conf import settings
from rest_framework import parsers

from jobs.errors import InvalidInput

# Surrogate code points: Python's json pairs a valid \ud83d\ude00 into one character, so
# any left in a str are lone, and no UTF-8 encoder (ours, psycopg's, sqlite3's) takes them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored and shown again, or None when it can."""
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which the database cannot store"
    if not text.isascii() and (found := _SURROGATE.search(text)):
        return f"holds a lone surrogate (\\u{ord(found.group()):04x}), which is not text"
    return None


def _shown(part: Any) -> str:
    """A path segment as it can be shown (a bad key is part of the path)."""
    return str(part).encode("utf-8", "backslashreplace").decode("utf-8")


def _invalid_text(path: tuple[Any, ...], problem: str) -> InvalidInput:
    where = ".".join(_shown(part) for part in path) or "body"
    return InvalidInput(f"{where}: {problem}", code="invalid_text", details={where: [problem]})


def _too_deep(name: str | None) -> InvalidInput:
    limit = settings.JOBSITE_MAX_JSON_DEPTH
    problem = f"nested more than {limit} levels deep"
    return InvalidInput(
        f"JSON is {problem} (JOBSITE_MAX_JSON_DEPTH)",
        code="json_too_deep",
        details={name or "body": [problem]},
    )


def check_json(data: Any, *, name: str | None = None) -> None:
    """Refuse parsed JSON nested past ``JOBSITE_MAX_JSON_DEPTH`` or holding unstorable
    text (in a value or a key); the error names where (``name`` is the form field that
    held it). Walked with a stack, not recursion, so any depth is safe to check."""
    limit = settings.JOBSITE_MAX_JSON_DEPTH
    root = (name,) if name else ()
    if isinstance(data, str) and (problem := unstorable(data)):
        raise _invalid_text(root, problem)
    # Only containers go on the stack, each with its depth and path.
    stack: list[tuple[Any, int, tuple[Any, ...]]] = []
    if isinstance(data, (dict, list)):
        stack.append((data, 1, root))
    while stack:
        container, depth, path = stack.pop()
        if depth > limit:
            raise _too_deep(name)
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in items:
            if isinstance(key, str) and (problem := unstorable(key)):
                raise _invalid_text((*path, key), f"a key {problem}")
            if isinstance(item, str):
                if problem := unstorable(item):
                    raise _invalid_text((*path, key), problem)
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1, (*path, key)))


def loads(text: str, *, name: str | None = None) -> Any:
    """``json.loads`` and ``check_json``. The stdlib decoder recurses: past ~1,000 levels
    it raises RecursionError, which is the same depth error. Not JSON: ValueError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(name) from None
    check_json(data, name=name)
    return data


class JSONParser(parsers.JSONParser):
    """DRF's parser, then ``check_json`` on what it parsed."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep(None) from None
        check_json(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's parser; a field given twice is refused (but a batch's ``files``), text fields
    are checked like JSON text, and a field holding a JSON object or array (``params``)
    like a JSON body."""

    # File fields that are lists: every part counts toward the request's upload limit.
    REPEATABLE_FILES = frozenset({"files"})

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        counts = Counter({name: len(values) for name, values in parsed.data.lists()})
        for name, files in parsed.files.lists():
            counts[name] += 1 if name in self.REPEATABLE_FILES else len(files)
        repeated = sorted(name for name, count in counts.items() if count > 1)
        if repeated:
            raise InvalidInput(
                f"Form field '{_shown(repeated[0])}' is given more than once",
                code="duplicate_field",
                details={_shown(name): ["given more than once"] for name in repeated},
            )
        for name, value in parsed.data.items():
            if problem := unstorable(name) or unstorable(value):
                raise _invalid_text((name,), problem)
            if value.lstrip()[:1] in ("{", "["):
                # Not JSON after all (ValueError): the field's own validation says so.
                with contextlib.suppress(ValueError):
                    loads(value, name=name)
        return parsed
