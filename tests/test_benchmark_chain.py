"""Scenario (c) of benchmarks/forgetting.py: the summary of task sequences, from hand-made matrices."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from genocl_plugin.evaluation import evaluate as ev

SPEC = importlib.util.spec_from_file_location("forgetting_benchmark",
                                              Path(__file__).parents[1] / "benchmarks" / "forgetting.py")
forgetting = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(forgetting)
NAN = float("nan")


def _run(matrix, drift):
    return {"matrix": matrix, "metrics": ev.continual_metrics(matrix), "drift": {"drift_pearson": drift}}


def _chain():
    # rows: base, after T1 (mouse head), after T2, after T3; the base has no mouse tracks (NaN)
    ft = {0: [[0.20, NAN, 0.10, 0.05], [0.15, 0.30, 0.10, 0.05], [0.10, 0.20, 0.40, 0.06], [0.08, 0.10, 0.30, 0.50]],
          1: [[0.20, NAN, 0.12, 0.05], [0.14, 0.28, 0.11, 0.04], [0.12, 0.22, 0.42, 0.05], [0.10, 0.12, 0.28, 0.46]]}
    rp = {0: [[0.20, NAN, 0.10, 0.05], [0.19, 0.30, 0.10, 0.05], [0.18, 0.25, 0.38, 0.06], [0.17, 0.20, 0.33, 0.45]],
          1: [[0.20, NAN, 0.12, 0.05], [0.18, 0.27, 0.11, 0.04], [0.18, 0.24, 0.40, 0.05], [0.16, 0.18, 0.31, 0.44]]}
    labels, seeds, runs = [], [], []
    for label, mats, drift in (("finetune", ft, 0.6), ("replay", rp, 0.9)):
        for seed, m in mats.items():
            labels.append(label)
            seeds.append(seed)
            runs.append(_run(m, drift))
    return {"tasks": ["human", "mouse", "enhancers", "promoters"], "labels": labels, "seeds": seeds, "runs": runs,
            "params": {"replay": {"replay_ratio": 0.5}}}


def test_chain_summary_by_hand():
    c = forgetting.chain_summary(_chain())
    ft, rp = c["strategies"]["finetune"], c["strategies"]["replay"]
    # BWT, finetune seed 0: mean(R[3,j] - R[j,j]) over j=0..2 = ((0.08-0.20) + (0.10-0.30) + (0.30-0.40)) / 3
    bwt0 = ((0.08 - 0.20) + (0.10 - 0.30) + (0.30 - 0.40)) / 3
    bwt1 = ((0.10 - 0.20) + (0.12 - 0.28) + (0.28 - 0.42)) / 3
    assert ft["bwt"]["mean"] == pytest.approx((bwt0 + bwt1) / 2)
    # FWT skips the mouse task (no base score): mean(R[1,2] - R[0,2], R[2,3] - R[0,3]), seed 0 = (0 + 0.01) / 2
    assert ft["fwt"]["mean"] == pytest.approx(((0.0 + 0.01) / 2 + (-0.01 + 0.0) / 2) / 2)
    assert ft["retention"]["mean"] == pytest.approx(0.09)
    assert ft["final_T1"]["mean"] == pytest.approx(0.11)
    assert ft["drift"]["mean"] == pytest.approx(0.4)
    # forgetting of the mouse task: max over earlier rows - final, seed 0: 0.30 - 0.10
    assert ft["forgetting_T1"]["mean"] == pytest.approx(((0.30 - 0.10) + (0.28 - 0.12)) / 2)
    # paired differences from fine-tuning, seed by seed
    assert rp["retention_vs_finetune"]["mean"] == pytest.approx(((0.17 - 0.08) + (0.16 - 0.10)) / 2)
    assert rp["final_T1_vs_finetune"]["mean"] == pytest.approx(((0.20 - 0.10) + (0.18 - 0.12)) / 2)
    assert "bwt_vs_finetune" not in ft
    np.testing.assert_allclose(rp["matrix_mean"][3], [0.165, 0.19, 0.32, 0.445])
    assert rp["params"] == {"replay_ratio": 0.5}


def test_chain_rendering_shows_every_strategy_and_the_missing_base_score():
    chain = _chain()
    chain["params"]["replay"] = {"replay_ratio": 0.5, "freeze": "trunk"}  # a part name is not a number
    lines = forgetting.render_chain(forgetting.chain_summary(chain))
    text = "\n".join(lines)
    assert "*replay* (replay_ratio 0.5, freeze trunk)" in text
    assert text.count("| finetune |") == 2 and text.count("| replay |") == 2
    assert "| base | 0.200 | — |" in text  # the base model has no mouse tracks
    assert "accuracy_matrix.png" in text


def test_auto_evidence_round_trips_to_what_update_prints(tmp_path):
    from genocl_plugin.evaluation import stats

    ci = lambda m: {"mean": m, "ci_low": m - 0.1, "ci_high": m + 0.1, "sd": 0.05, "n": 5}  # noqa: E731
    strategies = {"finetune": {"strategy": "finetune", "n_seeds": 5, "gain_in_distribution": ci(0.15),
                               "retention": ci(0.04), "drift": ci(0.86)},
                  "l2sp": {"strategy": "l2sp", "n_seeds": 5, "gain_in_distribution_vs_finetune": ci(-0.05),
                           "retention_vs_finetune": ci(-0.01), "drift_vs_finetune": ci(-0.34)}}
    base = {"name": "enformer-mini", "rows": [{"label": "finetune", "params": {}, "seed": 0},
                                              {"label": "l2sp", "params": {"l2sp_alpha": 1.0}, "seed": 0}]}
    evidence = forgetting.auto_evidence(base, strategies)
    assert evidence["strategies"]["l2sp"]["params"] == {"l2sp_alpha": 1.0}
    assert evidence["strategies"]["l2sp"]["drift_vs_finetune"]["mean"] == -0.34
    assert evidence["n_seeds"] == 5 and evidence["finetune"]["drift"]["mean"] == 0.86
    path = forgetting.write_auto_strategy({"auto": {"enformer": {"strategy": "finetune", "reason": "why",
                                                                 "evidence": evidence}}}, tmp_path / "auto.json")
    back = stats.auto_evidence("enformer", path)
    assert back["strategies"] == evidence["strategies"] and back["auto"] == "finetune"
    lines = stats.format_evidence(back, drift_pearson=0.21)
    assert "r 0.21 (drift 1 - r = 0.79)" in lines[0]
    assert any("--strategy l2sp --l2sp-alpha 1: drift -0.34 [-0.44, -0.24]" in line for line in lines)
    assert stats.load_auto_strategy(path) == {"enformer": "finetune"}


def test_merge_chains_adds_seeds_and_replaces_reruns():
    old = {**_chain(), "command": "python benchmarks/forgetting.py", "commit": "abc", "seconds": 100.0}
    old_runs = {(lab, sd): run for lab, sd, run in zip(old["labels"], old["seeds"], old["runs"], strict=True)}
    cs = {"labels": ["finetune", "replay"], "seeds": [1, 2]}
    matrix = old["runs"][0]["matrix"]
    new_runs = {(lab, sd): _run(matrix, 0.1 * sd) for sd in (1, 2) for lab in cs["labels"]}
    new = {"labels": [k[0] for k in new_runs], "seeds": [k[1] for k in new_runs], "runs": list(new_runs.values()),
           "params": {"l2sp": {"alpha": 0.01}}, "seconds": 30.0, "command": "python benchmarks/forgetting.py "
           "--chain-only --chain-seeds 1,2", "commit": "def"}
    merged = forgetting.merge_chains(old, new, cs)
    # seed 0 kept from the study, seed 1 replaced by the rerun, seed 2 added; ordered by seed, then label
    assert list(zip(merged["labels"], merged["seeds"], strict=True)) == [
        ("finetune", 0), ("replay", 0), ("finetune", 1), ("replay", 1), ("finetune", 2), ("replay", 2)]
    for lab, sd, run in zip(merged["labels"], merged["seeds"], merged["runs"], strict=True):
        assert run is (old_runs if sd == 0 else new_runs)[(lab, sd)]
    assert merged["settings"]["seeds"] == [0, 1, 2]
    assert merged["params"] == {"replay": {"replay_ratio": 0.5}, "l2sp": {"alpha": 0.01}}
    assert merged["seconds"] == 130.0
    assert (merged["command"], merged["commit"]) == ("python benchmarks/forgetting.py", "abc")
    assert merged["reruns"] == [{"labels": cs["labels"], "seeds": [1, 2], "command": new["command"],
                                 "commit": "def", "seconds": 30.0}]
    # the summary pools the kept and the added runs: drift (1 - r) of fine-tuning over seeds 0, 1, 2
    summary = forgetting.chain_summary({**merged, "tasks": old["tasks"]})
    assert summary["strategies"]["finetune"]["drift"]["mean"] == pytest.approx((0.4 + 0.9 + 0.8) / 3)


def _study(rel_l2: bool) -> dict:
    """A finished scenario-(a) report: fine-tuning and replay over seeds 0-2."""
    rows = []
    for seed in range(3):
        for label, gain, ret, r, l2 in (("finetune", 0.20, 0.21, 0.2, 0.98 + 0.01 * seed),
                                         ("replay", 0.10, 0.06, 0.3, 0.90 - 0.02 * seed)):
            row = {"label": label, "spec": label, "seed": seed, "params": {}, "gain_id": gain + 0.01 * seed,
                   "gain": 0.0, "retention_after": ret, "retention_before": 0.19, "drift_pearson": r}
            if rel_l2:
                row["drift_rel_l2"] = l2
            rows.append(row)
    return {"mode": "full", "command": "python benchmarks/forgetting.py", "commit": "abc", "date": "2026-12-01",
            "settings": {"seeds": [0, 1, 2]},
            "bases": {"enformer": {"name": "enformer-mini", "screen": "mpra_enhancers.h5ad", "rows": rows}}}


def test_summary_reports_scale_drift_and_its_paired_difference():
    summary = forgetting.build_summary(_study(rel_l2=True))
    (scenario,) = summary["scenarios"].values()
    ft, rp = scenario["strategies"]["finetune"], scenario["strategies"]["replay"]
    assert ft["drift_rel_l2"]["mean"] == pytest.approx(0.99)
    assert rp["drift_rel_l2_vs_finetune"]["mean"] == pytest.approx(0.88 - 0.99)
    assert rp["drift_rel_l2_vs_finetune"]["ci_high"] < 0  # replay kept the scale closer in every seed
    text = "\n".join(forgetting.render_summary(summary))
    assert "| scale drift |" in text and "| finetune | +0.210" in text
    assert "+0.990 [" in text
    # a study saved before scale drift was kept renders without it instead of failing
    old = forgetting.build_summary(_study(rel_l2=False))
    (scenario,) = old["scenarios"].values()
    assert "drift_rel_l2" not in scenario["strategies"]["finetune"]
    assert "| n/a |" in "\n".join(forgetting.render_summary(old))


def test_rescoring_keeps_how_each_run_was_trained(tmp_path):
    """--reevaluate re-scores rows it has stripped of their scores; auto's evidence still names the params."""
    study = _study(rel_l2=True)
    for row in study["bases"]["enformer"]["rows"]:
        row["params"] = {"replay_ratio": 0.25} if row["label"] == "replay" else {}
    stripped = [{k: r[k] for k in forgetting.RESCORE_KEYS if k in r} for r in study["bases"]["enformer"]["rows"]]
    assert all("retention_after" not in r and "drift_rel_l2" not in r for r in stripped)
    for row, old in zip(stripped, study["bases"]["enformer"]["rows"], strict=True):
        row.update({k: old[k] for k in ("gain", "retention_after", "retention_before", "drift_pearson")})
    study["bases"]["enformer"]["rows"] = stripped
    study["complete"] = True
    forgetting.write_summary(study, {}, tmp_path, tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["auto"]["enformer"]["evidence"]["strategies"]["replay"]["params"] == {"replay_ratio": 0.25}
    assert json.loads((tmp_path / "forgetting_full.json").read_text())["summary"] == saved


def test_auto_names_the_parameters_of_a_picked_head_only_update(tmp_path):
    """A label that runs --strategy freeze with --freeze trunk wins: auto records the spec *and* its params."""
    from genocl_plugin.evaluation import stats

    assert forgetting.params_for("freeze", {}) == {"freeze": "trunk"}
    grid = {"enformer": {"results": {"head only": [{"params": {"freeze": "trunk"}, "gain_id": 0.1, "gain_ood": 0.0,
                                                    "retention_valid": 0.2}]}, "chosen": {}}}
    assert "| head only | freeze=trunk | +0.100 |" in "\n".join(forgetting.render_grid(grid))
    assert forgetting.params_for("lora", {"lora": {"lora_rank": 4}}) == {"lora_rank": 4}  # the grid's pick wins
    assert forgetting.params_for("replay,l2sp", {"l2sp": {"l2sp_alpha": 0.01}}) == {"l2sp_alpha": 0.01}
    study = _study(rel_l2=True)
    for seed in range(3):  # gains like fine-tuning's, retention above it in every seed
        study["bases"]["enformer"]["rows"].append(
            {"label": "head only", "spec": "freeze", "seed": seed, "params": {"freeze": "trunk"},
             "gain_id": 0.21 + 0.01 * seed, "gain": 0.0, "retention_after": 0.30 + 0.01 * seed,
             "retention_before": 0.19, "drift_pearson": 0.9, "drift_rel_l2": 0.1})
    study["complete"] = True
    forgetting.write_summary(study, {}, tmp_path, tmp_path)
    auto = json.loads((tmp_path / "summary.json").read_text())["auto"]["enformer"]
    assert (auto["strategy"], auto["params"], auto["label"]) == ("freeze", {"freeze": "trunk"}, "head only")
    assert auto["reason"].startswith("head only: retention +0.1")
    path = forgetting.write_auto_strategy({"auto": {"enformer": auto}}, tmp_path / "auto.json")
    assert stats.load_auto_strategy(path) == {"enformer": "freeze"}
    assert stats.load_auto_params(path) == {"enformer": {"freeze": "trunk"}}
    lines = stats.format_evidence(stats.auto_evidence("enformer", path))
    assert lines[-1].startswith("  --strategy auto runs freeze --freeze trunk: head only: retention")
    assert "**freeze --freeze trunk**" in "\n".join(forgetting.render_summary(
        json.loads((tmp_path / "summary.json").read_text())))


def test_retention_per_assay_group_is_summarised_and_paired_with_finetune():
    """A mean over tracks can hide where an update forgot: groups get their own mean [CI] and paired Δ."""
    names = ["CAGE:a", "CAGE:b", "DNASE:c", "RNA:d"]
    assert forgetting.group_means([0.1, 0.3, 0.5, 0.7], names) == pytest.approx(
        {"CAGE": 0.2, "DNASE": 0.5, "RNA": 0.7})
    assert forgetting.group_means([0.1, 0.3], names) is None  # not this model's tracks
    study = _study(rel_l2=True)
    for row in study["bases"]["enformer"]["rows"]:
        keep = row["label"] == "replay"  # replay keeps RNA, both lose CAGE alike
        row["retention_groups_before"] = {"CAGE": 0.2, "RNA": 0.3}
        shift = 0.01 * row["seed"]
        row["retention_groups"] = {"CAGE": 0.05 + shift, "RNA": (0.3 if keep else 0.1) - shift}
    summary = forgetting.build_summary(study)
    (scenario,) = summary["scenarios"].values()
    rp = scenario["strategies"]["replay"]["retention_by_group"]
    assert rp["RNA"]["parent"] == pytest.approx(0.3) and rp["RNA"]["retention"]["mean"] == pytest.approx(0.29)
    assert rp["RNA"]["vs_finetune"]["mean"] == pytest.approx(0.2) and rp["CAGE"]["vs_finetune"]["mean"] == 0
    assert "vs_finetune" not in scenario["strategies"]["finetune"]["retention_by_group"]["RNA"]
    text = "\n".join(forgetting.render_summary(summary))
    assert "| strategy | CAGE (parent 0.200) | RNA (parent 0.300) |" in text
    assert "Δ +0.200 [" in text
    # a study scored before groups were kept has none, and renders without the table
    assert "retention_by_group" not in forgetting.build_summary(_study(rel_l2=True))["scenarios"][
        "a_enformer_mini_enhancer_mpra"]["strategies"]["replay"]


def test_grid_picks_from_means_over_validation_seeds(tmp_path, monkeypatch):
    """A value that looks best on one validation seed but not on three is not picked."""
    scores = {  # (label, alpha) -> per validation seed (gain_id, retention_valid)
        ("finetune", None): {100: (0.10, 0.1), 101: (0.10, 0.1), 102: (0.10, 0.1)},
        ("l2sp", 0.01): {100: (0.09, 0.2), 101: (0.10, 0.2), 102: (0.11, 0.2)},
        ("l2sp", 1.0): {100: (0.12, 0.3), 101: (-0.20, 0.3), 102: (-0.25, 0.3)},
    }
    calls = []

    def fake_update(model, screen, spec, seed, out, settings, params=None):
        calls.append((spec, seed, (params or {}).get("l2sp_alpha")))
        out.mkdir(parents=True)
        return {"seconds": 1.0}

    def fake_score(out, crops):
        label, alpha, seed = calls[-1][0], calls[-1][2], calls[-1][1]
        gain, ret = scores[(label, alpha)][seed]
        return {"gain_id": gain, "gain_ood": 0.0, "retention_valid": ret}

    from benchmarks import forgetting_runs  # run_grid looks update and grid_score up in its own module

    monkeypatch.setattr(forgetting_runs, "update", fake_update)
    monkeypatch.setattr(forgetting_runs, "grid_score", fake_score)
    settings = {"eval_crops": 4, "validation_seeds": [100, 101, 102]}
    grid = forgetting.run_grid("enformer", "enformer", tmp_path / "s.h5ad", {"l2sp": "l2sp"}, settings, tmp_path,
                               lambda _m: None)
    assert sorted({seed for _, seed, _ in calls}) == [100, 101, 102] and len(calls) == 9
    assert grid["chosen"] == {"l2sp": {"l2sp_alpha": 0.01}}
    alpha1 = grid["results"]["l2sp"][1]
    assert alpha1["gain_id"] == pytest.approx((0.12 - 0.20 - 0.25) / 3) and len(alpha1["per_seed"]) == 3
    text = "\n".join(forgetting.render_grid({"enformer": grid}))
    assert "validation seed (100, 101, 102)" in text and "| l2sp | l2sp_alpha=1 | -0.110 ± 0." in text
    # the same grid on seed 100 alone picks alpha 1, as the single-run grid did
    calls.clear()
    one = forgetting.run_grid("enformer", "enformer", tmp_path / "s.h5ad", {"l2sp": "l2sp"},
                              {"eval_crops": 4, "validation_seeds": [100]}, tmp_path / "one", lambda _m: None)
    assert one["chosen"] == {"l2sp": {"l2sp_alpha": 1.0}}
