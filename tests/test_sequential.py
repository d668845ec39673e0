"""Sequential updates: strategy state and lineage carry over; bad parents fail with one clear error."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from genocl_plugin.errors import GenoclInputError
from genocl_plugin.training.update import BUNDLED_SCREENS, UpdateConfig, run_update


def _config(model, data, strategy="replay,ewc", **params) -> UpdateConfig:
    params = {"replay_budget_mb": 0.05, **params} if "replay" in strategy else params
    return UpdateConfig(model=str(model), data=str(data), strategy=strategy, max_train=16, max_eval=8,
                        retention_crops=4, batch_size=8, strategy_params=params)


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """base -> run1 (screen 1) -> run2 (screen 2, a different subset of the promoter screen)."""
    from genocl_plugin.data import screens
    from genocl_plugin.models import build_model, save_model

    tmp = tmp_path_factory.mktemp("seq")
    torch.manual_seed(0)
    base = build_model("procapnet", seq_len=800, task_names=["plus", "minus"],
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    save_model(base, tmp / "base")
    screen = screens.read_screen(BUNDLED_SCREENS["procapnet"])
    screen[: screen.n_obs // 2].copy().write_h5ad(tmp / "screen1.h5ad")
    screen[screen.n_obs // 2 :].copy().write_h5ad(tmp / "screen2.h5ad")
    run_update(_config(tmp / "base", tmp / "screen1.h5ad", ewc_lambda=10.0), tmp / "run1")
    run_update(_config(tmp / "run1", tmp / "screen2.h5ad", ewc_lambda=10.0), tmp / "run2")
    return tmp


def test_lineage_records_both_screens(two_steps):
    config = json.loads((two_steps / "run2" / "model" / "config.json").read_text())
    updates = [e for e in config["lineage"] if e["step"] == "update"]
    assert [e["screen"] for e in updates] == [str(two_steps / "screen1.h5ad"), str(two_steps / "screen2.h5ad")]
    assert updates[1]["parent"] == str(two_steps / "run1")
    assert updates[0]["screen_sha256"] != updates[1]["screen_sha256"]
    assert all(e["strategy"] == "replay,ewc" and "metrics" in e for e in updates)
    assert updates[1]["hyperparameters"]["strategy_params"]["ewc_lambda"] == 10.0
    assert [s["path"] for s in config["screens_seen"]] == [updates[0]["screen"], updates[1]["screen"]]
    assert config["strategy_state"] == ["ewc", "replay"]


def test_strategy_state_carries_over(two_steps):
    s1 = load_file(str(two_steps / "run1" / "model" / "strategy_state.safetensors"))
    s2 = load_file(str(two_steps / "run2" / "model" / "strategy_state.safetensors"))
    assert torch.equal(s1["replay/keys"], s2["replay/keys"])  # the same buffered windows
    name = next(k for k in s1 if k.startswith("ewc/importance."))
    # online EWC: the second Fisher includes decay * the first, so it is larger on average
    assert s2[name].mean() > s1[name].mean()


def test_missing_importance_file_is_one_clear_error(two_steps, tmp_path):
    import shutil

    parent = tmp_path / "run1"
    shutil.copytree(two_steps / "run1", parent)
    (parent / "model" / "strategy_state.safetensors").unlink()
    with pytest.raises(GenoclInputError, match="missing, but the parent was trained with"):
        run_update(_config(parent, two_steps / "screen2.h5ad", "ewc"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # a strategy the parent did not use starts afresh without the file
    (parent / "model" / "strategy_state.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(GenoclInputError, match="corrupted"):
        run_update(_config(parent, two_steps / "screen2.h5ad", "ewc"), tmp_path / "out")


def test_cli_bad_input_exits_2_with_one_line(two_steps, tmp_path):
    from genocl_cli.main import main

    runner = CliRunner()
    weights = two_steps / "broken" / "model" / "model.safetensors"
    import shutil

    shutil.copytree(two_steps / "run1", two_steps / "broken")
    weights.write_bytes(weights.read_bytes()[:100])
    cases = [
        (["--strategy", "finetune,ewc"], "combines with nothing"),
        (["--strategy", "ewc,nope"], "unknown strategy"),
        (["--strategy", "replay", "--replay-budget-mb", "100000"], "reference windows exist"),
        (["--model", str(two_steps / "broken")], "SHA-256"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        result = runner.invoke(main, ["update", "--model", str(two_steps / "run1"), *args,
                                      "--data", str(two_steps / "screen2.h5ad"), "--max-train", "8",
                                      "--max-eval", "4", "--retention-crops", "2", "--out", str(out)])
        assert result.exit_code == 2, (args, result.output)
        # one error line, after the [stage i/n] lines of the stages that ran before the problem showed
        lines = [line for line in result.output.splitlines() if not line.startswith("[stage ")]
        assert message in result.output and len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert not out.exists()
