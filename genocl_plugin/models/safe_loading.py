"""Loading pickled checkpoints without running code from them, and the load-time settings.

:func:`load_pickled_checkpoint` is ``torch.load(weights_only=True)`` with an allow-list of
plain-data classes (:func:`checkpoint_safe_globals`); a file naming anything else is refused
before any of it runs. Two context managers set, for a block, how the format loaders read
files: :func:`trusted_checkpoints` (``--trust-checkpoint``: full pickles) and
:func:`enformer_head` (``--head``: the output head of enformer-pytorch / borzoi-pytorch models).
"""

from __future__ import annotations

import contextlib
import os

import torch

from genocl_plugin.errors import input_error

# What gReLU / Lightning checkpoints really pickle besides tensors (measured on checkpoints
# written by gReLU 1.1 ``train_on_dataset``: ``performance`` holds numpy arrays; older gReLU
# versions and hand-made zoo files keep ``data_params["tasks"]`` / intervals as pandas objects).
_SAFE_GLOBAL_NAMES = (
    "numpy.ndarray", "numpy.dtype", "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "builtins.slice",
    "pandas.core.frame.DataFrame", "pandas.core.series.Series",
    "pandas.core.indexes.base.Index", "pandas.core.indexes.base._new_Index",
    "pandas.core.indexes.range.RangeIndex", "pandas.core.internals.managers.BlockManager",
    "pandas.core.internals.managers.SingleBlockManager", "pandas._libs.internals._unpickle_block",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
)
_TRUST_CHECKPOINTS = False
_ENFORMER_HEAD: str | None = None


@contextlib.contextmanager
def enformer_head(head: str | None):
    """Within the block, enformer-pytorch / borzoi-pytorch directories load with this output head (``--head``)."""
    global _ENFORMER_HEAD
    previous, _ENFORMER_HEAD = _ENFORMER_HEAD, head
    try:
        yield
    finally:
        _ENFORMER_HEAD = previous


@contextlib.contextmanager
def trusted_checkpoints(enabled: bool = True):
    """Within the block, pickled checkpoints load with ``weights_only=False`` (``--trust-checkpoint``).

    Off by default: a pickle can run any code when it is loaded.
    """
    global _TRUST_CHECKPOINTS
    previous, _TRUST_CHECKPOINTS = _TRUST_CHECKPOINTS, bool(enabled)
    try:
        yield
    finally:
        _TRUST_CHECKPOINTS = previous


def checkpoint_safe_globals() -> list:
    """The allow-list for ``torch.load(weights_only=True)``: numpy/pandas/Lightning data types only.

    Only classes that rebuild plain data are listed (arrays, dtypes, data frames, dicts);
    nothing that calls a function named by the file.
    """
    import importlib

    import numpy as np

    allowed = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGOUSV"]
    for name in _SAFE_GLOBAL_NAMES:
        module, _, attr = name.rpartition(".")
        try:
            allowed.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):  # other numpy / pandas / Lightning versions
            continue
    return allowed


def load_pickled_checkpoint(path: str | os.PathLike, extra_globals: list | None = None,
                            trust: bool | None = None, field: str = "checkpoint",
                            unreadable: str = "not a readable torch checkpoint",
                            fix: str = "pass the file as it was written by torch.save / Lightning"):
    """``torch.load`` a pickled checkpoint without running code from it.

    Parameters
    ----------
    path
        The file.
    extra_globals
        Classes allowed besides :func:`checkpoint_safe_globals` (e.g. bpnet-lite's ``BPNet``).
    trust
        Load with ``weights_only=False`` (legacy files from a trusted source); default: the
        :func:`trusted_checkpoints` setting (off).
    field, unreadable, fix
        The error message for a file that is not a torch pickle at all.

    Raises
    ------
    GenoclInputError
        The file names a class or function outside the allow-list (nothing of it was run).
    """
    trust = _TRUST_CHECKPOINTS if trust is None else trust
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    allowed = checkpoint_safe_globals() + list(extra_globals or [])
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        error = err
    # weights_only refused before executing anything; name what it refused, if anything.
    try:
        names = {f"{g.__module__}.{g.__qualname__}" for g in allowed if hasattr(g, "__qualname__")}
        unsafe = sorted(g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in names)
    except Exception:
        unsafe = []
    if not unsafe:
        raise input_error(path, field, f"{unreadable} ({type(error).__name__})", fix) from None
    raise input_error(
        path, field, f"refused to unpickle: it names {', '.join(unsafe[:3])}, which could run code "
        "when loaded", "if you trust where the file comes from, pass --trust-checkpoint",
    )
