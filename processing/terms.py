"""A text's own key terms: the content words it keeps coming back to.

Used where a pipeline must say which parts of a text matter most without a model or a
background corpus: the transcript segments densest in a recording's key terms are its
key moments. A term is a word of three letters or more that is not a stop word of the
text's language (jusText's stop lists, which trafilatura already installs, cover about a
hundred languages) and that occurs at least twice: said once, a word is not a theme.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[^\W\d_]{3,}")
# jusText names its stop lists by language name; the job's language is an ISO 639-1 code.
_LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "sv": "Swedish",
    "da": "Danish",
    "no": "Norwegian_Bokmal",
    "fi": "Finnish",
    "pl": "Polish",
    "cs": "Czech",
    "ru": "Russian",
    "tr": "Turkish",
}
MIN_COUNT = 2


@functools.cache
def stop_words(language: str | None) -> frozenset[str]:
    """The language's stop words (lower case); English where the language is unknown."""
    import justext

    name = _LANGUAGES.get(language or "en")
    if name is None:
        return frozenset()
    try:
        return frozenset(justext.get_stoplist(name))
    except ValueError:  # a stop list this jusText does not ship
        return frozenset()


def words(text: str, language: str | None = None) -> list[str]:
    """The content words of ``text``, lower case, in order."""
    stop = stop_words(language)
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in stop]


def key_terms(texts: Iterable[str], language: str | None = None) -> dict[str, float]:
    """Each key term of the texts taken together, with its weight: how rare it is among
    the texts (idf, the texts as documents), growing slowly with how often it is said. A
    word every part repeats (a programme's "coming up") weighs nothing; a theme that comes
    back in a few parts weighs most."""
    parts = [words(text, language) for text in texts]
    counts = Counter(w for part in parts for w in part)
    spread = Counter(w for part in parts for w in set(part))
    return {
        term: math.log(1 + n) * math.log(len(parts) / spread[term])
        for term, n in counts.items()
        if n >= MIN_COUNT and spread[term] < len(parts)
    }


def density(text: str, terms: dict[str, float], language: str | None = None) -> float:
    """How much of ``text`` is key terms, each counted at its weight.
    Three words of smoothing keep a two-word fragment from outranking a full sentence."""
    found = words(text, language)
    return sum(terms.get(w, 0) for w in found) / (len(found) + 3)
