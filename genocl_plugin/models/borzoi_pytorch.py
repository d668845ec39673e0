"""Load a borzoi-pytorch ``from_pretrained`` directory (``config.json`` with ``model_type: borzoi``) offline.

borzoi-pytorch is an optional dependency (``pip install genocl[borzoi]``); the network itself
is :class:`~genocl_plugin.models.architectures.BorzoiPytorchTracks`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from genocl_plugin.data.fileio import read_json_object
from genocl_plugin.errors import input_error
from genocl_plugin.models import safe_loading
from genocl_plugin.models.architectures import import_borzoi_pytorch
from genocl_plugin.models.genocl_dir import FORMAT
from genocl_plugin.models.lightning import GenoclLightningModel

BORZOI_PYTORCH_SEQ_LEN = 524_288  # Borzoi's input: 16,384 bins of 32 bp, centre 6,144 predicted
BORZOI_PYTORCH_BIN_SIZE = 32
# The architecture part of a BorzoiConfig (the rest of config.json is transformers bookkeeping).
_BORZOI_CONFIG_KEYS = ("dim", "depth", "heads", "attn_dim_key", "attn_dim_value", "dropout_rate",
                       "attn_dropout", "pos_dropout", "return_center_bins_only", "bins_to_return",
                       "enable_human_head", "enable_mouse_head", "flashed")


def is_borzoi_pytorch_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a borzoi-pytorch ``save_pretrained`` directory (``model_type: borzoi``)."""
    config = Path(path) / "config.json"
    try:
        data = json.loads(config.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "borzoi" and data.get("format") != FORMAT


def borzoi_pytorch_track_names(head: str, n_tracks: int) -> list[str]:
    """Track names of a borzoi-pytorch head: ``description [identifier]`` from the ``targets.txt``
    borzoi-pytorch ships for the human head (Borzoi's 7,611 tracks), else ``<head>_<i>``."""
    import borzoi_pytorch
    import pandas as pd

    targets = Path(borzoi_pytorch.__file__).parent / "precomputed" / "targets.txt"
    if head == "human" and targets.exists():
        table = pd.read_csv(targets, sep="\t", index_col=0)
        if len(table) == n_tracks and {"identifier", "description"} <= set(table.columns):
            return [f"{d} [{i}]" for d, i in zip(table["description"].astype(str),
                                                 table["identifier"].astype(str), strict=True)]
    return [f"{head}_{i}" for i in range(n_tracks)]


def load_borzoi_pytorch_dir(path: str | os.PathLike, head: str | None = None,
                            seq_len: int | None = None) -> GenoclLightningModel:
    """Load a borzoi-pytorch ``save_pretrained`` / ``from_pretrained`` directory offline.

    Parameters
    ----------
    path
        Directory with ``config.json`` (``model_type: borzoi``) and ``model.safetensors`` or
        ``pytorch_model.bin`` (as the borzoi-replicate weights on the Hugging Face Hub).
    head
        ``human`` (7,611 tracks) or ``mouse`` (2,608; when the config enables it); default the
        :func:`enformer_head` setting (``--head``), else ``human``.
    seq_len
        Input length; default Borzoi's 524,288 bp.

    Raises
    ------
    GenoclInputError
        borzoi-pytorch missing, unloadable weights, a Flashzoi model without flash-attn, or
        an output head the model does not have.
    """
    borzoi_cls, _ = import_borzoi_pytorch(path)
    config = read_json_object(Path(path) / "config.json", "config.json")
    if config.get("flashed"):
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            raise input_error(Path(path) / "config.json", "flashed", "Flashzoi weights need flash-attn (a CUDA GPU)",
                              "install flash-attn on a GPU machine, or use a borzoi-replicate directory") from None
    weights = [Path(path) / n for n in ("model.safetensors", "pytorch_model.bin") if (Path(path) / n).exists()]
    if not weights:
        raise input_error(path, "model.safetensors", "missing (no weights file beside config.json)",
                          "pass a directory written by Borzoi.save_pretrained")
    try:
        # transformers reads pytorch_model.bin with torch.load(weights_only=True): no pickled code runs.
        borzoi, info = borzoi_cls.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except Exception as err:
        raise input_error(
            weights[0], "weights", f"not loadable as borzoi-pytorch weights ({type(err).__name__})",
            "pass a directory written by Borzoi.save_pretrained",
        ) from None
    # transformers only warns about weights absent from the file (and initialises them at
    # random); genocl refuses a partial model.
    absent = list(info.get("missing_keys") or []) + [str(k[0]) for k in info.get("mismatched_keys") or []]
    if absent:
        raise input_error(weights[0], "weights", f"{len(absent)} tensors missing or of the wrong shape "
                          f"(e.g. {absent[0]})", "pass the weights written with this config.json")
    heads = [h for h in ("human", "mouse") if isinstance(getattr(borzoi, f"{h}_head", None), nn.Module)]
    head = head or safe_loading._ENFORMER_HEAD or "human"
    if head not in heads:
        raise input_error(path, "--head", f"no output head {head!r}", f"use one of {', '.join(heads)}")
    arch = borzoi.config.to_dict()
    arch = {k: arch[k] for k in _BORZOI_CONFIG_KEYS if k in arch}
    model = GenoclLightningModel({"model_type": "BorzoiPytorchTracks", "config": arch, "head": head},
                                 {"task": "regression", "loss": "poisson"})
    model.model.borzoi.load_state_dict(borzoi.state_dict())
    n_tasks = model.model.head.n_tasks
    model.data_params = {
        "tasks": {"name": borzoi_pytorch_track_names(head, n_tasks)},
        "train": {"seq_len": int(seq_len or BORZOI_PYTORCH_SEQ_LEN), "bin_size": BORZOI_PYTORCH_BIN_SIZE},
        "arch": "borzoi",
    }
    return model
