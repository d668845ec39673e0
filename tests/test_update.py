"""`genocl update` end to end on tiny models and real bundled screens."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.models import build_model, load_model, save_model
from genocl_plugin.training.update import UpdateConfig, run_update

# named like the bundled ProCapNet mini's outputs, so retention is scored against the real tracks
BUNDLED_STRANDS = ["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"]

PROMOTERS = reference.BUNDLED / "mpra_promoters.h5ad"
CRISPRI = reference.BUNDLED / "crispri_example.h5ad"


@pytest.fixture()
def tiny_procapnet_dir(tmp_path):
    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=800, task_names=BUNDLED_STRANDS,
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    return save_model(model, tmp_path / "base")


def _config(model_dir, **kw):
    settings = {"model": str(model_dir), "data": str(PROMOTERS), "max_train": 32, "max_eval": 16,
                "retention_crops": 8, "batch_size": 16, "strategy": "finetune"}
    settings.update(kw)
    return UpdateConfig(**settings)


def test_update_writes_run_and_changes_weights(tiny_procapnet_dir, tmp_path):
    result = run_update(_config(tiny_procapnet_dir, lr=1e-2, epochs=2), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("model/config.json", "model/model.safetensors", "metrics.json", "report.png",
                 "effects_heldout.tsv"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    # held-out elements never appear in training
    assert not set(metrics["split"]["train_elements"]) & set(metrics["split"]["test_elements"])
    assert metrics["split"]["n_train"] == 32 and metrics["split"]["n_test"] == 16
    # in distribution: held-out position blocks of the training elements, scored before/after
    assert metrics["split"]["n_test_in_distribution"] == 16
    ind = metrics["new_task"]["in_distribution"]
    assert ind["before"]["n"] == ind["after"]["n"] == 16
    assert ind["pearson_gain"] == pytest.approx(ind["after"]["pearson"] - ind["before"]["pearson"])
    for key in ("pearson_before", "pearson_after", "drift_pearson"):
        assert np.isfinite(metrics["retention"][key])
    # the update moved the model away from the base
    base, updated = load_model(tiny_procapnet_dir), load_model(run)
    x = torch.from_numpy(reference.codes_to_one_hot(reference.window_crops("test", 800, n_bins=22)[0][:4]))
    with torch.no_grad():
        assert not torch.allclose(base(x), updated(x))
    assert metrics["retention"]["drift_pearson"] < 1.0
    # fine-tuning fits the training effects better than the base did
    nt = result["report"]["new_task"]
    assert nt["train_after"]["mse"] < nt["train_before"]["mse"]
    # lineage records the screen and its hash
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["lineage"][-1]["screen_sha256"] and config["screens_seen"][-1]["assay"] == "mpra"


def test_update_never_overwrites_existing_run(tiny_procapnet_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GenoclInputError, match="already exists"):
        run_update(_config(tiny_procapnet_dir), out)
    assert (out / "keep.txt").read_text() == "mine"


def test_crispri_update_nothing_fits_is_one_error(tiny_procapnet_dir, tmp_path):
    # the bundled pairs span 21-54 kb; an 800-bp model cannot hold any (CRISPRi updates at real
    # geometry: tests/test_crispri_geometry.py)
    with pytest.raises(GenoclInputError, match="no element-TSS pair fits the model: kept 0 pairs; skipped 3"):
        run_update(_config(tiny_procapnet_dir, data=str(CRISPRI), holdout=0.34), tmp_path / "crispri")
    assert not (tmp_path / "crispri").exists()


@pytest.mark.parametrize("args, needle", [
    (["--model", "no-such-model"], "--model"),
    (["--data", "missing.h5ad"], "missing.h5ad"),
    (["--strategy", "bogus"], "bogus"),
])
def test_cli_bad_input_is_one_line_exit_2(args, needle, tmp_path, tiny_procapnet_dir):
    from genocl_cli.main import main

    if "--model" not in args:
        args = ["--model", str(tiny_procapnet_dir), *args]
    result = CliRunner().invoke(main, ["update", *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    # one error line; a model that fails to load does so in [stage 1/8], whose line comes first
    lines = [line for line in result.output.strip().splitlines() if line and not line.startswith("[stage ")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output


def test_cli_wrong_assay_screen(tiny_procapnet_dir, tmp_path):
    import anndata

    screen = anndata.read_h5ad(PROMOTERS)[:10].copy()
    screen.uns["assay"] = "chip"
    bad = tmp_path / "bad.h5ad"
    screen.write_h5ad(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "genocl_cli", "update", "--model", str(tiny_procapnet_dir),
         "--data", str(bad), "--out", str(tmp_path / "r")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "uns['assay']" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_auto_strategy_resolves_per_architecture(tiny_procapnet_dir, tmp_path):
    """--strategy auto (the default) runs the benchmarked strategy of the model's architecture."""
    from genocl_plugin.models import load_model
    from genocl_plugin.strategies import resolve_strategies
    from genocl_plugin.training.update import AUTO_STRATEGY, resolve_auto_strategy

    assert UpdateConfig().strategy == "auto"
    for spec in AUTO_STRATEGY.values():
        resolve_strategies(spec)  # every default is a valid strategy
    model = load_model(str(tiny_procapnet_dir))
    assert resolve_auto_strategy("auto", model) == AUTO_STRATEGY["procapnet"]
    assert resolve_auto_strategy("replay,ewc", model) == "replay,ewc"
    model.data_params["arch"] = "something-else"
    assert resolve_auto_strategy("auto", model) == "finetune"

    out = run_update(_config(tiny_procapnet_dir, strategy="auto", max_train=16, max_eval=8, epochs=1), tmp_path / "r")
    assert out["strategy"] == AUTO_STRATEGY["procapnet"]
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["config"]["strategy"] == AUTO_STRATEGY["procapnet"]
    assert saved["lineage"][-1]["strategy"] == AUTO_STRATEGY["procapnet"]


