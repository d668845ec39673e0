"""Every strategy family and command at real geometry, for the checkpoints users hold (issue 11).

- a gReLU ``EnformerModel`` .ckpt in gReLU's zoo layout: 196,608 bp in, 1,536 x 128-bp bins
  cropped by 320 per side (896 out), 5,313 tasks stored as gReLU stores them;
- a gReLU ``BorzoiModel`` .ckpt: 524,288 bp, 32-bp bins, crop 5,120 per side (6,144 out), 7,611 tracks;
- an enformer-pytorch official-layout directory (196,608 bp, 896 bins, 5,313 human tracks).

Widths are the smallest the architectures build at (gReLU's Enformer needs ``channels`` a multiple
of 128 with ``channels // n_heads`` divisible by 6: 384), batch size 1, one optimiser step, with
activation checkpointing (``--gradient-checkpointing``) to keep a step near 3 GB. One forward
pass at these lengths takes seconds on a CPU and an update runs ~10 (effects before/after,
teacher, retention), so for each gReLU model the families run as ONE update,
``multihead,lora,replay,ewc,distill``: its step trains the screen loss (what ``finetune`` trains)
plus every family's term, and the test checks what each did (screen head, adapters, EWC
importances, replay and distillation draws). The gReLU Borzoi update (the largest geometry,
524,288 bp; its update takes 73 s on an idle 2-core machine) always runs; the gReLU Enformer
update and its evaluate / publish / score-vcf are opt-in (``GENOCL_FULLSIZE_STRATEGIES=1``, see
``FULLSIZE``; 167 s + 112 s), because Enformer's geometry is already covered in CI by the
enformer-pytorch runs: finetune / lora / multihead in test_fullsize_formats.py, replay / ewc /
distill + score-vcf here (20 s).

Replay, EWC and distillation need reference windows of the model's input length: the bundled
windows are 131,072 bp, so these models read theirs from a real 1-Mb hg38 piece
(``--reference-fasta`` / ``--reference-regions``); without those flags the update stops with one
line naming them.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from genocl_cli.main import main
from genocl_plugin import models
from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.training.update import UpdateConfig, run_update

ENHANCERS = reference.BUNDLED / "mpra_enhancers.h5ad"
# One update at 196,608 / 524,288 bp runs ~10 forward passes and a checkpointed step: ~5.4 CPU-min
# and 5.4 GB peak for the gReLU Enformer (measured, 2 threads). The gReLU Enformer update tests
# run when GENOCL_FULLSIZE_STRATEGIES=1; its geometry / reference-window test and the gReLU
# Borzoi update always run.
FULLSIZE = pytest.mark.skipif(os.environ.get("GENOCL_FULLSIZE_STRATEGIES") != "1",
                              reason="full-geometry update steps: set GENOCL_FULLSIZE_STRATEGIES=1")
COMBINED = "multihead,lora,replay,ewc,distill"


def one_hot(length: int, seed: int = 0) -> torch.Tensor:
    codes = torch.from_numpy(np.random.default_rng(seed).integers(0, 4, length))
    return torch.nn.functional.one_hot(codes, 4).float().T[None]


@pytest.fixture(scope="module")
def genome(data_dir):
    return data_dir / "hg38_chr1_1-1000000.fa.gz"


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    """Reference regions on the 1-Mb hg38 piece: every window of 524,288 bp fits inside it."""
    path = tmp_path_factory.mktemp("bed") / "regions.bed"
    # one window per split: EWC's importance (up to 32 windows) and replay draw from one window
    path.write_text("chr1\t299000\t301000\ttrain\nchr1\t499000\t501000\tvalid\nchr1\t599000\t601000\ttest\n")
    return path


def _update(model, out, strategy, genome=None, regions=None, **kw):
    config = UpdateConfig(model=str(model), data=str(ENHANCERS), strategy=strategy, batch_size=1, max_train=1,
                          max_eval=1, retention_crops=1, holdout=0.25, id_holdout=0,
                          reference_fasta=str(genome) if genome else None,
                          reference_regions=str(regions) if regions else None,
                          # activation checkpointing keeps a 196-kb / 524-kb step near 3 GB
                          gradient_checkpointing=True, **kw)
    return run_update(config, out, trainer_kwargs={"accelerator": "cpu"})


def _check_combined(result, n_tasks):
    """What each family of the combined run did, read back from the run directory."""
    run = result["run"]
    config = json.loads((run / "model" / "config.json").read_text())
    weights = load_file(str(run / "model" / "model.safetensors"))
    state = load_file(str(run / "model" / "strategy_state.safetensors"))
    summaries = result["report"]["strategies"]
    # multihead: one screen track after the old ones, rebuilt on load
    reloaded = models.load_model(run)
    assert len(reloaded.task_names) == n_tasks + 1 and reloaded.task_names[-1].startswith("screen:")
    # lora: adapters saved and rebuilt
    assert config["model_params"].get("lora") and any("lora_" in k for k in weights)
    # ewc: importances of the parent's weights, finite and not all zero
    fisher = [v for k, v in state.items() if k.startswith("ewc/importance.")]
    assert fisher and all(torch.isfinite(v).all() for v in fisher) and any(v.abs().sum() > 0 for v in fisher)
    # replay drew reference windows; distillation ran against the parent
    assert any("Replay" in name for name in summaries), summaries
    assert any("Distill" in name for name in summaries), summaries
    # retention: the updated model against its parent on the held-out reference window (pseudo-targets)
    retention = result["report"]["retention"]
    assert np.isfinite(retention["drift_pearson"]) and retention["reference"]["n_outputs"] == n_tasks
    return reloaded


# --------------------------------------------------------------------------- gReLU Enformer .ckpt

ENFORMER_PARAMS = {"model_type": "EnformerModel", "n_tasks": 5313, "n_conv": 7, "channels": 384,
                   "n_transformers": 1, "n_heads": 2, "key_len": 8, "crop_len": 320,
                   "final_act_func": "softplus", "final_pool_func": None}


def _grelu_checkpoint(path, params, names, data_train):
    """A checkpoint as gReLU's zoo stores it: tasks as a dict of lists, data_params, performance."""
    from grelu.lightning import LightningModel

    torch.manual_seed(0)
    grelu_model = LightningModel(dict(params), {"task": "regression", "loss": "poisson"})
    n = len(names)
    ckpt = {
        "state_dict": grelu_model.state_dict(),
        "hyper_parameters": {"model_params": dict(params),
                             "train_params": {"task": "regression", "loss": "poisson", "lr": 1e-4}},
        "data_params": {"tasks": {"name": names, "assay": [n.split(":")[0] for n in names],
                                  "sample": ["K562"] * n},
                        "train": data_train, "val": {"seq_len": data_train["seq_len"]}},
        "performance": {"test": {"test_pearson": np.zeros(n, dtype=np.float32)}},
        "pytorch-lightning_version": "2.4.0",
    }
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def grelu_enformer_ckpt(tmp_path_factory):
    names = [f"CAGE:{i}" if i % 3 == 0 else f"DNASE:{i}" for i in range(5313)]
    train = {"seq_len": 196_608, "label_len": 114_688, "bin_size": 128, "crop_len": 320}
    return _grelu_checkpoint(tmp_path_factory.mktemp("grelu-enf") / "human_enformer.ckpt", ENFORMER_PARAMS,
                             names, train)


