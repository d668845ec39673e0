"""Multi-head: keep every old output head and add a new head for the screen's readout.

The new head is a 1x1 convolution on the trunk features (the input of the model's own
head) producing one log-coverage track, ``screen:<name>``, appended after the old tracks.
The perturbation objective reads that track instead of the CAGE/DNase readout
(:attr:`GenoclLightningModel.screen_tracks`), so the old heads are frozen and keep their
outputs; with a frozen trunk (``--strategy multihead,freeze --freeze trunk``) they are
bit-identical. The heads are recorded in ``model_params["genocl_heads"]`` so
:func:`~genocl_plugin.models.load_model` rebuilds them.
"""

from __future__ import annotations

import pytorch_lightning as pl

# The screen heads are model architecture (genocl_plugin.models.adapters, which load_model rebuilds
# them from); their names stay importable from here.
from genocl_plugin.models.adapters import (  # noqa: F401
    SCREEN_HEADS,
    ScreenHeads,
    attach_heads,
    feature_channels,
    feature_module,
)
from genocl_plugin.strategies.freeze import head_prefixes


class MultiHeadCallback(pl.Callback):
    """Add (or reuse) a screen head and freeze every old head.

    Parameters
    ----------
    head_name
        Name of the head; default ``screen<k>`` for the k-th head, so every update adds a
        head. An existing name continues training that head.
    """

    def __init__(self, head_name: str | None = None, task_names: list[str] | None = None) -> None:
        self.head_name = head_name
        # A tracks screen's head predicts its tracks (set by genocl_plugin.training.update); a
        # perturbation screen's head predicts one readout track the effect objective reads.
        self.task_names = list(task_names) if task_names else None
        self.spec: dict | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Before configure_optimizers and before DDP wraps the module: the optimizer and
        # DDP see the new head.
        if self.spec is not None:
            return
        net = pl_module.model
        specs = list(pl_module.model_params.get("genocl_heads") or [])
        name = self.head_name or f"screen{len(specs) + 1}"
        existing = {s["name"]: s for s in specs}
        if name in existing:
            self.spec = existing[name]
        else:
            self.spec = {"name": name, "in_channels": feature_channels(net),
                         "task_names": self.task_names or [f"screen:{name}"]}
            # Heads created by this update start from random weights: regularisers anchored to
            # the starting point (L2-SP) must not pull them back there.
            pl_module.new_head_prefixes = (*getattr(pl_module, "new_head_prefixes", ()),
                                           f"{SCREEN_HEADS}.heads.{name}.")
            specs.append(self.spec)
            pl_module.data_params.setdefault("tasks", {})["name"] = \
                list(pl_module.task_names) + self.spec["task_names"]
        heads = attach_heads(net, specs)
        pl_module.model_params["genocl_heads"] = specs
        if self.task_names is None:  # track heads are outputs, not the effect readout
            pl_module.model_params["genocl_readout"] = name
        for pname, param in net.named_parameters():
            if pname.startswith(head_prefixes(net)) or pname.startswith(SCREEN_HEADS + "."):
                param.requires_grad_(False)
        for param in heads.heads[name].parameters():
            param.requires_grad_(True)

    def summary(self) -> dict:
        """The head trained (recorded in metrics.json)."""
        return {"head": self.spec}


def multihead_callbacks(head_name: str | None = None, **_params) -> list:
    """The multi-head callback (``--strategy multihead``)."""
    return [MultiHeadCallback(head_name)]
