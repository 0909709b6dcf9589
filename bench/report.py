"""Markdown sections for ``docs/benchmarks.md``: each benchmark appends its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def append(title: str, command: str, body: str) -> None:
    """Add a section to the file named by ``BENCH_REPORT`` (``python -m bench`` sets it)."""
    target = os.environ.get("BENCH_REPORT")
    if not target:
        return
    with Path(target).open("a") as out:
        out.write(f"\n## {title}\n\n`{command}`\n\n{body}\n")
