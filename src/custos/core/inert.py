"""Text from someone else made inert for a person to read: every character that a terminal, or a
renderer of text, would act on instead of showing is shown as a visible escape.

Source code, outputs, logs, audit events, names, descriptions and reasons come from other people. An
escape sequence in them can erase a line and print another over it (`ESC[2K ESC[1G`), conceal rows
(`ESC[8m`) or retitle a terminal; a bidi override (U+202E) shows text in another order than it is
stored and run; a zero-width character hides itself. Every CLI and SDK view passes such text through
`inert` before it is shown.

What is escaped: every character whose Unicode category is a control (Cc: C0, DEL, C1, so ESC too),
a format character (Cf: bidi embeddings, overrides and isolates, marks, zero-width characters, the
soft hyphen, tag characters, the byte order mark), a line or paragraph separator (Zl, Zp), a
surrogate (Cs), a private-use (Co) or an unassigned (Cn) code point. Each becomes `\\r`, `\\xNN` (up to
U+00FF), `\\uNNNN` or `\\UNNNNNNNN`, the way Python writes it. Newline and tab are kept where a text
has lines (a source, a log); a one-line view (`multiline=False`) escapes them too. Letters of any
script, accents and symbols are left as they are.

For display only: the data itself, and every digest of it, stay as they came. The escapes are not
reversible (a backslash is not doubled, so a literal `\\x1b` typed in a source reads the same as an
escaped ESC): `hidden_characters` counts the real ones, and `custos code show` prints that count.
"""

from __future__ import annotations

import re
import unicodedata

# The categories a reader cannot see for what they are.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_LINE_BREAKS = frozenset("\n\t")
# Printable ASCII, newline and tab never need a look at their category: the common case stays fast.
_CANDIDATE = re.compile(r"[^\x20-\x7e\n\t]")
_ANY = re.compile(r"[^\x20-\x7e]")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def is_hidden(char: str) -> bool:
    """Whether `char` is a control, format, separator, surrogate, private-use or unassigned character."""
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def escape_char(char: str) -> str:
    """`char` as Python writes it in a string literal: `\\r`, `\\x1b`, `\\u202e`, `\\U000e0041`."""
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    return escape_char(char) if is_hidden(char) else char


def inert(text: str, *, multiline: bool = True) -> str:
    """`text` with every hidden character replaced by its visible escape; with `multiline`, newline
    and tab are kept. Idempotent: what it returns has nothing left to escape."""
    return (_CANDIDATE if multiline else _ANY).sub(_shown, text)


def hidden_characters(text: str) -> int:
    """How many characters `inert` escapes in `text` (newline and tab not counted)."""
    return sum(1 for match in _CANDIDATE.finditer(text) if is_hidden(match.group()))
