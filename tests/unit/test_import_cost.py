"""What start-up imports: the load path and ``pyaya run``'s path import none of the standard library's heavy
modules (issue 13: the first event within a fraction of bpftrace's start-up).

Each module named in :data:`HEAVY` costs 5-15 ms to import on a small VM (``python -X importtime``), the budget of
the whole import. The entry points below are what a script and ``pyaya run --no-build`` import before their first
event; a change that pulls a heavy module back onto one of them fails here with the chain that imports it, where
a benchmark would only show the milliseconds. Modules needed only on some paths are imported where they are used.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Standard-library modules too slow for the start-up path, and what each costs here (python -X importtime).
HEAVY = {
    "typing": "~9 ms",
    "dataclasses": "~14 ms with inspect",
    "inspect": "~12 ms",
    "logging": "~12 ms",
    "pathlib": "~9 ms with re and urllib",
    "re": "~6 ms, plus each pattern compiled at import",
    "json": "~7 ms",
    "socket": "~7 ms",
    "ipaddress": "~4 ms",
    "platform": "~7 ms",
    "difflib": "~3 ms",
    "traceback": "~9 ms",
    "urllib.parse": "~9 ms",
    "argparse": "~11 ms",
    "shlex": "~6 ms",
    "tomllib": "~20 ms with typing and re",
    "subprocess": "~6 ms",
    "asyncio": "~30 ms",
}

_PROBE = """\
import builtins, sys
chains = {}
_import = builtins.__import__
stack = []
def tracking(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "?")
    fresh = name not in sys.modules
    result = _import(name, globals, locals, fromlist, level)
    if fresh:
        chains.setdefault(name, importer)
    return result
builtins.__import__ = tracking
%s
for name in sorted(set(sys.modules) & set(sys.argv[1:])):
    print(name, "<-", chains.get(name, "?"))
"""

#: Each entry point: the statements a start-up runs before its first event.
ENTRY_POINTS = {
    "script's load path": (
        "from pyaya import Ebpf, RingBuf, HashMap\n"
        "import pyaya.loader, pyaya.btf, pyaya.elf, pyaya.variables, pyaya.kernel_fields, pyaya.types"
    ),
    # The default template's, up to its first event: options from the command line (as `pyaya run --json
    # --duration 1` gives them), a session entered (its signal handlers, the loader's sink for kernel-side log
    # records), events written as JSON lines, a kernel log record shown.
    "a template's main.py": (
        "import io, sys\n"
        "sys.argv = ['main.py', '--object', 'target/bpfel-unknown-none/release/app', '--json', '--duration', '1']\n"
        "from pyaya.runtime import Column, Session\n"
        "from pyaya import loader\n"
        "with Session('app', columns=[Column('pid', 7), Column('comm', 16)], out=io.StringIO()) as session:\n"
        "    session.announce()\n"
        "    session.event('EVENTS', {'pid': 1, 'comm': 'sh', 'raw': b'\\xff', 'ratio': 0.5})\n"
        "    session.lost('EVENTS', 1)\n"
        "    loader._forward_log(20, 'app', 'a kernel-side record')\n"
        "assert 'a kernel-side record' in session.out.getvalue()"
    ),
    # The console script's `pyaya run PROJECT --no-build --json` up to main.py's first line, on a project built
    # before (a fake object) whose pyaya.toml was read once before (in a forked child: its parse is cached).
    # main.py then runs in this interpreter and checks that Typer stayed out; the probe looks after it returns.
    "pyaya run --no-build": (
        "import os, sys\n"
        "from pyaya._toolchain_paths import bpf_target\n"
        "arguments = sys.argv\n"
        "root = f'/tmp/pyaya-import-cost-{os.getpid()}'\n"
        "release = os.path.join(root, 'target', bpf_target(), 'release')\n"
        "os.makedirs(release)\n"
        "open(os.path.join(release, 'cost'), 'wb').close()\n"
        "with open(os.path.join(root, 'pyaya.toml'), 'w') as file:\n"
        '    file.write(\'[project]\\nname = "cost"\\n[run]\\noptions = ["pid"]\\n\')\n'
        "os.utime(os.path.join(root, 'pyaya.toml'), (1e9, 1e9))\n"
        "with open(os.path.join(root, 'main.py'), 'w') as file:\n"
        '    file.write(\'import sys\\nassert "typer" not in sys.modules and "click" not in sys.modules\\n\')\n'
        "child = os.fork()\n"
        "if child == 0:\n"
        "    import pyaya.project\n"
        "    pyaya.project.find_project(root)\n"
        "    os._exit(0 if os.path.isfile(os.path.join(root, 'target', pyaya.project.CONFIG_CACHE_NAME)) else 1)\n"
        "assert os.waitpid(child, 0)[1] == 0, 'the config was not cached'\n"
        "sys.argv = ['pyaya', 'run', root, '--no-build', '--json', '-p', '1']\n"
        "from pyaya.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as end:\n"
        "    assert end.code == 0, end.code\n"
        "else:\n"
        "    raise AssertionError('pyaya run returned')\n"
        "sys.argv = arguments\n"
        "for folder, dirs, files in os.walk(root, topdown=False):\n"
        "    for name in files:\n"
        "        os.unlink(os.path.join(folder, name))\n"
        "    os.rmdir(folder)"
    ),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_start_up_imports_no_heavy_module(entry: str) -> None:
    probe = _PROBE % ENTRY_POINTS[entry]
    result = subprocess.run(
        [sys.executable, "-c", probe, *HEAVY], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    imported = result.stdout.splitlines()
    assert not imported, (
        f"{entry} imports {', '.join(line.split()[0] for line in imported)} "
        f"({'; '.join(f'{line} ({HEAVY[line.split()[0]]})' for line in imported)}): import it where it is used"
    )
