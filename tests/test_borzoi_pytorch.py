"""borzoi-pytorch ``from_pretrained`` directories (issue 11), an optional dependency.

borzoi-pytorch (``pip install genocl[borzoi]``) is not part of the CI install: its 0.5 releases need
transformers>=4.57.6, which the newest enformer-pytorch (0.8.12) refuses. The tests below that need
it skip (``pytest.importorskip``) unless the extra is installed; the missing-dependency error is
tested always. Run them with::

    pip install -e ".[test,borzoi]"
    pytest tests/test_borzoi_pytorch.py

Reduced width: borzoi-pytorch's convolution tower has fixed widths (512 -> 1,280 channels, 1,920 in
the head), so only the transformer / U-net width (``dim`` 64, one transformer block) is reduced;
the model keeps Borzoi's 7,611-track human head (2,608 mouse) and 32-bp bins.

- real geometry (524,288 bp -> 6,144 x 32-bp bins; one forward costs ~1.2 TFLOP whatever the
  reduced width): load, ``--head``, genocl's safetensors format, and publish -> ``kipoi.get_model``
  -> ``predict_on_batch``;
- one update step per strategy family (finetune, lora, multihead, batch 1) at a reduced input
  length, borzoi-pytorch's own crop knob (``bins_to_return``) keeping Borzoi's proportions
  (16,384 bp -> 256 of 512 bins): an update runs ~15 forwards, ~40 min at 524,288 bp on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from genocl_plugin import models
from genocl_plugin.data import reference
from genocl_plugin.data.fileio import seal
from genocl_plugin.errors import GenoclInputError

BORZOI_DIMS = {"dim": 64, "depth": 1, "heads": 2, "attn_dim_key": 8, "attn_dim_value": 16}
SEQ_LEN = 524_288
SHORT_SEQ_LEN, SHORT_BINS = 16_384, 256
ENHANCERS = reference.BUNDLED / "mpra_enhancers.h5ad"


def one_hot(length: int, seed: int = 0) -> torch.Tensor:
    codes = torch.from_numpy(np.random.default_rng(seed).integers(0, 4, length))
    return torch.nn.functional.one_hot(codes, 4).float().T[None]


def _save_borzoi(path, **config):
    """A randomly initialised borzoi-pytorch model written with ``save_pretrained``."""
    pytest.importorskip("borzoi_pytorch")
    from borzoi_pytorch import Borzoi
    from borzoi_pytorch.config_borzoi import BorzoiConfig

    pickle = config.pop("bin", False)
    torch.manual_seed(0)
    borzoi = Borzoi(BorzoiConfig(**BORZOI_DIMS, enable_mouse_head=True, **config))
    borzoi.save_pretrained(path, **({"safe_serialization": False} if pickle else {}))
    return path


@pytest.fixture(scope="module")
def borzoi_dir(tmp_path_factory):
    return _save_borzoi(tmp_path_factory.mktemp("bz") / "borzoi")


# --------------------------------------------------------------------------- always runs


def _block_borzoi_import(monkeypatch):
    for name in [n for n in sys.modules if n == "borzoi_pytorch" or n.startswith("borzoi_pytorch.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "borzoi_pytorch", None)  # `import borzoi_pytorch` raises ImportError


def test_missing_borzoi_pytorch_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from genocl_cli.main import main

    # A borzoi-pytorch directory as the Hub's borzoi-replicate ships it (written by hand:
    # borzoi-pytorch may be absent here).
    hub = tmp_path / "borzoi-replicate-0"
    hub.mkdir()
    (hub / "config.json").write_text(json.dumps({"architectures": ["Borzoi"], "model_type": "borzoi", "dim": 1536}))
    (hub / "pytorch_model.bin").write_bytes(b"\0" * 16)
    # ... and a genocl directory holding an updated borzoi-pytorch model.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"\0" * 16)
    (mine / "config.json").write_text(json.dumps(seal({
        "format": models.FORMAT, "model_params": {"model_type": "BorzoiPytorchTracks", "config": BORZOI_DIMS,
                                                  "head": "human"},
        "train_params": {"task": "regression", "loss": "poisson"}, "data_params": {}})))
    _block_borzoi_import(monkeypatch)
    for path, where in ((hub, str(hub)), (mine, "--model")):
        with pytest.raises(GenoclInputError) as err:
            models.load_model(path)
        assert str(err.value) == (f"{where}: borzoi-pytorch: not installed (an optional dependency of genocl); "
                                  "fix: pip install 'genocl[borzoi]'")
    result = CliRunner().invoke(main, ["publish", str(hub), "--zoo", str(tmp_path / "zoo"), "--name", "bz/x-v1"])
    assert result.exit_code == 2
    assert "pip install 'genocl[borzoi]'" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "zoo").exists()


# --------------------------------------------------------------------------- real geometry


def test_borzoi_pytorch_real_geometry_heads_and_format(borzoi_dir, tmp_path):
    model = models.load_model(borzoi_dir)
    assert model.data_params["arch"] == "borzoi" and model.model_params["model_type"] == "BorzoiPytorchTracks"
    assert model.seq_len == SEQ_LEN and model.bin_size == 32 and model.output_length(SEQ_LEN) == 6144
    # offset: 5,120 bins cropped per side, as Borzoi
    assert model.output_offset() == 5120 * 32
    names = model.task_names
    assert len(names) == 7611 and names[0].startswith("CAGE:") and names[0].endswith("[CNhs10608+]")
    x = one_hot(SEQ_LEN)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 7611, 6144) and torch.isfinite(out).all()
    # mouse head (--head), and a head the model does not have
    with models.enformer_head("mouse"):
        mouse = models.load_model(borzoi_dir)
    assert mouse.model.head.n_tasks == 2608 and len(mouse.task_names) == 2608 and mouse.task_names[0] == "mouse_0"
    with models.enformer_head("zebrafish"), pytest.raises(GenoclInputError, match="--head: no output head"):
        models.load_model(borzoi_dir)
    # genocl's own format: safetensors, every tensor back bit for bit, same head
    again = models.load_model(models.save_model(mouse, tmp_path / "mouse"))
    assert again.model.head_name == "mouse" and again.output_length(again.seq_len) == 6144
    state = mouse.model.state_dict()
    assert again.model.state_dict().keys() == state.keys()
    for key, value in again.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_borzoi_pytorch_bin_weights_and_bad_weights(tmp_path):
    """``pytorch_model.bin`` (the Hub's borzoi-replicate layout) loads; partial weights are refused."""
    path = _save_borzoi(tmp_path / "bin", bin=True)
    assert (path / "pytorch_model.bin").exists()
    assert models.load_model(path).model.head.n_tasks == 7611
    from safetensors.torch import load_file, save_file

    partial = _save_borzoi(tmp_path / "partial")
    state = load_file(str(partial / "model.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("human_head.")}, str(partial / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(GenoclInputError, match=r"model.safetensors: weights: 2 tensors missing"):
        models.load_model(partial)


def test_borzoi_pytorch_publish_kipoi(borzoi_dir, tmp_path):
    import kipoi

    from genocl_plugin.zoo import publish

    entry = publish(borzoi_dir, tmp_path / "zoo", "borzoi-pytorch/random-v1")
    yaml_text = (entry / "model.yaml").read_text()
    assert "genocl[borzoi]==" in yaml_text and "(4, 524288)" in yaml_text and "(7611, 6144)" in yaml_text
    kipoi_model = kipoi.get_model(str(entry), source="dir", with_dataloader=False)
    pred = kipoi_model.predict_on_batch(one_hot(SEQ_LEN, seed=1).numpy())
    assert pred.shape == (1, 7611, 6144) and np.isfinite(pred).all() and (pred > 0).all()


# --------------------------------------------------------------------------- updates


@pytest.fixture(scope="module")
def short_borzoi_dir(tmp_path_factory):
    """The same architecture cropping 256 bins (borzoi-pytorch directory)."""
    return _save_borzoi(tmp_path_factory.mktemp("bzs") / "borzoi", bins_to_return=SHORT_BINS)


@pytest.fixture(scope="module")
def short_borzoi(short_borzoi_dir):
    """... at 16,384 bp in -> 256 of 512 bins, as a genocl model directory."""
    model = models.load_borzoi_pytorch_dir(short_borzoi_dir, seq_len=SHORT_SEQ_LEN)
    return models.save_model(model, short_borzoi_dir.parent / "genocl")


@pytest.mark.parametrize("head", ["human", "mouse"])
def test_borzoi_pytorch_wrapper_is_log_of_borzoi_output(short_borzoi_dir, head):
    """The wrapper's output is the log of borzoi-pytorch's own (softplus) output, head by head."""
    model = models.load_borzoi_pytorch_dir(short_borzoi_dir, head=head, seq_len=SHORT_SEQ_LEN).eval()
    x = one_hot(SHORT_SEQ_LEN, seed=2)
    with torch.no_grad():
        own = model.model.borzoi(x, is_human=head == "human")
        log_coverage = model(x, logits=True)
        coverage = model(x)
    assert own.shape == (1, {"human": 7611, "mouse": 2608}[head], SHORT_BINS)
    torch.testing.assert_close(log_coverage, torch.log(own.clamp_min(1e-8)))
    torch.testing.assert_close(coverage, own.clamp_min(1e-8))


@pytest.mark.parametrize("strategy", ["finetune", "lora", "multihead"])
def test_borzoi_pytorch_update(short_borzoi, tmp_path, strategy):
    from genocl_plugin.training.update import UpdateConfig, run_update

    base = models.load_model(short_borzoi)
    config = UpdateConfig(model=str(short_borzoi), data=str(ENHANCERS), strategy=strategy, batch_size=1,
                          max_train=1, max_eval=2, retention_crops=2, holdout=0.25)
    run = run_update(config, tmp_path / "run", trainer_kwargs={"accelerator": "cpu"})["run"]
    updated = models.load_model(run)
    assert json.loads((run / "model" / "config.json").read_text())["strategy"] == strategy
    assert updated.seq_len == SHORT_SEQ_LEN and updated.output_length(SHORT_SEQ_LEN) == SHORT_BINS
    before, after = base.model.state_dict(), updated.model.state_dict()
    changed = [k for k in after if k in before and not torch.equal(after[k], before[k])]
    if strategy == "finetune":
        assert changed  # the step moved the network
    elif strategy == "lora":
        assert not changed and any(".lora_" in k for k in after)  # base frozen, adapters added
        assert not any(".lora_" in k for k in after if k.startswith(("borzoi.human_head.", "borzoi.mouse_head.")))
    else:  # the old heads keep their weights; the new screen head is a track after them
        assert not [k for k in changed if k.startswith(("borzoi.human_head.", "borzoi.mouse_head."))]
        assert updated.task_names[-1] == "screen:screen1" and len(updated.task_names) == 7612
        assert updated.screen_tracks == [7611]
    with torch.no_grad():
        out = updated(one_hot(SHORT_SEQ_LEN))
    assert out.shape == (1, len(updated.task_names), SHORT_BINS) and torch.isfinite(out).all()


def test_borzoi_pytorch_gradient_checkpointing(short_borzoi):
    """``--gradient-checkpointing``: same loss and gradients, fewer activations kept."""
    from genocl_plugin.training.hardware import enable_gradient_checkpointing

    model = models.load_model(short_borzoi)
    model.train()
    x = one_hot(SHORT_SEQ_LEN)
    torch.manual_seed(0)
    model(x).exp().mean().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    assert enable_gradient_checkpointing(model.model) >= 10
    torch.manual_seed(0)
    model(x).exp().mean().backward()
    for key, grad in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[key].grad, grad, rtol=1e-4, atol=1e-6)
