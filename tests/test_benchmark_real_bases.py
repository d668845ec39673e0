"""benchmarks/real_bases.py: the probe's ridge, the track Pearson, the summary and the claims it states."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

SPEC = importlib.util.spec_from_file_location("real_bases_benchmark",
                                              Path(__file__).parents[1] / "benchmarks" / "real_bases.py")
real_bases = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(real_bases)


def test_ridge_recovers_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12))
    w = rng.normal(size=12)
    y = x @ w + 0.1 * rng.normal(size=400)
    pred = real_bases.ridge_fit_predict(x[:300], y[:300], x[300:])
    assert np.corrcoef(pred, y[300:])[0, 1] > 0.95
    noise = rng.normal(size=400)
    pred = real_bases.ridge_fit_predict(x[:300], noise[:300], x[300:])
    assert abs(np.corrcoef(pred, noise[300:])[0, 1]) < 0.3


def test_cage_pearson_bins_log_predictions_to_32_bp_per_strand():
    from types import SimpleNamespace

    from genocl_plugin.models.puffin import TRACK_NAMES

    rng = np.random.default_rng(1)
    cage = rng.poisson(2.0, size=(5, 2, 3)).astype(np.float32)  # 5 windows, 2 strands, 3 bins of 32 bp
    log_pred = np.full((5, len(TRACK_NAMES), 96 + 7), -30.0)  # the 7 positions past the last bin are dropped
    plus, minus = TRACK_NAMES.index("CAGE:FANTOM5 +"), TRACK_NAMES.index("CAGE:FANTOM5 -")
    log_pred[:, plus, :96] = np.log(np.repeat(cage[:, 0], 32, axis=-1) / 32 + 1e-12)
    log_pred[:, minus, :96] = np.log(np.repeat(cage[:, 1, ::-1], 32, axis=-1) / 32 + 1e-12)
    scores = real_bases.cage_pearson(log_pred, TRACK_NAMES, SimpleNamespace(cage=cage, n_bins=3))
    assert scores["cage_pearson_plus"] == pytest.approx(1.0, abs=1e-6)
    reversed_r = np.corrcoef(cage[:, 1, ::-1].ravel(), cage[:, 1].ravel())[0, 1]
    assert scores["cage_pearson_minus"] == pytest.approx(reversed_r, abs=1e-5)
    assert scores["cage_pearson"] == pytest.approx((1.0 + reversed_r) / 2, abs=1e-5)


def test_drift_is_one_for_the_same_predictions_and_lower_otherwise():
    rng = np.random.default_rng(2)
    log_pred = rng.normal(size=(4, 3, 50))
    assert real_bases.drift(log_pred, log_pred) == pytest.approx(1.0)
    assert real_bases.drift(log_pred, log_pred + rng.normal(size=log_pred.shape)) < 0.9


def fake_result(gains: dict, retentions: dict, parent: float) -> dict:
    rows = [{"label": label, "seed": seed, "gain_id": g, "gain_ood": 0.0, "drift": 1.0,
             "cage_pearson": retentions[label][k]}
            for label, values in gains.items() for k, (seed, g) in enumerate(zip(range(5), values, strict=True))]
    return {"rows": rows, "parent": {"cage_pearson": parent}, "chosen": {"params": {}}}


def test_summary_pairs_by_seed_and_claims_follow_the_intervals():
    gains = {"finetune": [0.20, 0.22, 0.18, 0.21, 0.19], "lora": [0.20, 0.21, 0.19, 0.22, 0.20],
             "replay": [0.0, 0.01, -0.01, 0.02, 0.0]}
    retentions = {"finetune": [0.10, 0.12, 0.11, 0.09, 0.10], "lora": [0.30, 0.31, 0.29, 0.30, 0.30],
                  "replay": [0.30, 0.30, 0.31, 0.29, 0.30]}
    summary = real_bases.summarise(fake_result(gains, retentions, parent=0.30))
    assert summary["lora"]["retention_vs_finetune"]["mean"] == pytest.approx(0.196, abs=1e-3)
    assert summary["lora"]["retention_vs_finetune"]["ci_low"] > 0
    assert summary["finetune"]["retention_base"] == pytest.approx(0.30)
    claims = real_bases.claims(summary)
    assert "excludes zero" in claims[0]
    assert "it forgets" in claims[1]
    assert claims[2].endswith("lora")  # replay keeps retention but not the gain


def test_claims_say_no_learning_when_the_gain_interval_includes_zero():
    gains = {"finetune": [0.1, -0.1, 0.05, -0.05, 0.0]}
    summary = real_bases.summarise(fake_result(gains, {"finetune": [0.3] * 5}, parent=0.30))
    claims = real_bases.claims(summary)
    assert "includes zero" in claims[0] and "no measured forgetting" in claims[1]
    assert summary["finetune"]["drift"]["mean"] == pytest.approx(0.0)  # drift as 1 - r: unchanged is 0


def test_shared_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GENOCL_SHARED", str(tmp_path))
    assert real_bases.shared_dir(None) == tmp_path
    assert real_bases.shared_dir("/x") == Path("/x")


def test_probe_features_on_a_random_puffin():
    """The probe runs on a randomly initialised Puffin and returns one row per block split."""
    import anndata

    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    model = build_model("puffin")
    screen = anndata.read_h5ad(real_bases.BUNDLED / "mpra_promoters.h5ad")
    settings = {"probe_per_element": 12, "probe_splits": 2}
    out = real_bases.probe(model, screen, settings, input_length=1400, readout=None)
    assert len(out["rows"]) == 2 and out["n_features"] == 10 + 104
    assert all(np.isfinite(r["probe"]) and -1 <= r["probe"] <= 1 for r in out["rows"])
