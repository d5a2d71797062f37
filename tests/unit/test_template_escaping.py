"""Every shipped template rendered with hostile option values: what `pyaya new` writes still parses as Python, TOML
and Rust (rustc's own parser, when installed), no value adds a line anywhere, and each value arrives exactly where
the template puts it. The placeholder lint runs on every template file."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyaya import escapes, scaffold
from pyaya.errors import ScaffoldError
from test_escapes import _decode_rust_literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TEMPLATES = scaffold.list_templates()
#: One value that breaks out of every context a naive paste would put it in (no NUL: see test_nul_...).
HOSTILE = (
    'x"); compile_error!("injected"); ("\\\n'
    "import os; os.system('id')  # \r\t{{name}}}}{x}\"\"\"''' \x1b[0m \u2028 é 中 🚀 $(id) `id` */ "
) + "long" * 2000


def _free_options(template: scaffold.Template) -> list[str]:
    """Options a user can set to anything (no fixed choices)."""
    return [option.name for option in template.options if not option.choices]


FREE_TEMPLATES = [template for template in TEMPLATES if _free_options(template)]


def _render(template: scaffold.Template, dest: Path, values: dict[str, str]) -> dict[str, str]:
    scaffold.render(template.kind, "proj", dest, options=values)
    return {
        str(path.relative_to(dest)): path.read_text(encoding="utf-8")
        for path in sorted(dest.rglob("*"))
        if path.is_file()
    }


def _template_sources(template: scaffold.Template) -> dict[str, str]:
    """Each template file's text, by the path it renders to for the project name "proj"."""
    root = Path(str(template.root))
    sources = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == scaffold.TEMPLATE_CONFIG or scaffold.SKIPPED & set(path.parts):
            continue
        relative = str(path.relative_to(root)).replace("{{name}}", "proj").replace("{{crate_name}}", "proj")
        sources[relative.removesuffix(scaffold.TMPL_SUFFIX)] = path.read_text(encoding="utf-8")
    return sources


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.kind for t in TEMPLATES])
def test_template_passes_the_placeholder_lint(template: scaffold.Template) -> None:
    assert scaffold.lint_template(template) == []


