"""Fuzzing pyaya's parse, load and decode paths with atheris (libFuzzer's mutations): ``make fuzz``.

Targets, each fed mutations of its own seeds:

* ``parse``: what ``pyaya inspect OBJECT --btf --json`` computes (``inspect_bytes``, every BTF type's dump line,
  summary and JSON), the object's line info and its ELF symbols, on mutated BPF objects;
* ``load``: ``Ebpf.load`` of mutated objects (root only; pyaya's object pass, then aya), maps bounded by
  ``max_entries`` overrides, each program loaded (the verifier runs), the typed maps built, then closed; one input
  in eight pins its maps in a folder of this run's own under /sys/fs/bpf, which must be empty again after a failed
  load;
* ``decode``: mutated ``.BTF`` blobs parsed, every named type's codec built and shown, records decoded from
  bytes derived from the input, encoded back and turned into JSON, and the maps' types worked out.

Each input must either work or raise a PyayaError within a time bound. Anything else is saved under
``fuzz/crashes/<target>/`` for reproduction (``harness.py reproduce FILE``): a *crash* (a Rust panic reaching
Python, an input over the time bound, a memory blow-up, the process dying) or a *leaked exception* (any other
exception that is not a PyayaError). The summary line is ``N inputs, C crashes, L leaked exceptions``; the exit
status is 1 when either is non-zero.

Seeds (``harness.py seeds``): the fixtures' objects (``pyaya build crates/pyaya-fixtures``), every template's
object (built once into ``~/.cache/pyaya/fuzz-seeds`` with a shared cargo target folder, rebuilt when the
templates change), and the C programs in ``fuzz/c`` built with clang (``libbpf.bpf.c``: what the object pass
rewrites); decode seeds are their ``.BTF`` sections.

atheris runs in a child process; this process supervises it: it restarts the child after a crash that kills it
(attributing the input the child was working on, which it writes to ``work/current.bin`` before running it) and
kills a child stuck on one input for longer than the hard time bound.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyaya._cache import cache_home  # standard library only: nothing of pyaya's parsers is imported yet

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
CACHE = cache_home() / "fuzz-seeds"
# Seconds one input may take before it counts as a crash (soft: CPU time, measured after it returns, so that other
# work on a shared machine does not make inputs look slow), and before the supervisor kills the child (hard: wall
# time; the input hangs, most likely in native code).
SOFT_LIMIT = {"parse": 1.0, "decode": 1.0, "load": 15.0}
HARD_LIMIT = 60.0
# Address space of the child: a memory blow-up fails an allocation (MemoryError, or an abort in Rust) instead of
# taking the machine down.
MEMORY_LIMIT = 4 << 30
# Work bounds of one input.
MAX_TYPES = 256
MAX_PROGRAMS = 8
MAX_MAP_BYTES = 16 << 20
PIN_ROOT = Path("/sys/fs/bpf")
# How far inputs got, for the summary: counted by the targets, kept in the child's stats.
REACHED: dict[str, int] = {}


def _reached(stage: str) -> None:
    REACHED[stage] = REACHED.get(stage, 0) + 1


def _remove_pins(folder: Path) -> None:
    """The load target's pin folder of one child, with whatever a crash left in it."""
    if folder.is_dir():
        for pin in folder.iterdir():
            pin.unlink()
        folder.rmdir()


# -- targets -------------------------------------------------------------------------------------------------------


def parse_one(data: bytes) -> None:
    from pyaya.elf import Elf  # noqa: PLC0415 - imported under atheris' instrumentation (see child)
    from pyaya.inspect import btf_dump, btf_summary, inspect_bytes, line_info  # noqa: PLC0415

    info = inspect_bytes(data)
    _reached("inspected")
    json.dumps(info.to_json(btf_details=True))
    if info.btf is not None:
        btf_dump(info.btf)
        for t in info.btf.types[1:]:
            btf_summary(info.btf, t)
    line_info(data)
    elf = Elf(data)
    for symbol in elf.symbols:
        elf.section_of(symbol)


