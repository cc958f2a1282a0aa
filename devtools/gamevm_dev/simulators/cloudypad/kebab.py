"""lodash's `_.kebabCase` (4.17), which CloudyPad applies to instance names.

CloudyPad accepts a name only when `kebabCase(name) === name`; otherwise it asks whether
to use the kebab-cased name instead, which dies without a TTY. lodash splits words at
case changes and between letters and digits (`gvm-3f2a` -> `gvm-3-f-2-a`). This is the
ASCII part of lodash's word splitting (`words`: `asciiWords` unless `hasUnicodeWord`, else
`unicodeWords`); tests compare it with lodash itself on a corpus of names.
"""

import re
import unicodedata

_HAS_UNICODE_WORD = re.compile(
    r"[a-z][A-Z]|[A-Z]{2}[a-z]|[0-9][a-zA-Z]|[a-zA-Z][0-9]|[^a-zA-Z0-9 ]"
)
_ASCII_WORD = re.compile(r"[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
_BREAK = r"[^A-Za-z0-9]"
_UNICODE_WORD = re.compile(
    "|".join(
        (
            rf"[A-Z]?[a-z]+(?={_BREAK}|[A-Z]|$)",
            rf"[A-Z]+(?={_BREAK}|[A-Z][a-z]|$)",
            r"[A-Z]?[a-z]+",
            r"[A-Z]+",
            r"\d*(?:1ST|2ND|3RD|(?![123])\dTH)(?=\b|[a-z_])",
            r"\d*(?:1st|2nd|3rd|(?![123])\dth)(?=\b|[A-Z_])",
            r"\d+",
        )
    )
)


def _deburr(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """lodash `_.words` for ASCII text."""
    if _HAS_UNICODE_WORD.search(text):
        return _UNICODE_WORD.findall(text)
    return _ASCII_WORD.findall(text)


def kebab_case(text: str) -> str:
    """lodash `_.kebabCase`."""
    return "-".join(w.lower() for w in words(_deburr(text).replace("'", "").replace("\u2019", "")))


def is_kebab_case(name: str) -> bool:
    """Whether CloudyPad takes `name` as it is."""
    return kebab_case(name) == name
