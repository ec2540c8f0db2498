"""The C compiler graphc builds with: its command, version and flags.

CC and CFLAGS are read from the environment (CFLAGS is appended to ours). The optional flags
(-march=native, -fopenmp) are tried once per compiler and the answer is kept in the cache dir, so
a compiler without OpenMP still builds everything, single-threaded. GRAPHC_OPENMP=0 turns OpenMP off.
"""
import functools
import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import cache

# -ffp-contract=fast: -std=c99 would otherwise forbid fusing a*b+c into one FMA instruction.
# -fno-math-errno: nothing reads errno, and setting it keeps sqrtf & co. out of vectorized loops.
BASE_FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fopenmp", "-std=c99", "-fPIC")
OPENMP_FLAG = "-fopenmp"
# A flag the compiler rejects is dropped; each is tried with a program that needs what it brings.
_PROBES = {
    "-march=native": "int graphc_probe(void) { return 0; }\n",
    "-ffp-contract=fast": "int graphc_probe(void) { return 0; }\n",
    "-fno-math-errno": "int graphc_probe(void) { return 0; }\n",
    OPENMP_FLAG: (
        "#include <omp.h>\n"
        "int graphc_probe(void) {\n"
        "    int n = 0;\n"
        "#pragma omp parallel reduction(+ : n)\n"
        "    n += 1;\n"
        "    return n + omp_get_max_threads();\n"
        "}\n"
    ),
}
_MAX_MESSAGE_LINES = 30
_MAX_MESSAGE_CHARS = 3000


class CompileError(RuntimeError):
    """The C compiler failed; the message holds its (trimmed) output and the kept C file."""


@dataclass(frozen=True)
class Toolchain:
    cc: tuple          # compiler command, e.g. ("gcc",) or ("ccache", "clang")
    version: str       # first line of `cc --version`
    flags: tuple       # compile flags: ours (minus rejected ones), then CFLAGS
    openmp: bool       # -fopenmp is among the flags

    @property
    def key(self) -> str:
        """Identifies everything about the compiler that changes the machine code it makes."""
        cpu = cpu_identity() if "-march=native" in self.flags else ""
        return cache.digest("toolchain-v1", *self.cc, self.version, *self.flags, cpu)


_versions = {}
_probe_memo = {}


def run_compiler(cmd, cwd=None):
    """Runs one compiler command; every compiler call of the runtime goes through here."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, encoding="utf-8", errors="replace")


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    """What -march=native compiles for, so a cache shared between machines never hands code built for
    one CPU to another: the CPU model and feature flags (Linux), else the platform's description."""
    wanted = ("model name", "flags", "Features", "CPU part")
    try:
        with open("/proc/cpuinfo") as f:
            lines = {line.split(":")[0].strip(): line for line in f if line.split(":")[0].strip() in wanted}
        return "".join(sorted(lines.values()))
    except OSError:
        return platform.platform() + platform.processor()


def compiler_command():
    """CC split like a shell would (so CC="ccache gcc" works), else the first of cc, gcc, clang."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        return tuple(shlex.split(cc))
    for candidate in ("cc", "gcc", "clang"):
        if shutil.which(candidate):
            return (candidate,)
    raise CompileError("no C compiler found: install gcc or clang, or set CC to a C compiler")


def compiler_version(cc) -> str:
    cc = tuple(cc)
    if cc not in _versions:
        try:
            result = subprocess.run([*cc, "--version"], capture_output=True, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CompileError(f"cannot run the C compiler {' '.join(cc)!r} (from CC or PATH): {exc}") from exc
        lines = [line.strip() for line in (result.stdout or result.stderr).splitlines() if line.strip()]
        if result.returncode != 0 or not lines:
            raise CompileError(f"{' '.join(cc)} --version failed (exit code {result.returncode}): "
                               f"{trim_output(result.stderr)}")
        _versions[cc] = lines[0]
    return _versions[cc]


def current() -> Toolchain:
    """The toolchain for the present environment (CC, CFLAGS, GRAPHC_OPENMP, GRAPHC_CACHE_DIR)."""
    cc = compiler_command()
    version = compiler_version(cc)
    wanted = list(BASE_FLAGS)
    if os.environ.get("GRAPHC_OPENMP", "").strip().lower() in ("0", "false", "no", "off"):
        wanted.remove(OPENMP_FLAG)
    accepted = _accepted_flags(cc, version)
    flags = [flag for flag in wanted if accepted.get(flag, True)]
    flags += shlex.split(os.environ.get("CFLAGS", ""))
    return Toolchain(cc=cc, version=version, flags=tuple(flags), openmp=OPENMP_FLAG in flags)


def _accepted_flags(cc, version) -> dict:
    """{flag: accepted} for the optional flags, from memory, the cache dir, or by trying them."""
    memo_key = (cc, version, str(cache.cache_dir()))
    if memo_key in _probe_memo:
        return _probe_memo[memo_key]
    record = cache.cache_dir() / "toolchains" / f"{cache.digest('probe-v2', *cc, version)[:20]}.json"
    try:
        recorded = json.loads(record.read_text())["accepted"]
        accepted = {flag: bool(recorded[flag]) for flag in _PROBES}
    except (OSError, ValueError, KeyError, TypeError):
        accepted = {flag: _accepts(cc, flag, program) for flag, program in _PROBES.items()}
        record_data = {"compiler": list(cc), "version": version, "accepted": accepted}
        cache.write_atomic(record, json.dumps(record_data, indent=1).encode())
    _probe_memo[memo_key] = accepted
    return accepted


def _accepts(cc, flag, program) -> bool:
    with tempfile.TemporaryDirectory(prefix="graphc-probe-") as tmp:
        Path(tmp, "probe.c").write_text(program)
        result = run_compiler([*cc, flag, "-std=c99", "-fPIC", "-shared", "probe.c", "-o", "probe.so"], cwd=tmp)
        return result.returncode == 0 and Path(tmp, "probe.so").exists()


def trim_output(text: str) -> str:
    """Compiler output cut to what a person reads: the first lines, and a note of what was left out."""
    lines = text.strip().splitlines()
    kept = "\n".join(lines[:_MAX_MESSAGE_LINES])[:_MAX_MESSAGE_CHARS]
    left = len(lines) - len(kept.splitlines())
    return kept + (f"\n... ({left} more lines)" if left > 0 else "")
