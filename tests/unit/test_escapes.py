"""Each escaper of pyaya.escapes, checked by the real reader of its language: Python's parser, tomllib, rustc (when
installed) and bash, on values built to break out of their context."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from pyaya import escapes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Values that break out of a naively pasted literal, comment or line, plus the edge cases of each escaper.
HOSTILE = [
    "",
    " ",
    'a"b',
    "a'b",
    "back\\slash",
    "trailing\\",
    "new\nline",
    "cr\rlf\r\n",
    "tab\tx",
    "nul\0byte",
    "{{name}}",
    "}}{{",
    "{x}",
    '"""',
    "'''",
    "\x1b[31mred",
    "\u2028line\u2029para\x85",
    "\x7f\x0b\x0c",
    "é ü 中文 🚀",
    "#!/bin/sh",
    "*/ /* // -->",
    "$(id) `id`; rm -rf / & | > <",
    '"); compile_error!("x"); ("',
    'x"\nimport os\nos.system("id")\n#',
    "x" * 100_000,
]
NOT_UTF8 = [os.fsdecode(b"\xff"), os.fsdecode(b"/tmp/caf\xe9\x80"), "mixed \udcff and é"]


def _one_line_printable(text: str) -> bool:
    return text.isprintable() and "\n" not in text and len(text.splitlines()) <= 1


@pytest.mark.parametrize("value", HOSTILE + NOT_UTF8)
def test_python_string_reads_back_in_every_quoting(value: str) -> None:
    body = escapes.python_string(value)
    assert _one_line_printable(body)
    for quote in ('"', "'", '"""', "'''"):
        for prefix in ("", "f"):
            source = f"X = {prefix}{quote}{body}{quote}\n"
            tree = ast.parse(source)
            assert len(tree.body) == 1
            assignment = tree.body[0]
            assert isinstance(assignment, ast.Assign)
            assert eval(compile(ast.Expression(assignment.value), "<test>", "eval")) == value
    assert os.fsencode(eval(f'"{body}"')) == os.fsencode(value)  # byte-exact, for paths


@pytest.mark.parametrize("value", HOSTILE)
def test_toml_string_reads_back(value: str) -> None:
    body = escapes.toml_string(value)
    assert _one_line_printable(body)
    assert tomllib.loads(f'v = "{body}"\n# after\nw = 1\n') == {"v": value, "w": 1}


@pytest.mark.parametrize("value", NOT_UTF8)
def test_toml_and_rust_refuse_bytes_that_are_not_utf8(value: str) -> None:
    with pytest.raises(escapes.Unrepresentable, match="not UTF-8"):
        escapes.toml_string(value)
    with pytest.raises(escapes.Unrepresentable, match="not UTF-8"):
        escapes.rust_string(value)


def _decode_rust_literal(body: str) -> str:
    """A Rust string literal's value, after the Rust reference (tokens.html#string-literals)."""
    out: list[str] = []
    position = 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    while position < len(body):
        char = body[position]
        assert char not in '"\r', f"unescaped {char!r} in a Rust literal"
        if char != "\\":
            out.append(char)
            position += 1
            continue
        kind = body[position + 1]
        if kind in simple:
            out.append(simple[kind])
            position += 2
        elif kind == "x":
            code = int(body[position + 2 : position + 4], 16)
            assert code <= 0x7F
            out.append(chr(code))
            position += 4
        elif kind == "u":
            close = body.index("}", position)
            out.append(chr(int(body[position + 3 : close], 16)))
            position = close + 1
        else:
            raise AssertionError(f"unknown escape \\{kind}")
    return "".join(out)


@pytest.mark.parametrize("value", HOSTILE)
def test_rust_string_reads_back(value: str) -> None:
    body = escapes.rust_string(value)
    assert _one_line_printable(body)
    assert _decode_rust_literal(body) == value


def test_rust_strings_compile_to_the_exact_bytes(tmp_path: Path) -> None:
    """rustc itself reads every literal back: a program prints each string's bytes in hex."""
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("no rustc on PATH to compile the literals with")
    values = [value for value in HOSTILE if len(value) < 1000]
    literals = ",\n".join(f'"{escapes.rust_string(value)}"' for value in values)
    source = tmp_path / "literals.rs"
    source.write_text(
        f"const VALUES: [&str; {len(values)}] = [\n{literals}\n];\n"
        'fn main() { for v in VALUES { for b in v.bytes() { print!("{:02x}", b); } println!(); } }\n',
        encoding="utf-8",
    )
    binary = tmp_path / "literals"
    compiled = subprocess.run(
        [rustc, "--edition=2021", "-o", str(binary), str(source)], capture_output=True, text=True, check=False
    )
    assert compiled.returncode == 0, compiled.stderr
    lines = subprocess.run([binary], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == [value.encode("utf-8").hex() for value in values]


@pytest.mark.parametrize(
    ("value", "expected"), [("egress", "egress"), ("_x9", "_x9"), ("type", "r#type"), ("async", "r#async")]
)
def test_rust_identifier(value: str, expected: str) -> None:
    assert escapes.rust_identifier(value) == expected


@pytest.mark.parametrize("value", ["", "9lives", "a-b", "a b", "self", "Self", "super", "crate", "_", "é", "a\nb"])
def test_rust_identifier_refuses_what_no_escape_makes_an_identifier(value: str) -> None:
    with pytest.raises(escapes.Unrepresentable, match="not a Rust identifier"):
        escapes.rust_identifier(value)


@pytest.mark.parametrize("value", HOSTILE + NOT_UTF8)
def test_text_line_cannot_end_a_comment_or_start_a_line(value: str) -> None:
    line = escapes.text_line(value)
    assert _one_line_printable(line)
    # Python's tokenizer sees one comment token, whatever the value.
    tokens = list(tokenize.generate_tokens(iter([f"x = 1  # {line}\n", ""]).__next__))
    assert [tokenize.tok_name[t.type] for t in tokens] == ["NAME", "OP", "NUMBER", "COMMENT", "NEWLINE", "ENDMARKER"]


@pytest.mark.parametrize("value", HOSTILE + NOT_UTF8)
def test_shell_word_is_one_word_with_the_exact_bytes(value: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on PATH")
    if "\0" in value:
        with pytest.raises(escapes.Unrepresentable, match="NUL"):
            escapes.shell_word(value)
        return
    if len(value) > 10_000:
        value = value[:10_000]  # an argument list has a size limit; the escaping is the same
    word = escapes.shell_word(value)
    assert _one_line_printable(word)
    result = subprocess.run(
        [bash, "-c", f"printf '%s' {word}; printf '|%s' {word} {word}"], capture_output=True, check=True
    )
    data = value.encode("utf-8", errors="surrogateescape")
    assert result.stdout == data + b"|" + data + b"|" + data


@pytest.mark.parametrize("value", ["execwatch", "exec-watch", "exec_watch", "0.1.0", "1.0.0+local", "a.b-c"])
def test_plain_takes_only_plain_words(value: str) -> None:
    assert escapes.plain(value) == value


@pytest.mark.parametrize("value", ["", "a b", 'a"', "a\nb", "-x", "{{name}}", "é"])
def test_plain_refuses_anything_else(value: str) -> None:
    with pytest.raises(escapes.Unrepresentable):
        escapes.plain(value)
