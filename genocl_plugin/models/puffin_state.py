"""Load Puffin's released state dict (``resources/puffin.pth`` of jzhoulab/puffin) as a genocl model.

Kept apart from :mod:`genocl_plugin.models.puffin` (the network), which the Lightning module
imports: a loader there would import the Lightning module back.
"""

from __future__ import annotations

import os

from genocl_plugin.errors import input_error
from genocl_plugin.models.lightning import GenoclLightningModel


def load_puffin_state(state: dict, path: str | os.PathLike = "puffin.pth",
                      seq_len: int | None = None) -> GenoclLightningModel:
    """A GenoclLightningModel from Puffin's state dict (``resources/puffin.pth`` of jzhoulab/puffin).

    Raises
    ------
    GenoclInputError
        A tensor of the wrong shape or a key Puffin does not have.
    """
    from genocl_plugin.models.puffin import DEFAULT_SEQ_LEN, STATE_KEYS, TRACK_NAMES, UNUSED_KEYS

    extra = sorted(str(k) for k in state if str(k) not in STATE_KEYS | UNUSED_KEYS)
    if extra:
        raise input_error(path, "weights", f"not Puffin's state dict (unexpected key {extra[0]})",
                          "pass resources/puffin.pth of jzhoulab/puffin as it was released")
    model = GenoclLightningModel({"model_type": "PuffinTracks"}, {"task": "regression", "loss": "poisson"})
    try:
        model.model.load_puffin_state(state)
    except (RuntimeError, KeyError) as err:
        text = " ".join(str(err).split())
        first = text.split(":", 1)[1].strip() if text.startswith("Error(s)") else text
        raise input_error(path, "weights", f"state dict does not fit Puffin ({first.split('. ')[0][:200]})",
                          "pass resources/puffin.pth of jzhoulab/puffin as it was released") from None
    model.data_params = {"tasks": {"name": list(TRACK_NAMES)},
                         "train": {"seq_len": int(seq_len or DEFAULT_SEQ_LEN), "bin_size": 1},
                         "arch": "puffin"}
    return model
