"""Pickled checkpoints load without running code from them (issue 11, part 3).

The gReLU checkpoints here are written by gReLU's own ``LightningModel.train_on_dataset`` (a
real Lightning Trainer + ModelCheckpoint), so the allow-list is tested against what gReLU
really pickles, not against a hand-made dict.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from genocl_plugin import models
from genocl_plugin.errors import GenoclInputError

ENFORMER_PARAMS = {"model_type": "EnformerModel", "n_tasks": 3, "n_conv": 3, "channels": 384,
                   "n_transformers": 1, "n_heads": 2, "key_len": 8, "crop_len": 0,
                   "final_act_func": None, "final_pool_func": None}
TASKS = pd.DataFrame({"name": ["CAGE_a", "DNase_b", "CAGE_c"], "assay": ["CAGE", "DNase", "CAGE"],
                      "sample": ["K562", "K562", "HepG2"]}).set_index("name")


@pytest.fixture(scope="module")
def grelu_ckpt(tmp_path_factory) -> pathlib.Path:
    """last.ckpt of a tiny gReLU EnformerModel trained one epoch by gReLU's train_on_dataset."""
    from grelu.data.dataset import LabeledSeqDataset
    from grelu.lightning import LightningModel

    tmp = tmp_path_factory.mktemp("grelu")
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 64)) for _ in range(2)]
    labels = rng.random((2, 3, 8)).astype(np.float32)
    torch.manual_seed(0)
    model = LightningModel(dict(ENFORMER_PARAMS), {
        "task": "regression", "loss": "poisson", "max_epochs": 1, "batch_size": 2,
        "save_dir": str(tmp), "devices": "cpu", "num_workers": 0, "logger": None,
        "checkpoint": True})
    dataset = LabeledSeqDataset(seqs, labels, tasks=TASKS)
    model.train_on_dataset(dataset, dataset)
    return next(tmp.rglob("last.ckpt"))


class Payload:
    """Unpickling this creates ``path`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_grelu_checkpoint_needs_numpy_objects(grelu_ckpt):
    """The checkpoint really is a pickle with numpy objects (plain weights_only refuses it)."""
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(grelu_ckpt)
    assert "numpy.ndarray" in unsafe
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(grelu_ckpt, weights_only=True)


def test_grelu_checkpoint_loads_with_allow_list(grelu_ckpt):
    model = models.load_model(grelu_ckpt)
    assert model.task_names == ["CAGE_a", "DNase_b", "CAGE_c"]
    assert model.seq_len == 64 and model.bin_size == 8
    reference = torch.load(grelu_ckpt, weights_only=False)["state_dict"]
    for key, value in model.model.state_dict().items():
        torch.testing.assert_close(value, reference[f"model.{key}"])


def test_tasks_as_dataframe_load(grelu_ckpt, tmp_path):
    """Older gReLU files keep data_params['tasks'] as a pandas DataFrame; it is allowed."""
    ckpt = torch.load(grelu_ckpt, weights_only=False)
    ckpt["data_params"]["tasks"] = TASKS.reset_index()
    ckpt["data_params"]["train"]["intervals"] = pd.DataFrame({"chrom": ["chr1"], "start": [np.int64(5)]})
    torch.save(ckpt, tmp_path / "df.ckpt")
    assert "pandas.core.frame.DataFrame" in torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "df.ckpt")
    assert models.load_model(tmp_path / "df.ckpt").task_names == ["CAGE_a", "DNase_b", "CAGE_c"]


@pytest.fixture()
def evil_ckpt(grelu_ckpt, tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    """A real gReLU checkpoint with a payload in its hyperparameters."""
    marker = tmp_path / "payload_ran"
    ckpt = torch.load(grelu_ckpt, weights_only=False)
    ckpt["hyper_parameters"]["train_params"]["name"] = Payload(str(marker))
    torch.save(ckpt, tmp_path / "evil.ckpt")
    return tmp_path / "evil.ckpt", marker


def test_malicious_checkpoint_refused(evil_ckpt):
    path, marker = evil_ckpt
    with pytest.raises(GenoclInputError, match=r"refused to unpickle: it names .*pathlib.*--trust-checkpoint"):
        models.load_model(path)
    assert not marker.exists()
    # the payload is real: trusting the file runs it
    with models.trusted_checkpoints():
        models.load_model(path)
    assert marker.exists()


@pytest.mark.parametrize("command", ["publish", "score-vcf", "update"])
def test_malicious_checkpoint_cli(evil_ckpt, command, tmp_path, data_dir):
    path, marker = evil_ckpt
    args = {
        "publish": ["publish", str(path), "--zoo", str(tmp_path / "zoo"), "--name", "x/y-v1"],
        "score-vcf": ["score-vcf", "--model", str(path), "--vcf", str(data_dir / "gtex_eqtl_chr1_first1Mb.vcf"),
                      "--fasta", str(data_dir / "hg38_chr1_1-30000.fa"), "--out", str(tmp_path / "s.tsv")],
        "update": ["update", "--model", str(path), "--strategy", "finetune", "--out", str(tmp_path / "run")],
    }[command]
    result = subprocess.run([sys.executable, "-m", "genocl_cli", *args], capture_output=True, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2, result.stderr
    # one error line; the [stage i/n] line of the model loading that refused it may precede it
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("[stage ")]
    assert len(lines) == 1 and "refused to unpickle" in lines[0] and "--trust-checkpoint" in lines[0]
    assert not marker.exists()
    assert not (tmp_path / "zoo" / "x").exists() and not (tmp_path / "run").exists()
    assert not (tmp_path / "s.tsv").exists()
