"""Hardware settings: accelerator / devices / precision checks, memory-aware batch sizes,
activation (gradient) checkpointing and out-of-memory messages.

Lightning does the device placement, mixed precision and gradient accumulation; this module
only checks the user's choices up front (so a bad combination is one line, not a Lightning
traceback half-way through an update) and fills in defaults that fit the model.

torch is imported by the functions that need it, not by the module: the option checks
(:func:`trainer_settings`, :func:`check_precision`) refuse a GPU request on a machine without one
before the several seconds torch, Lightning and gReLU take to import (issue 31).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from typing import TYPE_CHECKING

from genocl_plugin.errors import input_error

if TYPE_CHECKING:  # annotations only
    import torch
    from torch import nn

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed", "bf16-true")


def no_gpu_device_files() -> bool:
    """Linux with no NVIDIA, AMD (ROCm) or WSL GPU device node: torch would see no CUDA GPU.

    Checked without importing torch; False (unknown) elsewhere or when any such node exists.
    """
    if not sys.platform.startswith("linux"):
        return False
    if any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")):
        return False
    return not glob.glob("/dev/nvidia[0-9]*")


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch on a machine that has no GPU device."""
    if "torch" not in sys.modules and no_gpu_device_files():
        return False
    import torch

    return torch.cuda.is_available()


def gpu_available(accelerator: str) -> bool:
    """Whether the requested kind of GPU exists on this machine."""
    if accelerator in ("gpu", "cuda"):
        return cuda_available()
    if accelerator == "mps":
        if sys.platform != "darwin" and "torch" not in sys.modules:
            return False  # Apple's Metal backend exists only on macOS
        import torch

        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return True


def parse_devices(devices: str | int | None) -> int | str | list[int]:
    """``--devices``: a count (``2``), ``auto``, or GPU indices (``0,1`` or ``3,``).

    Raises
    ------
    GenoclInputError
        An accelerator name (``gpu``), zero devices, or anything else.
    """
    text = str(devices if devices is not None else "1").strip().lower()
    if text == "auto":
        return "auto"
    if text in ACCELERATORS or text.startswith("cuda:"):
        raise input_error(devices, "--devices", f"'{text}' is an accelerator, not a device count",
                          f"use --accelerator {'gpu' if text != 'cpu' else 'cpu'} --devices 1")
    if text.isdigit():
        if int(text) < 1:
            raise input_error(devices, "--devices", "0 devices",
                              "give a count >= 1 (e.g. --devices 1), or GPU indices as 0, (with a comma)")
        return int(text)
    if re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", text):
        return [int(x) for x in text.split(",") if x.strip()]
    raise input_error(devices, "--devices", "not a count, auto, or GPU indices",
                      "e.g. --devices 1, --devices auto or --devices 0,1")


def trainer_settings(accelerator: str = "auto", devices: str | int | None = 1, precision: str = "32",
                     accumulate_grad_batches: int = 1, num_nodes: int = 1, ddp: bool = False) -> dict:
    """Checked ``pytorch_lightning.Trainer`` arguments for ``--accelerator`` ... ``--ddp``.

    Returns
    -------
    dict
        ``accelerator``, ``devices``, ``precision``, ``accumulate_grad_batches``,
        ``num_nodes`` (and ``strategy="ddp"`` with ``ddp``).

    Raises
    ------
    GenoclInputError
        Unknown names, zero devices, a GPU requested where there is none, GPU indices on
        the CPU, 16-bit mixed precision on the CPU.
    """
    accelerator = str(accelerator).strip().lower()
    if accelerator not in ACCELERATORS:
        raise input_error(accelerator, "--accelerator", "unknown", f"use one of {', '.join(ACCELERATORS)}")
    precision = str(precision).strip().lower()
    if precision not in PRECISIONS:
        raise input_error(precision, "--precision", "unknown", f"use one of {', '.join(PRECISIONS)}")
    parsed = parse_devices(devices)
    if not gpu_available(accelerator):
        raise input_error(accelerator, "--accelerator", "requested GPU is not available on this machine",
                          "use --accelerator cpu (or auto), or run where torch sees a GPU")
    uses_cpu = accelerator == "cpu" or (accelerator == "auto" and not cuda_available()
                                        and not gpu_available("mps"))
    if uses_cpu and isinstance(parsed, list):
        raise input_error(devices, "--devices", "GPU indices, but training runs on the CPU",
                          "give a process count (e.g. --devices 2) or use --accelerator gpu")
    if uses_cpu and precision == "16-mixed":
        raise input_error(precision, "--precision", "float16 mixed precision needs a GPU",
                          "use --precision bf16-mixed on the CPU")
    if accumulate_grad_batches < 1:
        raise input_error(accumulate_grad_batches, "--accumulate-grad-batches", "must be at least 1",
                          "e.g. --accumulate-grad-batches 4")
    if num_nodes < 1:
        raise input_error(num_nodes, "--num-nodes", "must be at least 1", "e.g. --num-nodes 1")
    settings = {"accelerator": "gpu" if accelerator == "cuda" else accelerator, "devices": parsed,
                "precision": "32-true" if precision == "32" else precision,
                "accumulate_grad_batches": int(accumulate_grad_batches), "num_nodes": int(num_nodes)}
    if ddp:
        settings["strategy"] = "ddp"
    return settings


