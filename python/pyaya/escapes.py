"""Escaping a value for the place a template puts it: one escaper per target-language context.

``pyaya new`` writes option values (a uprobe target path, a kernel function name, ...) into Python, Rust, TOML and
Markdown files. A value is never pasted as it is: each placeholder names its context (``{{uprobe_target|py}}``) and
the value goes through that context's escaper, which either writes it so that the file's own parser reads back
exactly the value, or refuses it (:class:`Unrepresentable`) when that language cannot hold it (a Rust string
cannot hold bytes that are not UTF-8, an identifier cannot hold a space).

Values may carry bytes that are not UTF-8: Python decodes such command-line arguments with ``surrogateescape``, so
they arrive as lone surrogates (``\\udcff`` for the byte 0xff). The Python escaper keeps them as ``\\udcXX``
escapes, which decode to the same ``str`` (and ``os.fsencode`` gives back the original bytes).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "CONTEXTS",
    "RUST_KEYWORDS",
    "Unrepresentable",
    "is_plain",
    "plain",
    "python_string",
    "rust_identifier",
    "rust_string",
    "shell_word",
    "text_line",
    "toml_string",
]


class Unrepresentable(ValueError):
    """The value cannot be written in this context at all (the message says why)."""


RUST_KEYWORDS = frozenset(
    {
        "abstract",
        "as",
        "async",
        "await",
        "become",
        "box",
        "break",
        "const",
        "continue",
        "crate",
        "do",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "final",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "macro",
        "match",
        "mod",
        "move",
        "mut",
        "override",
        "priv",
        "pub",
        "ref",
        "return",
        "self",
        "Self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "try",
        "type",
        "typeof",
        "unsafe",
        "unsized",
        "use",
        "virtual",
        "where",
        "while",
        "yield",
    }
)
# Keywords a raw identifier (r#...) cannot spell.
_NOT_RAW = frozenset({"crate", "self", "Self", "super", "_"})
_RUST_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def _is_surrogate(char: str) -> bool:
    return 0xD800 <= ord(char) <= 0xDFFF


def _hex_escape(char: str) -> str:
    """``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``: the escapes Python and TOML-ish readers share."""
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def python_string(value: str) -> str:
    """The body of a Python ``str`` literal (between ``'...'``, ``"..."`` or triple quotes, f-strings included;
    not raw or bytes literals) that evaluates to exactly ``value``.

    Quotes, backslashes and braces are escaped (braces so an f-string reads them as text), as is every character
    that is not printable, including newlines, NUL and the surrogates of bytes that are not UTF-8.
    """
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char in "'\"":
            out.append("\\" + char)
        elif char in "{}":
            out.append(_hex_escape(char))
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif _is_surrogate(char):
            out.append(f"\\u{ord(char):04x}")
        elif not char.isprintable():
            out.append(_hex_escape(char))
        else:
            out.append(char)
    return "".join(out)


def rust_string(value: str) -> str:
    """The body of a Rust string literal (``"..."``, not raw) whose value is exactly ``value``.

    Raises :class:`Unrepresentable` for bytes that are not UTF-8: a Rust ``&str`` holds UTF-8 only.
    """
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\0":
            out.append("\\0")
        elif _is_surrogate(char):
            raise Unrepresentable("it holds bytes that are not UTF-8, and a Rust string holds UTF-8 only")
        elif not char.isprintable():
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return "".join(out)


def rust_identifier(value: str) -> str:
    """``value`` as a Rust identifier: as it is, or as a raw identifier (``r#type``) for a keyword.

    Raises :class:`Unrepresentable` for anything else: an identifier cannot be escaped into being one.
    """
    if not _RUST_IDENTIFIER.fullmatch(value) or value in _NOT_RAW:
        raise Unrepresentable(
            "it is not a Rust identifier (ASCII letters, digits and '_', not starting with a digit, "
            "not one of crate, self, Self, super, _)"
        )
    return f"r#{value}" if value in RUST_KEYWORDS else value


def toml_string(value: str) -> str:
    """The body of a TOML basic string (``"..."``) whose value is exactly ``value``.

    Raises :class:`Unrepresentable` for bytes that are not UTF-8: TOML files are UTF-8 text.
    """
    out: list[str] = []
    for char in value:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[char])
        elif _is_surrogate(char):
            raise Unrepresentable("it holds bytes that are not UTF-8, and a TOML file holds UTF-8 only")
        elif code < 0x20 or code == 0x7F or not char.isprintable():
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(char)
    return "".join(out)


def text_line(value: str) -> str:
    """``value`` as one printable line of prose: for comments (Python ``#``, Rust ``//``, TOML ``#``) and Markdown.

    Backslashes are doubled and every character that is not printable is shown as an escape (``\\n``,
    ``\\x00``; a byte that is not UTF-8 as ``\\xNN``), so the value can neither end the comment nor start a line.
    """
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif _is_surrogate(char):
            out.append(f"\\x{ord(char) - 0xDC00:02x}" if ord(char) >= 0xDC80 else f"\\u{ord(char):04x}")
        elif not char.isprintable():
            out.append(_hex_escape(char))
        else:
            out.append(char)
    return "".join(out)


def shell_word(value: str) -> str:
    """``value`` as one word of a bash command line (the commands a README shows): as it is when it holds only
    characters no shell treats specially, in single quotes when it is printable, else as ``$'...'`` with every
    byte escaped (newlines and bytes that are not UTF-8 included).

    Raises :class:`Unrepresentable` for a NUL, which no command-line argument can hold."""
    if "\0" in value:
        raise Unrepresentable("it holds a NUL, which no command-line argument can hold")
    if _SHELL_SAFE.fullmatch(value):
        return value
    if value and all(char.isprintable() and not _is_surrogate(char) for char in value):
        return "'" + value.replace("'", "'\"'\"'") + "'"
    data = value.encode("utf-8", errors="surrogateescape")
    escaped = "".join(
        chr(byte) if 0x20 <= byte < 0x7F and chr(byte) not in "\\'" else f"\\x{byte:02x}" for byte in data
    )
    return f"$'{escaped}'"


def plain(value: str) -> str:
    """A value written as it is: only for values validated to ``[A-Za-z0-9_][A-Za-z0-9_.+-]*`` (project names,
    crate names, versions, a template's fixed choices), which mean the same in every context above."""
    if not _PLAIN.fullmatch(value):
        raise Unrepresentable("only letters, digits and '_', '.', '+', '-' can be written without escaping")
    return value


#: Each placeholder context (``{{NAME|CONTEXT}}``): a one-line description and its escaper.
CONTEXTS: dict[str, tuple[str, Callable[[str], str]]] = {
    "py": ("a Python string literal", python_string),
    "rust_str": ("a Rust string literal", rust_string),
    "rust_ident": ("a Rust identifier", rust_identifier),
    "toml": ("a TOML string", toml_string),
    "text": ("a line of text (comment or prose)", text_line),
    "sh": ("a shell word", shell_word),
}


def is_plain(value: str) -> bool:
    """Whether ``value`` may be written without an escaper (see :func:`plain`)."""
    return _PLAIN.fullmatch(value) is not None
