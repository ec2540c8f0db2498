"""The content-addressed build cache: $GRAPHC_CACHE_DIR, else ~/.cache/graphc.

An entry is a file (a shared library) plus `<stem>.json`, a manifest holding the file's sha256.
An entry is used only when the file's sha256 matches its manifest; anything else (missing,
truncated, garbage, half-written) is rebuilt. Builds run in a private temporary directory inside
the cache dir and are moved in with os.replace, so no reader ever sees half a file; a per-entry
file lock makes a second process wait for the first one's build instead of repeating it.
"""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # no advisory locks (Windows): the atomic replaces alone keep entries whole
    fcntl = None

FAILED_DIR = "failed"


def cache_dir() -> Path:
    path = Path(os.environ.get("GRAPHC_CACHE_DIR") or Path.home() / ".cache" / "graphc").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest(*parts) -> str:
    """sha256 of the parts, each length-prefixed so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        h.update(b"%d:" % len(data))
        h.update(data)
    return h.hexdigest()


def file_sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_path(path: Path) -> Path:
    return path.with_suffix(".json")


def is_valid(path: Path) -> bool:
    """The entry exists and its bytes are exactly those its manifest recorded."""
    try:
        manifest = json.loads(manifest_path(path).read_text())
        return manifest["sha256"] == file_sha256(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_atomic(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cache files are as readable as the libraries
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path):
    """Holds an exclusive lock on locks/<name>.lock (released by the OS if the process dies)."""
    if fcntl is None:
        yield
        return
    locks = path.parent / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / (path.name + ".lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def fetch_or_build(path: Path, build, info=None, force=False) -> bool:
    """Makes sure a valid entry is at `path`; returns True when this call had to build it.

    `force` rebuilds an entry that looks valid (its file matched the manifest but failed to load).
    `build(tmpdir)` builds in the private directory `tmpdir` and returns {final path: built file};
    the entry itself (`path`) must be among them. Other files (e.g. the kept C source) are moved in
    first, the entry next, its manifest last: a reader checks the manifest, so it sees the whole
    entry or none.
    """
    if not force and is_valid(path):
        return False
    with locked(path):
        if not force and is_valid(path):  # another process built it while we waited
            return False
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=path.parent))
        try:
            outputs = build(tmp)
            sha = file_sha256(outputs[path])
            for final, built in outputs.items():
                if final != path:
                    os.replace(built, final)
            os.replace(outputs[path], path)
            manifest = {"file": path.name, "sha256": sha, "created": time.time(), **(info or {})}
            write_atomic(manifest_path(path), json.dumps(manifest, indent=1).encode())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def remove_entry(path: Path):
    """Drops an entry that turned out unusable (e.g. a library that does not load)."""
    with locked(path):
        for p in (manifest_path(path), path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def failed_dir() -> Path:
    """Where the C source of a failed build is kept for the user to read (never loaded from)."""
    path = cache_dir() / FAILED_DIR
    path.mkdir(exist_ok=True)
    return path
