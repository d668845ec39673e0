"""Checkpoints users have, at real input/output geometry with reduced width (issue 11).

- enformer-pytorch official layout: 196,608 bp in, 896 x 128-bp bins out, human 5,313 /
  mouse 1,643 heads (``--head``), tied stem weights (saved once, re-tied on load);
- a gReLU ``BorzoiModel`` .ckpt in gReLU's zoo layout: 524,288 bp, 32-bp bins, 5,120 bins
  cropped per side (6,144 out), 7,611 tracks, tasks as gReLU stores them;
- a ProCapNet fold state dict: bpnet-lite BPNet, 8 layers, 2,114 -> 1,000, no control tracks.

Each goes through load -> update (batch 1, one step per strategy family) -> publish /
kipoi.get_model or score-vcf.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genocl_plugin import models
from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.training.update import UpdateConfig, run_update

ENHANCERS = reference.BUNDLED / "mpra_enhancers.h5ad"
PROMOTERS = reference.BUNDLED / "mpra_promoters.h5ad"


def one_hot(length: int, seed: int = 0) -> torch.Tensor:
    codes = torch.from_numpy(np.random.default_rng(seed).integers(0, 4, length))
    return torch.nn.functional.one_hot(codes, 4).float().T[None]


def _update(model_dir, out, strategy, data, **kw):
    config = UpdateConfig(model=str(model_dir), data=str(data), strategy=strategy, batch_size=1, max_train=1,
                          max_eval=2, retention_crops=2, holdout=0.25, **kw)
    return run_update(config, out, trainer_kwargs={"accelerator": "cpu"})


# --------------------------------------------------------------------------- enformer-pytorch


def test_enformer_pytorch_official_geometry_and_heads(enformer_pytorch_dir, tmp_path):
    model = models.load_model(enformer_pytorch_dir)
    assert model.seq_len == 196_608 and model.bin_size == 128 and model.output_length(196_608) == 896
    assert len(model.task_names) == 5313
    with models.enformer_head("mouse"):
        mouse = models.load_model(enformer_pytorch_dir)
    assert len(mouse.task_names) == 1643 and mouse.model.head.n_tasks == 1643
    with models.enformer_head("zebrafish"), pytest.raises(GenoclInputError, match="--head: no output head"):
        models.load_model(enformer_pytorch_dir)
    # tied weights: saved once, tied again on load, same predictions
    x = one_hot(196_608)
    saved = models.save_model(mouse, tmp_path / "mouse")
    again = models.load_model(saved)
    assert again.model.enformer.stem[0].weight is again.model.enformer._trunk[1][0].weight
    with torch.no_grad():
        expected = mouse(x)
        torch.testing.assert_close(again(x), expected)
    assert expected.shape == (1, 1643, 896)


@pytest.mark.parametrize("strategy", ["finetune", "multihead,freeze", "lora"])
def test_enformer_pytorch_update(enformer_pytorch_dir, tmp_path, strategy):
    result = _update(enformer_pytorch_dir, tmp_path / "run", strategy, ENHANCERS)
    run = result["run"]
    reloaded = models.load_model(run)
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["strategy"] == strategy
    if strategy.startswith("multihead"):
        assert reloaded.task_names[-1].startswith("screen:") and len(reloaded.task_names) == 5314
    assert reloaded.output_length(reloaded.seq_len) == 896


def test_enformer_pytorch_auto_head_only_keeps_the_trunk(enformer_pytorch_dir, tmp_path, monkeypatch):
    """auto resolved to head-only updates (freeze --freeze trunk) at 196,608 bp and 5,313 tracks: the trunk
    is bit-identical after the update, the human head is not, and the run records the parameters."""
    from genocl_plugin.training import auto

    monkeypatch.setattr(auto, "AUTO_STRATEGY", {"enformer": "freeze"})
    monkeypatch.setattr(auto, "AUTO_PARAMS", {"enformer": {"freeze": "trunk"}})
    result = _update(enformer_pytorch_dir, tmp_path / "run", "auto", ENHANCERS, lr=1e-2)
    assert (result["strategy"], result["strategy_params"]) == ("freeze", {"freeze": "trunk"})
    parent = models.load_model(enformer_pytorch_dir).model.state_dict()
    updated = models.load_model(result["run"]).model.state_dict()
    head = [k for k in updated if "_heads." in k]
    assert head and any(not torch.equal(parent[k], updated[k]) for k in head)
    assert all(torch.equal(parent[k], v) for k, v in updated.items() if k not in head)


def test_enformer_pytorch_auto_runs_the_bundled_pick(enformer_pytorch_dir, tmp_path):
    """auto with the shipped auto_strategy.json (no patching) at 196,608 bp / 5,313 tracks: the run uses the
    study's pick with its parameters, and a LoRA pick is rebuilt on load at the study's rank."""
    from genocl_plugin.training.update import AUTO_PARAMS, AUTO_STRATEGY

    result = _update(enformer_pytorch_dir, tmp_path / "run", "auto", ENHANCERS)
    assert (result["strategy"], result["strategy_params"]) == (AUTO_STRATEGY["enformer"], AUTO_PARAMS["enformer"])
    reloaded = models.load_model(result["run"])
    if AUTO_STRATEGY["enformer"] == "lora":
        assert reloaded.model_params["lora"]["r"] == AUTO_PARAMS["enformer"]["lora_rank"]
        assert any("lora_A" in name for name, _ in reloaded.model.named_parameters())


def test_enformer_pytorch_publish_kipoi(enformer_pytorch_dir, tmp_path):
    import kipoi

    from genocl_plugin.zoo import publish

    entry = publish(enformer_pytorch_dir, tmp_path / "zoo", "enformer-pytorch/random-v1")
    kipoi_model = kipoi.get_model(str(entry), source="dir", with_dataloader=False)
    pred = kipoi_model.predict_on_batch(one_hot(196_608).numpy())
    assert pred.shape == (1, 5313, 896)


# --------------------------------------------------------------------------- gReLU Borzoi .ckpt

BORZOI_PARAMS = {"model_type": "BorzoiModel", "n_tasks": 7611, "stem_channels": 32, "init_channels": 32,
                 "channels": 64, "n_conv": 7, "n_transformers": 1, "n_heads": 2, "key_len": 8, "value_len": 16,
                 "crop_len": 5120, "final_act_func": None, "final_pool_func": None}


def test_grelu_borzoi_checkpoint_zoo_layout(tmp_path):
    """A gReLU zoo-style Borzoi .ckpt (tasks as a dict of lists, train seq_len / bin size / crop)."""
    from grelu.lightning import LightningModel

    torch.manual_seed(0)
    grelu_model = LightningModel(dict(BORZOI_PARAMS), {"task": "regression", "loss": "poisson"})
    names = [f"RNA:{i}" for i in range(7611)]
    ckpt = {
        "state_dict": grelu_model.state_dict(),
        "hyper_parameters": {"model_params": dict(BORZOI_PARAMS),
                             "train_params": {"task": "regression", "loss": "poisson", "lr": 1e-4}},
        "data_params": {"tasks": {"name": names, "assay": ["RNA"] * 7611},
                        "train": {"seq_len": 524_288, "bin_size": 32, "label_len": 196_608},
                        "val": {"seq_len": 524_288}},
        "performance": {"test": {"test_pearson": np.zeros(7611, dtype=np.float32)}},
        "pytorch-lightning_version": "2.4.0",
    }
    torch.save(ckpt, tmp_path / "human_borzoi.ckpt")
    model = models.load_model(tmp_path / "human_borzoi.ckpt")
    assert model.data_params["arch"] == "borzoi"
    assert model.seq_len == 524_288 and model.bin_size == 32
    assert model.output_length(524_288) == 6144 and model.task_names == names
    with torch.no_grad():
        out = model(one_hot(524_288))
    assert out.shape == (1, 7611, 6144) and torch.isfinite(out).all()
    again = models.load_model(models.save_model(model, tmp_path / "saved"))
    for key, value in model.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[key], value)


# --------------------------------------------------------------------------- ProCapNet fold


@pytest.fixture(scope="module")
def procapnet_fold(tmp_path_factory):
    """A ProCapNet fold as released: a BPNet state dict (reduced to 32 filters), 2,114 -> 1,000."""
    from bpnetlite.bpnet import BPNet

    torch.manual_seed(0)
    bpnet = BPNet(n_filters=32, n_layers=8, n_outputs=2, n_control_tracks=0, trimming=557, verbose=False)
    path = tmp_path_factory.mktemp("pcn") / "fold_0.torch"
    torch.save(bpnet.state_dict(), path)
    return path


@pytest.mark.parametrize("strategy", ["finetune", "lora", "multihead", "freeze", "distill", "replay", "ewc"])
def test_procapnet_fold_update(procapnet_fold, tmp_path, strategy):
    model = models.load_model(procapnet_fold)
    assert model.seq_len == 2114 and model.output_length(2114) == 1000
    kw = {"strategy_params": {"freeze": "conv"}} if strategy == "freeze" else {}
    result = _update(procapnet_fold, tmp_path / "run", strategy, PROMOTERS, **kw)
    updated = models.load_model(result["run"])
    assert updated.seq_len == 2114
    with torch.no_grad():
        out = updated(one_hot(2114))
    assert out.shape[-1] == 1000 and torch.isfinite(out).all()


def test_procapnet_fold_update_with_epoch_selection(procapnet_fold, tmp_path):
    """--val-holdout at ProCapNet's geometry: validation rows scored per epoch, the kept epoch saved."""
    result = _update(procapnet_fold, tmp_path / "run", "finetune", PROMOTERS, epochs=2, val_holdout=0.3,
                     patience=2, max_eval_id=4, lr=1e-2)
    chosen = result["report"]["epoch_selection"]
    assert chosen["n_validation"] == 4 and chosen["epochs_run"] == 2 and len(chosen["validation_pearson"]) == 3
    parent = models.load_model(procapnet_fold).model.state_dict()
    saved = models.load_model(result["run"]).model.state_dict()
    unchanged = all(torch.equal(saved[k], parent[k]) for k in parent)
    assert unchanged == (chosen["best_epoch"] == 0)


def test_procapnet_fold_score_vcf_and_publish(procapnet_fold, tmp_path, data_dir):
    from click.testing import CliRunner

    from genocl_cli.main import main

    result = CliRunner().invoke(main, [
        "score-vcf", "--model", str(procapnet_fold), "--vcf", str(data_dir / "gtex_eqtl_chr1_first1Mb.vcf"),
        "--fasta", str(data_dir / "hg38_chr1_1-140000.fa.gz"), "--out", str(tmp_path / "s.tsv"),
        "--region", "chr1:1-140000"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "s.tsv").read_text().splitlines()
    assert len(rows) > 1
    result = CliRunner().invoke(main, ["publish", str(procapnet_fold), "--zoo", str(tmp_path / "zoo"),
                                       "--name", "procapnet/fold0-v1"])
    assert result.exit_code == 0, result.output
