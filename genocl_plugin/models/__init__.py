"""Build and load base models: Enformer through gReLU, ProCapNet through bpnet-lite.

Every model is a :class:`GenoclLightningModel` (a thin subclass of gReLU's
``LightningModel``) whose ``forward(x, logits=True)`` returns **log predicted coverage** of
shape (batch, tracks, length) and whose activation is ``exp``. One convention for all
architectures lets the perturbation objectives, replay and variant scoring treat them alike.

Weight formats read from local files (no hub downloads) by :func:`load_model`:

- a genocl model directory (``config.json`` + ``model.safetensors``), what genocl writes;
- a genocl run directory (its ``model/`` subdirectory);
- a gReLU ``.ckpt`` (a pickle: load only files you trust);
- an enformer-pytorch ``from_pretrained`` directory (``config.json`` + ``pytorch_model.bin``);
- a borzoi-pytorch ``from_pretrained`` directory (``config.json`` with ``model_type: borzoi``;
  needs the optional dependency, ``pip install genocl[borzoi]``);
- a bpnet-lite saved model (``torch.save(model)``, loaded with an allow-list, no arbitrary pickle)
  or a ProCapNet fold state dict (``.pt`` / ``.torch``), architecture inferred from the shapes;
- a Puffin state dict (jzhoulab/puffin ``resources/puffin.pth``), recognised from its keys.

Modules, one job each: ``architectures`` (the networks and the ProCapNet loss), ``puffin``
(Puffin's network), ``adapters`` (screen heads and LoRA adapters strategies add), ``lightning``
(the Lightning module, ``build_model``), ``genocl_dir`` (genocl model directories),
``safe_loading`` (pickles without code, ``--trust-checkpoint`` / ``--head``), one loader per
format (``grelu_checkpoint``, ``enformer_pytorch``, ``borzoi_pytorch``, ``bpnet``,
``puffin_state``) and ``load`` (``load_model``, the dispatch over formats). Every public name
is re-exported here.
"""

from __future__ import annotations

from genocl_plugin.models.architectures import (
    BORZOI_EXTRA,
    ENFORMER_MINI,
    ENFORMER_MINI_SEQ_LEN,
    PROCAPNET_MINI,
    PROCAPNET_MINI_SEQ_LEN,
    BorzoiPytorchTracks,
    EnformerPytorchTracks,
    ProCapNetBPNet,
    ProCapNetLoss,
    borzoi_pytorch_output_bins,
    import_borzoi_pytorch,
)
from genocl_plugin.models.borzoi_pytorch import (
    BORZOI_PYTORCH_BIN_SIZE,
    BORZOI_PYTORCH_SEQ_LEN,
    borzoi_pytorch_track_names,
    is_borzoi_pytorch_dir,
    load_borzoi_pytorch_dir,
)
from genocl_plugin.models.bpnet import bpnet_safe_globals, load_bpnet_file, load_torch_file
from genocl_plugin.models.enformer_pytorch import load_enformer_pytorch_dir
from genocl_plugin.models.genocl_dir import (
    BUNDLED_MODELS,
    FORMAT,
    load_weights,
    read_config,
    resolve_model_dir,
    save_model,
    save_weights,
)
from genocl_plugin.models.grelu_checkpoint import grelu_data_params, load_grelu_checkpoint
from genocl_plugin.models.lightning import STRATEGY_ARCH_KEYS, GenoclLightningModel, build_model
from genocl_plugin.models.load import load_model
from genocl_plugin.models.puffin import PuffinTracks, is_puffin_state
from genocl_plugin.models.puffin_state import load_puffin_state
from genocl_plugin.models.safe_loading import (
    checkpoint_safe_globals,
    enformer_head,
    load_pickled_checkpoint,
    trusted_checkpoints,
)

__all__ = [
    "BORZOI_EXTRA", "BORZOI_PYTORCH_BIN_SIZE", "BORZOI_PYTORCH_SEQ_LEN", "BUNDLED_MODELS", "ENFORMER_MINI",
    "ENFORMER_MINI_SEQ_LEN", "FORMAT", "PROCAPNET_MINI", "PROCAPNET_MINI_SEQ_LEN", "STRATEGY_ARCH_KEYS",
    "BorzoiPytorchTracks", "EnformerPytorchTracks", "GenoclLightningModel", "ProCapNetBPNet", "ProCapNetLoss",
    "PuffinTracks", "borzoi_pytorch_output_bins", "borzoi_pytorch_track_names", "bpnet_safe_globals",
    "build_model", "checkpoint_safe_globals", "enformer_head", "grelu_data_params", "import_borzoi_pytorch",
    "is_borzoi_pytorch_dir", "is_puffin_state", "load_borzoi_pytorch_dir", "load_bpnet_file",
    "load_enformer_pytorch_dir", "load_grelu_checkpoint", "load_model", "load_pickled_checkpoint",
    "load_puffin_state", "load_torch_file", "load_weights", "read_config", "resolve_model_dir", "save_model",
    "save_weights", "trusted_checkpoints",
]