def inference_device(settings: dict | None = None) -> torch.device:
    """The device for the passes outside the Trainer (teacher cache, retention, effects).

    The first device of the Trainer's: ``cuda:i`` / ``mps`` / ``cpu``.
    """
    import torch

    settings = settings or {}
    accelerator = settings.get("accelerator", "auto")
    devices = settings.get("devices", 1)
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "mps" if gpu_available("mps") else "cpu"
    if accelerator in ("gpu", "cuda"):
        first = devices[0] if isinstance(devices, list) and devices else 0
        return torch.device(f"cuda:{first}")
    return torch.device("mps" if accelerator == "mps" else "cpu")


def check_precision(precision: str, device_type: str) -> str:
    """``--precision`` for inference on ``device_type`` (``cpu``, ``cuda``, ``mps``), checked without torch.

    Raises
    ------
    GenoclInputError
        An unknown precision, or float16 on the CPU.
    """
    precision = str(precision).strip().lower()
    if precision not in PRECISIONS:
        raise input_error(precision, "--precision", "unknown", f"use one of {', '.join(PRECISIONS)}")
    if device_type == "cpu" and precision.startswith("16"):
        raise input_error(precision, "--precision", "float16 needs a GPU", "use --precision bf16-mixed on the CPU")
    return precision


