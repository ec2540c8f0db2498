"""graphc.export.build_library: a model -> a shared library with the C API of its export (``<name>.h``)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from ..runtime import toolchain
from ..runtime.kernels import shared_library_flags
from .package import check_name, export_package
from .weights import MAGIC


def library_name(output) -> str:
    """``libmnist.so`` -> ``mnist`` (the name the API's symbols start with)."""
    stem = Path(output).name
    stem = re.sub(r"\.(so|dylib|dll)(\.\d+)*$", "", stem)
    return stem[3:] if stem.startswith("lib") and len(stem) > 3 else stem


def build_library(model, output, *, name=None, weights="embedded", batch_size=None, max_threads=None,
                  input_shapes=None) -> Path:
    """Compiles ``model`` into the shared library ``output`` (its API: the header ``export_c`` writes, which
    is placed beside it as ``<name>.h``; with ``weights="file"`` the weights file goes beside it too). The
    library is written atomically: a failed build leaves any earlier file untouched."""
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"build_library: {output} is a directory; give the library's file name, e.g. "
                         f"lib{name or 'model'}.so")
    name = check_name(name if name is not None else library_name(output))
    for beside in [f"{name}.h"] + ([f"{name}.weights"] if weights == "file" else []):
        _refuse_to_replace_a_user_file(output.parent / beside)
    output.parent.mkdir(parents=True, exist_ok=True)
    tc = toolchain.current()
    with tempfile.TemporaryDirectory(prefix="graphc-build-") as tmp:
        package = export_package(model, Path(tmp) / name, name=name, weights=weights, batch_size=batch_size,
                                 max_threads=max_threads, input_shapes=input_shapes).path
        sources = sorted(str(p) for p in [*package.glob("*.c"), *(package / "kernels").glob("*.c")]
                         if p.name != "example_main.c")
        built = Path(tmp) / output.name
        cmd = [*tc.cc, *tc.flags, "-I", str(package), "-I", str(package / "kernels"), *sources,
               *shared_library_flags(output.name), "-o", str(built), "-lm"]
        result = toolchain.run_compiler(cmd)
        if result.returncode != 0:
            raise toolchain.CompileError(f"building {output.name} failed ({' '.join(tc.cc)}, exit code "
                                         f"{result.returncode}):\n{toolchain.trim_output(result.stderr)}")
        extras = [package / f"{name}.h"] + ([package / f"{name}.weights"] if weights == "file" else [])
        for path in [built, *extras]:
            dest = output if path == built else output.parent / path.name
            staged = dest.parent / f".{dest.name}.{secrets.token_hex(4)}"
            shutil.copyfile(path, staged)
            if path == built:
                os.chmod(staged, 0o755)
            os.replace(staged, dest)
    return output


def _refuse_to_replace_a_user_file(dest: Path):
    """The header and weights file go beside the library: an earlier build's are replaced, anything else that
    has their name is the user's and stays (it was silently overwritten)."""
    if not dest.exists():
        return
    with open(dest, "rb") as f:
        start = f.read(200)
    ours = start.startswith(MAGIC) if dest.suffix == ".weights" else \
        start.startswith(f"/* {dest.name}: C API of ".encode()) and b"exported by graphc." in start
    if not ours:
        raise ValueError(f"build_library: {dest} exists and was not written by graphc; the library's "
                         f"{dest.suffix[1:] if dest.suffix == '.weights' else 'header'} would replace it. Move it, "
                         f"or give the library another name (the files beside it are named after it)")
