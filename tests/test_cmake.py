"""The top-level CMake project configures, builds warning-free (-Werror) and its C tests pass."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CMAKE = shutil.which("cmake")
CTEST = shutil.which("ctest")


def run(cmd, cwd=None):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(cmd)} failed (exit code {result.returncode}):\n{output}"
    return output


@pytest.mark.skipif(CMAKE is None or CTEST is None, reason="cmake/ctest not found on PATH (install CMake to run "
                                                           "the C kernel tests)")
def test_cmake_build_and_ctest(tmp_path):
    build = tmp_path / "build"
    run([CMAKE, "-S", ROOT, "-B", str(build), "-DGRAPHC_WERROR=ON", "-DCMAKE_BUILD_TYPE=Release"])
    log = run([CMAKE, "--build", str(build), "--config", "Release", "--parallel", "4"])
    assert "warning" not in log.lower(), log
    assert any(name.startswith(("libgraphc_kernels", "graphc_kernels")) for _, _, files in os.walk(build)
               for name in files), "the graphc_kernels static library was not built"
    out = run([CTEST, "-C", "Release", "-V"], cwd=str(build))
    assert "100% tests passed" in out, out
    counts = re.findall(r"(\d+) passed, (\d+) failed", out)
    # one line per C test program: sgemm_ref, sgemm (SIMD + portable paths), sgemm_generic (no SIMD/OpenMP)
    assert len(counts) >= 3, out
    assert all(int(ok) >= 10 and bad == "0" for ok, bad in counts), out
    assert "graphc_sgemm micro-kernel: portable C" in out, out  # the GRAPHC_FORCE_PORTABLE build ran
    if "avx512f" in cpu_flags():  # the AVX-512 micro-kernel, left out of the default build on AMD Zen, ran too
        assert "graphc_sgemm micro-kernel: AVX-512" in out, out


def cpu_flags() -> set:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
