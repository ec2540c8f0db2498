"""The kernels an exported model needs, renamed into the model's own namespace.

Every global symbol of kernels/ starts with ``graphc_``; an export renames that prefix (in sources, headers
and file names alike) to ``<name>_gc_``, so two exported models link into one program without clashes.
Only the .c files that define a function the model's code reaches (directly or through other kernels)
are shipped; every header is (they are small, and the generated code includes them all).
"""
from __future__ import annotations

import re
from pathlib import Path

from ..runtime.kernels import kernels_dir

_CALL = re.compile(r"\b(graphc_\w+)\s*\(")
# A function definition's first line: a return type at column 0 (not static), then the name and "(".
_DEFINITION = re.compile(r"^(?!static\b)[A-Za-z_][\w \t*]*?\b(graphc_\w+)\s*\(", re.MULTILINE)


def defined_functions(source: str) -> set:
    return set(_DEFINITION.findall(source))


def needed_sources(generated: str, kdir: Path = None) -> list:
    """The kernel .c files whose functions ``generated`` calls, closed over the calls between kernels."""
    kdir = kdir or kernels_dir()
    files = {p: p.read_text() for p in sorted(kdir.glob("*.c"))}
    owner = {fn: p for p, text in files.items() for fn in defined_functions(text)}
    chosen, todo = set(), set(_CALL.findall(generated))
    while todo:
        p = owner.get(todo.pop())
        if p is not None and p not in chosen:
            chosen.add(p)
            todo |= set(_CALL.findall(files[p]))
    return sorted(chosen)


def rename(text: str, name: str) -> str:
    """``graphc_`` identifiers (and file names in #include lines) -> ``<name>_gc_``."""
    return re.sub(r"\bgraphc_", f"{name}_gc_", text)


def internal_source(generated, name: str) -> str:
    """A GeneratedC's source in the model's namespace (``graphc_model`` -> ``<name>_gc_model``...), its entry
    points made static: only the export's API functions are public."""
    prefix = rename(generated.prefix, name)
    return re.sub(rf"^(size_t|int|void) ({prefix}_(?:arena_bytes|run|run_prepared|prepared_floats|prepare))\(",
                  r"static \1 \2(", rename(generated.source, name), flags=re.M)


def kernel_files(generated: str, name: str) -> dict:
    """{file name in the package's kernels/ dir: renamed text} for the sources and headers ``generated``
    needs."""
    kdir = kernels_dir()
    chosen = [*needed_sources(generated, kdir), *sorted(kdir.glob("*.h"))]
    return {rename(p.name, name) if p.name.startswith("graphc_") else f"{name}_gc_{p.name}": rename(p.read_text(), name)
            for p in chosen}
