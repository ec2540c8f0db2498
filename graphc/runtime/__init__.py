"""graphc.runtime: generated C -> a loaded, cached shared library (cffi API mode).

compile_module(source, cdef, name=...) builds a model module linked against the kernels library
(every kernels/*.c, built once per toolchain); both live in a content-addressed cache
($GRAPHC_CACHE_DIR or ~/.cache/graphc). Environment: CC, CFLAGS (appended), GRAPHC_OPENMP=0.
"""
from .build import CompiledModule, compile_module
from .cache import cache_dir
from .kernels import kernels_dir
from .threads import get_num_threads, openmp_enabled, set_num_threads
from .toolchain import CompileError, Toolchain
from .toolchain import current as current_toolchain

__all__ = ["CompileError", "CompiledModule", "Toolchain", "cache_dir", "compile_module", "current_toolchain",
           "get_num_threads", "kernels_dir", "openmp_enabled", "set_num_threads"]

from .program import CompiledGraph  # noqa: E402


def compile_graph(graph, name: str = "graphc_model", title: str = "", output_aliases=None,
                  profile: bool = False) -> CompiledGraph:
    """The front end's one entry: an IR graph -> a callable compiled C program. ``output_aliases``
    ({output index: parameter key}) marks outputs the caller passes the parameter's own storage for.
    ``profile``: time each op (``CompiledGraph.take_profile``)."""
    return CompiledGraph(graph, prefix=name, title=title, output_aliases=output_aliases, profile=profile)


from .profile import Profile  # noqa: E402

__all__ += ["CompiledGraph", "Profile", "compile_graph"]
