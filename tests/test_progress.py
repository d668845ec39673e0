"""What a long run is doing (issue 31): stage lines, progress lines, rates, drift wording, budget line."""

from __future__ import annotations

import json
import math
import re
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from genocl_plugin import progress
from genocl_plugin.evaluation import evaluate
from genocl_plugin.progress import Progress, StageLog, format_duration, format_rate

STAGE = re.compile(r"^\[stage (\d+)/(\d+)\] (.+?)(?: \((.*)\))? \.\.\.(?: |$)")


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("n", "seconds", "unit", "expected"), [
    (1, 180, "variant", "180 s/variant"),          # slower than one per second: seconds per unit
    (56, 10_000, "variant", "179 s/variant"),       # 0.0056 variants/s, never "0.0 variants/s"
    (3, 4, "window", "1.33 s/window"),
    (1_000, 600, "variant", "1.67 variants/s"),
    (5, 2, "batch", "2.5 batches/s"),
    (123_456, 2, "variant", "61,728 variants/s"),   # fast: thousands separated
    (7, 0, "variant", "n/a variants/s"),            # no time elapsed
    (0, 30, "variant", "0 variants/s"),             # nothing done yet
])
def test_format_rate(n, seconds, unit, expected):
    assert format_rate(n, seconds, unit) == expected


def test_format_rate_never_rounds_a_slow_rate_to_zero():
    for n in (1, 2, 3, 7, 10, 999):
        for seconds in (0.001, 0.5, 1, 59, 600, 3_600, 86_400, 1e7):
            text = format_rate(n, seconds, "variant")
            assert not re.search(r"(?<![\d.])0(\.0+)?\s", text), text
            value = float(text.split()[0].replace(",", ""))
            exact = n / seconds if text.endswith("/s") else seconds / n
            assert math.isclose(value, exact, rel_tol=0.01), (n, seconds, text)


def test_format_duration():
    assert format_duration(2.13) == "2.1 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(7_625) == "2 h 07 min"


# --------------------------------------------------------------------------- stage lines


def test_stage_lines_in_order_with_times_and_records(capsys):
    stages = StageLog(total=3)
    with stages.stage("loading the model", "tiny") as loading:
        loading.note = "12 parameters"
    with stages.stage("training", "1 epoch x 2 batches of 8", own_line=True):
        with progress.stage("importance estimation", "EWC: 4 samples"):
            pass
        print("a progress bar of someone else")
    with stages.stage("saving", "run"):
        print("written mid-stage")  # ends the open stage line; the time comes on its own line
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[stage 1/3] loading the model (tiny) ... ") and err[0].endswith(" s: 12 parameters")
    assert err[1] == "[stage 2/3] training (1 epoch x 2 batches of 8) ..."
    assert err[2].startswith("[stage 2.1/3] importance estimation (EWC: 4 samples) ... ")
    assert re.fullmatch(r"\[stage 2/3\] training: done in \d+\.\d s", err[3])
    assert err[4] == "[stage 3/3] saving (run) ..."
    assert re.fullmatch(r"\[stage 3/3\] saving: done in \d+\.\d s", err[5])
    records = stages.finished()
    assert [r["name"] for r in records] == ["loading the model", "training", "importance estimation", "saving"]
    assert records[2]["within"] == "training" and all(r["seconds"] >= 0 for r in records)


def test_failed_stage_restores_streams_and_says_so(capsys):
    out, err = sys.stdout, sys.stderr
    stages = StageLog(total=2)
    with pytest.raises(ValueError), stages.stage("reference set", "bundled"):
        assert sys.stderr is not err  # watched while the stage line is open
        raise ValueError("bad file")
    assert sys.stdout is out and sys.stderr is err
    line = capsys.readouterr().err
    assert re.fullmatch(r"\[stage 1/2\] reference set \(bundled\) \.\.\. failed after \d+\.\d s\n", line)
    assert stages.finished() == [{"name": "reference set", "seconds": stages.records[0]["seconds"], "failed": True}]


def test_lone_stage_outside_a_run(capsys):
    with progress.stage("pseudo-targets", "3 windows"):
        pass
    assert re.fullmatch(r"\[stage\] pseudo-targets \(3 windows\) \.\.\. \d+\.\d s\n", capsys.readouterr().err)


# --------------------------------------------------------------------------- progress lines


def test_plain_progress_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    assert not sys.stderr.isatty()
    done = list(progress.progress(range(0, 10, 4), total=10, description="retention", unit="window",
                                  count=lambda start: min(4, 10 - start)))
    assert done == [0, 4, 8]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "  retention: 4/10 windows (40%)", "  retention: 8/10 windows (80%)", "  retention: 10/10 windows (100%)"]
    assert all(re.search(r", [\d.,]+ (windows/s|s/window), [\d.]+ s elapsed, ETA [\d.]+ s$", line) for line in lines)


