"""The Lightning module every genocl model is, and building an untrained one.

Every model is a :class:`GenoclLightningModel` (a thin subclass of gReLU's
``LightningModel``) whose ``forward(x, logits=True)`` returns **log predicted coverage** of
shape (batch, tracks, length) and whose activation is ``exp``. One convention for all
architectures lets the perturbation objectives, replay and variant scoring treat them alike.
Architecture a strategy added (screen heads, LoRA adapters; :mod:`genocl_plugin.models.adapters`)
is recorded in ``model_params`` and rebuilt with the network.
"""

from __future__ import annotations

import torch
from grelu.lightning import LightningModel
from torch import nn

from genocl_plugin.errors import input_error
from genocl_plugin.models.adapters import SCREEN_HEADS, apply_lora, attach_heads
from genocl_plugin.models.architectures import (
    ENFORMER_MINI,
    ENFORMER_MINI_SEQ_LEN,
    PROCAPNET_MINI,
    PROCAPNET_MINI_SEQ_LEN,
    BorzoiPytorchTracks,
    EnformerPytorchTracks,
    ProCapNetBPNet,
    ProCapNetLoss,
    borzoi_pytorch_output_bins,
)
from genocl_plugin.models.puffin import PuffinTracks
from genocl_plugin.workarounds import patch_enformer_attention_pool

patch_enformer_attention_pool()  # upstream CPU slowness; see genocl_plugin/workarounds.py


class GenoclLightningModel(LightningModel):
    """gReLU's ``LightningModel`` with extra architectures and the ProCapNet loss.

    gReLU builds models only from ``grelu.model.models``; ``build_model`` adds
    ``ProCapNetBPNet`` (bpnet-lite), ``EnformerPytorchTracks`` (enformer-pytorch),
    ``BorzoiPytorchTracks`` (borzoi-pytorch, optional) and ``PuffinTracks`` (Puffin).
    ``train_params["loss"] = "procapnet"`` is ProCapNet's multinomial profile NLL plus a
    weighted log-count MSE, computed with bpnet-lite's own loss functions.
    """

    def build_model(self) -> None:
        # Architecture added by strategies (screen heads, LoRA adapters) is recorded in
        # model_params but is not a constructor argument of the base network.
        extras = {k: self.model_params.pop(k) for k in STRATEGY_ARCH_KEYS if k in self.model_params}
        try:
            params = {k: v for k, v in self.model_params.items() if k != "model_type"}
            kind = self.model_params["model_type"]
            if kind == "ProCapNetBPNet":
                self.model = ProCapNetBPNet(**params)
            elif kind == "EnformerPytorchTracks":
                self.model = EnformerPytorchTracks(**params)
            elif kind == "BorzoiPytorchTracks":
                self.model = BorzoiPytorchTracks(**params)
            elif kind == "PuffinTracks":
                self.model = PuffinTracks(**params)
            else:
                super().build_model()
        finally:
            self.model_params.update(extras)
        _rebuild_strategy_architecture(self.model, extras)

    def initialize_loss(self) -> None:
        if self.train_params["loss"] == "procapnet":
            self.loss = ProCapNetLoss(self.train_params.get("count_loss_weight", 100.0))
        else:
            super().initialize_loss()

    def initialize_activation(self) -> None:
        if self.train_params["loss"] == "procapnet":
            self.activation = torch.exp
        else:
            super().initialize_activation()

    def configure_optimizers(self):
        """gReLU's optimiser; with ``train_params["head_lr"]`` the new multihead heads get their own
        learning rate (they start from random weights while the trunk is already trained)."""
        head_lr = self.train_params.get("head_lr")
        if not head_lr:
            return super().configure_optimizers()
        heads, rest = [], []
        for name, param in self.model.named_parameters():
            (heads if name.startswith(SCREEN_HEADS + ".") else rest).append(param)
        groups = [{"params": rest, "lr": self.train_params["lr"]}, {"params": heads, "lr": float(head_lr)}]
        if self.train_params.get("optimizer", "adam") == "sgd":
            return torch.optim.SGD(groups, lr=self.train_params["lr"], momentum=0.9)
        return torch.optim.Adam(groups, lr=self.train_params["lr"])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """gReLU's step for ``(x, y)`` batches; the perturbation objective for dict batches.

        gReLU's ``training_step`` has no hook for extra loss terms, so this is where
        strategy callbacks add theirs: every callback with a ``loss_term(pl_module, batch)``
        method contributes to the loss (EWC penalties, replay, distillation, ...).
        """
        from genocl_plugin.objectives import batch_loss, batch_size

        if isinstance(batch, dict):
            loss = batch_loss(self, batch)  # effect MSE, or the personal-genome loss (batch["kind"])
        else:
            x, y = batch
            loss = self.loss(self.forward(x, logits=True), y)
        self.log("task_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=batch_size(batch))
        trainer = getattr(self, "_trainer", None)
        for callback in (trainer.callbacks if trainer is not None else []):
            term = getattr(callback, "loss_term", None)
            if term is not None:
                extra = term(self, batch)
                if extra is not None:
                    loss = loss + extra
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=batch_size(batch))
        return loss

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # A screen compares two predictions: the whole step, strategy terms (replay,
        # distillation) included, runs with dropout off, so both sides see one network and
        # gradient checkpointing recomputes each block in the mode its forward ran in
        # (objectives.disable_dropout says why). Track batches keep their dropout.
        from genocl_plugin.objectives import disable_dropout, is_comparison

        self._dropout_disabled = disable_dropout(self) if is_comparison(batch) else []

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        for layer in getattr(self, "_dropout_disabled", []):  # after backward and the optimiser step
            layer.train()
        self._dropout_disabled = []

    @property
    def seq_len(self) -> int:
        """Input length the model was trained on (bp)."""
        return int(self.data_params.get("train", {}).get("seq_len", ENFORMER_MINI_SEQ_LEN))

    @property
    def bin_size(self) -> int:
        """bp per output position."""
        return int(self.data_params.get("train", {}).get("bin_size") or 1)

    @property
    def task_names(self) -> list[str]:
        """Names of the output tracks."""
        names = self.data_params.get("tasks", {}).get("name")
        return list(names) if names else [f"track_{i}" for i in range(self.model.head.n_tasks)]

    @property
    def screen_tracks(self) -> list[int]:
        """Tracks of the multi-head screen head the perturbation objective reads (else [])."""
        heads = {h["name"]: h for h in self.model_params.get("genocl_heads") or []}
        head = heads.get(self.model_params.get("genocl_readout"))
        if head is None:
            return []
        names = self.task_names
        return [names.index(n) for n in head["task_names"] if n in names]

    def output_offset(self) -> int:
        """bp between the input start and the first output position (``seq_len`` inputs)."""
        n_out = self.output_length(self.seq_len)
        return (self.seq_len - n_out * self.bin_size) // 2

    def output_length(self, seq_len: int) -> int:
        """Number of output positions for an input of ``seq_len`` bp."""
        if self.model_params["model_type"] == "ProCapNetBPNet":
            return seq_len - 2 * self.model.bpnet.trimming
        if self.model_params["model_type"] == "EnformerPytorchTracks":
            # enformer-pytorch centre-crops its output to target_length bins (-1: no crop).
            target = int(self.model_params["hparams"].get("target_length", 896))
            return target if target > 0 else seq_len // self.bin_size
        if self.model_params["model_type"] == "BorzoiPytorchTracks":
            return borzoi_pytorch_output_bins(self.model_params["config"])
        if self.model_params["model_type"] == "PuffinTracks":
            from genocl_plugin.models.puffin import TRIM

            return seq_len - 2 * TRIM
        crop = int(self.model_params.get("crop_len", 0))
        return seq_len // self.bin_size - 2 * crop


