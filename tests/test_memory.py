"""The memory pre-flight (genocl_plugin/training/memory.py): activations measured on the meta device,
estimates checked against the measured full-width rows of docs/performance.md, refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from genocl_plugin.errors import GenoclInputError
from genocl_plugin.models import build_model
from genocl_plugin.training import hardware, memory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fullsize import ARCHS  # noqa: E402  - the exact architectures the measured rows used


def _full_enformer():
    """gReLU's full-width Enformer (246 M parameters) built on the meta device: no memory."""
    spec = ARCHS["enformer"]
    with torch.device("meta"):
        return build_model("enformer", seq_len=spec["seq_len"], model_params=dict(spec["params"])).model


def _measured(setting: str, runner: str) -> float:
    for line in (ROOT / "docs/results/fullsize_enformer.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["setting"] == setting and row["runner"] == runner and "peak_rss_gb" in row:
            return row["peak_rss_gb"]  # VmHWM, in GiB
    raise AssertionError(f"no measured row {setting}/{runner}")


def test_saved_activations_grow_with_input_length(tiny_procapnet):
    net = tiny_procapnet.model
    short, long = memory.saved_activation_bytes(net, 352), memory.saved_activation_bytes(net, 4 * 352)
    assert short > 0 and 3.5 * short < long < 4.5 * short  # a convolutional net: linear in length
    assert all(p.device.type == "cpu" for p in net.parameters())  # the real weights were not touched


def test_full_enformer_estimates_match_the_measured_rows():
    net = _full_enformer()
    saved = memory.saved_activation_bytes(net, 196_608)
    n_params = sum(p.numel() for p in net.parameters())

    def one_copy(precision, checkpointing, sequences):  # the benchmark held no parent copy
        parts = memory.step_estimate(net, 196_608, 1, precision=precision, checkpointing=checkpointing,
                                     sequences_per_example=sequences, saved_bytes=saved)
        return parts["total"] - 4 * n_params

    # float32 and bf16 plain steps: within 5% of the measured peak
    assert one_copy("32", False, 1) == pytest.approx(_measured("fp32", "grelu") * memory.GB, rel=0.05)
    assert one_copy("bf16-mixed", False, 1) == pytest.approx(_measured("bf16-mixed", "grelu") * memory.GB, rel=0.05)
    # the calibration leans towards "fits": no estimate above a measured peak by more than 5%
    for setting, precision, ckpt in (("checkpointing", "32", True), ("bf16-mixed", "bf16-mixed", False)):
        for runner, sequences in (("grelu", 1), ("genocl", 2)):
            assert one_copy(precision, ckpt, sequences) <= 1.05 * _measured(setting, runner) * memory.GB
    # the genocl float32 step that was killed at 24 GB is estimated beyond 24 GB
    assert one_copy("32", False, 2) > 24 * memory.GB


def test_batch_that_cannot_fit_is_refused_with_the_one_that_can(monkeypatch):
    net = _full_enformer()
    monkeypatch.setattr(memory, "available_bytes", lambda *a, **k: 23 * memory.GB)
    with pytest.raises(GenoclInputError, match=r"--batch-size: 64: one training step needs ~.* GiB.*23 GiB is free.*"
                                               r"--gradient-checkpointing"):
        memory.check_training_step(net, 196_608, 64, strategies=("finetune",))
    with pytest.raises(GenoclInputError, match="^memory: 1: .*add --gradient-checkpointing and --precision bf16"):
        memory.check_training_step(net, 196_608, None)  # even one example does not fit in float32
    batch, note = memory.check_training_step(net, 196_608, None, precision="bf16-mixed", checkpointing=True)
    assert batch >= 1 and "free" in note
    # an explicit batch that is too large, where a smaller one fits: the fix names it
    with pytest.raises(GenoclInputError, match=r"use --batch-size (\d+) \(add --accumulate-grad-batches"):
        memory.check_training_step(net, 196_608, 16, precision="bf16-mixed", checkpointing=True)
    # --no-memory-check: the estimate is reported, not refused
    batch, note = memory.check_training_step(net, 196_608, 64, refuse=False)
    assert batch == 64 and "trying anyway" in note


def test_default_batch_size_uses_the_estimate(monkeypatch, tiny_procapnet):
    net = tiny_procapnet.model
    assert hardware.default_batch_size(net, 352) == 16  # plenty of memory: the cap
    per_example = memory.step_estimate(net, 352, 2)["activations"] - memory.step_estimate(net, 352, 1)["activations"]
    weights_etc = memory.step_estimate(net, 352, 1)["total"] - memory.PROCESS_GB * memory.GB - 4 * sum(
        p.numel() for p in net.parameters()) - memory.step_estimate(net, 352, 1)["activations"]
    monkeypatch.setattr(memory, "available_bytes", lambda *a, **k: weights_etc + 4.5 * per_example)
    assert hardware.default_batch_size(net, 352) == 4  # 4 examples fit, 8 do not


def test_measuring_leaves_the_model_as_it_was(enformer_geometry_dir):
    """The meta pass runs on a copy: an enformer-pytorch model keeps its weights and still predicts."""
    from genocl_plugin.models import load_model

    model = load_model(enformer_geometry_dir)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    assert memory.saved_activation_bytes(model.model, model.seq_len) > 0
    after = model.model.state_dict()
    assert all(v.device.type == "cpu" and torch.equal(v, before[k]) for k, v in after.items())
