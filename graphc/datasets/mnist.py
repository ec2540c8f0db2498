"""MNIST from local files: Keras's `mnist.npz` or the four original IDX files (plain or gzip).

Same signature and return value as `keras.datasets.mnist.load_data`, but nothing is downloaded:
the files are looked for at `path`, then in `$GRAPHC_DATA_DIR`, `$KERAS_HOME/datasets` and
`~/.keras/datasets` (where Keras caches its download).
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib

import numpy as np

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one MNIST uses
_MAX_BYTES = 1 << 31  # far above MNIST's 47 MB; a header claiming more is corrupt


def load_data(path="mnist.npz"):
    """Return `((x_train, y_train), (x_test, y_test))`: uint8 images (n, 28, 28) and labels (n,)."""
    path = os.path.expanduser(os.fspath(path))
    searched = []
    for candidate in _candidates(path):
        if os.path.isfile(candidate):
            return _load_npz(candidate)
        if os.path.isdir(candidate):
            files = _idx_files_in(candidate)
            if files is not None:
                return _load_idx(files)
            searched.append(f"{os.path.abspath(candidate)}{os.sep} (no IDX files in it)")
        else:
            searched.append(f"{os.path.abspath(candidate)} (does not exist)")
    raise FileNotFoundError(_not_found_message(path, searched))


def _search_dirs():
    dirs = []
    if os.environ.get("GRAPHC_DATA_DIR"):
        dirs.append(os.path.expanduser(os.environ["GRAPHC_DATA_DIR"]))
    if os.environ.get("KERAS_HOME"):
        dirs.append(os.path.join(os.path.expanduser(os.environ["KERAS_HOME"]), "datasets"))
    dirs.append(os.path.join(os.path.expanduser("~"), ".keras", "datasets"))
    return dirs


def _candidates(path):
    """`path` itself, then (if relative) `<dir>/path` and `<dir>` (for loose IDX files) per search dir."""
    out = [path]
    if not os.path.isabs(path):
        for d in _search_dirs():
            out += [os.path.join(d, path), d]
    return list(dict.fromkeys(out))  # drop repeats, keep order


def _not_found_message(path, searched):
    name = os.path.basename(path) or "mnist.npz"
    places = "\n".join(f"  {s}" for s in searched)
    dirs = "\n".join(f"  {d}" for d in _search_dirs())
    return (
        f"MNIST not found, and graphc never downloads data sets. Searched:\n{places}\n"
        f"Put either Keras's {name} (an npz with keys {', '.join(NPZ_KEYS)}) or the four IDX "
        f"files {', '.join(IDX_FILES.values())} (each may be gzipped and end in .gz) "
        f"into one of these directories:\n{dirs}\n"
        "or set GRAPHC_DATA_DIR to the directory that holds them, "
        "or pass load_data(path=...) the npz file or the directory of IDX files."
    )


# ---------------------------------------------------------------- npz

def _load_npz(filename):
    try:
        archive = np.load(filename, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{filename}: not a readable npz archive ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{filename}: is a single .npy array, expected an npz archive "
                         f"with keys {', '.join(NPZ_KEYS)}")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise ValueError(f"{filename}: npz is missing key(s) {', '.join(missing)} "
                             f"(has: {', '.join(archive.files) or 'nothing'}); "
                             f"expected {', '.join(NPZ_KEYS)}")
        arrays = {}
        for k in NPZ_KEYS:
            try:
                arrays[k] = archive[k]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise ValueError(f"{filename}: array '{k}' is unreadable ({e})") from None
    return _check_split(filename, arrays)


def _as_uint8(filename, key, a):
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() > 255)):
        raise ValueError(f"{filename}: '{key}' must hold bytes 0..255 (uint8), "
                         f"received dtype {a.dtype}")
    return a.astype(np.uint8)


def _check_split(source, arrays):
    """Shapes, counts and label range of the four arrays; `source` names the file(s) in errors."""
    out = {k: _as_uint8(source, k, np.asarray(v)) for k, v in arrays.items()}
    for part in ("train", "test"):
        x, y = out[f"x_{part}"], out[f"y_{part}"]
        if x.ndim != 3:
            raise ValueError(f"{source}: x_{part} must be images (n, rows, cols), "
                             f"received shape {x.shape}")
        if y.ndim != 1:
            raise ValueError(f"{source}: y_{part} must be labels (n,), received shape {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{source}: {x.shape[0]} {part} images but {y.shape[0]} {part} labels")
        if y.size and y.max() > 9:
            raise ValueError(f"{source}: y_{part} holds label {int(y.max())}, MNIST labels are 0..9")
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise ValueError(f"{source}: train images are {out['x_train'].shape[1:]} "
                         f"but test images are {out['x_test'].shape[1:]}")
    return (out["x_train"], out["y_train"]), (out["x_test"], out["y_test"])


# ---------------------------------------------------------------- IDX

def _idx_files_in(directory):
    """Map key -> file for the four IDX files in `directory`; None if none is there."""
    found, missing = {}, []
    for key, base in IDX_FILES.items():
        for name in (base, base + ".gz"):
            if os.path.isfile(os.path.join(directory, name)):
                found[key] = os.path.join(directory, name)
                break
        else:
            missing.append(base)
    if not found:
        return None
    if missing:
        raise FileNotFoundError(f"{directory}: has some MNIST IDX files but not "
                                f"{', '.join(missing)} (plain or .gz)")
    return found


def _load_idx(files):
    arrays = {k: _read_idx(f, ndim=3 if k.startswith("x") else 1) for k, f in files.items()}
    for part in ("train", "test"):
        nx, ny = len(arrays[f"x_{part}"]), len(arrays[f"y_{part}"])
        if nx != ny:
            raise ValueError(f"{files[f'x_{part}']} holds {nx} images but "
                             f"{files[f'y_{part}']} holds {ny} labels")
    return _check_split(os.path.dirname(files["x_train"]), arrays)


def _open(filename):
    # Decide by content, not by name: a gzip stream starts with 1f 8b.
    with open(filename, "rb") as f:
        head = f.read(2)
    return gzip.open(filename, "rb") if head == b"\x1f\x8b" else open(filename, "rb")


def _read_exact(f, n, filename, what):
    """Read exactly n bytes in chunks (memory follows what is really there, not what a header claims)."""
    buf, got = bytearray(), 0
    while got < n:
        chunk = f.read(min(n - got, 1 << 22))
        if not chunk:
            raise ValueError(f"{filename}: truncated: expected {n} bytes of {what}, "
                             f"the file ends after {got}")
        buf += chunk
        got += len(chunk)
    return buf


def _read_idx(filename, ndim):
    kind = "image" if ndim == 3 else "label"
    expected_magic = (_UBYTE << 8) | ndim
    with _open(filename) as f:
        try:
            (magic,) = struct.unpack(">I", _read_exact(f, 4, filename, "header"))
            if magic != expected_magic:
                raise ValueError(f"{filename}: bad magic number 0x{magic:08x}, an IDX {kind} "
                                 f"file starts with 0x{expected_magic:08x}")
            dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, filename, "header"))
            if ndim == 3 and 0 in dims[1:]:
                raise ValueError(f"{filename}: header gives images of {dims[1]}x{dims[2]} pixels")
            size = math.prod(dims)
            if size > _MAX_BYTES:
                raise ValueError(f"{filename}: header claims dims {dims} ({size} bytes), "
                                 "not a plausible MNIST file")
            data = _read_exact(f, size, filename, f"{kind} data for dims {dims}")
            if f.read(1):
                raise ValueError(f"{filename}: trailing bytes after the {size} data bytes "
                                 f"that dims {dims} describe")
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{filename}: corrupt gzip data ({e})") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)
