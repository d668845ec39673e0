"""Epoch selection (--val-holdout): the split, the callback's choice and stopping, the update's output."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genocl_plugin.config import UpdateConfig
from genocl_plugin.data import screens
from genocl_plugin.training.selection import BestEpochCallback


class Scripted(torch.nn.Module):
    """A module whose 'predictions' are its weight times a fixed signal (so each epoch scores as set)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def run_epochs(weights: list[float], patience: int) -> tuple[BestEpochCallback, Scripted, SimpleNamespace]:
    """Drive the callback as Lightning would: the parent's weight, then one weight per epoch."""
    rng = np.random.default_rng(0)
    signal, noise = rng.normal(size=200), rng.normal(size=200)

    class Validation(list):
        effect = signal

    def predict(model, dataset, batch_size):
        return float(model.w) * signal + noise  # the larger w, the higher the Pearson

    module, trainer = Scripted(), SimpleNamespace(should_stop=False)
    cb = BestEpochCallback(Validation(range(200)), predict, patience=patience)
    module.w.data[:] = weights[0]
    cb.on_train_start(trainer, module)
    for w in weights[1:]:
        if trainer.should_stop:
            break
        module.w.data[:] = w
        cb.on_train_epoch_end(trainer, module)
    cb.on_train_end(trainer, module)
    return cb, module, trainer


def test_keeps_the_best_epoch_and_restores_its_weights():
    cb, module, _ = run_epochs([0.5, 1.0, 3.0, 2.0], patience=5)
    assert cb.best_epoch == 2 and float(module.w) == 3.0
    assert len(cb.scores) == 4 and np.argmax(cb.scores) == 2
    assert cb.summary()["epochs_run"] == 3 and cb.summary()["n_validation"] == 200


def test_returns_the_parent_when_no_epoch_beats_it():
    cb, module, _ = run_epochs([2.0, 1.0, 0.5, 0.0], patience=5)
    assert cb.best_epoch == 0 and float(module.w) == 2.0


def test_stops_after_patience_epochs_without_improvement():
    cb, module, trainer = run_epochs([1.0, 2.0, 1.5, 1.4, 5.0], patience=2)
    assert trainer.should_stop and cb.summary()["epochs_run"] == 3  # epoch 4 (w=5) never ran
    assert cb.best_epoch == 1 and float(module.w) == 2.0
    with pytest.raises(ValueError):
        BestEpochCallback([], None, patience=0)


def test_validation_blocks_are_drawn_before_max_train_and_leave_the_other_splits_alone():
    path = screens.BUNDLED_SCREENS["enformer"]
    config = UpdateConfig(data=str(path), seed=1, holdout=0.3, max_train=256, max_eval=48, max_eval_id=200)
    _, train0, test0, id0 = screens.prepare_screen(config, None, in_distribution=True)
    config.val_holdout = 0.25
    _, train, test, test_id, val = screens.prepare_screen(config, None, in_distribution=True, validation=True)
    # the held-out elements and blocks are the same as without validation
    assert list(test.obs_names) == list(test0.obs_names) and list(test_id.obs_names) == list(id0.obs_names)
    assert train.n_obs == train0.n_obs == 256 and val.n_obs == 200
    names = [set(p.obs_names) for p in (train, test, test_id, val)]
    assert not names[3] & (names[0] | names[1] | names[2])
    # validation sits in training elements, never next to a training variant of the same element
    for element in set(val.obs["element"]):
        vpos = val.obs.loc[val.obs["element"] == element, "pos"].to_numpy()
        tpos = train.obs.loc[train.obs["element"] == element, "pos"].to_numpy()
        if len(tpos):
            assert np.abs(vpos[:, None] - tpos[None, :]).min() >= 10
    assert not set(val.obs["element"]) & set(test.obs["element"])
    config.val_holdout = 0.0
    *_, empty = screens.prepare_screen(config, None, in_distribution=True, validation=True)
    assert empty.n_obs == 0


def test_val_holdout_on_a_screen_without_positions_is_a_clear_error():
    from genocl_plugin.errors import GenoclInputError

    path = screens.BUNDLED_SCREENS["enformer"].parent / "personal_example.h5ad"  # genes x people, no positions
    config = UpdateConfig(data=str(path), seed=0, holdout=0.3, val_holdout=0.2)
    with pytest.raises(GenoclInputError, match="--val-holdout"):
        screens.prepare_screen(config, None, in_distribution=True, validation=True)


def test_cli_update_val_holdout(tmp_path, tiny_procapnet_dir):
    from safetensors.torch import load_file

    from genocl_cli.main import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "update", "--model", str(tiny_procapnet_dir), "--strategy", "finetune", "--epochs", "3",
        "--patience", "3", "--val-holdout", "0.25", "--max-train", "32", "--max-eval", "16",
        "--max-eval-id", "24", "--retention-crops", "4", "--lr", "1e-2", "--holdout", "0.4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "epoch selection: validation effect Pearson (24 held-out-block rows)" in result.output
    chosen = json.loads((out / "metrics.json").read_text())["epoch_selection"]
    assert chosen["epochs_run"] == 3 and len(chosen["validation_pearson"]) == 4
    assert chosen["best_epoch"] == int(np.nanargmax([np.nan if v is None else v for v in chosen["validation_pearson"]]))
    saved = load_file(str(out / "model" / "model.safetensors"))
    parent = load_file(str(tiny_procapnet_dir / "model.safetensors"))
    same = all(torch.equal(saved[k], parent[k]) for k in parent)
    assert same == (chosen["best_epoch"] == 0)


def test_cli_val_holdout_with_checkpointing_is_a_one_line_error(tmp_path):
    from genocl_cli.main import main

    result = CliRunner().invoke(main, ["update", "--val-holdout", "0.2", "--checkpoint-every", "5",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--val-holdout" in result.output and "--checkpoint-every" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "x"])
def test_cli_val_holdout_out_of_range_is_refused_before_loading(tmp_path, value):
    from genocl_cli.main import main

    result = CliRunner().invoke(main, ["update", "--val-holdout", value, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--val-holdout" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
