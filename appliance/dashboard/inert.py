"""Makes untrusted text (comments, names, paths) safe to put on a terminal.

Terminal control comes from characters, not from markup: ESC starts colour, cursor and title
sequences, CSI (U+009B) and the other C1 codes do the same on some terminals, and BEL, BS and CR
rewrite what is already shown. Bidirectional overrides make text read differently from what it
is. Every such character becomes a visible `\\xNN`/`\\uNNNN` escape, line breaks become spaces,
and the result is meant for `rich.text.Text` (never for markup), so `[red]` stays literal.
"""

from __future__ import annotations

import unicodedata

# Bidi embeddings, overrides and isolates, and the zero-width marks that hide them.
_INVISIBLE_CONTROLS = {0x200B, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF,
                       *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _visible(char: str) -> str:
    code = ord(char)
    if char in "\n\t":
        return " "
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if code in _INVISIBLE_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn"):
        return f"\\u{code:04x}"
    return char


def inert(text: object, limit: int | None = None) -> str:
    """`text` with every control character made visible, on one line, at most `limit` long."""
    raw = "" if text is None else str(text)
    if limit is not None:
        raw = raw[: limit * 2]  # enough before escaping; trimmed to `limit` after
    cleaned = " ".join("".join(_visible(char) for char in raw).split())
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: max(limit - 1, 0)] + "…"
    return cleaned