def _bounded_entries(maps: list[dict[str, Any]]) -> dict[str, int] | None:
    """``max_entries`` overrides that keep every map small, or None when a map would still be too big to create."""
    overrides: dict[str, int] = {}
    for found in maps:
        name, kind, entries = str(found["name"]), str(found["type"]), int(found["max_entries"])
        # A ring buffer's size must stay a power-of-two number of pages: keep it, or use one page.
        bounded = (entries if 0 < entries <= 1 << 20 else 4096) if kind == "RingBuf" else min(entries, 64)
        overrides[name] = bounded
        element = int(found["key_size"]) + int(found["value_size"])
        if kind != "RingBuf" and element * max(bounded, 1) > MAX_MAP_BYTES:
            return None
    return overrides


def load_one(data: bytes) -> None:
    from pyaya import _native  # noqa: PLC0415
    from pyaya.errors import PyayaError  # noqa: PLC0415
    from pyaya.loader import Ebpf  # noqa: PLC0415

    try:
        found = _native.inspect_object(data)
    except PyayaError:
        return  # aya-obj cannot parse it, so Ebpf.load fails the same way: the parse target covers it
    overrides = _bounded_entries(found["maps"])
    if overrides is None:
        return
    _reached("parsed by aya-obj")
    pins = PIN_ROOT / f"pyaya-fuzz-{os.getpid()}"
    use_pins = zlib.crc32(data) % 8 == 0
    try:
        try:
            bpf = Ebpf.load(data, max_entries=overrides, pin_maps=pins if use_pins else None)
        except PyayaError:
            left = sorted(p.name for p in pins.iterdir()) if use_pins and pins.is_dir() else []
            if left:
                raise AssertionError(f"a failed Ebpf.load left pins behind in {pins}: {left}") from None
            raise
        with bpf:
            _reached("loaded")
            for name in list(bpf.programs)[:MAX_PROGRAMS]:
                program = bpf.programs[name]
                if program.type == "Extension":
                    continue  # its load needs a target program to replace a function of
                with contextlib.suppress(PyayaError):
                    program.load()
                    _reached("programs verified")
            for name in bpf.maps:
                bpf.maps[name]
    finally:
        if use_pins:
            _remove_pins(pins)


def decode_one(data: bytes) -> None:
    from pyaya.btf import Btf  # noqa: PLC0415
    from pyaya.errors import PyayaError  # noqa: PLC0415
    from pyaya.inspect import btf_dump  # noqa: PLC0415
    from pyaya.types import Types, asdict, map_types  # noqa: PLC0415

    btf = Btf(data)
    _reached("BTF parsed")
    btf_dump(btf)
    types = Types(btf)
    noise = random.Random(zlib.crc32(data))
    for name in list(types)[:MAX_TYPES]:
        try:
            codec = types[name]
            repr(codec)
            size = codec.size
            payloads = [noise.randbytes(size)]
            if len(data) >= size:
                payloads.append(data[len(data) - size :])
            for payload in payloads:
                value = codec.decode(payload)
                _reached("records decoded")
                json.dumps(asdict(value))
                codec.decode(codec.encode(value))
        except PyayaError:
            continue
    map_types(types)


TARGETS: dict[str, Callable[[bytes], None]] = {"parse": parse_one, "load": load_one, "decode": decode_one}


# -- what counts as a crash ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    kind: str  # "ok", "crash" or "leaked"
    detail: str = ""


def run_one(target: str, data: bytes) -> Outcome:
    """Runs one input and classifies what happened."""
    from pyaya.errors import PyayaError  # noqa: PLC0415

    start = time.process_time()
    try:
        TARGETS[target](data)
    except PyayaError:
        pass
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        text = "".join(traceback.format_exception(error))
        if type(error).__name__ == "PanicException":
            return Outcome("crash", f"a Rust panic reached Python:\n{text}")
        if isinstance(error, MemoryError):
            return Outcome("crash", f"memory blow-up:\n{text}")
        return Outcome("leaked", f"{type(error).__name__} is not a PyayaError:\n{text}")
    took = time.process_time() - start
    if took > SOFT_LIMIT[target]:
        return Outcome("crash", f"took {took:.2f} s of CPU, more than the {SOFT_LIMIT[target]} s bound")
    return Outcome("ok")


