"""Crash-safe writes: nothing the user had is overwritten or half-written.

Every output is written to a temporary sibling first and moved into place only when complete,
so at every instant its path holds the complete old or the complete new content (see
:func:`replace`); a failure half-way leaves the previous state untouched. An output is claimed
with a lock file before work starts, and what a killed run left behind (temporary siblings, a
``.old`` copy) is cleaned or restored by the next run of the same output. ``docs/reliability.md``
lists the guarantees.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from genocl_plugin.errors import input_error

# ---------------------------------------------------------------------------------------------
# Test-only crash points
# ---------------------------------------------------------------------------------------------
KILL_ENV = "GENOCL_TEST_KILL_AT"


def crash_point(name: str) -> None:
    """Test-only: end the process at once (``os._exit(137)``, like SIGKILL) at a named point.

    Active only when the environment variable ``GENOCL_TEST_KILL_AT`` equals ``name``; the
    crash-safety tests use it to kill ``update`` / ``publish`` / ``score-vcf`` between two
    steps of a replacement. Never set it outside tests.
    """
    if os.environ.get(KILL_ENV) == name:
        os._exit(137)


# ---------------------------------------------------------------------------------------------
# Claiming an output: one writer at a time
# ---------------------------------------------------------------------------------------------
_HELD: dict[str, list] = {}  # lock path -> [open file, depth]: this process's claims


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output: ``.NAME.lock`` beside it."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def claim(path: str | os.PathLike, field: str = "--out") -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``.NAME.lock`` beside ``path`` for the block.

    The lock file holds the owner's pid and is deleted when the block ends.

    A second process that claims the same output fails at once with one line (no waiting,
    no training that is thrown away later). Claims nest within one process. Ranks > 0 started
    by Lightning's DDP launcher re-run the command line but never write, so they do not claim.

    Raises
    ------
    GenoclInputError
        Another running genocl process holds the output.
    """
    import fcntl

    lock = lock_path(path)
    key = str(lock)
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        yield lock
        return
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield lock
        finally:
            _HELD[key][1] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        handle = open(lock, "a+")  # noqa: SIM115  (kept open while the lock is held)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise input_error(path, field, "another genocl process is writing it now",
                              "wait for that process to finish, or choose another output") from None
        # The holder deletes the lock file when it is done; a lock taken on a file that was
        # deleted meanwhile guards nothing, so take it again on the current file.
        try:
            if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    else:
        raise input_error(path, field, "its lock file keeps changing", "retry in a moment")
    _HELD[key] = [handle, 1]
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield lock
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            del _HELD[key]
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # still locked: a waiting process re-checks the inode
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def _is_claimed_elsewhere(path: Path) -> bool:
    """Whether another process holds ``path``'s lock (then its leftovers are not stale)."""
    import fcntl

    lock = lock_path(path)
    if str(lock) in _HELD or not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


# ---------------------------------------------------------------------------------------------
# Crash-safe replacement
# ---------------------------------------------------------------------------------------------
def _old_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _tmp_pattern(path: Path) -> re.Pattern:
    # mkstemp / mkdtemp names: ".NAME." + 8 random characters + ".tmp" (+ ".tbi"/".csi" for the
    # tabix index score-vcf builds beside a temporary VCF).
    return re.compile(rf"^\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp(\.tbi|\.csi)?$")


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Python has no binding for ``renameat2``; it is called from libc with ctypes.

    Returns
    -------
    bool
        False when the platform or filesystem does not support it (nothing was changed).
    """
    if os.environ.get("GENOCL_NO_RENAME_EXCHANGE"):  # lets tests exercise the fallback
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move ``new`` (a file or directory) to ``path`` so ``path`` always holds old or new content.

    A file is renamed over the old one (atomic). An existing directory is swapped with
    :func:`exchange` and the old copy deleted afterwards; where that is unsupported the old
    directory is first renamed to ``.NAME.old`` and restored by :func:`recover_replaced` (which
    every reader calls) if the process dies before the new one is in place.
    """
    new, path = Path(new), Path(path)
    if not path.is_dir() or path.is_symlink():
        os.replace(new, path)
        return
    if exchange(new, path):
        crash_point("replace:exchanged")
        _remove(new)  # now holds the previous content
        return
    old = _old_name(path)
    _remove(old)
    os.replace(path, old)
    crash_point("replace:between")
    os.replace(new, path)
    _remove(old)


def recover_replaced(path: str | os.PathLike) -> Path:
    """Restore ``path`` from a ``.NAME.old`` left by a replacement that was killed half-way.

    Safe to call on every read: it does nothing unless ``path`` is missing and its ``.old``
    copy exists and no live genocl process is writing ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    old = _old_name(path)
    if not path.exists() and old.exists() and not _is_claimed_elsewhere(path):
        try:
            os.replace(old, path)
        except OSError:  # a concurrent reader restored it first
            pass
    return path


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Remove what a killed run of the same output left: temporary siblings and a stale ``.old``.

    Called with the output claimed (so no live process owns them).

    Returns
    -------
    list of Path
        What was removed.
    """
    path = Path(path)
    recover_replaced(path)
    removed = []
    pattern = _tmp_pattern(path)
    if path.parent.is_dir():
        for sibling in path.parent.iterdir():
            if pattern.match(sibling.name):
                _remove(sibling)
                removed.append(sibling)
    old = _old_name(path)
    if old.exists() and path.exists():
        _remove(old)
        removed.append(old)
    return removed


