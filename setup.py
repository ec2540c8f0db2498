"""Build hook: the top-level kernels/ C sources ship inside the package as graphc/kernels/.

Everything else about the package is in pyproject.toml. Its package finder only sees directories
under graphc/, so the kernels package (kept at the top level for CMake and exports) is added here.
"""
from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernels(build_py):
    def finalize_options(self):
        super().finalize_options()
        self.packages = list(self.packages or []) + ["graphc.kernels"]
        self.package_dir = {**(self.package_dir or {}), "graphc.kernels": "kernels"}
        self.package_data = {**(self.package_data or {}), "graphc.kernels": ["*.c", "*.h"]}


setup(cmdclass={"build_py": BuildPyWithKernels})
