"""`inert`: every character a terminal or a renderer would act on becomes a visible escape; letters of
any script, and newline and tab in a text with lines, are left as they are."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from custos.core.inert import escape_char, hidden_characters, inert, is_hidden


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x00", "\\x00"),  # C0
        ("\x07", "\\x07"),  # bell
        ("\x08", "\\x08"),  # backspace: would step back over what was shown
        ("\r", "\\r"),  # carriage return: would print over the start of the line
        ("\x0b", "\\x0b"),
        ("\x0c", "\\x0c"),
        ("\x1b", "\\x1b"),  # ESC, the start of every escape sequence
        ("\x7f", "\\x7f"),  # DEL
        ("\x85", "\\x85"),  # C1: next line
        ("\x9b", "\\x9b"),  # C1: the one-byte CSI
        ("\x9d", "\\x9d"),  # C1: OSC (titles, hyperlinks)
        ("\u00ad", "\\xad"),  # soft hyphen
        ("\u061c", "\\u061c"),  # Arabic letter mark
        ("\u200b", "\\u200b"),  # zero width space
        ("\u200d", "\\u200d"),  # zero width joiner
        ("\u200e", "\\u200e"),  # left-to-right mark
        ("\u200f", "\\u200f"),  # right-to-left mark
        ("\u2028", "\\u2028"),  # line separator
        ("\u2029", "\\u2029"),  # paragraph separator
        ("\u202a", "\\u202a"),  # left-to-right embedding
        ("\u202e", "\\u202e"),  # right-to-left override
        ("\u2060", "\\u2060"),  # word joiner
        ("\u2066", "\\u2066"),  # left-to-right isolate
        ("\u2069", "\\u2069"),  # pop directional isolate
        ("\ufeff", "\\ufeff"),  # byte order mark
        ("\ud800", "\\ud800"),  # a lone surrogate (JSON can carry one)
        ("\ue000", "\\ue000"),  # private use
        ("\U000e0041", "\\U000e0041"),  # a tag character: invisible ASCII
    ],
)
def test_every_hidden_character_is_shown_as_its_escape(char: str, shown: str) -> None:
    assert is_hidden(char)
    assert escape_char(char) == shown
    assert inert(f"a{char}b") == f"a{shown}b"
    assert hidden_characters(f"a{char}b{char}") == 2


def test_escape_sequences_that_erase_conceal_or_retitle_are_printed_as_text() -> None:
    assert inert("ok\x1b[2K\x1b[1Gfake") == "ok\\x1b[2K\\x1b[1Gfake"
    assert inert("\x1b[8mhidden\x1b[0m") == "\\x1b[8mhidden\\x1b[0m"
    assert inert("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert inert("\x9b8m") == "\\x9b8m"


@pytest.mark.parametrize(
    "text",
    [
        "plain ASCII, punctuation: [bold]not markup[/bold] <b>&amp;</b> \\x1b typed as text",
        "é ß ø Å ñ ü",  # Latin letters with accents
        "中文 日本語 한국어",  # CJK
        "العربية עברית",  # right-to-left scripts are letters, not overrides
        "Ελληνικά Русский",
        "😀 ✓ → ≈ ε δ ±",  # symbols and emoji
        "non\u00a0breaking and\u3000ideographic spaces",
        "e\u0301",  # a combining accent
        "",
    ],
)
def test_letters_symbols_and_spaces_of_any_script_are_left_alone(text: str) -> None:
    assert inert(text) == text
    assert inert(text, multiline=False) == text
    assert hidden_characters(text) == 0


def test_newline_and_tab_are_kept_in_text_with_lines_and_escaped_on_one_line() -> None:
    text = "def f():\n\treturn 1\n"
    assert inert(text) == text
    assert hidden_characters(text) == 0
    assert inert(text, multiline=False) == "def f():\\n\\treturn 1\\n"
    assert inert("a\r\nb") == "a\\r\nb"


def test_inert_is_idempotent_and_leaves_nothing_hidden() -> None:
    every_control = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])
    hostile = every_control + "\u202e\u2066\u200b\ufeff\U000e0041 é 中"
    once = inert(hostile, multiline=False)
    assert inert(once, multiline=False) == once
    assert once.isascii() is False  # é and 中 stay
    assert not any(is_hidden(c) for c in once)
    assert hidden_characters(hostile) == len(every_control) - 2 + 5  # newline and tab not counted


def test_every_format_character_of_this_python_is_escaped() -> None:
    """The rule is the Unicode category, so a format character added in a later Unicode is escaped too."""
    format_chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    assert len(format_chars) > 150
    shown = inert("".join(format_chars))
    assert not any(is_hidden(c) for c in shown)
    assert shown.count("\\") == len(format_chars)