def autocast(device: torch.device | str, precision: str = "32"):
    """Autocast context for inference at ``--precision`` (a no-op for 32-bit)."""
    import torch

    device_type = torch.device(device).type
    precision = check_precision(precision, device_type)
    if precision.startswith("32"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Batch sizes that fit
# ---------------------------------------------------------------------------------------------

# When the model cannot be measured on the meta device (genocl_plugin/training/memory.py), activation
# memory is taken to grow with parameters (width) x input length; these budgets keep the
# bundled minis at 16 (training) / 64 (scoring) and give a 250 M-parameter model at 196,608 bp
# batch 1. A rough rule, used only as that fallback.
TRAIN_BUDGET = 2.0e11
INFERENCE_BUDGET = 4 * TRAIN_BUDGET


def default_batch_size(model: nn.Module, seq_len: int, training: bool = True, cap: int | None = None,
                       device_type: str = "cpu", saved_bytes: int | None = None) -> int:
    """The largest power of two up to ``cap`` whose step fits in the memory free on the device.

    The step's peak memory is :func:`genocl_plugin.training.memory.step_estimate` (activations measured
    on the meta device, calibrated on docs/performance.md); the weights are taken as already
    loaded. Where the model cannot run on the meta device, a parameters x length rule.

    Parameters
    ----------
    model
        The network.
    seq_len
        Input length (bp).
    training
        A training step (activations kept for backward, gradients, Adam) or a scoring pass.
    cap
        Largest value returned (default: 16 for training, 64 for scoring).
    device_type
        ``cpu`` or ``cuda``: whose free memory counts.
    saved_bytes
        :func:`genocl_plugin.training.memory.saved_activation_bytes` when already measured.

    Returns
    -------
    int
        A power of two between 1 and ``cap``.
    """
    from genocl_plugin.training import memory

    cap = cap or (16 if training else 64)
    saved = memory.saved_activation_bytes(model, seq_len) if saved_bytes is None else saved_bytes
    free = memory.available_bytes(device_type)
    if saved is not None and free is not None:
        n_params = sum(p.numel() for p in model.parameters())

        def needed(batch: int) -> float:
            parts = memory.step_estimate(model, seq_len, batch, training=training, saved_bytes=saved)
            return parts["total"] - parts["process"] - 4 * n_params  # the process and weights are loaded

        return memory.largest_fitting_batch(needed, free, cap)
    n_params = sum(p.numel() for p in model.parameters())
    budget = TRAIN_BUDGET if training else INFERENCE_BUDGET
    fit = budget / max(1.0, float(n_params) * float(seq_len))
    size = 1
    while size * 2 <= min(fit, cap):
        size *= 2
    return size


OOM_FIX = ("lower --batch-size (e.g. 1), use --precision bf16-mixed, or add --gradient-checkpointing "
           "(update)")


def is_out_of_memory(err: BaseException) -> bool:
    """A CUDA / MPS / CPU allocator failure (torch raises several kinds)."""
    torch = sys.modules.get("torch")  # an error raised before torch was imported is not torch's
    if isinstance(err, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower() or "MPS backend out of memory" in text)


def out_of_memory_message(err: BaseException) -> str:
    """The one line printed instead of the allocator's traceback."""
    first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
    return f"out of memory ({first}); fix: {OOM_FIX}"


# ---------------------------------------------------------------------------------------------
# Activation (gradient) checkpointing
# ---------------------------------------------------------------------------------------------

_CHECKPOINTED_CLASSES: dict[type, type] = {}


@contextlib.contextmanager
def _frozen_batchnorm_stats(module: nn.Module):
    """BatchNorm running statistics unchanged inside the block (momentum 0, counter restored).

    Checkpointing runs a block's forward twice (again during backward); without this the
    running mean / variance of its BatchNorm layers would be updated twice per step.
    """
    from torch import nn

    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def _checkpointed(cls: type) -> type:
    """A subclass of ``cls`` whose forward under autograd is recomputed in backward (not stored).

    Eval-mode passes that need gradients (the EWC / MAS importance estimates run the parent
    in eval mode, without dropout) are checkpointed too: at 196,608 bp they otherwise store
    every activation and peak above the training step itself.
    """
    if cls in _CHECKPOINTED_CLASSES:
        return _CHECKPOINTED_CLASSES[cls]

    import torch
    import torch.utils.checkpoint

    def forward(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            return cls.forward(self, *args, **kwargs)
        calls = []

        def run(*inputs):
            calls.append(1)
            if len(calls) == 1:
                return cls.forward(self, *inputs, **kwargs)
            with _frozen_batchnorm_stats(self):
                return cls.forward(self, *inputs, **kwargs)

        return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False, preserve_rng_state=True)

    sub = type(f"Checkpointed{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})
    _CHECKPOINTED_CLASSES[cls] = sub
    return sub


def checkpoint_blocks(blocks) -> int:
    """Make each module of ``blocks`` recompute its activations in backward.

    The module's class is swapped for a checkpointing subclass, so parameter names,
    ``state_dict`` keys and ``deepcopy`` are unchanged.

    Returns
    -------
    int
        Number of modules wrapped.
    """
    n = 0
    for block in blocks:
        if type(block) not in _CHECKPOINTED_CLASSES.values():
            block.__class__ = _checkpointed(type(block))
        n += 1
    return n


def borzoi_blocks(borzoi: nn.Module) -> list[nn.Module]:
    """The blocks of a borzoi-pytorch ``Borzoi`` to checkpoint (it has no checkpointing of its own).

    Every module with parameters in the stem, the residual tower, the U-net and the
    transformer, one level down in ``nn.Sequential`` containers; the output heads are not
    (their output is the model's). The shared parameter-free pooling layers are skipped.
    """
    from torch import nn

    blocks = []
    for name, child in borzoi.named_children():
        if name.endswith("_head") or not any(True for _ in child.parameters()):
            continue
        parts = list(child) if isinstance(child, nn.Sequential) else [child]
        blocks += [m for m in parts if any(True for _ in m.parameters())]
    return blocks


def enable_gradient_checkpointing(net: nn.Module) -> int:
    """Activation checkpointing for the architectures genocl loads (``--gradient-checkpointing``).

    - enformer-pytorch (``EnformerPytorchTracks``): every block of its conv tower and transformer
      (not its own ``use_checkpointing``, whose reentrant checkpoint refuses ``torch.autograd.grad``);
    - gReLU trunks (``EnformerModel``, ``BorzoiModel``, ...): every block of the conv,
      transformer and U-net towers (gReLU has no checkpointing of its own);
    - bpnet-lite ``BPNet`` (ProCapNet): every dilated residual convolution;
    - borzoi-pytorch (``BorzoiPytorchTracks``): every block of :func:`borzoi_blocks`.

    Parameters
    ----------
    net
        ``GenoclLightningModel.model``.

    Returns
    -------
    int
        Number of checkpointed blocks.

    Raises
    ------
    GenoclInputError
        An architecture with no blocks to checkpoint.
    """
    enformer = getattr(net, "enformer", None)
    if enformer is not None and hasattr(enformer, "use_checkpointing"):
        # Not enformer-pytorch's own use_checkpointing: it calls checkpoint_sequential with the
        # reentrant implementation, which refuses torch.autograd.grad -- the EWC / MAS importance
        # estimate of a full-size Enformer failed after 15 minutes (issue 31). Every block of its
        # conv tower and transformer is checkpointed here instead, non-reentrant like the rest.
        return checkpoint_blocks([*enformer.conv_tower, *enformer.transformer])
    bpnet = getattr(net, "bpnet", None)
    if bpnet is not None and hasattr(bpnet, "rconvs"):
        return checkpoint_blocks(bpnet.rconvs)
    borzoi = getattr(net, "borzoi", None)
    if borzoi is not None and hasattr(borzoi, "res_tower"):
        return checkpoint_blocks(borzoi_blocks(borzoi))
    n = 0
    trunk = getattr(net, "embedding", net)
    for tower in ("conv_tower", "transformer_tower", "unet_tower"):
        blocks = getattr(getattr(trunk, tower, None), "blocks", None)
        if blocks is not None:
            n += checkpoint_blocks(blocks)
    if n == 0:
        raise input_error(type(net).__name__, "--gradient-checkpointing", "no blocks to checkpoint in this model",
                          "leave --gradient-checkpointing out for this architecture")
    return n