STRATEGY_ARCH_KEYS = ("genocl_heads", "genocl_readout", "lora")


def _rebuild_strategy_architecture(net: nn.Module, extras: dict) -> None:
    """Re-create screen heads and LoRA adapters recorded by a strategy (see strategies/)."""
    if extras.get("genocl_heads"):
        attach_heads(net, extras["genocl_heads"])
    if extras.get("lora"):
        apply_lora(net, extras["lora"])
        # peft freezes everything but the adapters; which parameters train is decided by
        # the next update's strategies, not by loading.
        net.requires_grad_(True)


def build_model(arch: str, task_names: list[str] | None = None, seq_len: int | None = None,
                model_params: dict | None = None, train_params: dict | None = None
                ) -> GenoclLightningModel:
    """Build an untrained model.

    Parameters
    ----------
    arch
        ``enformer`` (gReLU EnformerModel), ``procapnet`` (bpnet-lite BPNet) or ``puffin``
        (Puffin's architecture, randomly initialised).
    task_names
        Output track names.
    seq_len
        Input length in bp.
    model_params
        Overrides of the architecture's mini defaults.
    train_params
        Overrides of the training defaults (lr, loss, ...).

    Returns
    -------
    GenoclLightningModel
    """
    if arch == "enformer":
        params = {**ENFORMER_MINI, **(model_params or {})}
        train = {"task": "regression", "loss": "poisson", "lr": 5e-4, "optimizer": "adam"}
        seq_len, bin_size = seq_len or ENFORMER_MINI_SEQ_LEN, 2 ** params["n_conv"]
    elif arch == "procapnet":
        params = {**PROCAPNET_MINI, **(model_params or {})}
        train = {"task": "regression", "loss": "procapnet", "lr": 5e-4, "optimizer": "adam",
                 "count_loss_weight": 100.0}
        seq_len, bin_size = seq_len or PROCAPNET_MINI_SEQ_LEN, 1
    elif arch == "puffin":
        from genocl_plugin.models.puffin import DEFAULT_SEQ_LEN, TRACK_NAMES

        params = {"model_type": "PuffinTracks", **(model_params or {})}
        train = {"task": "regression", "loss": "poisson", "lr": 5e-4, "optimizer": "adam"}
        seq_len, bin_size = seq_len or DEFAULT_SEQ_LEN, 1
        task_names = task_names or TRACK_NAMES
    else:
        raise input_error(
            "--model", "architecture", f"unknown {arch!r}", "use enformer, procapnet or puffin"
        )
    train.update(train_params or {})
    model = GenoclLightningModel(dict(params), dict(train))
    n_tasks = model.model.head.n_tasks
    model.data_params = {
        "tasks": {"name": list(task_names or [f"track_{i}" for i in range(n_tasks)])},
        "train": {"seq_len": int(seq_len), "bin_size": int(bin_size)},
        "arch": arch,
    }
    return model