def test_auto_runs_the_benchmarked_strategy_with_its_parameters(tiny_procapnet_dir, tmp_path, monkeypatch):
    """auto picked head-only updates (freeze --freeze trunk): the trunk stays bit-identical, the heads train,
    the run and its model card say so; a flag the user passes wins over the benchmarked one."""
    from genocl_cli.main import main
    from genocl_plugin.evaluation import stats
    from genocl_plugin.models import load_model
    from genocl_plugin.training import auto

    monkeypatch.setattr(auto, "AUTO_STRATEGY", {"procapnet": "freeze"})
    monkeypatch.setattr(auto, "AUTO_PARAMS", {"procapnet": {"freeze": "trunk"}})
    monkeypatch.setattr(stats, "AUTO_FILE", _evidence_file(tmp_path / "auto.json", "freeze", {"freeze": "trunk"},
                                                           "head only: retention +0.121 vs fine-tuning"))
    base = ["update", "--model", str(tiny_procapnet_dir), "--max-train", "16", "--max-eval", "8",
            "--retention-crops", "2", "--lr", "1e-2"]
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "head")])
    assert result.exit_code == 0, result.output
    assert "strategy auto -> freeze --freeze trunk (benchmarked default" in result.output
    # what it kept, and what the study measured fine-tuning forgetting
    assert "what --strategy freeze --freeze trunk forgot: its predictions" in result.output
    assert "--strategy auto runs freeze --freeze trunk: head only: retention +0.121" in result.output
    assert "  --strategy finetune: retention +0.03 [+0.02, +0.05]" in result.output
    saved = json.loads((tmp_path / "head" / "metrics.json").read_text())
    assert (saved["config"]["strategy"], saved["config"]["strategy_params"]) == ("freeze", {"freeze": "trunk"})
    parent = load_model(str(tiny_procapnet_dir)).model.state_dict()
    updated = load_model(str(tmp_path / "head" / "model")).model.state_dict()
    heads = ("bpnet.fconv.", "bpnet.linear.")
    assert all(torch.equal(parent[k], v) for k, v in updated.items() if not k.startswith(heads))
    assert any(not torch.equal(parent[k], v) for k, v in updated.items() if k.startswith(heads))
    config = json.loads((tmp_path / "head" / "model" / "config.json").read_text())
    assert config["strategy_params"] == {"freeze": "trunk"}
    from genocl_plugin.zoo import _strategy_text

    assert _strategy_text(config) == "freeze --freeze trunk"
    mine = CliRunner().invoke(main, [*base, "--freeze", "embedding", "--out", str(tmp_path / "mine")])
    assert mine.exit_code == 0, mine.output
    assert "strategy auto -> freeze --freeze embedding" in mine.output


