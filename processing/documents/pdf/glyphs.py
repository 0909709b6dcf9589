"""Tables that turn what PDFium reads from badly mapped fonts back into the characters on
the page: TeX's symbol fonts, accents set as separate glyphs, ligatures, bracket pieces.

They are data more than logic, full of look-alike characters, and grow one font at a time
as new files show new glyphs; kept apart, they change without touching the layout rules
and the layout rules can be read without scrolling past them.
"""

# This module maps look-alike characters (primes, accents, math operators) on purpose.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import re
import unicodedata

# TeX's Computer Modern symbol fonts often come without a Unicode map, and PDFium then
# reads a glyph as the character at its code point: the prime as "0", the norm bars as
# "k", a big sum as "P", a big parenthesis as a control character. Characters that may be
# such a glyph are checked against the font they are set in (a few per page).
_TEX_FONTS = {
    "cmsy": {"0": "′", "k": "‖", "h": "⟨", "i": "⟩", "x": "§", "y": "†", "z": "‡"},
    "cmex": {
        **dict(zip(map(chr, range(32)), "()[]⌊⌋⌈⌉{}⟨⟩|‖/\\()()[]⌊⌋⌈⌉{}⟨⟩/\\", strict=True)),
        **dict(zip("PQRSTXYZ[\\^_", "∑∏∫⋃⋂∑∏∫⋃⋂⋀⋁", strict=True)),
        **dict(zip("z{|}", "︷︷︸︸", strict=True)),  # pieces of over- and underbraces
    },
    "msam": dict(zip("\x00\x01\x02\x03\x04\x06", "⊡⊞⊠□■◊", strict=True)),
}
TEX_SUSPECTS = re.compile(
    r"(?<![\s\d])0+"  # primes right after a symbol: f′, γ′′
    r"|(?<!\S)[PQRSTXYZ\[\\^_](?!\S)"  # big operators standing alone
    r"|\bk|k\b"  # norm bars around a term: ‖x‖ read as "kxk"
    r"|\bh(?![^\W\d_]{2})|(?<![^\W\d_]{2})i\b"  # angle brackets: ⟨x, y⟩ read as "hx, yi"
    r"|\| ?\{z ?\}|z ?\}\| ?\{"  # an under- or overbrace
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f]"  # glyphs without any character
)
# TeX sets accents as separate glyphs; PDFium reads them as spacing accents beside the
# letter ("X˜"). They become combining marks on that letter ("X̃").
_ACCENTS = dict(zip("˜ˆ˙¨¯ˇ", "\u0303\u0302\u0307\u0308\u0304\u030c", strict=True))
_ACCENT = re.compile(r"[˜ˆ˙¨¯ˇ]")
_ACCENT_AFTER = re.compile(r"(\w)([˜ˆ˙¨¯ˇ])")
_ACCENT_BEFORE = re.compile(r"(?<!\w)([˜ˆ˙¨¯ˇ]) ?(\w)")
_SPACED_ELLIPSIS = re.compile(r"(?<![.] )(?<!\.)\. \. \.(?! ?\.)")
# Ligatures and leftover control characters; tab and newline stay. Only these are
# normalised: NFKC on everything would also flatten ², ½, ℝ. Tall brackets come as pieces
# with private-use code points (their Adobe glyph names); the top piece stands for the
# bracket, the other pieces are dropped.
CLEAN = str.maketrans(
    {
        **{code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)},
        **dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, 0xFEFF, 0xFFFF]),
        **dict.fromkeys(range(0xF8E6, 0xF900), ""),
        **dict(zip([0xF8EB, 0xF8F6, 0xF8EE, 0xF8F9, 0xF8F1, 0xF8FC], "()[]{}", strict=True)),
    }
)
# Lines without any of these skip ``clean``: most lines need nothing, and a search is
# cheaper than the translation and substitutions.
NEEDS_CLEANING = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f\ufeff\uffff\ufb00-\ufb06\uf8e6-\uf8ff˜ˆ˙¨¯ˇ]|\. \. \."
)


def tex_symbols(font: str, text: str) -> str:
    """Read ``text`` (a ``TEX_SUSPECTS`` match) as the TeX symbol font ``font`` draws it;
    the same letters in any other font are letters and stay."""
    name = font.lower()
    for family, table in _TEX_FONTS.items():
        if family in name:
            return "".join(table.get(char, char) for char in text)
    return text


def clean(text: str) -> str:
    """Ligatures, control characters, bracket pieces, spaced ellipses and loose accents
    made into the text a reader sees (see ``CLEAN``)."""
    text = text.translate(CLEAN)
    if ". . ." in text:
        text = _SPACED_ELLIPSIS.sub("...", text)
    if _ACCENT.search(text):
        text = _ACCENT_AFTER.sub(lambda m: m[1] + _ACCENTS[m[2]], text)
        text = _ACCENT_BEFORE.sub(lambda m: m[2] + _ACCENTS[m[1]], text)
    return text.strip()
