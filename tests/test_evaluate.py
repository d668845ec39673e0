"""`genocl evaluate`: continual-learning metrics on a hand-computed matrix, JSD, and end to end."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genocl_plugin.data import reference, screens
from genocl_plugin.evaluation import evaluate as ev
from genocl_plugin.models import build_model, save_model
from genocl_plugin.training.update import UpdateConfig, run_update

# named like the bundled ProCapNet mini's outputs, so retention is scored against the real tracks
BUNDLED_STRANDS = ["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"]

# R[i][j]: model after task i on task j (task 0 = reference tracks).
R = [[0.60, 0.10, 0.20],
     [0.50, 0.40, 0.30],
     [0.45, 0.35, 0.70]]


def test_transfer_and_forgetting_by_hand():
    # BWT = mean(R[2,0] - R[0,0], R[2,1] - R[1,1]) = mean(-0.15, -0.05) = -0.10
    assert ev.backward_transfer(R) == pytest.approx(-0.10)
    # FWT = mean(R[0,1] - b1, R[1,2] - b2) with b = R[0] = mean(0.0, 0.30 - 0.20) = 0.05
    assert ev.forward_transfer(R) == pytest.approx(0.05)
    # with an explicit baseline (e.g. a random model): mean(0.10 - 0.0, 0.30 - 0.05) = 0.175
    assert ev.forward_transfer(R, baseline=[0.0, 0.0, 0.05]) == pytest.approx(0.175)
    # forgetting_j = max_{l<2} R[l,j] - R[2,j]: task 0: 0.60 - 0.45, task 1: 0.40 - 0.35
    np.testing.assert_allclose(ev.forgetting(R), [0.15, 0.05])
    m = ev.continual_metrics(R)
    assert m["mean_forgetting"] == pytest.approx(0.10)
    assert m["final_mean_score"] == pytest.approx(0.5)


def test_metrics_reject_non_square_and_single_task():
    with pytest.raises(ValueError, match="square"):
        ev.accuracy_matrix([[1.0, 2.0]])
    assert np.isnan(ev.backward_transfer([[0.5]]))
    assert len(ev.forgetting([[0.5]])) == 0


def test_js_divergence_tiny_profiles():
    # identical shapes (whatever the scale) -> 0; disjoint supports -> 1 bit
    assert ev.js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert ev.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4)
    # JSD = 1/2 * log2(4/3) + 1/2 * (1/2 log2(2/3) + 1/2 log2(2))
    expected = 0.5 * np.log2(4 / 3) + 0.5 * (0.5 * np.log2(2 / 3) + 0.5)
    assert ev.js_divergence([3, 0], [1, 1]) == pytest.approx(expected)
    # per-row along the last axis, symmetric
    pq = ev.js_divergence([[1, 0], [1, 1]], [[0, 1], [1, 1]])
    np.testing.assert_allclose(pq, [1.0, 0.0], atol=1e-12)
    assert ev.js_divergence([1, 3], [2, 1]) == pytest.approx(ev.js_divergence([2, 1], [1, 3]))


@pytest.fixture()
def two_screens(tmp_path):
    """The bundled promoter screen split into two screens with disjoint elements."""
    screen = anndata.read_h5ad(reference.BUNDLED / "mpra_promoters.h5ad")
    elements = sorted(screen.obs["element"].astype(str).unique())
    halves = [elements[: len(elements) // 2], elements[len(elements) // 2:]]
    paths = []
    for k, half in enumerate(halves, 1):
        part = screen[screen.obs["element"].astype(str).isin(half).to_numpy()].copy()
        part.uns["element_sequences"] = {e: part.uns["element_sequences"][e] for e in half}
        part.uns["element_coordinates"] = {e: part.uns["element_coordinates"][e] for e in half}
        paths.append(screens.write_screen(part, tmp_path / f"half{k}.h5ad"))
    return paths


def test_evaluate_two_sequential_runs(tmp_path, two_screens):
    torch.manual_seed(0)
    base = build_model("procapnet", seq_len=800, task_names=BUNDLED_STRANDS,
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    base_dir = save_model(base, tmp_path / "base")
    settings = {"max_train": 32, "max_eval": 16, "retention_crops": 8, "lr": 1e-2, "holdout": 0.4,
                "strategy": "finetune"}
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    run_update(UpdateConfig(model=str(base_dir), data=str(two_screens[0]), **settings), run1)
    out2 = run_update(UpdateConfig(model=str(run1), data=str(two_screens[1]), **settings), run2)

    result = ev.evaluate_runs([run2], max_crops=8)
    (run,) = result["runs"]
    assert run["chain"] == [str(base_dir), str(run1), str(run2)]
    m = np.asarray(run["matrix"])
    assert m.shape == (3, 3) and np.isfinite(m).all()
    # the diagonal and the last row reproduce what each update measured on its own
    first = json.loads((run1 / "metrics.json").read_text())
    assert m[1, 1] == pytest.approx(first["new_task"]["after"]["pearson"], abs=1e-5)
    assert m[0, 1] == pytest.approx(first["new_task"]["before"]["pearson"], abs=1e-5)
    assert m[2, 2] == pytest.approx(out2["report"]["new_task"]["after"]["pearson"], abs=1e-5)
    assert m[0, 0] == pytest.approx(first["retention"]["pearson_before"], abs=1e-5)
    assert m[2, 0] == pytest.approx(out2["report"]["retention"]["pearson_after"], abs=1e-5)
    # the summary numbers are the formulas applied to that matrix
    assert run["metrics"]["bwt"] == pytest.approx(((m[2, 0] - m[0, 0]) + (m[2, 1] - m[1, 1])) / 2)
    assert run["metrics"]["fwt"] == pytest.approx((0.0 + m[1, 2] - m[0, 2]) / 2)
    # profile model: JSD and counts Pearson for every model of the chain
    assert all(0 <= r["jsd"] <= 1 and "counts_pearson" in r for r in run["reference"])
    assert run["drift"]["drift_pearson"] < 1.0

    # CLI: table, JSON and the three plots
    out = tmp_path / "eval"
    from genocl_cli.main import main

    res = CliRunner().invoke(main, ["evaluate", str(run2), "--out", str(out), "--max-crops", "8"])
    assert res.exit_code == 0, res.output
    assert "BWT" in res.output and "after T2" in res.output
    saved = json.loads((out / "evaluation.json").read_text())
    np.testing.assert_allclose(saved["runs"][0]["matrix"], m, atol=1e-9)
    for name in ("accuracy_matrix.png", "tradeoff.png", "per_track_retention.png"):
        assert (out / name).stat().st_size > 0


def test_evaluate_rejects_non_run(tmp_path):
    from genocl_cli.main import main

    res = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert res.exit_code == 2 and "metrics.json" in res.output


def test_metrics_json_is_sealed_and_an_edit_is_refused(tmp_path):
    from genocl_plugin.errors import GenoclInputError

    run = tmp_path / "run"
    run.mkdir()
    ev.write_json({"config": {"model": "procapnet"}, "retention": {"drift_pearson": float("nan")}},
                  run / "metrics.json", sealed=True)
    assert ev.read_run_metrics(run)["retention"]["drift_pearson"] is None
    text = (run / "metrics.json").read_text().replace('"procapnet"', '"enformer"')
    (run / "metrics.json").write_text(text)
    with pytest.raises(GenoclInputError, match="config_sha256: does not match"):
        ev.read_run_metrics(run)


def test_evaluate_reproduces_a_run_with_mpra_input_length(tmp_path):
    # 800-bp model, 704-bp output; the promoters (<= 600 bp) are scored in a 704-bp input
    torch.manual_seed(0)
    base = build_model("procapnet", seq_len=800, task_names=BUNDLED_STRANDS,
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    base_dir = save_model(base, tmp_path / "base")
    run = tmp_path / "run"
    out = run_update(UpdateConfig(model=str(base_dir), data=str(reference.BUNDLED / "mpra_promoters.h5ad"),
                                  strategy="finetune", max_train=32, max_eval=16, retention_crops=4, lr=1e-2,
                                  mpra_input_length=704), run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["mpra_input_length"] == 704
    dataset = ev.screen_task(run, base)
    assert {len(r) for r in dataset.refs} == {704}
    (scored,) = ev.evaluate_runs([run], max_crops=4)["runs"]
    assert scored["matrix"][1][1] == pytest.approx(out["report"]["new_task"]["after"]["pearson"], abs=1e-5)
    assert scored["matrix"][0][1] == pytest.approx(out["report"]["new_task"]["before"]["pearson"], abs=1e-5)
