"""Intervals over seeds and the evidence rule behind ``--strategy auto``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from genocl_plugin.evaluation import stats


def test_mean_ci_matches_scipy_t_interval():
    values = [0.1, 0.3, 0.2, 0.5, 0.4]
    ci = stats.mean_ci(values)
    lo, hi = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert ci["mean"] == pytest.approx(0.3) and ci["n"] == 5
    assert ci["ci_low"] == pytest.approx(lo) and ci["ci_high"] == pytest.approx(hi)


def test_mean_ci_drops_missing_and_has_no_interval_for_one_value():
    ci = stats.mean_ci([0.2, None, float("nan")])
    assert ci["mean"] == 0.2 and ci["n"] == 1 and math.isnan(ci["ci_low"])
    assert stats.mean_ci([])["n"] == 0


def test_paired_difference_uses_common_seeds_only():
    a = {0: 1.0, 1: 2.0, 2: 3.5, 3: 9.0}
    b = {0: 0.5, 1: 1.0, 2: 2.0}
    ci = stats.paired_diff_ci(a, b)
    assert ci["n"] == 3 and ci["mean"] == pytest.approx(np.mean([0.5, 1.0, 1.5]))


def _entry(gain, retention, diff_low, diff_high):
    return {"gain_in_distribution": {"mean": gain}, "retention": {"mean": retention},
            "retention_vs_finetune": {"mean": (diff_low + diff_high) / 2, "ci_low": diff_low, "ci_high": diff_high}}


def test_auto_rule_needs_an_interval_above_zero():
    ft = {"gain_in_distribution": {"mean": 0.20}, "retention": {"mean": 0.30}}
    # better retention, same gain, interval above zero -> chosen
    pick, why = stats.choose_auto_strategy({"finetune": ft, "l2sp": _entry(0.195, 0.35, 0.01, 0.09)})
    assert pick == "l2sp" and "above zero" in why
    # same point estimate but the interval includes zero -> fine-tuning
    pick, why = stats.choose_auto_strategy({"finetune": ft, "l2sp": _entry(0.195, 0.35, -0.01, 0.11)})
    assert pick == "finetune" and "does not exclude zero" in why
    # a strategy that gives up more than 5% of the gain is not eligible, however well it retains
    pick, why = stats.choose_auto_strategy({"finetune": ft, "lora": _entry(0.10, 0.40, 0.05, 0.15)})
    assert pick == "finetune" and "within 5%" in why
    # among eligible strategies the best retention is the candidate
    pick, _ = stats.choose_auto_strategy({"finetune": ft, "l2sp": _entry(0.2, 0.33, 0.01, 0.05),
                                          "ewc": _entry(0.21, 0.36, 0.02, 0.10)})
    assert pick == "ewc"


def test_load_auto_strategy(tmp_path):
    path = tmp_path / "auto.json"
    assert stats.load_auto_strategy(path) == {}
    path.write_text(json.dumps({"procapnet": {"strategy": "l2sp", "reason": "x"}}))
    assert stats.load_auto_strategy(path) == {"procapnet": "l2sp"}


def _tied_entry(retention_by_seed, groups):
    values = list(retention_by_seed.values())
    entry = _entry(0.2, float(np.mean(values)), 0.05, 0.15)
    entry["retention_by_seed"] = retention_by_seed
    entry["retention_by_group"] = {g: {"parent": parent, "retention": {"mean": after}}
                                   for g, (parent, after) in groups.items()}
    return entry


def test_auto_tie_goes_to_the_smallest_loss_in_the_worst_assay_group():
    ft = {"gain_in_distribution": {"mean": 0.20}, "retention": {"mean": 0.03}}
    head = _tied_entry({0: 0.155, 1: 0.150, 2: 0.160, 3: 0.140, 4: 0.165},
                       {"CAGE": (0.136, 0.090), "DNASE": (0.135, 0.110), "RNA": (0.203, 0.203)})
    lora = _tied_entry({0: 0.160, 1: 0.140, 2: 0.150, 3: 0.150, 4: 0.162},
                       {"CAGE": (0.136, 0.120), "DNASE": (0.135, 0.134), "RNA": (0.203, 0.178)})
    pick, why = stats.choose_auto_strategy({"finetune": ft, "head only": head, "lora": lora})
    assert head["retention"]["mean"] > lora["retention"]["mean"]  # the best mean alone would be head only
    assert pick == "lora", why
    assert why.startswith("lora: retention") and "tie on retention" in why and "head only CAGE -0.046" in why
    assert stats.worst_group_loss(lora) == ("RNA", pytest.approx(-0.025))
    # a clear retention difference is no tie: the best mean stands
    clear = _tied_entry({s: v - 0.05 for s, v in lora["retention_by_seed"].items()},
                        {"CAGE": (0.136, 0.135), "DNASE": (0.135, 0.135), "RNA": (0.203, 0.203)})
    assert stats.choose_auto_strategy({"finetune": ft, "head only": head, "lora": clear})[0] == "head only"
    # a strategy whose own advantage over fine-tuning includes zero cannot win a tie
    weak = {**lora, "retention_vs_finetune": {"mean": 0.05, "ci_low": -0.01, "ci_high": 0.11}}
    assert stats.choose_auto_strategy({"finetune": ft, "head only": head, "lora": weak})[0] == "head only"
    # without groups for every tied strategy there is nothing to break the tie with
    bare = {k: v for k, v in lora.items() if k != "retention_by_group"}
    pick, why = stats.choose_auto_strategy({"finetune": ft, "head only": head, "lora": bare})
    assert pick == "head only" and "tie" not in why


def test_auto_gain_rule_when_fine_tuning_itself_learns_nothing_measurable():
    """No measured gain to stay within 5% of: retention decides, unless a strategy is measurably worse."""
    noisy_ft = {"gain_in_distribution": {"mean": 0.010, "ci_low": -0.04, "ci_high": 0.06}, "retention": {"mean": 0.03}}
    lower = _entry(-0.005, 0.15, 0.08, 0.16)  # mean gain below 5% of fine-tuning's, same within noise
    lower["gain_in_distribution_vs_finetune"] = {"mean": -0.015, "ci_low": -0.07, "ci_high": 0.04}
    pick, why = stats.choose_auto_strategy({"finetune": noisy_ft, "lora": lower})
    assert pick == "lora" and "includes zero" in why
    worse = {**lower, "gain_in_distribution_vs_finetune": {"mean": -0.09, "ci_low": -0.14, "ci_high": -0.04}}
    pick, why = stats.choose_auto_strategy({"finetune": noisy_ft, "lora": worse})
    assert pick == "finetune" and "measurably below" in why
    # fine-tuning that measurably learns keeps the 5% rule: the same strategy is not eligible
    learning_ft = {"gain_in_distribution": {"mean": 0.010, "ci_low": 0.002, "ci_high": 0.018},
                   "retention": {"mean": 0.03}}
    pick, why = stats.choose_auto_strategy({"finetune": learning_ft, "lora": lower})
    assert pick == "finetune" and "within 5%" in why
