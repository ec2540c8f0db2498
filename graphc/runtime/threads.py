"""The OpenMP thread count of compiled code: graphc.set_num_threads / get_num_threads.

The count is recorded here and forwarded to every kernels library loaded in the process (they
share the OpenMP runtime with the model modules), now or when one is loaded later. Without OpenMP
the count is only recorded. By default OpenMP reads OMP_NUM_THREADS itself.
"""
import functools
import ctypes
import os
import threading

_requested = None
_libraries = {}  # path -> ctypes handle of a loaded kernels library


def set_num_threads(n: int):
    """Number of threads compiled code uses from now on (in the calling thread and those it starts)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, received {n!r}")
    global _requested
    _requested = n
    _applied.__dict__.clear()
    for lib in _libraries.values():
        lib.graphc_runtime_set_num_threads(n)


def get_num_threads() -> int:
    """The count set by set_num_threads, else what OpenMP will use (OMP_NUM_THREADS or the CPUs)."""
    if _requested is not None:
        return _requested
    for lib in _libraries.values():
        if lib.graphc_runtime_has_openmp():
            return lib.graphc_runtime_get_max_threads()
    return default_num_threads()


def default_num_threads() -> int:
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return int(first)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def openmp_enabled() -> bool:
    """Whether a loaded kernels library was built with OpenMP."""
    return any(lib.graphc_runtime_has_openmp() for lib in _libraries.values())


def attach(path):
    """Loads a kernels library (once) for thread control and applies a recorded count to it."""
    key = str(path)
    if key in _libraries:
        return
    lib = ctypes.CDLL(key)
    lib.graphc_runtime_set_num_threads.argtypes = [ctypes.c_int]
    lib.graphc_runtime_set_num_threads.restype = None
    lib.graphc_runtime_get_max_threads.restype = ctypes.c_int
    lib.graphc_runtime_has_openmp.restype = ctypes.c_int
    if _requested is not None:
        lib.graphc_runtime_set_num_threads(_requested)
    _libraries[key] = lib


_inside = []  # one entry per Python thread now inside compiled code (list.append and .pop are atomic)
_applied = threading.local()  # the share last applied to this thread


@functools.lru_cache(maxsize=None)
def _default_threads():
    return default_num_threads()


def compiled_threads() -> int:
    """Threads compiled code uses for a call made alone: the set or default count with OpenMP, else 1."""
    if not openmp_enabled():
        return 1
    return _requested if _requested is not None else _default_threads()


class _ShareOfThreads:
    """The context manager share_of_threads returns (a class, not a generator, and no lock: this runs on every
    call into compiled code, where a generator-based context manager or a lock costs a microsecond or more)."""
    __slots__ = ()

    def __enter__(self) -> int:
        _inside.append(None)
        try:
            total = _requested if _requested is not None else _default_threads()
            share = total // len(_inside) or 1  # (a thread entering at once may make len larger: fewer threads)
            applied = _applied.__dict__.get("share")
            if applied is None or applied[0] != share or applied[1] != len(_libraries):  # OpenMP: per thread
                for lib in _libraries.values():
                    lib.graphc_runtime_set_num_threads(share)
                applied = _applied.share = (share, len(_libraries), share if openmp_enabled() else 1)
            return applied[2]
        except BaseException:
            _inside.pop()
            raise

    def __exit__(self, *exc) -> None:
        _inside.pop()


_SHARE = _ShareOfThreads()


def share_of_threads():
    """Around a call into compiled code: the calling thread gets the thread count divided by the number of
    Python threads inside compiled code right now, so concurrent callers don't oversubscribe the cores.
    (OpenMP keeps the count per calling thread, so it is set on every call.) Gives the share applied: the
    most threads compiled code will use in this call (1 without OpenMP)."""
    return _SHARE
