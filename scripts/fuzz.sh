#!/usr/bin/env bash
# `make fuzz`: installs what the harness needs (clang from Debian for the C seeds, atheris from PyPI into .venv),
# builds the seeds, then runs fuzz/harness.py with FUZZ_ARGS (default: every target, 20000 inputs each).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python="$root/.venv/bin/python"

say() { printf '\033[1mfuzz:\033[0m %s\n' "$*" >&2; }

if ! command -v clang >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "fuzz: clang is missing: sudo apt-get install clang" >&2; exit 1; }
    say "installing clang (Debian) for the C seed programs"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
fi
if ! "$python" -c 'import atheris' 2>/dev/null; then
    say "installing atheris into .venv"
    "$python" -m pip install --quiet "atheris>=2.3,<4"
fi
say "building the seeds (templates are built once and cached)"
"$python" "$root/fuzz/harness.py" seeds
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of arguments
exec "$python" "$root/fuzz/harness.py" run ${FUZZ_ARGS:-}