def test_grelu_enformer_geometry_and_reference_windows(grelu_enformer_ckpt, genome, data_dir, tmp_path):
    """196,608-bp windows: the bundled 131-kb windows cannot serve them; a FASTA + BED can."""
    model = models.load_model(grelu_enformer_ckpt)
    assert model.data_params["arch"] == "enformer" and len(model.task_names) == 5313
    assert model.seq_len == 196_608 and model.bin_size == 128 and model.output_length(196_608) == 896
    with pytest.raises(reference.ReferenceUnavailable, match="--reference-fasta"):
        reference.reference_set_for(model)
    # no reference flags: one line on stderr naming them, nothing written
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["update", "--model", str(grelu_enformer_ckpt), "--data", str(ENHANCERS),
                                       "--strategy", "replay", "--batch-size", "1", "--max-train", "1",
                                       "--accelerator", "cpu", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "--reference-fasta" in result.output and "--reference-regions" in result.output
    assert "Traceback" not in result.output and not out.exists()
    # the 60-kb test pieces are too short: every window is skipped and counted, one clear error
    short = tmp_path / "short.bed"
    short.write_text("chr1\t20000\t21000\ttrain\nchr2\t30000\t31000\ttest\n")
    fasta = shutil.copy(data_dir / "hg38_chr1_chr2_1-60000.fa", tmp_path)  # pyfaidx indexes beside it
    with pytest.raises(GenoclInputError, match="mostly off contig"):
        reference.reference_set_for(model, fasta=str(fasta), regions=str(short))
    # the 1-Mb piece: windows near the contig start are N-padded (as gReLU pads), others whole
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t50000\t51000\ttrain\nchr1\t500000\t501000\ttest\n")
    ref = reference.reference_set_for(model, fasta=str(genome), regions=str(bed))
    assert ref.describe()["n_padded"] == 1 and ref.geometry.seq_len == 196_608 and ref.geometry.n_out == 896
    codes = ref.codes("train", [0])
    assert codes.shape == (1, 196_608) and (codes[0, :10_000] == 4).all()  # padding and telomere gap are N
    start = 500_500 - 196_608 // 2
    fasta = reference.open_fasta(genome)
    expected = reference.seq_to_codes(str(fasta["chr1"][start : start + 196_608]))
    np.testing.assert_array_equal(ref.codes("test", [0])[0], expected)  # the genome's own bases, unpadded


@pytest.fixture(scope="module")
def grelu_enformer_run(grelu_enformer_ckpt, genome, regions, tmp_path_factory):
    return _update(grelu_enformer_ckpt, tmp_path_factory.mktemp("grelu-enf-run") / "run", COMBINED, genome, regions)


@FULLSIZE
def test_grelu_enformer_update_families(grelu_enformer_run):
    _check_combined(grelu_enformer_run, 5313)


@FULLSIZE
def test_grelu_enformer_evaluate_publish_score_vcf(grelu_enformer_run, genome, data_dir, tmp_path):
    """The updated model (screen head + adapters) through evaluate, publish -> Kipoi and score-vcf."""
    import kipoi

    run = grelu_enformer_run["run"]
    result = CliRunner().invoke(main, ["evaluate", str(run), "--max-crops", "1", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert evaluation

    result = CliRunner().invoke(main, ["publish", str(run), "--zoo", str(tmp_path / "zoo"),
                                       "--name", "grelu-enformer/enhancers-v1"])
    assert result.exit_code == 0, result.output
    kipoi_model = kipoi.get_model(str(tmp_path / "zoo" / "grelu-enformer" / "enhancers-v1"), source="dir",
                                  with_dataloader=False)
    pred = kipoi_model.predict_on_batch(one_hot(196_608).numpy())
    assert pred.shape == (1, 5314, 896) and np.isfinite(pred).all()

    out = tmp_path / "s.tsv"
    result = CliRunner().invoke(main, [
        "score-vcf", "--model", str(run), "--vcf", str(data_dir / "gtex_eqtl_chr1_first1Mb.vcf"),
        "--fasta", str(genome), "--out", str(out), "--region", "chr1:1-20000", "--tracks", "CAGE:*",
        "--aggregate", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert len(rows) == 2 and "14677" in rows[1]  # the one GTEx variant in chr1:1-20,000 (14,677 G>A)


# --------------------------------------------------------------------------- gReLU Borzoi .ckpt

# The smallest widths gReLU's BorzoiModel builds at (its U-net halves init_channels).
BORZOI_PARAMS = {"model_type": "BorzoiModel", "n_tasks": 7611, "stem_channels": 32, "init_channels": 32,
                 "channels": 64, "n_conv": 7, "n_transformers": 1, "n_heads": 2, "key_len": 8, "value_len": 16,
                 "crop_len": 5120, "final_act_func": None, "final_pool_func": None}


def test_grelu_borzoi_update_families(genome, regions, tmp_path):
    """524,288 bp in, 6,144 x 32-bp bins out, 7,611 tracks: every family in one update step."""
    names = [f"RNA:{i}" for i in range(7611)]
    train = {"seq_len": 524_288, "label_len": 196_608, "bin_size": 32, "crop_len": 5120}
    ckpt = _grelu_checkpoint(tmp_path / "human_borzoi.ckpt", BORZOI_PARAMS, names, train)
    result = _update(ckpt, tmp_path / "run", COMBINED, genome, regions)
    model = _check_combined(result, 7611)
    assert model.seq_len == 524_288 and model.output_length(524_288) == 6144


# --------------------------------------------------------------------------- enformer-pytorch directory


def test_enformer_pytorch_reference_strategies_and_score_vcf(enformer_pytorch_dir, genome, regions, data_dir,
                                                              tmp_path):
    """replay, ewc and distill (finetune, lora, multihead: test_fullsize_formats.py), then score-vcf."""
    result = _update(enformer_pytorch_dir, tmp_path / "run", "replay,ewc,distill", genome, regions)
    run = result["run"]
    state = load_file(str(run / "model" / "strategy_state.safetensors"))
    fisher = [v for k, v in state.items() if k.startswith("ewc/importance.")]
    assert fisher and any(v.abs().sum() > 0 for v in fisher)
    assert {"ReplayCallback", "DistillationCallback"} <= set(result["report"]["strategies"])
    # the tied stem weights stay tied through the update, save and load
    updated = models.load_model(run)
    assert updated.model.enformer.stem[0].weight is updated.model.enformer._trunk[1][0].weight
    out = tmp_path / "s.tsv"
    result = CliRunner().invoke(main, [
        "score-vcf", "--model", str(run), "--vcf", str(data_dir / "gtex_eqtl_chr1_first1Mb.vcf"),
        "--fasta", str(genome), "--out", str(out), "--region", "chr1:1-20000", "--tracks", "0,1",
        "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(rows) == 2  # the one GTEx variant in chr1:1-20,000 (14,677 G>A)
    assert "14677" in "\t".join(rows[1])