def test_plain_progress_lines_come_at_a_steady_interval(capsys, monkeypatch):
    """A step slower than the interval still gets lines (a heartbeat), without ETA before the first step."""
    monkeypatch.setenv(progress.INTERVAL_ENV, "0.05")
    with Progress(3, "scoring v.vcf", "variant") as bar:
        time.sleep(0.4)
        bar.update(1)
        time.sleep(0.2)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 3, lines
    assert lines[0].startswith("  scoring v.vcf: 0/3 variants (0%), 0 variants/s") and "ETA unknown" in lines[0]
    assert re.search(r"1/3 variants \(33%\), [\d.]+ (variants/s|s/variant), [\d.]+ s elapsed, ETA [\d.]+ s$",
                     lines[-1]), lines[-1]


def test_progress_can_be_off(capsys, monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    assert list(progress.progress(range(3), enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_reference_retention_prints_plain_progress(capsys, monkeypatch, tiny_enformer):
    from genocl_plugin.data import reference

    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    ref = reference.bundled_reference_set(tiny_enformer)
    evaluate.reference_retention(tiny_enformer, tiny_enformer, ref, max_windows=3, batch_size=2)
    err = capsys.readouterr().err
    assert "  retention on test reference windows: 2/3 windows (67%)" in err
    assert "  retention on test reference windows: 3/3 windows (100%)" in err


def test_pseudo_targets_are_a_stage(capsys, tiny_enformer):
    from genocl_plugin.data import reference

    ref = reference.bundled_reference_set(tiny_enformer)
    assert not ref.trainable_tracks  # t0..t73 are not bundled track names: pseudo-targets
    ref.teacher_logits("train", [0, 1, 2], tiny_enformer)
    ref.teacher_logits("train", [1, 2], tiny_enformer)  # cached: no second stage
    err = capsys.readouterr().err
    assert re.fullmatch(r"\[stage\] pseudo-targets \(the parent's predictions on 3 train reference windows, "
                        r"74 outputs\) \.\.\. \d+\.\d s\n", err), err


# --------------------------------------------------------------------------- the report


def _report(budget: dict | None = None) -> dict:
    metrics = {"pearson": 0.1, "spearman": 0.1, "mse": 1.0, "n": 4}
    report = evaluate.forgetting_report(metrics, metrics, {
        "pearson_before": 0.5, "pearson_after": 0.4, "retention_ratio": 0.8, "drift_pearson": 0.227,
        "drift_rel_l2": 0.3, "groups": {"strand": {"drift_pearson": 0.9375, "n_tracks": 2}}})
    if budget is not None:
        report["strategies"] = {"DriftBudgetCallback": budget}
    return report


def test_drift_lines_say_what_they_pool():
    table = evaluate.format_table(_report())
    pooled = next(line for line in table.splitlines() if line.startswith("drift from base"))
    per_track = next(line for line in table.splitlines() if line.startswith("  drift Pearson, strand"))
    assert "Pearson of predictions, all tracks x positions pooled (log1p)" in pooled and pooled.endswith("0.2270")
    assert "strand tracks (2), mean of per-track Pearson (log1p)" in per_track and per_track.endswith("0.9375")
    assert "pooled drift: one Pearson over every output track and position" in table
    assert "forgetting budget" not in table  # no --max-drift, no budget line


def test_budget_line_within_and_violated():
    checks = [{"step": s, "metric": "drift_pearson", "value": v, "within_budget": True}
              for s, v in ((4, 0.97), (8, 0.95), (9, 0.96))]
    budget = {"max_drift": 0.9, "split": "valid", "crops": 8, "action": "stop", "every_n_steps": 4,
              "violated": False, "stopped": False, "events": [], "checks": checks}
    table = evaluate.format_table(_report(budget))
    assert "forgetting budget (--max-drift 0.9): within budget: yes (3 checks, lowest drift Pearson 0.9500 vs " \
           "bound 0.9)" in table
    assert ("checked every 4 optimiser steps and at the end on 8 valid reference windows: drift Pearson = "
            "Pearson of the update's predictions with the parent's, all tracks x positions pooled (log1p)") in table
    checks = [{"step": 4, "metric": "retention_ratio", "value": 0.95, "within_budget": True},
              {"step": 8, "metric": "retention_ratio", "value": 0.71, "within_budget": False}]
    budget.update(violated=True, stopped=True, checks=checks, events=[
        {"step": 8, "metric": "retention_ratio", "value": 0.71, "bound": 0.9, "action": "stop", "restored_step": 4}])
    line = evaluate.format_budget(_report(budget))
    assert line.startswith("forgetting budget (--max-drift 0.9): within budget: no (2 checks, lowest retention "
                           "ratio 0.7100 vs bound 0.9); first violated at step 8: the weights of step 4 were "
                           "restored and the update stopped")
    assert "retention ratio = the update's track Pearson vs the real tracks / the parent's" in line


def test_max_drift_help_says_what_it_checks():
    from genocl_cli.main import main

    result = CliRunner().invoke(main, ["update", "--help"], terminal_width=400)
    text = " ".join(result.output.split())
    assert "minimum retention ratio on reference windows" not in text
    for phrase in ("8 'valid' reference windows", "retention ratio", "parent has skill there (Pearson >= 0.1)",
                   "else the drift Pearson", "all tracks x positions pooled, log1p"):
        assert phrase in text, phrase


# --------------------------------------------------------------------------- genocl update end to end


def test_update_prints_stages_and_records_them(tmp_path, monkeypatch):
    """The bundled procapnet mini: eight numbered stages in order, with counts; metrics.json's stages."""
    from genocl_cli.main import main

    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "update", "--model", "procapnet", "--max-train", "16", "--max-eval", "16", "--max-eval-id", "16",
        "--batch-size", "8", "--retention-crops", "4", "--max-drift", "0.01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    starts = [m.groups() for m in map(STAGE.match, result.stderr.splitlines()) if m]
    names = ["loading the model", "reference set", "screen", "effects before the update", "training",
             "effects after the update", "retention", "saving"]
    assert [(int(i), int(n), name) for i, n, name, _ in starts] == [(i + 1, 8, name) for i, name in enumerate(names)]
    detail = {name: text for _, _, name, text in starts}
    assert detail["loading the model"] == "procapnet"
    assert detail["screen"] == "bundled screen"
    assert detail["effects before the update"] == "16 held-out + 16 training + 16 in-distribution rows"
    assert detail["training"] == "1 epoch x 2 batches of 8"
    assert detail["retention"] == "4 held-out reference windows, parent and update"
    err = result.stderr
    assert re.search(r"\] reference set \(bundled hg38 windows\) \.\.\. \d+\.\d s: 4,160 windows \(640 test\) of "
                     r"2,176 bp, real targets", err)
    assert re.search(r"\] screen \(bundled screen\) \.\.\. \d+\.\d s: 16 training, 16 held-out, 16 in-distribution "
                     r"rows", err)
    assert re.search(r"\[stage 5/8\] training: done in \d", err)
    assert err.index("[stage 4/8]") < err.index("[stage 5/8]") < err.index("[stage 6/8]")
    recorded = json.loads((out / "metrics.json").read_text())["stages"]
    assert [r["name"] for r in recorded] == names[:-1]  # saving ends after metrics.json is written
    assert all(r["seconds"] >= 0 for r in recorded) and recorded[4]["seconds"] > 0
    assert "within budget: yes (" in result.stdout and "vs bound 0.01)" in result.stdout
    assert "drift from base: Pearson of predictions, all tracks x positions pooled (log1p)" in result.stdout

    # a full-size row is minutes of forward passes: effect prediction reports its rows
    assert re.search(r"\n  predicting effects: 16/16 rows \(100%\), [\d.]+ rows/s", err)

    monkeypatch.setenv(progress.INTERVAL_ENV, "30")  # no progress lines inside the short stages below
    evaluated = CliRunner().invoke(main, ["evaluate", str(out), "--max-crops", "4"])
    assert evaluated.exit_code == 0, evaluated.output
    lines = [line for line in evaluated.stderr.splitlines() if line.startswith("[stage ")]
    assert lines[0] == f"[stage 1/1] evaluating {out} (2 models x 2 tasks, 4 reference windows) ..."
    assert lines[1].startswith("[stage 1.1/1] model 1 of 2 (procapnet on 2 tasks) ... ")
    assert lines[2].startswith(f"[stage 1.2/1] model 2 of 2 ({out} on 2 tasks) ... ")
    assert re.fullmatch(r"\[stage 1/1\] evaluating .*: done in \d+\.\d s", lines[3])
    assert "drift Pearson (pooled, log1p)" in evaluated.stdout


def test_effect_prediction_of_long_inputs_reports_each_sequence(monkeypatch, capsys):
    """A full-size batch is minutes of CPU: inputs of >= 65,536 bp run (and report) one sequence
    at a time -- the progress advances within a batch -- with the same predictions."""
    import anndata

    from genocl_plugin import objectives
    from genocl_plugin.data import reference
    from genocl_plugin.models import load_model

    model = load_model("enformer")
    screen = anndata.read_h5ad(reference.BUNDLED / "mpra_enhancers.h5ad")
    dataset = objectives.mpra_dataset(screen[:6], model)
    whole = objectives.predict_screen_effects(model, dataset, batch_size=6)
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    monkeypatch.setitem(model.data_params["train"], "seq_len", 196_608)  # read as "a long input"
    calls = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda x, **kw: calls.append(len(x)) or original(x, **kw))
    chunked = objectives.predict_screen_effects(model, dataset, batch_size=6)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    assert set(calls) == {1} and len(calls) > 6  # one sequence per pass: references and perturbed
    lines = [line for line in capsys.readouterr().err.splitlines() if "predicting effects" in line]
    done = [float(line.split(": ")[1].split("/")[0]) for line in lines]
    assert any(0 < d < 6 for d in done) and done[-1] == 6 and done == sorted(done)
