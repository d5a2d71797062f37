#!/usr/bin/env bash
# `make demo`: scaffold the default template into a temporary folder, build it, and run it for a few seconds
# while starting a few processes, so the exec events they cause show up as the Python side prints them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pyaya="$root/.venv/bin/pyaya"
seconds=${DEMO_SECONDS:-6}
work=$(mktemp -d -t pyaya-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cd "$work"
step "pyaya new execwatch"
"$pyaya" new execwatch
cd execwatch
step "pyaya build"
"$pyaya" build

# A few processes with recognisable names, started once the tracer is attached.
(
    sleep 2
    for i in 1 2 3; do
        /bin/echo "demo process $i" >/dev/null
        uname -r >/dev/null
        sleep 0.5
    done
) &
step "sudo pyaya run --duration $seconds"
if [ "$(id -u)" -eq 0 ]; then "$pyaya" run --duration "$seconds"; else sudo "$pyaya" run --duration "$seconds"; fi
wait
