"""Replay buffers, the pseudo-target cache, replay / distillation callbacks, and the gReLU-user flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from genocl_plugin.errors import GenoclInputError
from genocl_plugin.strategies.distill import (
    DistillationCallback,
    log_counts_mse,
    multinomial_distill,
    poisson_distill,
)
from genocl_plugin.strategies.replay import ReplayCallback
from genocl_plugin.training.replay import BalancedBuffer, ReservoirBuffer, capacity_for_budget


@pytest.fixture()
def tiny():
    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    # named like the bundled ProCapNet mini's outputs, so the bundled windows give real tracks
    return build_model("procapnet", seq_len=800,
                       task_names=["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"],
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})


def test_reservoir_keeps_every_item_with_equal_probability():
    n, capacity, trials = 40, 8, 1500
    counts = np.zeros(n)
    for seed in range(trials):
        buffer = ReservoirBuffer(capacity, seed=seed)
        for i in range(n):
            buffer.add(i, (np.zeros(1),))
        assert len(buffer) == capacity
        counts[buffer.keys] += 1
    # inclusion probability capacity / n for every position in the stream
    assert np.allclose(counts / trials, capacity / n, atol=0.05)
    assert chisquare(counts).pvalue > 0.001


def test_reservoir_respects_memory_budget():
    item = (np.zeros(1000, np.uint8), np.zeros(256, np.float32))  # 2,024 bytes
    capacity = capacity_for_budget(0.05, 2024)
    buffer = ReservoirBuffer(capacity)
    for i in range(100):
        buffer.add(i, item)
    assert len(buffer) == capacity == 25
    assert buffer.nbytes <= 0.05 * 2**20


def test_balanced_buffer_equal_counts_per_group():
    buffer = BalancedBuffer(30, seed=0)
    for group, n in (("a", 100), ("b", 50), ("c", 20)):
        for i in range(n):
            buffer.add(i, (np.zeros(1),), group=group)
    assert {g: len(b) for g, b in buffer.groups.items()} == {"a": 10, "b": 10, "c": 10}


class CountingModel(nn.Module):
    """Counts forward calls; output = log(1 + number of A) per position."""

    device = torch.device("cpu")
    training = False

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor, logits: bool = True) -> torch.Tensor:
        self.calls += 1
        return torch.log1p(x[:, :1].sum(-1, keepdim=True)).expand(-1, 2, 3)


def test_pseudo_targets_computed_once_and_memory_mapped(tmp_path):
    import pandas as pd

    from genocl_plugin.data.reference import Geometry, ReferenceSet

    codes = np.random.default_rng(0).integers(0, 4, size=(10, 16)).astype(np.uint8)
    windows = {"train": pd.DataFrame({"chrom": ["c"] * 10, "start": np.arange(10) * 16, "group": np.arange(10)})}
    ref = ReferenceSet("test", Geometry(16, 3, 1, 6), windows, read_codes=None, track_names=["a", "b"],
                       cache_dir=tmp_path, batch_size=4, arrays={"codes": {"train": codes}})
    model = CountingModel()
    logits = ref.teacher_logits("train", np.arange(10), model)
    assert model.calls == 3
    files = list(tmp_path.glob("pseudo_train_*.f16"))
    assert len(files) == 1 and files[0].stat().st_size == 10 * 2 * 3 * 2  # fp16 on disk
    for _ in range(5):
        rows = ref.teacher_logits("train", np.array([7, 2]), model)
    assert model.calls == 3
    expected = np.log1p((codes[[7, 2]] == 0).sum(-1))
    np.testing.assert_allclose(rows[:, 0, 0], expected, rtol=1e-3)
    np.testing.assert_allclose(ref.targets("train", [7, 2], model)[:, 0, 0], np.expm1(expected) + 1, rtol=1e-3)
    assert logits.dtype == np.float32 and logits.shape == (10, 2, 3)


def test_replay_loss_is_model_loss_on_buffered_windows(tiny):
    cb = ReplayCallback(ratio=0.5, budget_mb=0.1, normalize=False, seed=1)
    cb.prepare(tiny)
    assert not cb.pseudo_used and len(cb.codes) == capacity_for_budget(0.1, 800 + 2 * 704 * 4)
    batch = (torch.zeros(4, 4, 800), torch.zeros(4, 2, 704))
    rng_state = np.random.default_rng(1)
    term = cb.loss_term(tiny, batch)
    idx = np.sort(rng_state.choice(len(cb.codes), 2, replace=False))
    assert term.item() == pytest.approx(cb._replay_loss(tiny, idx).item(), rel=1e-5)
    assert set(cb.state_dict_for_run()) == {"keys", "n_seen"}


def test_pseudo_replay_teacher_runs_once(tiny):
    cb = ReplayCallback(ratio=0.5, budget_mb=0.1, pseudo=True)
    cb.prepare(tiny)
    calls = []
    tiny.model.register_forward_hook(lambda *a: calls.append(1))
    for _ in range(3):
        cb.loss_term(tiny, (torch.zeros(4, 4, 800),))
    assert len(calls) == 3  # student forwards only; the teacher's predictions come from the memmap
    assert cb.pseudo_used and cb.targets.shape[1:] == (2, 704)
    cached = cb.reference._pseudo["train"]
    assert all(isinstance(row.base, np.memmap) or isinstance(row, np.memmap) for row in cached.values())


def test_replay_budget_larger_than_data_is_an_input_error(tiny):
    with pytest.raises(GenoclInputError, match="reference windows exist"):
        ReplayCallback(budget_mb=10_000).prepare(tiny)


@pytest.mark.parametrize("loss", [poisson_distill, log_counts_mse, multinomial_distill])
def test_distillation_losses_zero_iff_student_equals_teacher(loss):
    teacher = torch.randn(3, 2, 20)
    assert loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-5)
    student = teacher + torch.randn(3, 2, 20) * 0.5
    assert loss(student, teacher).item() > 1e-3


def test_distillation_callback_zero_at_parent(tiny):
    cb = DistillationCallback(budget_mb=0.1)
    cb.setup(None, tiny, "fit")
    assert cb.loss_term(tiny, None).item() == pytest.approx(0.0, abs=1e-4)
    with torch.no_grad():
        for p in tiny.model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    assert cb.loss_term(tiny, None).item() > 1e-3


def grelu_conv_model():
    """A plain gReLU LightningModel (2 tracks at base resolution), as a gReLU user builds one."""
    from grelu.lightning import LightningModel

    torch.manual_seed(0)
    return LightningModel(
        model_params={"model_type": "ConvModel", "n_tasks": 2, "stem_channels": 8, "channel_init": 8,
                      "n_conv": 2, "final_pool_func": None},
        train_params={"task": "regression", "loss": "poisson", "lr": 1e-3, "logger": None},
    )


def test_grelu_model_with_ewc_and_replay_trains():
    """The docs/strategies.md example: a plain gReLU LightningModel + EWCCallback + ReplayCallback."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from genocl_plugin.strategies.ewc import EWCCallback

    model = grelu_conv_model()
    x = torch.eye(4)[torch.randint(0, 4, (16, 512))].transpose(1, 2)
    my_dataset = TensorDataset(x, torch.rand(16, 2, 512))
    ewc = EWCCallback(lambda_=10.0, data=my_dataset, n_samples=4)
    replay = ReplayCallback(ratio=0.5, budget_mb=0.5, seq_len=512)
    trainer = pl.Trainer(max_epochs=1, callbacks=[ewc, replay], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    before = {n: p.detach().clone() for n, p in model.model.named_parameters()}
    trainer.fit(model, DataLoader(my_dataset, batch_size=8))
    assert replay.pseudo_used  # pseudo-replay: a ConvModel's tracks are not the bundled ones
    assert ewc.importance and ewc.loss_term(model, None).item() > 0
    assert any(not torch.equal(before[n], p) for n, p in model.model.named_parameters())


def test_run_seed_reaches_the_sampling_strategies():
    """Different run seeds give different replay draws and importance windows (not seed 0 each time)."""
    from genocl_plugin.strategies import resolve_strategies

    for spec, attr in [("replay", "seed"), ("distill", "seed"), ("ewc", "seed"), ("mas", "seed")]:
        seeds = {getattr(resolve_strategies(spec, seed=s)[0], attr) for s in (0, 1, 2)}
        assert seeds == {0, 1, 2}, spec
    draws = [resolve_strategies("replay", seed=s)[0].rng.integers(1 << 30, size=4).tolist() for s in (1, 2)]
    assert draws[0] != draws[1]


def test_replay_datamodule_feeds_an_unmodified_grelu_model():
    """The reference set as a datamodule: gReLU's own LightningModel trains on new + replayed windows."""
    import pytorch_lightning as pl
    from torch.utils.data import TensorDataset

    from genocl_plugin.data.reference import bundled_reference_set
    from genocl_plugin.strategies.replay import ReferenceDataModule, ReplayDataModule

    model = grelu_conv_model()
    ref = bundled_reference_set(model, seq_len=512)
    x = torch.eye(4)[torch.randint(0, 4, (12, 512))].transpose(1, 2)
    new_data = TensorDataset(x, torch.rand(12, 2, 512))
    datamodule = ReplayDataModule(new_data, ref, model=model, batch_size=4, ratio=0.5, budget_mb=0.05)
    seen = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch)

    trainer = pl.Trainer(max_epochs=1, callbacks=[Record()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=datamodule)
    assert len(seen) == 3 and all(isinstance(b, tuple | list) and b[0].shape[0] == 6 for b in seen)
    replayed = seen[0][0][4:]
    genome = {tuple(c.argmax(0).tolist()) for c in datamodule.replay_data.tensors[0]}
    assert all(tuple(w.argmax(0).tolist()) in genome for w in replayed)  # replayed rows are reference windows
    test_batch = next(iter(ReferenceDataModule(ref, model=model, max_windows=5).test_dataloader()))
    assert test_batch[0].shape == (5, 4, 512) and test_batch[1].shape == (5, 2, 512)
