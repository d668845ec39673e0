"""``load_model``: a model from a bundled name or a local file, whatever its format.

Recognises the format from the path (a genocl model or run directory, an enformer-pytorch or
borzoi-pytorch directory, a gReLU ``.ckpt``, a ``torch.save`` file) and hands it to that
format's loader in this package.
"""

from __future__ import annotations

import os
from pathlib import Path

from genocl_plugin.errors import input_error
from genocl_plugin.models.borzoi_pytorch import is_borzoi_pytorch_dir, load_borzoi_pytorch_dir
from genocl_plugin.models.bpnet import load_torch_file
from genocl_plugin.models.enformer_pytorch import load_enformer_pytorch_dir
from genocl_plugin.models.genocl_dir import _load_genocl_dir, resolve_model_dir
from genocl_plugin.models.grelu_checkpoint import load_grelu_checkpoint
from genocl_plugin.models.lightning import GenoclLightningModel


def load_model(spec: str | os.PathLike) -> GenoclLightningModel:
    """Load a model from a bundled name or a local file in any supported format.

    Parameters
    ----------
    spec
        ``enformer`` / ``procapnet`` (the bundled minis), a genocl model or run directory,
        a gReLU ``.ckpt``, an enformer-pytorch or borzoi-pytorch ``from_pretrained``
        directory, a bpnet-lite / ProCapNet ``.pt`` / ``.torch`` file or a Puffin ``.pth``.

    Returns
    -------
    GenoclLightningModel
        In eval mode.

    Raises
    ------
    GenoclInputError
        Unknown name, missing file, or a file that is not a model of a supported format.
    """
    model_dir = resolve_model_dir(spec)
    path = Path(spec)
    if model_dir is not None:
        model = _load_genocl_dir(model_dir)
    elif not path.exists():
        raise input_error(
            spec, "--model", "not a bundled model name or an existing path",
            "use enformer, procapnet, a run directory or a checkpoint file",
        )
    elif path.is_dir() and is_borzoi_pytorch_dir(path):
        model = load_borzoi_pytorch_dir(path)
    elif path.is_dir() and (path / "config.json").exists():
        model = load_enformer_pytorch_dir(path)
    elif path.suffix == ".ckpt":
        model = load_grelu_checkpoint(path)
    elif path.suffix in (".pt", ".pth", ".torch"):
        model = load_torch_file(path)
    else:
        raise input_error(
            spec, "--model", "unrecognised model format",
            "pass a genocl model dir, a gReLU .ckpt, an enformer-pytorch or borzoi-pytorch dir, "
            "a bpnet-lite .torch/.pt or a Puffin .pth",
        )
    model.eval()
    return model