def test_strategy_params_name_update_options():
    """strategy_flags turns each hyperparameter into the option of the same name; every one exists."""
    from genocl_cli.main import main
    from genocl_plugin.config import strategy_flags

    assert strategy_flags("replay,l2sp", {"replay_ratio": 0.25, "l2sp_alpha": 1.0}) == \
        "replay,l2sp --replay-ratio 0.25 --l2sp-alpha 1"
    help_text = CliRunner().invoke(main, ["update", "--help"]).output
    for key in ("ewc_lambda", "ewc_decay", "si_c", "mas_lambda", "l2sp_alpha", "replay_ratio", "replay_budget_mb",
                "replay_policy", "distill_weight", "lora_rank", "freeze", "max_drift"):
        assert f"--{key.replace('_', '-')}" in help_text, key


def test_parent_predictions_are_shared_between_updates_of_one_split(tiny_procapnet_dir, tmp_path, monkeypatch):
    from genocl_plugin import objectives
    from genocl_plugin.evaluation import evaluate as ev
    from genocl_plugin.training import update as update_module

    calls = []
    real = objectives.predict_screen_effects

    def counting(model, dataset, *args, **kwargs):
        calls.append(len(dataset))
        return real(model, dataset, *args, **kwargs)

    monkeypatch.setattr(update_module, "predict_screen_effects", counting)
    cache: dict = {}
    first = run_update(_config(tiny_procapnet_dir, lr=1e-2), tmp_path / "ft", parent_predictions=cache)
    n_first = len(calls)  # parent and updated model on the held-out, fit and in-distribution sets
    assert n_first == 6 and len(cache) == 3
    second = run_update(_config(tiny_procapnet_dir, lr=1e-2, strategy="l2sp"), tmp_path / "l2sp",
                        parent_predictions=cache)
    assert len(calls) - n_first == 3  # only the updated model predicts
    a, b = first["report"]["new_task"], second["report"]["new_task"]
    assert a["before"] == b["before"] and a["in_distribution"]["before"] == b["in_distribution"]["before"]
    # another seed holds out other perturbations: no sharing
    run_update(_config(tiny_procapnet_dir, lr=1e-2, seed=1), tmp_path / "seed1", parent_predictions=cache)
    assert len(calls) - n_first == 9 and len(cache) == 6
    # and without the cache the parent's numbers are the same as with it
    plain = run_update(_config(tiny_procapnet_dir, lr=1e-2, strategy="l2sp"), tmp_path / "plain")
    assert plain["report"]["new_task"]["before"] == b["before"]

    # evaluate_runs scores the shared parent once on the shared split, and its numbers still
    # match each run's own
    monkeypatch.setattr(objectives, "predict_screen_effects", counting)
    before = len(calls)
    result = ev.evaluate_runs([tmp_path / "ft", tmp_path / "l2sp"], max_crops=4)
    assert len(calls) - before == 3  # parent once, each updated model once
    for run, report in zip(result["runs"], (first, second), strict=True):
        assert run["matrix"][0][1] == pytest.approx(report["report"]["new_task"]["before"]["pearson"], abs=1e-5)
        assert run["matrix"][1][1] == pytest.approx(report["report"]["new_task"]["after"]["pearson"], abs=1e-5)


def _evidence_file(path, auto="finetune", params=None,
                   reason="no strategy keeps in-distribution gain within 5% of fine-tuning's"):
    ci = lambda m, lo, hi: {"mean": m, "ci_low": lo, "ci_high": hi}  # noqa: E731
    path.write_text(json.dumps({"procapnet": {
        "strategy": auto, "params": params or {}, "reason": reason, "mode": "full", "commit": "abc",
        "evidence": {"model": "procapnet-mini", "n_seeds": 5, "finetune": {"retention": ci(0.033, 0.019, 0.048)},
                     "strategies": {"replay": {"strategy": "replay", "params": {"replay_ratio": 0.25},
                                               "drift_vs_finetune": ci(-0.2, -0.37, -0.04),
                                               "retention_vs_finetune": ci(0.002, -0.037, 0.041),
                                               "gain_in_distribution_vs_finetune": ci(-0.066, -0.22, 0.088)}}}}}))
    return path


