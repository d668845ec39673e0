"""benchmarks/ceiling.py: k-mer counting, span sums, the ridge fit and its alignment with the minis' crops."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from genocl_plugin.data import reference
from genocl_plugin.evaluation.evaluate import pearson
from genocl_plugin.training.pretrain import WindowCropDataset

SPEC = importlib.util.spec_from_file_location("ceiling_benchmark",
                                              Path(__file__).parents[1] / "benchmarks" / "ceiling.py")
ceiling = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ceiling)


def test_kmer_bin_counts_counts_each_kmer_in_the_bin_it_starts_and_skips_n():
    # ACGTA CGTNA (codes), k=2, bins of 5 bp
    codes = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 0], dtype=np.uint8)
    counts = ceiling.kmer_bin_counts(codes, k=2, bin_size=5)
    assert counts.shape == (2, 16)
    # bin 0 starts AC, CG, GT, TA, AC
    assert counts[0, 0 * 4 + 1] == 2 and counts[0, 1 * 4 + 2] == 1 and counts[0, 3 * 4 + 0] == 1
    assert counts[0].sum() == 5
    # bin 1 starts CG, GT (TN and NA hold an N; the last base starts no 2-mer)
    assert counts[1].sum() == 2 and counts[1, 1 * 4 + 2] == 1 and counts[1, 2 * 4 + 3] == 1


def test_span_sums_clip_to_the_sequence():
    counts = np.arange(10, dtype=np.float32).reshape(5, 2)
    sums = ceiling.span_sums(counts, np.array([0, -3, 3]), np.array([2, 1, 9]))
    np.testing.assert_allclose(sums, [[0 + 2, 1 + 3], [0, 1], [6 + 8, 7 + 9]])


def test_ridge_recovers_a_planted_signal_and_the_penalty_shrinks_it():
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, size=(2000, 40)).astype(np.float32)
    w = rng.normal(size=40)
    y = np.log1p(x) @ w + rng.normal(scale=0.3, size=2000)
    fit = ceiling.ridge_fit(x[:1500], y[:1500], alphas=(1e-2, 1e9))
    good = ceiling.ridge_predict(fit, x[1500:], 1e-2)[:, 0]
    flat = ceiling.ridge_predict(fit, x[1500:], 1e9)[:, 0]
    assert pearson(good, y[1500:]) > 0.95
    assert np.std(flat) < 0.01 * np.std(good)


def test_scored_bins_match_the_crops_the_minis_are_scored_on():
    enformer = WindowCropDataset("enformer", "test", seq_len=4096, out_bins=96)
    per_window = sum(1 for w, _ in enformer.starts if w == 0)
    assert per_window * 96 // 4 == ceiling.ENFORMER_BINS_128
    procap = WindowCropDataset("procapnet", "test", seq_len=2114, out_bins=ceiling.PROCAP_BINS)
    first_bins = [(s - reference.TARGET_CROP) // reference.BIN_SIZE for w, s in procap.starts if w == 0]
    np.testing.assert_array_equal(first_bins, ceiling.procap_crops())
    # the counts features see the crop's output and (almost all of) its 2,114-bp input
    assert (ceiling.PROCAP_BINS + 2 * ceiling.PROCAP_FLANK) * reference.BIN_SIZE <= 2114
