"""genocl_plugin.workarounds.quiet_lightning: exactly Lightning's three noise messages are hidden."""

from __future__ import annotations

import logging
import warnings

from genocl_plugin.workarounds import quiet_lightning


def test_quiet_lightning_hides_the_three_messages_and_nothing_else(caplog):
    quiet_lightning()
    quiet_lightning()  # idempotent: one filter, not two
    from pytorch_lightning.utilities.rank_zero import rank_zero_info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # what a fresh process has, before quiet_lightning's filters
        quiet_lightning()
        warnings.warn("You defined a `validation_step` but have no `val_dataloader`. Skipping val loop.",
                      UserWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
                      DeprecationWarning, stacklevel=1)
        warnings.warn("Your screen has 3 rows", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["Your screen has 3 rows"]
    from lightning_utilities.core import rank_zero

    assert len(rank_zero.log.filters) == 1
    with caplog.at_level(logging.INFO, logger=rank_zero.log.name):
        rank_zero_info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        rank_zero_info("GPU available: False, used: False")
    messages = [r.getMessage() for r in caplog.records]
    assert "GPU available: False, used: False" in messages
    assert not any("litlogger" in m for m in messages)


def test_full_float32_precision_restores_and_undoes_grelu_medium():
    import torch

    from genocl_plugin.workarounds import full_float32_precision

    torch.set_float32_matmul_precision("medium")  # what gReLU's LightningModel leaves behind
    try:
        with full_float32_precision():
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision("highest")
