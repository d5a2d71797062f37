"""C programs with USDT probes of every argument kind, built with gcc and ``<sys/sdt.h>`` for the USDT tests.

``build(folder)`` writes ``probes`` (a PIE executable) and ``libpyaya_guarded.so`` (a library holding a
semaphore-guarded probe) there. ``probes`` prints ``ready`` and waits for a line on stdin; for each line it fires
every probe once, in the order of ``FIRING_ORDER``, then prints ``semaphore S fired F`` (the guarded probe's
semaphore and whether it fired).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MAIN = r"""
#include <sys/sdt.h>
#include <stdint.h>
#include <stdio.h>

volatile int64_t global_counter = -77;
struct pair { int32_t a; int64_t b; };
int guarded(int value);
unsigned guarded_semaphore(void);

__attribute__((noinline)) void fire_widths(int8_t c8, uint8_t u8, int16_t s16, uint16_t u16, int32_t s32,
                                           uint32_t u32, int64_t s64, uint64_t u64) {
    DTRACE_PROBE8(pyaya, widths, c8, u8, s16, u16, s32, u32, s64, u64);
}

__attribute__((noinline)) void fire_memory(struct pair *p, long *arr, long i) {
    volatile int32_t local = -12345;
    DTRACE_PROBE5(pyaya, memory, local, p->a, p->b, arr[i], global_counter);
}

__attribute__((noinline)) void fire_constants(void) { STAP_PROBE3(pyaya, constants, 5, -6, 0x1234567890); }

/* Registers set right before a probe whose argument string is written by hand: 8-bit high and low halves,
   16-, 32- and 64-bit views, signed and unsigned. */
__attribute__((noinline)) void fire_registers(void) {
    __asm__ volatile(
        "movabs $0x112233445566F788, %%rax\n\t"
        "movq $-2, %%rbx\n\t"
        "movabs $0x8000000000000001, %%rcx\n\t"
        STAP_PROBE_ASM(pyaya, registers, -1@%%ah 1@%%al -2@%%bx 2@%%bx 4@%%eax -4@%%ebx -8@%%rcx 8@%%rcx)
        ::: "rax", "rbx", "rcx");
}

/* Never called: a probe whose argument pyaya refuses (a thread-local, %fs-relative). */
__attribute__((noinline, used)) void fire_unsupported(void) {
    __asm__ volatile(STAP_PROBE_ASM(pyaya, unsupported, 4@%%eax 8@%%fs:0x28) ::: "memory");
}

/* Inlined twice: one probe, two locations, two specs. */
static inline __attribute__((always_inline)) void twice(long value) { DTRACE_PROBE1(pyaya, twice, value); }

int main(void) {
    char line[16];
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        fire_widths(-5, 250, -3000, 60000, -100000, 4000000000u, -5000000000LL, 18000000000000000000ULL);
        struct pair p = { -42, 1LL << 40 };
        long arr[4] = {10, 20, 30, -40};
        fire_memory(&p, arr, 3);
        fire_constants();
        fire_registers();
        twice(1001);
        twice(1002);
        int fired = guarded(7);
        printf("semaphore %u fired %d\n", guarded_semaphore(), fired);
        fflush(stdout);
    }
    return 0;
}
"""

GUARDED = r"""
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short pyaya_guarded_semaphore __attribute__((section(".probes")));

int guarded(int value) {
    if (__builtin_expect(pyaya_guarded_semaphore, 0)) {
        DTRACE_PROBE1(pyaya, guarded, value);
        return 1;
    }
    return 0;
}

unsigned guarded_semaphore(void) { return pyaya_guarded_semaphore; }
"""

#: The probes ``probes`` fires for each line it reads, in order (``twice`` at two locations, ``guarded`` only
#: while its semaphore is raised).
FIRING_ORDER = ("widths", "memory", "constants", "registers", "twice", "twice", "guarded")

#: What ``pyaya_usdt::usdt_arg`` must read for each probe (8-byte unsigned values as their i64 bit patterns).
EXPECTED = {
    "widths": [-5, 250, -3000, 60000, -100000, 4000000000, -5000000000, 18000000000000000000 - (1 << 64)],
    "memory": [-12345, -42, 1 << 40, -40, -77],
    "constants": [5, -6, 0x1234567890],
    "registers": [-9, 0x88, -2, 0xFFFE, 0x5566F788, -2, -(1 << 63) + 1, -(1 << 63) + 1],
    "guarded": [7],
}


def sdt_header_missing() -> str | None:
    """Why the probes cannot be built here, or None."""
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    found = subprocess.run(
        ["gcc", "-E", "-x", "c", "-", "-o", "/dev/null"],
        input="#include <sys/sdt.h>\n",
        text=True,
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        return "<sys/sdt.h> is missing: install systemtap-sdt-dev (make setup does)"
    return None


def build(folder: Path, *extra_flags: str) -> Path:
    """Build ``probes`` and its library in ``folder`` (with ``extra_flags`` for the executable, e.g. ``-no-pie``);
    skips the calling test when the compiler or ``<sys/sdt.h>`` is missing. Returns the executable."""
    reason = sdt_header_missing()
    if reason:
        pytest.skip(reason)
    (folder / "main.c").write_text(MAIN)
    (folder / "guarded.c").write_text(GUARDED)
    library = folder / "libpyaya_guarded.so"
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(folder / "guarded.c")],
        check=True,
        capture_output=True,
    )
    binary = folder / "probes"
    subprocess.run(
        ["gcc", "-O2", *extra_flags, "-o", str(binary), str(folder / "main.c"), f"-L{folder}", "-lpyaya_guarded",
         "-Wl,-rpath,$ORIGIN"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return binary
