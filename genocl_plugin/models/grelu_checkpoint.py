"""Load a gReLU ``LightningModel`` checkpoint (``.ckpt``), a pickle read without running code from it."""

from __future__ import annotations

import os

from genocl_plugin.errors import input_error
from genocl_plugin.models.lightning import GenoclLightningModel
from genocl_plugin.models.safe_loading import load_pickled_checkpoint


def load_grelu_checkpoint(path: str | os.PathLike, trust: bool | None = None) -> GenoclLightningModel:
    """Load a gReLU ``LightningModel`` checkpoint (``.ckpt``) without running pickled code.

    gReLU checkpoints are Lightning pickles holding numpy arrays (``performance``) and, in
    some files, pandas tables; they are read with ``torch.load(weights_only=True)`` and the
    allow-list of :func:`checkpoint_safe_globals`. ``trust=True`` (``--trust-checkpoint``)
    reads legacy files holding other objects as full pickles.
    """
    ckpt = load_pickled_checkpoint(path, trust=trust, unreadable="not a loadable gReLU checkpoint",
                                   fix="pass a .ckpt written by grelu's LightningModel")
    try:
        hparams = ckpt["hyper_parameters"]
        model = GenoclLightningModel(dict(hparams["model_params"]),
                                     dict(hparams.get("train_params", {})))
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items()
                 if k.startswith("model.")}
        model.model.load_state_dict(state)
    except Exception as err:
        raise input_error(
            path, "checkpoint", f"not a loadable gReLU checkpoint ({type(err).__name__})",
            "pass a .ckpt written by grelu's LightningModel",
        ) from None
    data_params = dict(ckpt.get("data_params") or {})
    model.data_params = grelu_data_params(data_params, model.model_params)
    return model


def grelu_data_params(data_params: dict, model_params: dict) -> dict:
    """gReLU's ``data_params`` as genocl reads them: task names, train seq_len and bin size.

    gReLU stores ``tasks`` as a dict of lists (``DataFrame.to_dict(orient="list")``); older
    files hold the DataFrame itself. The bin size is None for unbinned labels; the trunk's
    own resolution (2 ** n_conv for Enformer, 32 bp for Borzoi) is used then.
    """
    import pandas as pd

    data_params = dict(data_params)
    tasks = data_params.get("tasks")
    if isinstance(tasks, pd.DataFrame):
        tasks = tasks.reset_index().to_dict(orient="list") if "name" not in tasks else tasks.to_dict(orient="list")
    tasks = dict(tasks or {})
    data_params["tasks"] = {"name": [str(n) for n in tasks.get("name", [])]} if tasks else {}
    train = dict(data_params.get("train") or {})
    kind = str(model_params.get("model_type", ""))
    if train.get("bin_size") is None:
        if "n_conv" in model_params:
            train["bin_size"] = 2 ** int(model_params["n_conv"])
        elif "Borzoi" in kind:
            train["bin_size"] = 32
    if train.get("seq_len") is None and "Borzoi" in kind:
        train["seq_len"] = 524_288
    data_params["train"] = train
    data_params["arch"] = ("enformer" if "Enformer" in kind else "borzoi" if "Borzoi" in kind else "grelu")
    return data_params
