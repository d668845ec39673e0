"""LoRA: low-rank adapters on the trunk, base weights frozen (Hu et al. 2021).

Adapters come from Hugging Face ``peft`` (``inject_adapter_in_model``), which wraps any
``nn.Module`` (not only transformers models), so it wraps gReLU's Enformer and bpnet-lite's
BPNet directly. Targets are the trunk's ``Conv1d`` and ``Linear`` layers (convolutional
tower, attention and feed-forward projections); output heads keep their weights.

Injecting them (:func:`~genocl_plugin.models.adapters.apply_lora`, with its fix-up for dilated
convolutions) is model architecture and lives in :mod:`genocl_plugin.models.adapters`.

The adapter configuration is recorded in ``model_params["lora"]`` and the adapters are
saved unmerged, so ``load_model`` rebuilds them and the base weights remain recoverable.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch import nn

# apply_lora is model architecture (genocl_plugin.models.adapters, which load_model rebuilds adapters
# with); it stays importable from here.
from genocl_plugin.models.adapters import apply_lora  # noqa: F401
from genocl_plugin.strategies.freeze import SCREEN_HEADS, is_head, set_batchnorm_eval

DEFAULT_RANK = 8


def lora_targets(net: nn.Module, rank: int = DEFAULT_RANK) -> list[str]:
    """Full names of the trunk's ``Conv1d`` / ``Linear`` layers (the adapter targets).

    Grouped convolutions (Borzoi's depthwise separable convolutions, ``groups == channels``)
    are left out unless ``rank`` is a multiple of ``groups``: peft refuses them otherwise, and a
    depthwise kernel holds only ``kernel_size`` weights per channel to adapt.
    """
    return [name for name, module in net.named_modules()
            if isinstance(module, nn.Conv1d | nn.Linear) and not is_head(name + ".", net)
            and (getattr(module, "groups", 1) == 1 or rank % module.groups == 0)]


def adapter_parameters(net: nn.Module) -> list[str]:
    """Names of the LoRA adapter parameters."""
    return [name for name, _ in net.named_parameters() if ".lora_" in name]


class LoraCallback(pl.Callback):
    """Add LoRA adapters to the trunk and train only them (and a new screen head, if any).

    Parameters
    ----------
    rank
        Adapter rank ``r``.
    alpha
        LoRA scaling numerator (update scaled by ``alpha / r``); default ``r``.
    """

    def __init__(self, rank: int = DEFAULT_RANK, alpha: float | None = None) -> None:
        self.rank, self.alpha = int(rank), float(alpha if alpha is not None else rank)
        self.spec: dict | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Before configure_optimizers and DDP wrapping, like every architecture change.
        if self.spec is not None:
            return
        net = pl_module.model
        # A screen head added by strategies.multihead keeps training next to the adapters.
        keep = {name for name, p in net.named_parameters() if p.requires_grad and name.startswith(SCREEN_HEADS)}
        if pl_module.model_params.get("lora"):
            # The parent already has adapters: keep training them.
            self.spec = pl_module.model_params["lora"]
        else:
            self.spec = {"r": self.rank, "alpha": self.alpha, "target_modules": lora_targets(net, self.rank)}
            apply_lora(net, self.spec)
            pl_module.model_params["lora"] = self.spec
        for name, param in net.named_parameters():
            param.requires_grad_(".lora_" in name or name in keep)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # Frozen base = frozen BatchNorm statistics too, or the base model would still drift.
        set_batchnorm_eval(pl_module.model)

    def summary(self) -> dict:
        """Adapter settings (recorded in metrics.json)."""
        return {"r": self.spec["r"], "alpha": self.spec["alpha"], "n_targets": len(self.spec["target_modules"])}


def lora_callbacks(lora_rank: int | None = None, lora_alpha: float | None = None, **_params) -> list:
    """The LoRA callback (``--strategy lora --lora-rank 8``)."""
    return [LoraCallback(lora_rank or DEFAULT_RANK, lora_alpha)]