def _python_strings(source: str) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _rust_parses(root: Path, tmp_path: Path) -> None:
    rustc = shutil.which("rustc")
    if rustc is None:
        return
    for crate_root in [*root.glob("*-ebpf/src/main.rs"), *root.glob("*-common/src/lib.rs")]:
        result = subprocess.run(
            [rustc, "--edition=2021", "-Zparse-crate-root-only", "--out-dir", str(tmp_path), str(crate_root)],
            env={**os.environ, "RUSTC_BOOTSTRAP": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{crate_root}:\n{result.stderr}"


@pytest.mark.parametrize("template", FREE_TEMPLATES, ids=[t.kind for t in FREE_TEMPLATES])
def test_hostile_values_parse_and_arrive_exactly(template: scaffold.Template, tmp_path: Path) -> None:
    free = _free_options(template)
    defaults = _render(template, tmp_path / "default", {})
    hostile = _render(template, tmp_path / "hostile", dict.fromkeys(free, HOSTILE))
    assert sorted(hostile) == sorted(defaults)
    sources = _template_sources(template)
    for relative, text in hostile.items():
        if relative not in sources:  # a crate shipped with pyaya, copied unchanged (template.toml `crates`)
            assert text == defaults[relative], relative
            continue
        # No value adds or splits a line, whatever line-break characters it holds.
        assert text.count("\n") == defaults[relative].count("\n"), relative
        assert len(text.splitlines()) == len(defaults[relative].splitlines()), relative
        source_lines = sources[relative].split("\n")
        lines = text.split("\n")
        if relative.endswith(".py"):
            strings = _python_strings(text)
            for option in free:
                if f'"{{{{{option}|py}}}}"' in sources[relative]:
                    assert HOSTILE in strings, f"{relative}: {option} did not arrive as a Python string"
                if f"{{{{{option}|py}}}}" in sources[relative]:
                    assert any(HOSTILE in string for string in strings), relative
        elif relative.endswith(".toml"):
            tomllib.loads(text)
        elif relative.endswith(".rs"):
            for number, source_line in enumerate(source_lines):
                for option in free:
                    if f'"{{{{{option}|rust_str}}}}"' in source_line:
                        literals = re.findall(r'"((?:[^"\\]|\\.)*)"', lines[number])
                        assert HOSTILE in [_decode_rust_literal(literal) for literal in literals], relative
    _rust_parses(tmp_path / "hostile", tmp_path)


def _reaches(template: scaffold.Template, option: str, contexts: set[str]) -> bool:
    return any(
        f"{{{{{option}|{context}}}}}" in source
        for source in _template_sources(template).values()
        for context in contexts
    )


@pytest.mark.parametrize("template", FREE_TEMPLATES, ids=[t.kind for t in FREE_TEMPLATES])
def test_bytes_that_are_not_utf8(template: scaffold.Template, tmp_path: Path) -> None:
    """A value with bytes that are not UTF-8 (a path from argv, decoded with surrogateescape) reaches Python exactly;
    a Rust string or a TOML file cannot hold it, and rendering says so naming the option."""
    value = os.fsdecode(b"/tmp/caf\xe9-\xff")
    for option in _free_options(template):
        dest = tmp_path / option
        if _reaches(template, option, {"rust_str", "toml"}):
            with pytest.raises(ScaffoldError, match=rf"^{option} .* holds bytes that are not UTF-8"):
                scaffold.render(template.kind, "proj", dest, options={option: value})
            assert not dest.exists()
            continue
        rendered = _render(template, dest, {option: value})
        strings = [s for relative, text in rendered.items() if relative.endswith(".py") for s in _python_strings(text)]
        assert value in strings
        assert os.fsencode(value) == b"/tmp/caf\xe9-\xff"
        assert "\\xe9-\\xff" in rendered["README.md"]


@pytest.mark.parametrize("template", FREE_TEMPLATES, ids=[t.kind for t in FREE_TEMPLATES])
def test_nul_reaches_code_but_not_a_command_line(template: scaffold.Template, tmp_path: Path) -> None:
    """A NUL (only the Python API can pass one) is escaped in code; the README's command lines cannot hold it."""
    for option in _free_options(template):
        value = "lo\0evil"
        dest = tmp_path / option
        if _reaches(template, option, {"sh"}):
            with pytest.raises(ScaffoldError, match=rf"^{option} .* NUL"):
                scaffold.render(template.kind, "proj", dest, options={option: value})
            continue
        rendered = _render(template, dest, {option: value})
        for relative, text in rendered.items():
            assert "\0" not in text, relative
            if relative.endswith(".py"):
                ast.parse(text)


def test_no_check_skips_checks_never_escaping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI path: `pyaya new --no-check` with a --target that closes main.py's string."""
    from pyaya.cli import app  # noqa: PLC0415
    from typer.testing import CliRunner  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    target = '/tmp/x"; __import__("os").system("touch pwned") #'
    result = CliRunner().invoke(
        app, ["new", "evil", "-t", "uprobe", "--no-check", "--target", target, "--symbol", 'f"\nimport os'], input=""
    )
    assert result.exit_code == 0, result.output
    main = (tmp_path / "evil" / "main.py").read_text()
    module = ast.parse(main)
    assignments = {
        node.targets[0].id: node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert assignments["TARGET"] == target
    assert assignments["FUNCTION"] == 'f"\nimport os'
    assert "with uprobe_target=" + escapes.text_line(target) in result.stdout
    assert len([line for line in result.stdout.splitlines() if "import os" in line]) == 1  # shown on one line


# -- the renderer and the lint refuse what they cannot check -----------------------------------------------------


@pytest.fixture
def lint_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "templates"
    monkeypatch.setattr(scaffold, "templates_root", lambda: root)
    return root


def _template(root: Path, files: dict[str, str]) -> scaffold.Template:
    folder = root / "t"
    folder.mkdir(parents=True)
    (folder / "template.toml").write_text(
        'description = "t"\n[options.target]\ndefault = "x"\n[options.mode]\ndefault = "a"\nchoices = ["a", "b"]\n'
    )
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return scaffold.get_template("t")


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("main.py", 'T = "{{target}}"\n', "{{target}} has no context, and target is free text"),
        ("main.py", 'T = "{{mode}}"\n', "{{mode}} has no context"),  # choices still name a context
        ("main.py", 'T = "{{target|shell}}"\n', "unknown context 'shell'"),
        ("main.py", 'T = "{{target|rust_str}}"\n', "context rust_str (a Rust string literal) does not belong"),
        ("main.py", 'T = "{{targte|py}}"\n', "{{targte|py}} names no value"),
        ("main.py", 'T = "{{target|}}"\n', "{{target|}} is not a placeholder"),
        ("main.py", "T = 1  # {{target|py}}\n", "must stand in a string literal that decodes escapes"),
        ("main.py", 'T = r"{{target|py}}"\n', "not in other"),
        ("main.py", 'T = b"{{target|py}}"\n', "not in other"),
        ("main.py", 'T = "{{target|text}}"\n', "must stand in a line comment, not in string"),
        ("src/main.rs", '#[kprobe(function = r"{{target|rust_str}}")]\n', "not in other"),
        ("src/main.rs", "/* {{target|text}} */\n", "must stand in a line comment"),
        ("src/main.rs", 'const X: &str = "{{target|rust_ident}}";\n', "must stand in code"),
        ("pyaya.toml.tmpl", "name = '{{target|toml}}'\n", "not in other"),
        ("{{target}}.py", "", "{{target}} has no context, and target is free text: paths take only the plain"),
        ("README.md", "{{target|py}}\n", "here use text, sh"),
        (".gitignore", "{{target|sh}}\n", "here use text"),
    ],
)
def test_lint_and_render_refuse_bad_placeholders(
    lint_templates: Path, tmp_path: Path, name: str, text: str, problem: str
) -> None:
    template = _template(lint_templates, {name: text})
    problems = scaffold.lint_template(template)
    assert len(problems) == 1, problems
    assert problem in problems[0]
    if "must stand in" in problem or "not in other" in problem:
        return  # places are the lint's alone: rendering checks names and contexts
    with pytest.raises(ScaffoldError, match=re.escape(problem)):
        scaffold.render("t", "proj", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lint_accepts_every_context_in_its_place(lint_templates: Path, tmp_path: Path) -> None:
    template = _template(
        lint_templates,
        {
            "main.py": '"""Doc {{target|py}}."""\nT = f"{{target|py}}-{1}"  # {{target|text}} {{name}}\n',
            "src/main.rs": (
                "//! {{target|text}}\n#[cgroup_skb({{mode|rust_ident}})]\n"
                'fn f() { let c = \'"\'; g("{{target|rust_str}}"); }\n'
            ),
            "pyaya.toml.tmpl": 'name = "{{name}}"  # {{target|text}}\nt = "{{target|toml}}"\n',
            "README.md": "`{{target|text}}`: `pyaya new --set target={{target|sh}}`\n",
        },
    )
    assert scaffold.lint_template(template) == []
    written = scaffold.render("t", "proj", tmp_path / "out", options={"target": 'a"b', "mode": "b"})
    assert len(written) == 4
    assert tomllib.loads((tmp_path / "out" / "pyaya.toml").read_text()) == {"name": "proj", "t": 'a"b'}
    assert "#[cgroup_skb(b)]" in (tmp_path / "out" / "src" / "main.rs").read_text()
