"""Workarounds for upstream packages, each in one place with the reason.

- enformer-pytorch 0.8 ``AttentionPool`` (used by gReLU's Enformer trunk) takes a softmax
  over a trailing dimension of size 2. PyTorch's CPU softmax vectorises along the softmax
  dimension, so that layout is ~4x slower than the same softmax over a leading dimension:
  the pooling softmax was 16% of a whole ``genocl update`` of enformer-mini. The
  replacement moves the pool dimension forward before the softmax; the result is the same
  function (a test compares outputs and gradients with the original).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_ORIGINAL_ATTENTION_POOL_FORWARD = None


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
