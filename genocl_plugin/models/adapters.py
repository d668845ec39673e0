"""Architecture strategies add to a base network: screen heads and LoRA adapters.

This is model surgery, kept with the models so that :class:`~genocl_plugin.models.GenoclLightningModel`
can rebuild what a strategy recorded in ``model_params`` (``genocl_heads``, ``lora``) without
importing the training strategies; the callbacks that decide when to add them and what trains
are :mod:`genocl_plugin.strategies.multihead` and :mod:`genocl_plugin.strategies.lora`.

Screen heads (:func:`attach_heads`) are 1x1 convolutions on the trunk features (the input of the
model's own head), their tracks appended after the old ones; the base network and its
parameter names stay untouched.

LoRA adapters (:func:`apply_lora`) come from Hugging Face ``peft`` (``inject_adapter_in_model``),
which wraps any ``nn.Module``. One fix-up: peft builds a convolution adapter's ``lora_A`` with
the base layer's kernel, stride and padding but not its dilation, so on BPNet's dilated
residual convolutions the adapter output would have the wrong length. ``lora_A`` gets the base
layer's dilation; the low-rank update ``B @ A`` is then applied with the same dilation as the
base kernel, which is what merging the adapter into the weights would compute.
"""

from __future__ import annotations

import torch
from torch import nn

from genocl_plugin.errors import input_error

SCREEN_HEADS = "genocl_heads"  # attribute holding multi-head screen heads (strategies.multihead)


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


def apply_lora(net: nn.Module, spec: dict) -> nn.Module:
    """Inject LoRA adapters in place (peft), freezing every non-adapter parameter.

    Parameters
    ----------
    net
        The base network (``GenoclLightningModel.model``).
    spec
        ``{"r", "alpha", "target_modules"}`` as stored in ``model_params["lora"]``.

    Returns
    -------
    nn.Module
        ``net``, with adapters.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    config = LoraConfig(r=int(spec["r"]), lora_alpha=float(spec["alpha"]),
                        target_modules=list(spec["target_modules"]), lora_dropout=0.0)
    inject_adapter_in_model(config, net)
    for module in net.modules():
        if isinstance(module, LoraLayer) and isinstance(module.get_base_layer(), nn.Conv1d):
            for lora_a in module.lora_A.values():
                lora_a.dilation = module.get_base_layer().dilation
    return net
