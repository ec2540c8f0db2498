"""Building exported C packages with CMake and running their example_main, for the export tests."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CMAKE = shutil.which("cmake")
needs_cmake = pytest.mark.skipif(CMAKE is None, reason="cmake not found on PATH (install CMake to build exports)")


def run(cmd, cwd=None, env=None, check=True, timeout=600):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, (f"{' '.join(map(str, cmd))} failed (exit code {result.returncode}):\n"
                                        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def cmake_build(source: Path, build: Path, cc="gcc", cflags="", ldflags="", options=None, werror=True) -> str:
    """Configure and build a CMake project; returns the build log (warnings fail it when ``werror``)."""
    flags = " ".join(f for f in (cflags, "-Werror" if werror else "") if f)
    defs = [f"-D{k}={v}" for k, v in (options or {}).items()]
    run([CMAKE, "-S", source, "-B", build, f"-DCMAKE_C_COMPILER={cc}", "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={ldflags}",
         f"-DCMAKE_SHARED_LINKER_FLAGS={ldflags}", *defs])
    log = run([CMAKE, "--build", build, "--parallel", str(os.cpu_count() or 2)]).stdout
    return log


def superproject(root: Path, packages: list) -> Path:
    """A CMake project with each exported package as a subdirectory (one configure for all of them)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["cmake_minimum_required(VERSION 3.13)", "project(graphc_exports C)"]
    lines += [f'add_subdirectory("{Path(p).resolve()}" "{Path(p).name}")' for p in packages]
    (root / "CMakeLists.txt").write_text("\n".join(lines) + "\n")
    return root


def write_inputs(path: Path, arrays, text=False):
    """The example's input file: every input in order, C-contiguous."""
    if text:
        path.write_text("\n".join(" ".join(repr(float(v)) if a.dtype.kind == "f" else str(int(v))
                                           for v in np.asarray(a).reshape(-1)) for a in arrays) + "\n")
    else:
        path.write_bytes(b"".join(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays))
    return path


def parse_outputs(stdout: str) -> list:
    """example_main's printout -> one array (batch, elements) per output."""
    outs, current = [], None
    for line in stdout.splitlines():
        m = re.match(r"output (\d+) .*: (\d+) x (\d+)$", line)
        if m:
            current = []
            outs.append((int(m.group(2)), int(m.group(3)), current))
        elif current is not None and line.strip():
            current.append([float(v) for v in line.split()])
    return [np.array(rows, dtype=np.float64).reshape(b, n) for b, n, rows in outs]


def run_example(exe: Path, arrays, tmp: Path, text=False, args=(), env=None, check=True):
    inputs = write_inputs(tmp / ("inputs.txt" if text else "inputs.bin"), arrays, text)
    result = run([exe, *(["--text"] if text else []), *args, inputs], cwd=exe.parent, env=env, check=check)
    return result if not check else parse_outputs(result.stdout)


def assert_matches(c_outputs, expected, atol=1e-5, rtol=1e-5):
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    assert len(c_outputs) == len(expected)
    for got, want in zip(c_outputs, expected):
        want = np.asarray(want, dtype=np.float64)
        np.testing.assert_allclose(got, want.reshape(want.shape[0], -1), atol=atol, rtol=rtol)


def global_symbols(library: Path) -> list:
    """Defined global symbols of a static or shared library (nm)."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not found (binutils) to list the library's symbols")
    out = run([nm, "-g", "--defined-only", library]).stdout
    return [line.split()[-1] for line in out.splitlines() if len(line.split()) == 3]
