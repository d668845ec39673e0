"""The pretraining recipe: augmentation, per-group metrics at 32/128 bp, the LR schedule."""

from __future__ import annotations

import numpy as np
import pytest

from genocl_plugin.data import reference
from genocl_plugin.evaluation.evaluate import pearson
from genocl_plugin.training import pretrain


def test_strand_permutation_swaps_stranded_pairs_only():
    perm = pretrain.strand_permutation("enformer")
    names = reference.track_names()
    assert sorted(perm) == list(range(len(names)))
    assert (perm[perm] == np.arange(len(names))).all()  # an involution
    plus, minus = reference.cage_strand_indices()
    assert all(perm[p] in minus for p in plus)
    dnase = reference.track_indices("DNASE")
    assert all(perm[i] == i for i in dnase)  # unstranded tracks stay
    assert list(pretrain.strand_permutation("procapnet")) == [1, 0]


def test_reverse_complement_of_input_and_targets():
    codes = reference.seq_to_codes("AACGTN")
    x = reference.codes_to_one_hot(codes)
    y = np.arange(12, dtype=np.float32).reshape(2, 6)
    rx, ry = pretrain.reverse_complement(x, y, np.array([1, 0]))
    # reverse complement of AACGTN is NACGTT (N stays all-zero)
    assert np.array_equal(rx, reference.codes_to_one_hot(reference.seq_to_codes("NACGTT")))
    assert np.array_equal(ry, y[::-1, ::-1])
    back = pretrain.reverse_complement(rx, ry, np.array([1, 0]))
    assert np.array_equal(back[0], x) and np.array_equal(back[1], y)


def test_window_crops_are_aligned_and_augmented():
    plain = pretrain.WindowCropDataset("enformer", "valid", seq_len=1024, out_bins=16)
    x, y = plain[0]
    assert x.shape == (4, 1024) and y.shape == (74, 16)
    # the first crop's targets are the first 16 bins of the first valid window
    data = reference.load_windows()
    assert np.allclose(y.numpy(), data["valid_targets"][0][:16].T.astype(np.float32))
    aug = pretrain.WindowCropDataset("enformer", "valid", seq_len=1024, out_bins=16, augment=True, seed=3)
    flipped = 0
    for _ in range(20):
        xa, ya = aug[0]
        assert xa.shape == x.shape and ya.shape == y.shape
        flipped += bool(np.allclose(ya.numpy(), y.numpy()[pretrain.strand_permutation("enformer"), ::-1]))
    assert 0 < flipped < 20  # about half the draws are reverse complements


def test_resolution_metrics_pool_32bp_bins():
    rng = np.random.default_rng(0)
    pred, target = rng.random((3, 74, 8)), rng.random((3, 74, 8))
    out = pretrain.resolution_metrics(pred, target, "enformer", "test")
    dnase = reference.track_indices("DNASE")
    p128, t128 = pred.reshape(3, 74, 2, 4).sum(-1), target.reshape(3, 74, 2, 4).sum(-1)
    expected = np.mean([pearson(p128[:, i], t128[:, i]) for i in dnase])
    assert out["test_pearson_dnase_128bp"] == pytest.approx(expected)
    assert {"test_pearson_cage_32bp", "test_pearson_rna_128bp"} <= set(out)
    counts = pretrain.resolution_metrics(pred[:, :2], target[:, :2], "procapnet")
    assert counts["test_counts_pearson"] == pytest.approx(
        pearson(np.log1p(pred[:, :2].sum((1, 2))), np.log1p(target[:, :2].sum((1, 2)))))


def test_warmup_cosine_schedule():
    sched = pretrain.WarmupCosine(1e-3, warmup_steps=10, total_steps=110)
    assert sched.lr_at(0) == pytest.approx(1e-4)
    assert sched.lr_at(9) == pytest.approx(1e-3)
    assert sched.lr_at(60) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert sched.lr_at(500) == pytest.approx(5e-5)


def test_output_calibration_matches_track_means_and_keeps_pearson():
    """The per-track offset is the Poisson optimum: mean prediction = mean target, Pearson unchanged."""
    import torch

    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    model = build_model("enformer", task_names=reference.track_names(), seq_len=1024)
    data = pretrain.WindowCropDataset("enformer", "train", model.seq_len, pretrain.output_bins(model))
    idx = np.random.default_rng(5).choice(len(data), 24, replace=False)
    x = torch.stack([data[int(i)][0] for i in idx])
    y = torch.stack([data[int(i)][1] for i in idx])
    model.eval()
    with torch.no_grad():
        before = model(x, logits=True)
    shift = pretrain.calibrate_output_offsets(model, "enformer", seed=5, n_crops=24)
    with torch.no_grad():
        after = model(x, logits=True)
    assert shift.shape == (74,) and np.abs(shift).max() > 0.5  # a random head is far from the targets' scale
    np.testing.assert_allclose(after.numpy(), (before + torch.from_numpy(shift)[None, :, None]).numpy(), atol=1e-4)
    np.testing.assert_allclose(after.exp().sum((0, 2)).numpy(), y.sum((0, 2)).clamp_min(1e-6).numpy(), rtol=1e-3)
    assert model.loss(after, y) < model.loss(before, y)
    assert pearson(after[:, 30].flatten().numpy(), y[:, 30].flatten().numpy()) == pytest.approx(
        pearson(before[:, 30].flatten().numpy(), y[:, 30].flatten().numpy()), abs=1e-3)
    with pytest.raises(ValueError, match="enformer-mini"):
        pretrain.calibrate_output_offsets(model, "procapnet")


def test_model_card_names_the_direct_init_only(tiny_enformer):
    """A model warm-started twice keeps both steps in its lineage; its card describes the weights
    this run began from, not the first ones."""
    from genocl_plugin.training.pretrain import model_card

    lineage = [{"step": "pretrain"}, {"step": "init", "weights_sha256": "a" * 64, "command": "first",
                                      "test_metrics": {"test_pearson_mean": 0.01}},
               {"step": "pretrain"}, {"step": "init", "weights_sha256": "b" * 64, "command": "second",
                                      "test_metrics": {"test_pearson_mean": 0.02}},
               {"step": "pretrain"}]
    card = model_card("enformer", tiny_enformer, {"test_pearson_mean": 0.03}, "genocl pretrain --init X",
                      lineage=lineage)
    assert "b" * 64 in card and "made by `second`" in card and "test_pearson_mean 0.0200" in card
    assert "a" * 64 not in card and "0.0100" not in card
