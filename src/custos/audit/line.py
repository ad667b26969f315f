"""The audit line format: how one event becomes one line of bytes, and how a line is checked.

    [E:ev_<8 hex nonce><8 hex seal>][T:<UTC time>][U:user][A:action][J:job or -][R:peer or -][H:chain]message

- Header values are refused (InvalidInput) when empty or when they hold `]` or a control character;
  `-` is reserved for "none" in J and R. They are never escaped, so what is read is what was written.
- The message is free text, escaped so that one event is one line: `\\` → `\\\\`, newline → `\\n`,
  CR → `\\r`, tab → `\\t`, any other control character → `\\xNN`.
- H is the sha256 of the bytes between the start of the previous complete event line and the start of
  this line: normally exactly the previous line with its newline; 64 zeros when nothing comes before.
- The seal (last 8 hex digits of the id) is the sha256 of the line with the seal left out, so an edited
  line is named itself, not by the line after it. Without a key it stops accidents and naive edits, not
  a forger who rewrites every line after the edit (the anchor in `verify` is for that).
- A crash can leave a line without its newline. The next append seals that fragment with PARTIAL_END
  (CAN + newline); no event line ever holds a raw control character, so sealed fragments are unmistakable.
"""

from __future__ import annotations

import hashlib
import re

from custos.core.errors import InvalidInput

ZERO_HASH = "0" * 64
PARTIAL_END = b"\x18\n"
NONE_MARK = "-"
_SEAL_START = len("[E:ev_") + 8
_SEAL_END = _SEAL_START + 8
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPE = re.compile(r"\\(x[0-9a-f]{2}|[\\nrt])")
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def check_header(field: str, value: str) -> str:
    """Refuse a header value that would break the line format."""
    if not value:
        raise InvalidInput(f"audit {field} must not be empty")
    if "]" in value or _CONTROL.search(value):
        raise InvalidInput(f"audit {field} {value!r} must not contain ']' or control characters")
    return value


def optional_header(field: str, value: str | None) -> str:
    if value is None:
        return NONE_MARK
    if value == NONE_MARK:
        raise InvalidInput(f"audit {field} must not be '-': that value means none; pass None instead")
    return check_header(field, value)


def escape_message(message: str) -> str:
    return "".join(_ESCAPES.get(c) or (f"\\x{ord(c):02x}" if _CONTROL.match(c) else c) for c in message)


def unescape_message(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code.startswith("x") else _UNESCAPES[code]

    return _UNESCAPE.sub(one, text)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chain_hash(before: bytes) -> str:
    """The H a line gets, given the bytes since the start of the previous complete event line."""
    return digest(before) if before else ZERO_HASH


def seal_of(line: bytes) -> str:
    """The seal a line must carry in its id: the hash of the line with the seal itself left out."""
    return digest(line[:_SEAL_START] + line[_SEAL_END:])[:8]


def build_line(nonce: str, headers: str, message: str) -> bytes:
    """One event line. `headers` is everything after the id header: `[T:..]...[H:..]`."""
    unsealed = f"[E:ev_{nonce}]{headers}{escape_message(message)}\n".encode()
    return unsealed[:_SEAL_START] + digest(unsealed)[:8].encode() + unsealed[_SEAL_START:]


def has_valid_seal(line: bytes) -> bool:
    return line[_SEAL_START:_SEAL_END].decode("ascii", "replace") == seal_of(line)


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their newline kept; a last line without one (a fragment) is kept as it is."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def is_partial(line: bytes) -> bool:
    """A fragment a crash left: still open at the end of the file, or sealed by a later append."""
    return not line.endswith(b"\n") or line.endswith(PARTIAL_END)
