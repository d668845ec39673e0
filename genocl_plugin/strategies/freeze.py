"""Partial freezing: keep chosen parts of the network exactly as the base model had them.

Parts (``--freeze embedding,conv,batchnorm``):

- ``embedding``: the input stem that reads the one-hot sequence (Enformer's first conv block,
  BPNet's ``iconv``, Puffin's motif layer). gReLU calls the whole trunk its "embedding"; that is ``trunk`` here;
- ``conv``: the convolutional tower (with the stem and Enformer's pointwise conv);
- ``transformer``: Enformer's transformer tower;
- ``batchnorm``: every BatchNorm layer, put in eval mode so screen batches do not overwrite its
  running statistics, and its affine weights frozen;
- ``trunk``: everything except the output heads (gReLU's ``freeze_embedding``).

Frozen parameters get ``requires_grad=False``: they receive no gradient, so Adam skips them
and they stay bit-identical.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch import nn

from genocl_plugin.errors import input_error
from genocl_plugin.models.adapters import SCREEN_HEADS

PARTS = ("embedding", "conv", "transformer", "batchnorm", "trunk")


def head_prefixes(net: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the base model's own output heads."""
    if hasattr(net, "bpnet"):
        return ("bpnet.fconv.", "bpnet.linear.")
    if hasattr(net, "enformer"):
        return ("enformer._heads.",)
    if hasattr(net, "borzoi"):
        return ("borzoi.human_head.", "borzoi.mouse_head.")
    if hasattr(net, "puffin"):
        # Puffin's effect layer (the 601-bp "deconvolutions") turns motif activations into tracks.
        return ("puffin.effects.",)
    return ("head.",)


def part_prefixes(net: nn.Module, part: str) -> tuple[str, ...]:
    """Parameter-name prefixes of one part of a genocl network (see the module docstring)."""
    if hasattr(net, "bpnet"):
        table = {"embedding": ("bpnet.iconv.",), "conv": ("bpnet.iconv.", "bpnet.rconvs."), "transformer": ()}
    elif hasattr(net, "enformer"):
        table = {"embedding": ("enformer.stem.",), "conv": ("enformer.stem.", "enformer.conv_tower."),
                 "transformer": ("enformer.transformer.",)}
    elif hasattr(net, "puffin"):
        # Puffin has one motif layer under its effect layer: it is the stem and the whole trunk.
        table = {"embedding": ("puffin.motifs.",), "conv": ("puffin.motifs.",), "transformer": ()}
    elif hasattr(net, "borzoi"):
        # borzoi-pytorch: stem, residual conv tower and the first U-net conv, then the transformer.
        table = {"embedding": ("borzoi.conv_dna.",),
                 "conv": ("borzoi.conv_dna.", "borzoi.res_tower.", "borzoi.unet1."),
                 "transformer": ("borzoi.transformer.",)}
    else:
        table = {"embedding": ("embedding.conv_tower.blocks.0.",),
                 "conv": ("embedding.conv_tower.", "embedding.pointwise_conv."),
                 "transformer": ("embedding.transformer_tower.",)}
    return table[part]


def is_head(name: str, net: nn.Module) -> bool:
    """Whether a parameter belongs to an output head (the model's own or a screen head)."""
    return name.startswith(SCREEN_HEADS + ".") or name.startswith(head_prefixes(net))


def batchnorm_modules(net: nn.Module) -> list[nn.Module]:
    """Every BatchNorm layer of the network."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def set_batchnorm_eval(net: nn.Module) -> None:
    """Eval mode for BatchNorm layers: normalise with, and never update, the running stats."""
    for module in batchnorm_modules(net):
        module.eval()


def freeze_parts(net: nn.Module, parts: list[str]) -> list[str]:
    """Set ``requires_grad=False`` on the parameters of the named parts.

    Returns
    -------
    list of str
        Names of the parameters frozen.
    """
    bn_params = {id(p) for m in batchnorm_modules(net) for p in m.parameters()}
    frozen = []
    for name, param in net.named_parameters():
        hit = ("trunk" in parts and not is_head(name, net)) or \
              ("batchnorm" in parts and id(param) in bn_params) or \
              any(name.startswith(part_prefixes(net, p)) for p in parts if p not in ("trunk", "batchnorm"))
        if hit:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def parse_parts(spec: str | list[str]) -> list[str]:
    """``"embedding,conv"`` -> ``["embedding", "conv"]``, validated."""
    parts = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    for part in parts:
        if part not in PARTS:
            raise input_error("--freeze", part, "unknown part", f"choose from {', '.join(PARTS)}")
    return parts


class FreezeCallback(pl.Callback):
    """Freeze parts of the model for the whole update.

    Parameters
    ----------
    parts
        Parts to freeze (see :data:`PARTS`).
    """

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self.frozen: list[str] = []

    def setup(self, trainer, pl_module, stage: str) -> None:
        # setup runs before configure_optimizers and before DDP wraps the module, so
        # the optimizer and DDP's gradient buckets already see the final requires_grad.
        self.frozen = freeze_parts(pl_module.model, self.parts)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # Lightning puts the whole module in train mode at the start of every epoch (and
        # after validation), so BatchNorm eval mode is re-applied before every batch.
        if "batchnorm" in self.parts or "trunk" in self.parts:
            set_batchnorm_eval(pl_module.model)

    def summary(self) -> dict:
        """What was frozen (recorded in metrics.json)."""
        return {"parts": self.parts, "n_frozen_tensors": len(self.frozen)}


class FrozenBatchNormStats(pl.Callback):
    """Keep BatchNorm running statistics as the parent had them (``--batchnorm-stats frozen``).

    BatchNorm layers normalise with the stored statistics and never update them; their affine
    weights still train (``--freeze batchnorm`` freezes those too). This is the usual way to
    fine-tune a BatchNorm network on data unlike its training data (Keras' transfer-learning
    guide does the same).
    """

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # Lightning puts the whole module in train mode at the start of every epoch.
        set_batchnorm_eval(pl_module.model)


def freeze_callbacks(freeze: str | list[str] | None = None, **_params) -> list:
    """The freeze callback for ``--freeze`` (default: ``embedding,conv,batchnorm``)."""
    return [FreezeCallback(parse_parts(freeze or "embedding,conv,batchnorm"))]
