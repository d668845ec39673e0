"""Atomic writes: nothing the user had is overwritten or half-written.

Every output is written to a temporary sibling first and renamed into place only when
complete; a failure half-way leaves the previous state untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from genocl_plugin.errors import input_error


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
    if path.exists() and not force:
        raise input_error(path, "output", "already exists", "choose another path or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only when the block succeeds.

    Parameters
    ----------
    path
        Final directory.
    force
        Replace an existing directory (it is removed only after the new one is complete).

    Yields
    ------
    Path
        A fresh temporary directory beside ``path``.
    """
    path = Path(path)
    if path.exists() and not force:
        raise input_error(path, "--out", "already exists", "choose a new directory or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 directories
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


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
