"""Dynamic architectures (multi-head, LoRA, partial freezing) and the forgetting budget."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from genocl_plugin import objectives
from genocl_plugin.data import reference
from genocl_plugin.models import build_model, load_model, save_model
from genocl_plugin.strategies import resolve_strategies
from genocl_plugin.strategies.drift import DriftBudgetCallback
from genocl_plugin.strategies.freeze import FreezeCallback, batchnorm_modules
from genocl_plugin.strategies.lora import LoraCallback
from genocl_plugin.strategies.multihead import MultiHeadCallback
from genocl_plugin.training.update import (
    UpdateConfig,
    predict_screen_effects,
    prepare_screen,
    run_update,
    train_on_screen,
)

PROMOTERS = reference.BUNDLED / "mpra_promoters.h5ad"
ENHANCERS = reference.BUNDLED / "mpra_enhancers.h5ad"


def _procapnet():
    torch.manual_seed(0)
    return build_model("procapnet", seq_len=800, task_names=["plus", "minus"],
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})


def _enformer():
    torch.manual_seed(0)
    return build_model("enformer", seq_len=1024, task_names=reference.track_names())


def _train_set(model, data=PROMOTERS, **kw):
    config = UpdateConfig(data=str(data), max_train=32, max_eval=16, retention_crops=8, batch_size=8, **kw)
    _, train, _ = prepare_screen(config, model)
    return objectives.screen_dataset(train, model), config


def _crops(model, n=4):
    codes = reference.window_crops("test", model.seq_len, n_bins=model.output_length(model.seq_len) // 32)[0]
    return torch.from_numpy(reference.codes_to_one_hot(codes[:n]))


def _predict(model, x):
    model.eval()
    with torch.no_grad():
        return model(x, logits=True)


def test_multihead_keeps_old_head_bit_identical_and_new_head_learns(tmp_path):
    model = _procapnet()
    base = copy.deepcopy(model).eval()
    train_set, config = _train_set(model, lr=1e-2, epochs=3)
    heads = MultiHeadCallback()
    heads.setup(None, model, "fit")  # attach now, to measure the new head before training
    head = model.model.genocl_heads.heads["screen1"]
    init = [p.detach().clone() for p in head.parameters()]
    mse_before = np.mean((predict_screen_effects(model, train_set) - train_set.effect) ** 2)

    train_on_screen(model, train_set, config, [heads, FreezeCallback(["trunk"])])

    x = _crops(model)
    out = _predict(model, x)
    assert out.shape[1] == 3 and model.task_names == ["plus", "minus", "screen:screen1"]
    assert torch.equal(out[:, :2], _predict(base, x))  # the old head's outputs, bit for bit
    assert model.screen_tracks == [2]
    assert any(not torch.equal(a, b) for a, b in zip(init, head.parameters(), strict=True))
    mse_after = np.mean((predict_screen_effects(model, train_set) - train_set.effect) ** 2)
    assert mse_after < mse_before
    # the saved model rebuilds the head
    reloaded = load_model(save_model(model, tmp_path / "m"))
    assert reloaded.screen_tracks == [2] and torch.equal(_predict(reloaded, x), out)


def test_multihead_update_end_to_end(tmp_path):
    model = _procapnet()
    base_dir = save_model(model, tmp_path / "base")
    config = UpdateConfig(model=str(base_dir), data=str(PROMOTERS), strategy="multihead,freeze",
                          strategy_params={"freeze": "trunk"}, max_train=32, max_eval=16,
                          retention_crops=8, lr=1e-2)
    result = run_update(config, tmp_path / "run")
    retention = result["report"]["retention"]
    # trunk and old head frozen: the reference tracks are untouched
    assert retention["drift_pearson"] == pytest.approx(1.0) and retention["drift_rel_l2"] == 0.0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["strategies"]["MultiHeadCallback"]["head"]["task_names"] == ["screen:screen1"]
    assert load_model(tmp_path / "run").task_names[-1] == "screen:screen1"


def test_lora_trains_only_adapters_and_reloads(tmp_path):
    model = _procapnet()
    base = copy.deepcopy(model).eval()
    train_set, config = _train_set(model, lr=1e-2, epochs=2)
    lora = LoraCallback(rank=2)
    train_on_screen(model, train_set, config, [lora])

    trainable = [n for n, p in model.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    state = model.model.state_dict()
    base_state = {k.replace(".base_layer", ""): v for k, v in state.items() if ".lora_" not in k}
    assert base_state.keys() == base.model.state_dict().keys()
    for key, value in base.model.state_dict().items():
        assert torch.equal(base_state[key], value), key  # base weights untouched
    assert any(v.abs().sum() > 0 for k, v in state.items() if ".lora_B" in k)  # adapters trained
    x = _crops(model)
    out = _predict(model, x)
    assert not torch.allclose(out, _predict(base, x))
    reloaded = load_model(save_model(model, tmp_path / "m"))
    assert reloaded.model_params["lora"]["r"] == 2
    assert torch.equal(_predict(reloaded, x), out)


def test_freeze_keeps_frozen_parts_and_batchnorm_stats():
    model = _enformer()
    base = copy.deepcopy(model)
    train_set, config = _train_set(model, data=ENHANCERS, lr=1e-2, epochs=1)
    freeze = FreezeCallback(["embedding", "conv", "batchnorm"])
    train_on_screen(model, train_set, config, [freeze])

    params, base_params = dict(model.model.named_parameters()), dict(base.model.named_parameters())
    assert freeze.frozen
    for name in freeze.frozen:
        assert torch.equal(params[name], base_params[name]), name
    assert any(not torch.equal(params[n], base_params[n]) for n in params if "transformer" in n)
    bns, base_bns = batchnorm_modules(model.model), batchnorm_modules(base.model)
    assert bns
    for bn, base_bn in zip(bns, base_bns, strict=True):
        assert torch.equal(bn.running_mean, base_bn.running_mean)
        assert torch.equal(bn.running_var, base_bn.running_var)
        assert torch.equal(bn.num_batches_tracked, base_bn.num_batches_tracked)


def test_drift_budget_stops_a_violating_update(tmp_path, capsys):
    model = _procapnet()
    base_dir = save_model(model, tmp_path / "base")
    # A huge learning rate and a near-1 bound: the first steps break the budget.
    config = UpdateConfig(model=str(base_dir), data=str(PROMOTERS), strategy="finetune", lr=0.5, epochs=4,
                          batch_size=8, max_train=32, max_eval=16, retention_crops=8,
                          strategy_params={"max_drift": 0.999, "drift_every": 1, "drift_crops": 4})
    run_update(config, tmp_path / "run")
    assert "forgetting budget violated" in capsys.readouterr().out
    drift = json.loads((tmp_path / "run" / "metrics.json").read_text())["strategies"]["DriftBudgetCallback"]
    assert drift["violated"] and drift["stopped"]
    event = drift["events"][0]
    # null: predictions collapsed to a constant (no Pearson), which counts as a violation
    assert (event["value"] is None or event["value"] < 0.999) and event["action"] == "stop"
    assert drift["checks"][-1]["step"] < 16  # 4 epochs x 4 batches were never all run
    # the saved model is the last one inside the budget
    saved, base = load_model(tmp_path / "run"), load_model(base_dir)
    budget = DriftBudgetCallback(0.999, crops=4)
    ref = budget._predict(base)
    from genocl_plugin.evaluation.evaluate import reference_predictions, retention

    kept = retention(ref[0], reference_predictions(saved, "valid", max_crops=4)[0], ref[1])
    assert kept["drift_pearson"] >= 0.999


def test_strategy_registry_builds_arch_callbacks():
    callbacks = resolve_strategies("multihead,lora,freeze", lora_rank=4, freeze="conv", max_drift=0.9)
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds == ["MultiHeadCallback", "LoraCallback", "FreezeCallback", "DriftBudgetCallback"]


def test_lora_on_borzoi_skips_depthwise_convolutions():
    """Borzoi's separable convolutions are depthwise (groups == channels); peft refuses a rank that
    is not a multiple of groups, so they keep their weights and every other trunk layer is adapted."""
    from genocl_plugin.models import GenoclLightningModel
    from genocl_plugin.strategies.lora import apply_lora, lora_targets

    torch.manual_seed(0)
    model = GenoclLightningModel(
        {"model_type": "BorzoiModel", "n_tasks": 3, "stem_channels": 32, "init_channels": 32, "channels": 64,
         "n_transformers": 1, "n_heads": 2, "key_len": 8, "value_len": 16, "final_pool_func": None,
         "crop_len": 2}, {"task": "regression", "loss": "poisson"})
    net = model.model.eval()  # no dropout: the same outputs twice
    grouped = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Conv1d) and m.groups > 1]
    targets = lora_targets(net, rank=8)
    assert grouped and not set(grouped) & set(targets) and len(targets) > 10
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, 4096)), 4).float().transpose(1, 2)
    with torch.no_grad():
        before = net(x)
    apply_lora(net, {"r": 8, "alpha": 8, "target_modules": targets})
    with torch.no_grad():
        torch.testing.assert_close(net(x), before)  # lora_B starts at zero: same outputs