def _check_not_dir_for_file(path: Path) -> None:
    if path.is_dir():
        raise input_error(path, "output", "is a directory", "name an output file, not a directory")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary file path that is renamed to ``path`` on success.

    Parameters
    ----------
    path
        Final destination.
    force
        Replace an existing file. Without it an existing ``path`` is an input error.

    Yields
    ------
    Path
        Temporary path in the same directory (same filesystem, so the rename is atomic).
    """
    path = Path(path)
    _check_not_dir_for_file(path)
    if path.exists() and not force:
        raise input_error(path, "output", "already exists", "choose another path or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    with claim(path):
        clean_stale(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        try:
            yield tmp_path
            crash_point(f"atomic_path:{path.name}")
            replace(tmp_path, path)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def _umask() -> int:
    """The process umask (it can only be read by setting it, so it is set back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only when the block succeeds.

    Parameters
    ----------
    path
        Final directory.
    force
        Replace an existing directory (swapped in one step, see :func:`replace`).

    Yields
    ------
    Path
        A fresh temporary directory beside ``path``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise input_error(path, "--out", "is a file, not a directory", "choose a directory path")
    if path.exists() and not force:
        raise input_error(path, "--out", "already exists", "choose a new directory or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    with claim(path):
        clean_stale(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories
        try:
            yield tmp
            crash_point(f"atomic_dir:{path.name}")
            replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


# ---------------------------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------------------------
SEAL_KEY = "config_sha256"


def json_seal(data: dict) -> str:
    """SHA-256 of a JSON object's canonical form, without its own ``config_sha256`` key.

    The object is round-tripped through JSON first, so the seal of what was written equals the
    seal of what is read back (tuples become lists, keys strings).
    """
    body = {k: v for k, v in data.items() if k != SEAL_KEY}
    canonical = json.dumps(json.loads(json.dumps(body, default=str)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def seal(data: dict) -> dict:
    """A copy of ``data`` with ``config_sha256`` set to its :func:`json_seal`."""
    return {**{k: v for k, v in data.items() if k != SEAL_KEY}, SEAL_KEY: json_seal(data)}


def check_seal(data: dict, path: str | os.PathLike) -> dict:
    """Raise when ``data`` carries a ``config_sha256`` that does not match its content.

    Raises
    ------
    GenoclInputError
        The file was edited or damaged after genocl wrote it.
    """
    expected = data.get(SEAL_KEY)
    if expected is not None and json_seal(data) != expected:
        raise input_error(path, SEAL_KEY, "does not match the file's content (edited or damaged after "
                          "genocl wrote it)", "restore the original file or re-create it with genocl")
    return data


def read_json_object(path: str | os.PathLike, field: str | None = None) -> dict:
    """Read a JSON object (UTF-8), with one-line errors for a missing, binary or non-object file."""
    path = Path(path)
    field = field or path.name
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise input_error(path, field, "missing", "re-create the directory with genocl") from None
    except IsADirectoryError:
        raise input_error(path, field, "is a directory", "it must be a JSON file") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise input_error(path, field, f"not valid UTF-8 JSON ({type(err).__name__})",
                          "restore the file or re-create the directory with genocl") from None
    if not isinstance(data, dict):
        raise input_error(path, field, f"is a JSON {type(data).__name__}, not an object",
                          "restore the file or re-create the directory with genocl")
    return data


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file with a ``hashlib`` algorithm, read in 1 MB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    return file_digest(path, "sha256")


def is_jsonable(value) -> bool:
    """Whether ``json.dumps`` accepts ``value`` (config fields that are not are left out)."""
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


GZIP_MAGIC = b"\x1f\x8b"


@contextlib.contextmanager
def open_text(path: str | os.PathLike, field: str, not_text: str, fix: str) -> Iterator:
    """Open a plain or gzipped text file (gzip told by its magic bytes, not by the name), UTF-8.

    Errors while opening *or reading in the block* become one line: an unreadable file, a
    damaged gzip, or bytes that are not text (``not_text`` / ``fix``: what to say then). Errors
    the block raises itself (e.g. a malformed line) pass through.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == GZIP_MAGIC
    except OSError as err:
        raise input_error(path, field, f"cannot be read ({err.strerror or type(err).__name__})",
                          "check the path and its permissions") from None
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")) as handle:
            yield handle
    except UnicodeDecodeError:
        raise input_error(path, field, not_text, fix) from None
    except (OSError, EOFError, zlib.error) as err:
        problem = "damaged gzip" if gzipped else "cannot be read"
        raise input_error(path, field, f"{problem} ({type(err).__name__})".replace("\n", " "),
                          "re-download the file or pass it decompressed") from None
