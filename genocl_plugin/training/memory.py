"""Memory pre-flight: the peak memory of one training (or scoring) step, estimated before it runs.

On a CPU the allocator does not fail fast: a full Enformer step that cannot fit swaps or is
killed minutes later (issue 31). So before the first step genocl estimates what a step needs
and compares it with the memory free on the device that will run it.

The activations come from the model itself, not a rule of thumb: one forward pass on the
``meta`` device (shapes only, no arithmetic, well under a second for a full Enformer) records
the bytes of every tensor autograd saves for the backward pass. Those bytes over-count what a
real step holds (one tensor saved by two operations is counted twice), so they are scaled by
factors calibrated on the measured peak-memory rows of docs/performance.md (full-width gReLU
Enformer and Borzoi, 2-core CPU): see :data:`ACTIVATION_FRACTION`. Each factor is the lowest of
its measured rows, so the estimate leans towards "fits" (``python benchmarks/fullsize.py
--estimate``): plain float32 and bf16 Enformer steps are estimated within 1% of their measured
peaks and checkpointed Borzoi steps within 9%, while checkpointed Enformer (estimates 0.56-0.63 of
measured), bf16 genocl Enformer (0.86) and bf16 Borzoi (0.57) are under-estimated; ProCapNet's
rows, nine tenths process, are within 12%. A refusal therefore means a step well beyond what is
free, and ``--no-memory-check`` skips it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    from torch import nn

GB = 2**30  # GiB: docs/performance.md's peak RSS figures are VmHWM in GiB
# Peak activation memory of one sequence's training step, as a fraction of the bytes autograd
# saves in a float32 forward (measured on the meta device). Calibrated on the rows of
# docs/results/fullsize_*.jsonl: activation = (peak RSS - 0.8 GiB process - 16 bytes/parameter)
# / sequences per step (1 for a gReLU step, 2 for a genocl step: reference and perturbed):
#   float32: Enformer 0.78 (the genocl step, 2 x 0.78, was killed at 24 GB, as was a Borzoi
#            step estimated at 23.8 GiB);
#   bf16-mixed: Enformer 0.25 (gReLU) - 0.31 (genocl), Borzoi 0.54 -> 0.25;
#   --gradient-checkpointing: Enformer 0.38-0.39, Borzoi 0.16 (genocl) - 0.19 (gReLU) -> 0.16;
#   both: not measured -> 0.16 x 0.25 / 0.78.
# (ProCapNet's rows are ~90% process and say nothing about activations.)
# `python benchmarks/fullsize.py --estimate` prints each measured row beside its estimate.
ACTIVATION_FRACTION = {("32", False): 0.78, ("bf16", False): 0.25, ("32", True): 0.16, ("bf16", True): 0.051}
# Scoring keeps no activations for backward; a pass holds a few layers' outputs at a time
# (borzoi-pytorch: 2.9 GB forward vs 10.8 GB forward + backward -> ~0.2 of training's).
INFERENCE_FRACTION = 0.25
PROCESS_GB = 0.8  # GiB: Python + torch + Lightning + gReLU, measured in every docs/performance.md row
# Bytes per trainable parameter a step adds to the weights: gradient (4) + Adam's two moments (8).
TRAINABLE_BYTES = 12
# Strategies holding per-parameter state (anchor / importance / running sums), float32 each.
STATE_COPIES = {"ewc": 2, "mas": 2, "si": 3, "l2sp": 1}


def meta_copy(net: nn.Module) -> nn.Module:
    """``net`` rebuilt on the meta device: the same modules, every parameter and buffer a meta
    tensor of its shape (no data copied, nothing of ``net`` changed).

    A deepcopy whose memo maps each parameter and buffer to its meta twin. (``torch.func.
    functional_call`` with meta tensors left enformer-pytorch's parameters on the meta device.)
    """
    import copy

    import torch

    memo = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=True)
            for p in net.parameters()}  # every parameter trainable: what a full fine-tune saves
    memo.update({id(b): torch.empty_like(b, device="meta") for b in net.buffers()})
    return copy.deepcopy(net, memo)


def saved_activation_bytes(net: nn.Module, seq_len: int) -> int | None:
    """Bytes autograd saves for backward in one float32 training forward of one sequence.

    Runs a :func:`meta_copy` of ``net`` (shapes only, no memory, no arithmetic).

    Returns
    -------
    int or None
        None when the architecture cannot run on the meta device (then no estimate is made).
    """
    import torch

    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    try:
        meta = meta_copy(net).train()
        x = torch.zeros(1, 4, int(seq_len), device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
            meta(x)
    except Exception:  # noqa: BLE001 - an op without a meta kernel: no estimate, not an error
        return None
    return saved[0]


def step_estimate(net: nn.Module, seq_len: int, batch_size: int, *, precision: str = "32",
                  checkpointing: bool = False, sequences_per_example: float = 2.0,
                  extra_sequences: int = 0, strategies: tuple[str, ...] = (), training: bool = True,
                  saved_bytes: int | None = None) -> dict | None:
    """Peak memory of one step, in bytes, broken down.

    Parameters
    ----------
    net
        The network (``GenoclLightningModel.model``).
    seq_len
        Input length (bp).
    batch_size
        Examples per step.
    precision, checkpointing
        ``--precision`` and ``--gradient-checkpointing``.
    sequences_per_example
        Forward passes per example: 2 for a screen comparison (reference and perturbed), 1 for
        track crops.
    extra_sequences
        Sequences added to each step (replayed reference windows).
    strategies
        Strategy names (per-parameter state of EWC / SI / MAS / L2-SP, and the parent copy).
    training
        False: a scoring pass (no gradients, optimiser or parent copy).
    saved_bytes
        :func:`saved_activation_bytes` when already measured.

    Returns
    -------
    dict or None
        ``total`` and its parts (``weights``, ``optimizer``, ``strategies``, ``activations``,
        ``process``), in bytes; None when the activations cannot be measured.
    """
    saved = saved_activation_bytes(net, seq_len) if saved_bytes is None else saved_bytes
    if saved is None:
        return None
    params = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    half = str(precision).startswith(("bf16", "16"))
    per_sequence = ACTIVATION_FRACTION[("bf16" if half else "32", bool(checkpointing))] * saved
    if training:
        sequences = math.ceil(batch_size * sequences_per_example) + extra_sequences
        parts = {"weights": 4 * params * 2,  # the model and the parent copy that retention compares with
                 "optimizer": TRAINABLE_BYTES * trainable,
                 "strategies": 4 * trainable * sum(STATE_COPIES.get(s, 0) for s in strategies),
                 "activations": per_sequence * sequences}
    else:
        parts = {"weights": 4 * params, "optimizer": 0, "strategies": 0,
                 "activations": INFERENCE_FRACTION * ACTIVATION_FRACTION[("bf16" if half else "32", False)]
                 * saved * batch_size}
    parts["process"] = PROCESS_GB * GB
    parts["total"] = sum(parts.values())
    return parts


def available_bytes(device_type: str = "cpu", index: int = 0) -> int | None:
    """Memory free for this process on the device: MemAvailable (and the cgroup limit) on the
    CPU, ``torch.cuda.mem_get_info`` on a CUDA GPU; None where unknown."""
    if device_type in ("cuda", "gpu"):
        import torch

        return int(torch.cuda.mem_get_info(index)[0])
    if device_type != "cpu":
        return None
    free = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    limit = Path("/sys/fs/cgroup/memory.max")
    usage = Path("/sys/fs/cgroup/memory.current")
    try:
        text = limit.read_text().strip()
        if text != "max":
            room = int(text) - int(usage.read_text())
            free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    if free is None and hasattr(os, "sysconf"):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    return free


def largest_fitting_batch(estimate_of, available: float, cap: int) -> int:
    """The largest power of two <= ``cap`` whose ``estimate_of(batch)`` fits in ``available``
    (1 when even one example does not: the pre-flight refuses that separately)."""
    size = 1
    while size * 2 <= cap and estimate_of(size * 2) <= available:
        size *= 2
    return size


def format_gb(n_bytes: float) -> str:
    """``9.2 GiB`` (two significant digits below 10 GiB, whole GiB above)."""
    gb = n_bytes / GB
    return f"{gb:.2g} GiB" if gb < 10 else f"{gb:,.0f} GiB"


def check_training_step(net: nn.Module, seq_len: int, batch_size: int | None, *, precision: str = "32",
                        checkpointing: bool = False, sequences_per_example: float = 2.0,
                        replay_ratio: float | None = None, strategies: tuple[str, ...] = (),
                        device_type: str = "cpu", device_index: int = 0, cap: int = 16,
                        resident: bool = True, refuse: bool = True,
                        saved_bytes: int | None = None) -> tuple[int, str | None]:
    """The pre-flight of an update: a batch size that fits, or a one-line refusal.

    Parameters
    ----------
    net, seq_len, precision, checkpointing, sequences_per_example, strategies
        As for :func:`step_estimate`.
    batch_size
        ``--batch-size``; None chooses the largest power of two <= ``cap`` that fits.
    replay_ratio
        ``--replay-ratio`` when replay is on (``ceil(ratio x batch)`` reference windows join each step).
    device_type, device_index
        Where the step runs.
    resident
        The weights are already in this device's memory (a CPU run after loading): what is
        free excludes them, so they are not counted again.
    refuse
        False (``--no-memory-check``): report the estimate, never refuse.
    saved_bytes
        :func:`saved_activation_bytes` when already measured.

    Returns
    -------
    (int, str or None)
        The batch size and a note for the stage line (None when no estimate could be made).

    Raises
    ------
    GenoclInputError
        An explicit ``--batch-size`` whose step does not fit, or a step of one example that does not.
    """
    from genocl_plugin.errors import input_error

    saved = saved_activation_bytes(net, seq_len) if saved_bytes is None else saved_bytes
    free = available_bytes(device_type, device_index)
    if saved is None or free is None:
        return (batch_size or 1), None
    frozen_trunk = "freeze" in strategies  # no activations kept for a frozen trunk's backward
    params = sum(p.numel() for p in net.parameters())

    def need(batch: int) -> dict:
        extra = math.ceil(replay_ratio * batch) if replay_ratio else 0
        parts = step_estimate(net, seq_len, batch, precision=precision, checkpointing=checkpointing,
                              sequences_per_example=sequences_per_example, extra_sequences=extra,
                              strategies=strategies, saved_bytes=saved)
        if frozen_trunk:
            parts["activations"] *= INFERENCE_FRACTION
            parts["optimizer"] = parts["strategies"] = 0
        if "lora" in strategies:
            parts["optimizer"] = parts["strategies"] = 0  # adapters are a sliver of the weights
        # what must still be found: the weights already loaded and the running process are not
        parts["needed"] = (sum(v for k, v in parts.items() if k != "total")
                           - (4 * params + PROCESS_GB * GB if resident else 0)
                           - (PROCESS_GB * GB if device_type != "cpu" else 0))
        return parts

    chosen = batch_size or largest_fitting_batch(lambda b: need(b)["needed"], free, cap)
    parts = need(chosen)
    note = (f"one step of {chosen} needs ~{format_gb(parts['total'])} "
            f"(activations {format_gb(parts['activations'])}), {format_gb(free)} free")
    if parts["needed"] <= free:
        return chosen, note
    if not refuse:
        return chosen, note + " (--no-memory-check: trying anyway)"
    fixes = [opt for opt, on in (("--gradient-checkpointing", checkpointing),
                                 ("--precision bf16-mixed", str(precision).startswith(("bf16", "16"))))
             if not on]
    one = need(1)
    if batch_size and batch_size > 1 and one["needed"] <= free:
        fit = largest_fitting_batch(lambda b: need(b)["needed"], free, batch_size)
        fix = (f"use --batch-size {fit} (add --accumulate-grad-batches {math.ceil(batch_size / fit)} "
               "to keep the effective batch)")
        if fixes:
            fix += f", or add {' / '.join(fixes)}"
    else:
        fix = (f"add {' and '.join(fixes)}" if fixes else "use a machine (or GPU) with more memory")
    fix += "; --no-memory-check tries anyway"
    option = "--batch-size" if batch_size else "memory"
    raise input_error(
        option, str(chosen), f"one training step needs ~{format_gb(parts['total'])} on the {device_type} "
        f"(activations {format_gb(parts['activations'])} for {seq_len:,}-bp inputs) but "
        f"{format_gb(free)} is free", fix)