def save_crash(crashes: Path, target: str, kind: str, data: bytes, detail: str) -> Path:
    folder = crashes / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(
        f"target: {target}\nkind: {kind}\nreproduce: python fuzz/harness.py reproduce {path}\n\n{detail}\n"
    )
    return path


# -- the child: atheris ----------------------------------------------------------------------------------------------

# Sections whose contents the object mutator prefers: what the BTF, ELF and aya-obj readers interpret.
_INTERESTING = (".BTF", ".BTF.ext", ".symtab", ".strtab", "maps", ".maps", "license")


def mutate_object(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's mutation of one section's bytes (same length), so the ELF around them stays valid and the
    mutation reaches the BTF, symbol and map parsers; one mutation in four is of the whole file."""
    import atheris  # noqa: PLC0415
    from pyaya.elf import Elf  # noqa: PLC0415
    from pyaya.errors import PyayaError  # noqa: PLC0415

    rng = random.Random(seed)
    if rng.random() < 0.25:
        return bytes(atheris.Mutate(data, max_size))
    try:
        sections = [s for s in Elf(data).sections if s.has_data and 0 < s.size <= len(data)]
    except PyayaError:
        return bytes(atheris.Mutate(data, max_size))
    if not sections:
        return bytes(atheris.Mutate(data, max_size))
    preferred = [s for s in sections if s.name in _INTERESTING or s.is_executable]
    section = rng.choice(preferred if preferred and rng.random() < 0.8 else sections)
    start, end = section.offset, section.offset + section.size
    chunk = bytes(atheris.Mutate(data[start:end], section.size))
    return data[:start] + chunk[: section.size].ljust(section.size, b"\0") + data[end:]


def child(args: argparse.Namespace) -> None:
    import atheris  # noqa: PLC0415 - installed by scripts/fuzz.sh

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    with atheris.instrument_imports(include=["pyaya"]):
        import pyaya.btf  # noqa: PLC0415
        import pyaya.elf  # noqa: PLC0415
        import pyaya.inspect  # noqa: PLC0415
        import pyaya.loader  # noqa: PLC0415
        import pyaya.types  # noqa: F401, PLC0415
    work, crashes = Path(args.work), Path(args.crashes)
    current = work / "current.bin"
    stats_path = work / "stats.json"
    stats = {"inputs": 0, "crashes": 0, "leaked": 0}

    def one(data: bytes) -> None:
        stats["inputs"] += 1
        current.write_bytes(struct.pack("<Q", stats["inputs"]) + data)
        outcome = run_one(args.target, data)
        if outcome.kind != "ok":
            key = "crashes" if outcome.kind == "crash" else "leaked"
            stats[key] += 1
            save_crash(crashes, args.target, outcome.kind, data, outcome.detail)
        if outcome.kind != "ok" or stats["inputs"] % 512 == 0:
            stats_path.write_text(json.dumps({**stats, "reached": REACHED}))

    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-timeout={int(HARD_LIMIT)}",
        "-rss_limit_mb=3072",
        f"-artifact_prefix={work}/libfuzzer-",
        f"-seed={args.seed}",
        str(corpus),
        str(args.seeds),
    ]
    mutator = mutate_object if args.target in ("parse", "load") else None
    atheris.Setup(argv, one, custom_mutator=mutator)
    try:
        atheris.Fuzz()
    finally:
        stats_path.write_text(json.dumps({**stats, "reached": REACHED}))


# -- the supervisor --------------------------------------------------------------------------------------------------


def _read_current(path: Path) -> tuple[int, bytes] | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < 8:
        return None
    return struct.unpack_from("<Q", raw)[0], raw[8:]


def supervise(args: argparse.Namespace) -> int:
    target = args.target
    if target == "load" and os.geteuid() != 0:
        print("fuzz: the load target needs root (it creates maps and loads programs): skipped", file=sys.stderr)
        return 0
    seeds = Path(args.seeds) / target
    if not seeds.is_dir() or not any(seeds.iterdir()):
        print(f"fuzz: no seeds in {seeds}: run `harness.py seeds` first", file=sys.stderr)
        return 2
    work = Path(args.work) / target
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    crashes = Path(args.crashes)
    log = (work / "child.log").open("w")
    total = {"inputs": 0, "crashes": 0, "leaked": 0}
    reached: dict[str, int] = {}
    started = time.monotonic()
    remaining = args.runs
    restarts = 0
    while remaining > 0:
        stats_path, current = work / "stats.json", work / "current.bin"
        stats_path.unlink(missing_ok=True)
        current.unlink(missing_ok=True)
        command = [
            sys.executable,
            __file__,
            "child",
            target,
            f"--runs={remaining}",
            f"--work={work}",
            f"--crashes={crashes}",
            f"--seeds={seeds}",
            f"--seed={args.seed + restarts}",
        ]
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        killed = None
        while process.poll() is None:
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                stuck = time.time() - current.stat().st_mtime
                if stuck > HARD_LIMIT:
                    process.kill()
                    killed = f"still running after {stuck:.0f} s (the hard time bound is {HARD_LIMIT:.0f} s)"
            if args.seconds and time.monotonic() - started > args.seconds:
                process.send_signal(signal.SIGINT)
                process.wait()
                remaining = 0
        process.wait()
        _remove_pins(PIN_ROOT / f"pyaya-fuzz-{process.pid}")
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        last = _read_current(current)
        done = max(stats.get("inputs", 0), last[0] if last else 0)
        for key in ("crashes", "leaked"):
            total[key] += stats.get(key, 0)
        for stage, count in stats.get("reached", {}).items():
            reached[stage] = reached.get(stage, 0) + count
        total["inputs"] += done
        if remaining and (process.returncode != 0 or killed):
            if last is not None:
                detail = killed or f"the process died (exit status {process.returncode}); see {work}/child.log"
                path = save_crash(crashes, target, "crash", last[1], detail)
                print(f"fuzz: {target}: {detail}: saved {path}", file=sys.stderr)
                total["crashes"] += 1
            elif not done:
                log.flush()
                print(f"fuzz: {target}: the fuzzer did not start; see {work}/child.log", file=sys.stderr)
                return 2
            restarts += 1
        remaining = max(0, remaining - done) if remaining else 0
        if process.returncode == 0 and not killed:
            break
    seconds = time.monotonic() - started
    print(
        f"fuzz {target}: {total['inputs']} inputs, {total['crashes']} crashes, {total['leaked']} leaked exceptions"
        f" ({seconds:.0f} s, {total['inputs'] / max(seconds, 1e-9):.0f} inputs/s)"
    )
    if reached:
        # Counted at the last stats write of each child (every 512 inputs): a lower bound.
        print(f"fuzz {target}: reached: " + ", ".join(f"{stage} {count}" for stage, count in reached.items()))
    if total["crashes"] or total["leaked"]:
        print(f"fuzz {target}: inputs and tracebacks in {crashes / target}", file=sys.stderr)
        return 1
    return 0


def reproduce(args: argparse.Namespace) -> int:
    path = Path(args.file)
    target = args.target or path.parent.name
    outcome = run_one(target, path.read_bytes())
    print(f"{target}: {outcome.kind}\n{outcome.detail}".rstrip())
    return 0 if outcome.kind == "ok" else 1


# -- seeds -----------------------------------------------------------------------------------------------------------


def _is_bpf_object(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[:4] == b"\x7fELF" and header[18:20] in (b"\xf7\x00", b"\x00\xf7")


def _objects(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from (path for path in sorted(folder.iterdir()) if path.is_file() and _is_bpf_object(path))


def _pyaya(*arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Runs the pyaya CLI quietly and returns what it printed; its output is shown only when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "pyaya", *arguments], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"fuzz: `pyaya {' '.join(arguments)}` failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _fixture_objects() -> list[Path]:
    fixtures = ROOT / "crates" / "pyaya-fixtures"
    _pyaya("build", str(fixtures))
    return list(_objects(fixtures / "target" / "bpfel-unknown-none" / "release"))


def _template_objects() -> list[Path]:
    """Every template rendered and built once, with one cargo target folder for all; kept while templates/ is
    unchanged (a hash of its files names the cache)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    cache = CACHE / "templates" / digest.hexdigest()[:16]
    objects = cache / "objects"
    if (cache / "done").exists():
        return list(_objects(objects))
    projects, target = cache / "projects", CACHE / "templates" / "target"
    objects.mkdir(parents=True, exist_ok=True)
    print("fuzz: building every template once for the seeds (minutes; cached until templates/ changes)")
    env = {**os.environ, "CARGO_TARGET_DIR": str(target)}
    for template in sorted(p.name for p in (ROOT / "templates").iterdir() if (p / "template.toml").exists()):
        name = f"fz_{template}"
        shutil.rmtree(projects / name, ignore_errors=True)
        projects.mkdir(parents=True, exist_ok=True)
        _pyaya("new", name, "--template", template, "--no-check", cwd=projects, env=env)
        # The first object `pyaya build` prints: cargo's (Rust templates) or clang's target/bpf/ one (C templates).
        built = Path(_pyaya("build", str(projects / name), env=env).split()[0])
        shutil.copyfile(built, objects / template)
    (cache / "done").touch()
    return list(_objects(objects))


def _c_objects() -> list[Path]:
    clang = shutil.which("clang")
    if clang is None:
        raise SystemExit("fuzz: clang is not installed: `apt-get install clang` (scripts/fuzz.sh does it)")
    out = CACHE / "c"
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for source in sorted((FUZZ / "c").glob("*.bpf.c")):
        obj = out / source.name.replace(".bpf.c", ".bpf.o")
        command = [clang, "-target", "bpf", "-g", "-O2", "-Wall", "-Werror", "-c", str(source), "-o", str(obj)]
        subprocess.run(command, check=True)
        built.append(obj)
    return built


def seeds(args: argparse.Namespace) -> int:
    from pyaya.elf import Elf  # noqa: PLC0415

    out = Path(args.seeds)
    shutil.rmtree(out, ignore_errors=True)
    for target in TARGETS:
        (out / target).mkdir(parents=True)
    groups = {"fixture": _fixture_objects(), "template": _template_objects(), "c": _c_objects()}
    for group, objects in groups.items():
        for obj in objects:
            data = obj.read_bytes()
            name = f"{group}-{obj.name}"
            (out / "parse" / name).write_bytes(data)
            (out / "load" / name).write_bytes(data)
            elf = Elf(data)
            if elf.section(".BTF") is not None:
                (out / "decode" / name).write_bytes(elf.section_data(".BTF"))
    counts = ", ".join(f"{len(objects)} {group}" for group, objects in groups.items())
    print(f"fuzz: seeds in {out}: {counts} objects")
    return 0


# -- command line ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="fuzz one or more targets (the default of `make fuzz`)")
    run.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    run.add_argument("--runs", type=int, default=20_000, help="inputs per target")
    run.add_argument("--seconds", type=float, default=0, help="stop each target after this long (0: no limit)")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--seeds", default=str(FUZZ / "work" / "seeds"))
    run.add_argument("--work", default=str(FUZZ / "work"))
    run.add_argument("--crashes", default=str(FUZZ / "crashes"))
    inner = commands.add_parser("child", help=argparse.SUPPRESS)
    inner.add_argument("target", choices=list(TARGETS))
    for option in ("--runs", "--seed"):
        inner.add_argument(option, type=int, required=True)
    for option in ("--work", "--crashes", "--seeds"):
        inner.add_argument(option, required=True)
    again = commands.add_parser("reproduce", help="run one saved input again and show what happens")
    again.add_argument("file")
    again.add_argument("--target", choices=list(TARGETS))
    collect = commands.add_parser("seeds", help="build and collect the seed objects")
    collect.add_argument("--seeds", default=str(FUZZ / "work" / "seeds"))
    args = parser.parse_args()
    if args.command == "child":
        child(args)
        return 0
    if args.command == "reproduce":
        return reproduce(args)
    if args.command == "seeds":
        return seeds(args)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target {unknown[0]!r} (targets: {', '.join(TARGETS)})")
    status = 0
    for target in args.targets or TARGETS:
        target_args = argparse.Namespace(**{**vars(args), "target": target})
        status = max(status, supervise(target_args))
    return status


if __name__ == "__main__":
    sys.exit(main())
