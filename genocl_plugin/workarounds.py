"""Workarounds for upstream packages, each in one place with the reason.

- enformer-pytorch 0.8 ``AttentionPool`` (used by gReLU's Enformer trunk) takes a softmax
  over a trailing dimension of size 2. PyTorch's CPU softmax vectorises along the softmax
  dimension, so that layout is ~4x slower than the same softmax over a leading dimension:
  the pooling softmax was 16% of a whole ``genocl update`` of enformer-mini. The
  replacement moves the pool dimension forward before the softmax; the result is the same
  function (a test compares outputs and gradients with the original).
- PyTorch Lightning 2.6 prints three messages into every ``genocl update`` / ``genocl pretrain``
  that tell a genocl user nothing they can act on: an advertisement for ``litlogger``; "You
  defined a `validation_step` but have no `val_dataloader`" (gReLU's ``LightningModel``
  defines one, genocl scores held-out data itself after training); and a deprecation of
  ``LeafSpec`` raised from Lightning's own ``_pytree`` under torch 2.13.
  :func:`quiet_lightning` hides exactly those three and nothing else.
- gReLU 1.1's ``LightningModel`` (``train_on_dataset``, ``predict_on_dataset``, ...) calls
  ``torch.set_float32_matmul_precision("medium")`` for the whole process. On CPUs whose oneDNN
  then takes reduced-precision paths, a model's outputs move by ~4e-4 (relative) afterwards, so
  a zoo entry's expected outputs written in such a process fail Kipoi's test in a fresh one
  (measured 2026-12-06: max relative difference 3.7e-4 on enformer-mini-sized models).
  :func:`full_float32_precision` restores "highest" around the passes whose numbers are
  compared elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch
import torch.nn.functional as F

_ORIGINAL_ATTENTION_POOL_FORWARD = None


@contextlib.contextmanager
def full_float32_precision():
    """Within the block, float32 matmuls at ``"highest"`` precision (undoes gReLU's global "medium")."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _attention_pool_forward(self, x: torch.Tensor) -> torch.Tensor:
    """enformer-pytorch ``AttentionPool.forward`` with the softmax over a leading dimension."""
    b, _, n = x.shape
    remainder = n % self.pool_size
    if remainder:
        # Same padding as upstream (correct for the pool size 2 every Enformer uses).
        x = F.pad(x, (0, remainder), value=0)
        mask = F.pad(torch.zeros((b, 1, n), dtype=torch.bool, device=x.device), (0, remainder), value=True)
    x = self.pool_fn(x)  # (b, d, n / p, p)
    logits = self.to_attn_logits(x)
    if remainder:
        logits = logits.masked_fill(self.pool_fn(mask), -torch.finfo(logits.dtype).max)
    attn = logits.movedim(-1, 1).softmax(dim=1)  # (b, p, d, n / p)
    return (x.movedim(-1, 1) * attn).sum(dim=1)


def patch_enformer_attention_pool() -> bool:
    """Install the faster ``AttentionPool.forward`` (idempotent).

    Returns
    -------
    bool
        Whether enformer-pytorch is installed and now patched.
    """
    global _ORIGINAL_ATTENTION_POOL_FORWARD
    try:
        from enformer_pytorch.modeling_enformer import AttentionPool
    except ImportError:  # pragma: no cover - enformer-pytorch is a dependency of gReLU
        return False
    if _ORIGINAL_ATTENTION_POOL_FORWARD is None:
        _ORIGINAL_ATTENTION_POOL_FORWARD = AttentionPool.forward
        AttentionPool.forward = _attention_pool_forward
    return True


def original_attention_pool_forward():
    """The upstream ``AttentionPool.forward`` (for tests and benchmarks)."""
    from enformer_pytorch.modeling_enformer import AttentionPool

    return _ORIGINAL_ATTENTION_POOL_FORWARD or AttentionPool.forward


class _DropMessage(logging.Filter):
    """Drop log records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


_LITLOGGER_FILTER = _DropMessage("litlogger")


def quiet_lightning() -> None:
    """Hide Lightning's three messages that are noise to a genocl user (idempotent).

    Other warnings and Lightning's own information (devices, "max_epochs reached") still show.
    """
    warnings.filterwarnings("ignore", message=r"You defined a `validation_step` but have no `val_dataloader`")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Lightning's rank_zero_info logs through the logger lightning_utilities holds (set to
    # "pytorch_lightning.utilities.rank_zero" on import); a filter on a parent logger would not
    # see the record, so the filter goes on that one.
    import pytorch_lightning  # noqa: F401  (sets the logger below)
    from lightning_utilities.core import rank_zero

    if _LITLOGGER_FILTER not in rank_zero.log.filters:
        rank_zero.log.addFilter(_LITLOGGER_FILTER)
