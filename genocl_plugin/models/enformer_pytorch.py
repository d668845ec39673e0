"""Load an enformer-pytorch ``from_pretrained`` directory (``config.json`` + ``pytorch_model.bin``) offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

from genocl_plugin.errors import input_error
from genocl_plugin.models import safe_loading
from genocl_plugin.models.lightning import GenoclLightningModel


def load_enformer_pytorch_dir(path: str | os.PathLike, head: str | None = None,
                              seq_len: int | None = None) -> GenoclLightningModel:
    """Load an enformer-pytorch ``save_pretrained`` / ``from_pretrained`` directory offline.

    ``head``: ``human`` (5,313 tracks) or ``mouse`` (1,643); default the :func:`enformer_head`
    setting (``--head``), else ``human``.
    """
    from enformer_pytorch import Enformer

    config = Path(path) / "config.json"
    try:
        data = json.loads(config.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise input_error(config, "config.json", f"not valid UTF-8 JSON ({type(err).__name__})",
                          "pass a directory written by Enformer.save_pretrained") from None
    if not isinstance(data, dict):
        raise input_error(config, "config.json", f"is a JSON {type(data).__name__}, not an object",
                          "pass a directory written by Enformer.save_pretrained")
    weights = [Path(path) / n for n in ("pytorch_model.bin", "model.safetensors") if (Path(path) / n).exists()]
    try:
        enformer = Enformer.from_pretrained(str(path), local_files_only=True)
    except Exception as err:
        # The config parsed, so the problem is the weights file (or a config of another model).
        blamed = weights[0] if weights else Path(path)
        field = "weights" if weights else "pytorch_model.bin"
        raise input_error(
            blamed, field, f"not loadable as enformer-pytorch weights ({type(err).__name__})",
            "pass a directory written by Enformer.save_pretrained",
        ) from None
    head = head or safe_loading._ENFORMER_HEAD or "human"
    heads = dict(enformer.config.output_heads)
    if head not in heads:
        raise input_error(path, "--head", f"no output head {head!r}", f"use one of {', '.join(heads)}")
    hparams = enformer.config.to_dict()
    hparams = {k: hparams[k] for k in (
        "dim", "depth", "heads", "output_heads", "target_length", "attn_dim_key", "dropout_rate",
        "attn_dropout", "pos_dropout", "use_checkpointing", "use_convnext", "num_downsamples",
        "dim_divisible_by", "use_tf_gamma") if k in hparams}
    model = GenoclLightningModel(
        {"model_type": "EnformerPytorchTracks", "hparams": hparams, "head": head},
        {"task": "regression", "loss": "poisson"},
    )
    model.model.enformer.load_state_dict(enformer.state_dict())
    n_down = int(hparams.get("num_downsamples", 7))
    target = int(hparams.get("target_length", 896))
    if seq_len is None:
        # Enformer's own input (196,608 bp = 1,536 bins, cropped to 896); otherwise twice the
        # target in bins, so the crop is symmetric ((bins - target) even).
        if (target == 896 and n_down == 7) or target <= 0:
            seq_len = 196_608
        else:
            seq_len = (2 * target + target % 2) * 2 ** n_down
    model.data_params = {
        "tasks": {"name": [f"{head}_{i}" for i in range(model.model.head.n_tasks)]},
        "train": {"seq_len": int(seq_len), "bin_size": 2 ** n_down},
        "arch": "enformer",
    }
    return model
