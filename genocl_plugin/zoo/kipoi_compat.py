"""Make Kipoi 0.8.6 importable and usable on today's stack: its config-file crash and NumPy 2.

Kipoi is imported here, once, behind the config-file check; the other zoo modules take
Kipoi's classes from this module (or import ``kipoi`` inside functions, after the package
has imported this module).
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import numpy as np
import yaml

from genocl_plugin.errors import GenoclInputError, input_error

# Kipoi's classes too: the other zoo modules import them from here, behind the config-file check below.
__all__ = [
    "BaseModel", "Dataset", "GenomicRanges", "classproperty",
    "kipoi_config_error", "kipoi_config_path", "restore_numpy_aliases_for_kipoi",
]


# --------------------------------------------------------------------------------------
# Kipoi reads its config file (``~/.kipoi/config.yaml``) when it is first imported, and Kipoi
# 0.8.6 crashes there with a bare TypeError / KeyError / YAML error on a malformed one (a YAML
# list, an empty file, ``model_sources`` that is not a mapping). Every zoo command imports Kipoi
# through this module, so that failure is turned into one line naming the file and the fix.
# --------------------------------------------------------------------------------------
def kipoi_config_path() -> Path:
    """The config file Kipoi 0.8.6 reads when imported: ``~/.kipoi/config.yaml`` (``/tmp/.kipoi/``
    when the home directory is not writable, as ``kipoi/config.py`` decides)."""
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return Path(base) / ".kipoi" / "config.yaml"


def kipoi_config_error(err: BaseException) -> GenoclInputError | None:
    """The one-line error for Kipoi failing at import on a malformed config file, or None if it is not that.

    Parameters
    ----------
    err
        What importing Kipoi raised.
    """
    path = kipoi_config_path()
    in_config = any(Path(frame.filename).as_posix().endswith("kipoi/config.py")
                    for frame in traceback.extract_tb(err.__traceback__))
    if not in_config or not path.is_file():
        return None
    fix = f"repair {path} or delete it (Kipoi writes a default one; `genocl zoo register` then adds the zoo)"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return input_error(path, path.name, f"unreadable YAML ({type(exc).__name__})", fix)
    if data is None:
        return input_error(path, path.name, "is empty (Kipoi needs model_sources)", fix)
    if not isinstance(data, dict):
        return input_error(path, path.name, f"is a YAML {type(data).__name__}, not a mapping", fix)
    sources = data.get("model_sources")
    if not isinstance(sources, dict):
        what = "missing" if sources is None else f"is a YAML {type(sources).__name__}, not a mapping"
        return input_error(path, "model_sources", what, fix)
    if isinstance(err, ImportError):  # the file looks right: a broken installation, not the config
        return None
    problem = f"Kipoi cannot load it ({type(err).__name__}: {err})".replace("\n", " ")[:300]
    return input_error(path, "model_sources", problem, fix)


try:
    from kipoi.data import Dataset
    from kipoi.metadata import GenomicRanges
    from kipoi.model import BaseModel
    from kipoi_utils.utils import classproperty
except Exception as _err:
    _config_error = kipoi_config_error(_err)
    if _config_error is None:
        raise
    raise _config_error from None

# --------------------------------------------------------------------------------------
# The one Kipoi workaround (Kipoi 0.8.6 on NumPy 2).
#
# kipoi/writers.py (HDF5BatchWriter, ZarrBatchWriter; used by ``kipoi test -o``,
# ``kipoi predict`` and by :func:`publish` to write test.expect) compares every array's
# dtype with ``np.string_`` / ``np.unicode_``. NumPy 2.0 removed those two names; they were
# plain aliases of ``np.bytes_`` / ``np.str_``, so restoring exactly those aliases gives
# Kipoi the NumPy 1.x behaviour it was written for and changes nothing else. Applied when
# this module is imported, which Kipoi does itself when it loads a genocl entry.
# Regression test: tests/test_zoo.py::test_kipoi_hdf5_writer_works_on_numpy2.
# Kipoi's other breakage (its dependency ``related`` imports ``six`` without declaring it)
# is handled by declaring ``six`` in setup.cfg, not here.
# --------------------------------------------------------------------------------------
_NUMPY_ALIASES_KIPOI_NEEDS = {"string_": "bytes_", "unicode_": "str_"}


def restore_numpy_aliases_for_kipoi() -> list[str]:
    """Re-add the NumPy 1.x aliases Kipoi 0.8.6's writers use, if missing.

    Returns
    -------
    list of str
        The aliases that were added (empty on NumPy 1.x or if already restored).
    """
    added = []
    for old, new in _NUMPY_ALIASES_KIPOI_NEEDS.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))
            added.append(old)
    return added


restore_numpy_aliases_for_kipoi()