def test_finetune_prints_what_the_study_says_strategies_would_have_kept(tiny_procapnet_dir, tmp_path, monkeypatch):
    from genocl_cli.main import main
    from genocl_plugin.evaluation import stats

    monkeypatch.setattr(stats, "AUTO_FILE", _evidence_file(tmp_path / "auto.json"))
    base = ["update", "--model", str(tiny_procapnet_dir), "--max-train", "16", "--max-eval", "8",
            "--retention-crops", "2"]
    result = CliRunner().invoke(main, [*base, "--strategy", "finetune", "--out", str(tmp_path / "ft")])
    assert result.exit_code == 0, result.output
    drift = json.loads((tmp_path / "ft" / "metrics.json").read_text())["retention"]["drift_pearson"]
    assert f"now follow the parent's at r {drift:.2f}" in result.output
    assert ("--strategy replay --replay-ratio 0.25: drift -0.20 [-0.37, -0.04], retention +0.00 [-0.04, +0.04], "
            "in-distribution gain -0.07 [-0.22, +0.09]") in result.output
    assert "5 seeds, procapnet-mini" in result.output and "--strategy auto runs finetune: no strategy" in result.output
    assert "  --strategy finetune: retention +0.03 [+0.02, +0.05]" in result.output
    # another strategy's run, or an architecture without recorded evidence, prints none of it
    other = CliRunner().invoke(main, [*base, "--strategy", "l2sp", "--out", str(tmp_path / "l2sp")])
    assert other.exit_code == 0 and "what fine-tuning forgot" not in other.output
    assert stats.auto_evidence("enformer") is None


@pytest.mark.parametrize("stats", ["frozen", "update"])
def test_batchnorm_running_stats_kept_unless_asked(stats, tmp_path):
    """By default an update keeps the parent's BatchNorm statistics (MPRA batches are mostly N
    padding); its BatchNorm affine weights still train. --batchnorm-stats update overwrites them."""
    torch.manual_seed(0)
    base_dir = save_model(build_model("enformer", seq_len=1024, task_names=[f"t{i}" for i in range(74)]),
                          tmp_path / "base")
    run_update(UpdateConfig(model=str(base_dir), data=str(reference.BUNDLED / "mpra_enhancers.h5ad"),
                            strategy="finetune", max_train=32, max_eval=16, retention_crops=8, batch_size=16,
                            lr=1e-2, batchnorm_stats=stats), tmp_path / "run")
    base, updated = load_model(base_dir).model, load_model(tmp_path / "run").model
    norms = [n for n, m in base.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms
    before, after = dict(base.named_modules()), dict(updated.named_modules())
    same_stats = [torch.equal(before[n].running_mean, after[n].running_mean)
                  and torch.equal(before[n].running_var, after[n].running_var) for n in norms]
    assert all(same_stats) if stats == "frozen" else not any(same_stats)
    assert not all(torch.equal(before[n].weight, after[n].weight) for n in norms)  # affine weights trained


def test_unknown_batchnorm_stats_is_one_clear_error(tiny_procapnet_dir, tmp_path):
    """The CLI's Choice guards --batchnorm-stats; a Python caller's typo must not fall back to
    overwriting the statistics."""
    with pytest.raises(GenoclInputError, match="batchnorm_stats: unknown value.*frozen, update"):
        run_update(_config(tiny_procapnet_dir, batchnorm_stats="freeze"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    from genocl_cli.main import main

    result = CliRunner().invoke(main, ["update", "--model", str(tiny_procapnet_dir), "--batchnorm-stats", "freeze",
                                       "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2 and "frozen" in result.output


def test_auto_key_prefers_the_screen_kind_the_study_measured(monkeypatch):
    """auto on Puffin: the activity-screen pick where the real-bases study made one, else the architecture's."""
    from types import SimpleNamespace

    from genocl_plugin.training import auto

    model = SimpleNamespace(data_params={"arch": "puffin"})
    monkeypatch.setattr(auto, "AUTO_STRATEGY", {"puffin": "finetune", "puffin:activity": "freeze"})
    monkeypatch.setattr(auto, "AUTO_PARAMS", {"puffin:activity": {"freeze": "trunk"}})
    assert auto.auto_key(model, "activity") == "puffin:activity"
    assert auto.auto_key(model, "mpra") == "puffin" and auto.auto_key(model) == "puffin"
    assert auto.resolve_auto_strategy("auto", model, "activity") == "freeze"
    assert auto.resolve_auto_strategy("auto", model, "mpra") == "finetune"
    config = auto.resolve_auto(auto.UpdateConfig(strategy="auto"), model, "activity")
    assert config.strategy == "freeze" and config.strategy_params == {"freeze": "trunk"}
