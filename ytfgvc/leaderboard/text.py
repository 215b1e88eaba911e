"""What a submitter may write in a text field: printable text of a bounded length.

Control characters (C0, C1, line and paragraph separators) are refused, and so are Unicode
*format* characters (category Cf): the bidirectional controls (U+202A–U+202E, U+2066–U+2069,
U+200E/U+200F), zero-width characters (U+200B–U+200D, U+2060, U+FEFF) and the like. They are
invisible, so a name holding them can be shown reversed (U+202E) or look like another name;
no method name or description needs one.
"""

from __future__ import annotations

import unicodedata
from typing import Any

_SEPARATORS = {"\u2028", "\u2029"}


def bad_characters(text: str, newlines: bool = False) -> list[str]:
    """The code points (``U+202E``) of ``text`` that a text field refuses, each once, in order."""
    found = []
    for ch in text:
        if newlines and ch == "\n":
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf") or ch in _SEPARATORS:
            code = f"U+{ord(ch):04X}"
            if code not in found:
                found.append(code)
    return found


def text_problems(value: Any, limit: int, newlines: bool = False) -> list[str]:
    """Why ``value`` is not acceptable text of at most ``limit`` characters (empty list: it is)."""
    if not isinstance(value, str):
        return ["must be text"]
    if len(value) > limit:
        return [f"{len(value)} characters, at most {limit}"]
    bad = bad_characters(value, newlines)
    if bad:
        return [f"contains invisible control or format characters ({', '.join(bad[:5])}); remove them"]
    return []
