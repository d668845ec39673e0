"""Load a ``torch.save`` file: a bpnet-lite saved model or a ProCapNet fold state dict (or Puffin's).

Files are unpickled with ``weights_only=True`` and an allow-list of the bpnet-lite, torch and
numpy classes they contain (:func:`bpnet_safe_globals`), so no arbitrary code runs; the
BPNet's architecture is inferred from the tensor shapes.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from genocl_plugin.errors import GenoclInputError, input_error
from genocl_plugin.models.lightning import GenoclLightningModel
from genocl_plugin.models.puffin import is_puffin_state
from genocl_plugin.models.puffin_state import load_puffin_state
from genocl_plugin.models.safe_loading import load_pickled_checkpoint


def load_torch_file(path: str | os.PathLike, seq_len: int | None = None,
                    trust: bool | None = None) -> GenoclLightningModel:
    """Load a ``torch.save`` file: a whole bpnet-lite ``BPNet``, a BPNet / ProCapNet state dict or Puffin's.

    The file is read once with ``weights_only=True`` and the allow-list of :func:`bpnet_safe_globals`
    (no pickled code runs); what it holds decides the format.
    """
    obj = _load_bpnet_pickle(path, trust)
    if is_puffin_state(obj):
        return load_puffin_state(obj, path, seq_len)
    return load_bpnet_file(path, seq_len=seq_len, trust=trust, obj=obj)


def bpnet_safe_globals() -> list:
    """What a whole bpnet-lite model pickles besides tensors: its module classes and numpy scalars.

    ``BPNet.fit`` saves the model with its training log (numpy scalars). A file written under
    numpy 1.x names ``numpy.core.multiarray.scalar``, which numpy 2 keeps only as an alias of
    ``numpy._core.multiarray.scalar``; torch matches allowed globals by the name in the file, so
    the scalar is listed under both names.
    """
    import numpy as np
    from bpnetlite.bpnet import BPNet
    from bpnetlite.logging import Logger

    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    allowed = [BPNet, Logger, nn.Conv1d, nn.Linear, nn.ModuleList, nn.ReLU, np.dtype, scalar,
               (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdFD"]
    return allowed


def _load_bpnet_pickle(path: str | os.PathLike, trust: bool | None = None):
    fix = "pass a file written by torch.save(bpnet), torch.save(bpnet.state_dict()) or Puffin's puffin.pth"
    try:
        return load_pickled_checkpoint(path, extra_globals=bpnet_safe_globals(), trust=trust, field="weights",
                                       unreadable="not a bpnet-lite / Puffin model or state dict", fix=fix)
    except GenoclInputError:
        raise
    except Exception as err:
        raise input_error(path, "weights", f"not a bpnet-lite / Puffin model or state dict ({type(err).__name__})",
                          fix) from None


def load_bpnet_file(path: str | os.PathLike, seq_len: int | None = None,
                    trust: bool | None = None, obj=None) -> GenoclLightningModel:
    """Load a bpnet-lite saved model or a ProCapNet fold state dict.

    A whole saved ``BPNet`` is unpickled with ``weights_only=True`` and an allow-list of the
    bpnet-lite and torch classes it contains (:func:`bpnet_safe_globals`), so no arbitrary code
    runs. ``obj``: the file's content when the caller has read it already.
    """
    if obj is None:
        obj = _load_bpnet_pickle(path, trust)
    state = obj.state_dict() if isinstance(obj, nn.Module) else obj
    if not isinstance(state, dict) or "iconv.weight" not in state:
        raise input_error(path, "weights", "no BPNet weights (iconv.weight missing)",
                          "pass a BPNet / ProCapNet state dict")
    for key in ("fconv.weight", "iconv.weight"):
        if key not in state or not isinstance(state[key], torch.Tensor) or state[key].ndim != 3:
            raise input_error(path, key, "missing or not a 3-D convolution weight",
                              "pass a complete BPNet / ProCapNet state dict")
    n_filters = state["iconv.weight"].shape[0]
    n_layers = len([k for k in state if k.startswith("rconvs.") and k.endswith(".weight")])
    n_outputs = state["fconv.weight"].shape[0]
    n_control = state["fconv.weight"].shape[1] - n_filters
    trimming = getattr(obj, "trimming", None)
    params = {"model_type": "ProCapNetBPNet", "n_filters": int(n_filters),
              "n_layers": int(n_layers), "n_outputs": int(n_outputs),
              "n_control_tracks": int(n_control),
              "trimming": int(trimming) if trimming is not None else None}
    if n_control:
        raise input_error(path, "weights", f"{n_control} control tracks",
                          "genocl supports ProCapNet-style BPNets without control tracks")
    model = GenoclLightningModel(params, {"task": "regression", "loss": "procapnet"})
    try:
        model.model.bpnet.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        # load_state_dict lists every missing / unexpected key and shape; the first is enough.
        text = " ".join(str(err).split())
        first = text.split(":", 1)[1].strip() if text.startswith("Error(s)") else text
        first = first.split(". ")[0][:200] or type(err).__name__
        raise input_error(path, "weights", f"state dict does not fit a BPNet ({first})",
                          "pass a complete, unmodified BPNet / ProCapNet state dict") from None
    trim = model.model.bpnet.trimming
    model.data_params = {
        "tasks": {"name": ["plus", "minus"][:n_outputs] if n_outputs <= 2 else
                  [f"track_{i}" for i in range(n_outputs)]},
        "train": {"seq_len": int(seq_len or 2 * trim + 1000), "bin_size": 1},
        "arch": "procapnet",
    }
    return model
