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
import torch
from torch import nn

from genocl_plugin.errors import input_error
from genocl_plugin.strategies.freeze import SCREEN_HEADS, head_prefixes


def feature_module(net: nn.Module) -> nn.Module:
    """The module whose input is the trunk features (the model's own head)."""
    if hasattr(net, "bpnet"):
        return net.bpnet.fconv
    if hasattr(net, "enformer"):
        # enformer-pytorch: the chosen output head (Linear + Softplus) reads the trunk's
        # (batch, bins, channels) embeddings.
        return net.enformer._heads[net.head_name]
    if hasattr(net, "borzoi"):
        # borzoi-pytorch: the chosen head (a 1x1 Conv1d) reads (batch, 1920, bins) features.
        return getattr(net.borzoi, f"{net.head_name}_head")
    if hasattr(net, "puffin"):
        # Puffin: the effect layer reads the (batch, 104, L) motif activations of both strands.
        return net.puffin.effects
    if hasattr(net, "embedding") and hasattr(net, "head"):
        return net.head
    raise input_error("--strategy", "multihead", f"unsupported network {type(net).__name__}",
                      "multihead supports gReLU, enformer-pytorch, borzoi-pytorch and bpnet-lite (ProCapNet) models")


def feature_channels(net: nn.Module) -> int:
    """Channels of the trunk features."""
    own = getattr(feature_module(net), "in_channels", None)
    if isinstance(own, int):  # a feature module of several layers says its input width (Puffin's effects)
        return own
    for module in feature_module(net).modules():
        if isinstance(module, nn.Conv1d | nn.Linear):
            return int(getattr(module, "in_channels", getattr(module, "in_features", 0)))
    raise input_error("--strategy", "multihead", "cannot infer the trunk width", "use a gReLU or bpnet-lite model")


class ScreenHeads(nn.Module):
    """Extra heads reading a network's trunk features; their tracks follow the old ones.

    Two hooks do the work, so the base network and its parameter names stay untouched: a
    forward pre-hook on the old head captures the trunk features, and a forward hook on the
    network appends each extra head's output (centre-cropped to the old output length).

    Parameters
    ----------
    specs
        ``{"name", "in_channels", "task_names"}`` per head.
    """

    def __init__(self, specs: list[dict]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict()
        self._features = None
        self.channels_last = False  # enformer-pytorch features are (batch, length, channels)
        for spec in specs:
            self.add(spec)

    def add(self, spec: dict) -> None:
        """Add one head (a 1x1 convolution: one weight per trunk channel and track)."""
        self.heads[spec["name"]] = nn.Conv1d(int(spec["in_channels"]), len(spec["task_names"]), 1)

    def capture(self, module: nn.Module, args: tuple) -> None:
        self._features = args[0].transpose(1, 2) if self.channels_last else args[0]

    def extend(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        features, self._features = self._features, None
        extra = [_centre_crop(head(features), output.shape[-1]) for head in self.heads.values()]
        return torch.cat([output, *extra], dim=1)


def _centre_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    start = (x.shape[-1] - length) // 2
    return x[..., start : start + length]


def attach_heads(net: nn.Module, specs: list[dict]) -> ScreenHeads:
    """Add screen heads to a network (creating the hooks the first time).

    Parameters
    ----------
    net
        The base network (``GenoclLightningModel.model``).
    specs
        Head specifications, as stored in ``model_params["genocl_heads"]``.

    Returns
    -------
    ScreenHeads
    """
    heads = getattr(net, SCREEN_HEADS, None)
    if heads is None:
        heads = ScreenHeads([])
        heads.channels_last = hasattr(net, "enformer")
        setattr(net, SCREEN_HEADS, heads)
        # Bound methods of a submodule: copy.deepcopy re-binds them to the copy's heads.
        feature_module(net).register_forward_pre_hook(heads.capture)
        net.register_forward_hook(heads.extend)
    for spec in specs:
        if spec["name"] not in heads.heads:
            heads.add(spec)
    return heads


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
