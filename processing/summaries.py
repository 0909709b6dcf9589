"""Extractive summaries: the most informative sentences of a text, in their own order.

No model and nothing invented: a summary is made of the text's own sentences, so every
word in it was in the original and search finds it by the same terms. A sentence's
weight is its density in the text's key terms (``processing.terms``), so the sentences
that carry the text's themes are kept and the connective ones go.

Sentences are split on ., ! or ? followed by a space and a capital, digit or quote, and
on blank lines: plain rules that every language written in Latin, Greek or Cyrillic
script mostly follows. Chunks of one source overlap (``chunk_overlap``): a sentence seen
twice is kept once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from processing import terms

# Closing and opening quotes and brackets around a sentence's end (\u201d\u2019, \u201c\u2018).
_CLOSE = '"\u201d\u2019)\\]'
_OPEN = '"\u201c\u2018(\\['
_SPLIT = re.compile(
    rf"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][{_CLOSE}]))\s+(?=[{_OPEN}]?[A-Z\u00c0-\u00d6\u00d8-\u00de"
    rf"\u0391-\u03a9\u0410-\u042f0-9])|\n\s*\n"
)


def sentences(text: str) -> list[str]:
    return [" ".join(part.split()) for part in _SPLIT.split(text) if part and part.strip()]


def summarise(texts: Sequence[str], ratio: float, language: str | None = None) -> str:
    """The top ``ratio`` of the texts' distinct sentences by key-term density (at least
    one), joined in the order they came."""
    seen: set[str] = set()
    ordered: list[str] = []
    for text in texts:
        for sentence in sentences(text):
            key = sentence.lower()
            if key not in seen:
                seen.add(key)
                ordered.append(sentence)
    if not ordered:
        return ""
    weights = terms.key_terms(ordered, language)
    keep = max(1, math.ceil(len(ordered) * ratio))
    ranked = sorted(
        range(len(ordered)),
        key=lambda i: (-terms.density(ordered[i], weights, language), i),
    )
    return " ".join(ordered[i] for i in sorted(ranked[:keep]))
