#!/usr/bin/env bash
# Renders every template with its default options and a long project name, then lints the result with the project's
# own ruff rules: the templates hold placeholders ({{name}}), so only what `pyaya new` writes can be checked.
# First, every placeholder of every template file must name a context that fits its file and its place in it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/.venv/bin/python" - <<'PY'
import sys
from pyaya.scaffold import lint_template, list_templates

problems = [problem for template in list_templates() for problem in lint_template(template)]
if problems:
    sys.exit("\n".join(problems))
PY
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for template in "$root"/templates/*/; do
    kind=$(basename "$template")
    "$root/.venv/bin/pyaya" new "${kind}_project_named_at_length" --template "$kind" --path "$out/$kind" </dev/null >/dev/null
done
"$root/.venv/bin/ruff" check --config "$root/pyproject.toml" --no-cache "$out"
"$root/.venv/bin/ruff" format --config "$root/pyproject.toml" --no-cache --check "$out"
