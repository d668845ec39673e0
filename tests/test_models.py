"""Model builders, the ProCapNet wrapper and loss, and every supported weight format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genocl_plugin import models
from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError


def one_hot(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Real hg38 sequence (bundled train windows) as one-hot (batch, 4, length)."""
    seqs = reference.load_windows()["train_seq"]
    start = reference.TARGET_CROP + 1_000 * seed
    codes = np.stack([seqs[i][start : start + length] for i in range(batch)])
    return torch.from_numpy(reference.codes_to_one_hot(codes))


# --------------------------------------------------------------------------- builders


def test_enformer_forward_shape(tiny_enformer):
    tiny_enformer.eval()  # no dropout, so the two passes below agree
    x = one_hot(2, 512)
    with torch.no_grad():
        out = tiny_enformer(x, logits=True)
        coverage = tiny_enformer(x)
    assert out.shape == (2, 74, 512 // 32)
    assert tiny_enformer.output_length(512) == 16 and tiny_enformer.bin_size == 32
    assert tiny_enformer.output_offset() == 0
    torch.testing.assert_close(coverage, torch.exp(out))  # activation is exp (Poisson)


def test_procapnet_forward_shape(tiny_procapnet):
    x = one_hot(2, 352)
    with torch.no_grad():
        out = tiny_procapnet(x, logits=True)
    assert out.shape == (2, 2, 352 - 2 * 48)
    assert tiny_procapnet.output_length(352) == 256 and tiny_procapnet.output_offset() == 48
    assert tiny_procapnet.task_names == ["plus", "minus"]


def test_procapnet_wrapper_is_profile_times_counts(tiny_procapnet):
    x = one_hot(3, 352)
    with torch.no_grad():
        profile, log_counts = tiny_procapnet.model.bpnet(x)
        log_coverage = tiny_procapnet(x, logits=True)
        coverage = tiny_procapnet(x)
    total = torch.exp(torch.logsumexp(log_coverage.reshape(3, -1), dim=-1))
    torch.testing.assert_close(total, torch.exp(log_counts).reshape(-1))
    torch.testing.assert_close(coverage.sum(dim=(1, 2)), torch.exp(log_counts).reshape(-1))
    # the profile is one softmax over both strands, as in ProCapNet
    torch.testing.assert_close(torch.softmax(log_coverage.reshape(3, -1), -1),
                               torch.softmax(profile.reshape(3, -1), -1))


def test_procapnet_loss_matches_hand_computation():
    log_coverage = torch.tensor([[[0.1, -0.3, 0.5], [1.2, 0.0, -1.0]],
                                 [[-0.5, 0.2, 0.0], [0.3, 0.3, -0.2]]], dtype=torch.float64)
    target = torch.tensor([[[2.0, 0.0, 1.0], [3.0, 1.0, 0.0]],
                           [[0.0, 0.0, 4.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)

    def by_hand(lc, y, weight):
        lc, y = [float(v) for v in lc.flatten()], [float(v) for v in y.flatten()]
        total = sum(math.exp(v) for v in lc)
        n = sum(y)
        log_p = [v - math.log(total) for v in lc]
        mnll = -(math.lgamma(n + 1) - sum(math.lgamma(k + 1) for k in y)
                 + sum(k * lp for k, lp in zip(y, log_p, strict=True)))
        return mnll + weight * (math.log(total) - math.log(n + 1)) ** 2

    for weight in (1.0, 100.0):
        expected = np.mean([by_hand(log_coverage[i], target[i], weight) for i in range(2)])
        got = models.ProCapNetLoss(weight)(log_coverage, target)
        assert float(got) == pytest.approx(expected, rel=1e-10)
    model = models.build_model("procapnet", model_params={"n_filters": 4, "n_layers": 1})
    assert isinstance(model.loss, models.ProCapNetLoss) and model.loss.count_loss_weight == 100.0


def test_build_model_unknown_architecture():
    with pytest.raises(GenoclInputError, match="unknown 'borzoi'.*fix: use enformer, procapnet or puffin"):
        models.build_model("borzoi")


# --------------------------------------------------------------------------- weight formats


@pytest.mark.parametrize("fixture", ["tiny_enformer", "tiny_procapnet"])
def test_genocl_dir_roundtrip(fixture, request, tmp_path):
    model = request.getfixturevalue(fixture).eval()
    x = one_hot(2, model.seq_len)
    path = models.save_model(model, tmp_path / "m", extra={"note": "x"})
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "genocl-model" and len(config["weights_sha256"]) == 64
    loaded = models.load_model(path)
    assert not loaded.training
    assert loaded.task_names == model.task_names and loaded.seq_len == model.seq_len
    assert loaded.genocl_config["note"] == "x"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    # a run directory (DIR/model/) is accepted too
    run = tmp_path / "run"
    models.save_model(model, run / "model")
    assert models.resolve_model_dir(run) == run / "model"
    with pytest.raises(GenoclInputError, match="already exists.*--force"):
        models.save_model(model, path)


def test_grelu_checkpoint_from_lightning_trainer(tmp_path):
    """A .ckpt written by gReLU's own LightningModel.train_on_dataset (a real PL Trainer)."""
    from grelu.data.dataset import LabeledSeqDataset
    from grelu.lightning import LightningModel

    data = reference.load_windows()
    start, length = reference.TARGET_CROP, 64  # 8 bins of 8 bp (n_conv=3)
    seqs = [reference.codes_to_seq(data["train_seq"][i][start : start + length]) for i in range(2)]
    labels = np.stack([data["train_targets"][i][:8, :3].T for i in range(2)]).astype(np.float32)
    tasks = ["CAGE_a", "CAGE_b", "CAGE_c"]
    torch.manual_seed(0)
    grelu_model = LightningModel(
        {"model_type": "EnformerModel", "n_tasks": 3, "n_conv": 3, "channels": 384,
         "n_transformers": 1, "n_heads": 2, "key_len": 8, "crop_len": 0,
         "final_act_func": None, "final_pool_func": None},
        {"task": "regression", "loss": "poisson", "max_epochs": 1, "batch_size": 2,
         "save_dir": str(tmp_path), "devices": "cpu", "num_workers": 0, "logger": None},
    )
    grelu_model.train_on_dataset(LabeledSeqDataset(seqs, labels, tasks=tasks),
                                 LabeledSeqDataset(seqs[:1], labels[:1], tasks=tasks))
    ckpt = next(tmp_path.rglob("last.ckpt"))
    loaded = models.load_model(ckpt)
    assert loaded.task_names == tasks
    assert loaded.seq_len == 64 and loaded.bin_size == 8 and loaded.output_length(64) == 8
    x = one_hot(2, 64, seed=3)
    grelu_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), grelu_model(x))
    # and it can be re-saved as a genocl model directory
    again = models.load_model(models.save_model(loaded, tmp_path / "converted"))
    with torch.no_grad():
        torch.testing.assert_close(again(x), grelu_model(x))


def test_enformer_pytorch_directory(tmp_path):
    from enformer_pytorch import Enformer

    torch.manual_seed(0)
    enformer = Enformer.from_hparams(dim=96, depth=1, heads=2, dim_divisible_by=16,
                                     target_length=2).eval()
    enformer.save_pretrained(tmp_path / "ep", safe_serialization=False)
    loaded = models.load_model(tmp_path / "ep")
    assert loaded.model.head.n_tasks == 5313 and len(loaded.task_names) == 5313
    seq_len = loaded.seq_len
    assert seq_len % 128 == 0 and (seq_len // 128 - 2) % 2 == 0
    x = one_hot(2, seq_len)
    with torch.no_grad():
        expected = enformer(x.transpose(1, 2), head="human")  # (batch, bins, tracks) rates
        got = loaded(x)  # exp(log coverage) = the same rates, as (batch, tracks, bins)
        log_cov = loaded(x, logits=True)
    torch.testing.assert_close(got, expected.transpose(1, 2))
    torch.testing.assert_close(log_cov, torch.log(expected).transpose(1, 2))
    # the output is the centre-cropped target_length bins, whatever the input length
    assert loaded.output_length(seq_len) == got.shape[-1] == 2
    assert loaded.output_offset() == (seq_len - 2 * 128) // 2


class NotAllowed(torch.nn.Module):
    """A module class outside the loader's allow-list."""


def _bpnet(n_filters=8, n_layers=3, trimming=40, n_control_tracks=0):
    from bpnetlite.bpnet import BPNet

    torch.manual_seed(0)
    return BPNet(n_filters=n_filters, n_layers=n_layers, n_outputs=2,
                 n_control_tracks=n_control_tracks, trimming=trimming, verbose=False).eval()


def _check_same_as_bpnet(loaded, bpnet, seq_len):
    x = one_hot(2, seq_len)
    with torch.no_grad():
        profile, log_counts = bpnet(x)
        log_cov = loaded(x, logits=True)
    expected = torch.log_softmax(profile.reshape(2, -1), -1).reshape(profile.shape)
    torch.testing.assert_close(log_cov, expected + log_counts.reshape(-1, 1, 1))


def test_bpnet_whole_model_file(tmp_path):
    bpnet = _bpnet()
    torch.save(bpnet, tmp_path / "bpnet.torch")
    loaded = models.load_model(tmp_path / "bpnet.torch")
    assert loaded.model_params["trimming"] == 40 and loaded.seq_len == 2 * 40 + 1000
    assert loaded.output_length(1080) == 1000
    _check_same_as_bpnet(loaded, bpnet, 1080)


def test_bpnet_file_written_by_bpnet_fit(tmp_path, monkeypatch):
    """BPNet.fit saves the whole model with its training log (numpy scalars inside)."""
    bpnet = _bpnet()
    x = one_hot(4, 1080)
    y = torch.from_numpy(reference.load_windows()["train_targets"][:4, :1000, :2]).float()
    y = torch.round(y.transpose(1, 2))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, torch.ones(4)),
                                         batch_size=2)
    monkeypatch.chdir(tmp_path)  # fit writes NAME.torch, NAME.final.torch and NAME.log here
    bpnet.fit(loader, torch.optim.Adam(bpnet.parameters(), 1e-3), X_valid=x, y_valid=y,
              max_epochs=1, batch_size=2, device="cpu")
    bpnet.eval()
    loaded = models.load_model(tmp_path / f"{bpnet.name}.final.torch")
    assert loaded.model_params["trimming"] == 40
    _check_same_as_bpnet(loaded, bpnet, 1080)


def test_procapnet_fold_state_dict(tmp_path):
    """ProCapNet releases per-fold state dicts: BPNet(n_layers=8), 2,114 bp in, 1,000 out."""
    bpnet = _bpnet(n_filters=8, n_layers=8, trimming=None)
    torch.save(bpnet.state_dict(), tmp_path / "fold_0.torch")
    loaded = models.load_model(tmp_path / "fold_0.torch")
    assert loaded.model_params["n_layers"] == 8 and loaded.model_params["n_filters"] == 8
    assert loaded.seq_len == 2114 and loaded.output_length(2114) == 1000
    _check_same_as_bpnet(loaded, bpnet, 2114)


def test_bpnet_files_refused(tmp_path):
    torch.save(_bpnet(n_control_tracks=2), tmp_path / "ctl.torch")
    with pytest.raises(GenoclInputError, match="2 control tracks"):
        models.load_model(tmp_path / "ctl.torch")

    torch.save(NotAllowed(), tmp_path / "evil.pt")  # unpickling it would import test code
    with pytest.raises(GenoclInputError, match="refused to unpickle: it names (tests.)?test_models.NotAllowed"):
        models.load_model(tmp_path / "evil.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(GenoclInputError, match="iconv.weight missing"):
        models.load_model(tmp_path / "other.pt")


# --------------------------------------------------------------------------- bad specs


def test_bad_model_specs(tmp_path):
    with pytest.raises(GenoclInputError, match="borzoi: --model: not a bundled model name"):
        models.load_model("borzoi")
    with pytest.raises(GenoclInputError, match="not a bundled model name or an existing path"):
        models.load_model(tmp_path / "absent.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(GenoclInputError, match=r"junk.ckpt: checkpoint: not a loadable gReLU"):
        models.load_model(tmp_path / "junk.ckpt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(GenoclInputError, match=r"junk.pt: weights: not a bpnet-lite"):
        models.load_model(tmp_path / "junk.pt")
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF")
    with pytest.raises(GenoclInputError, match="unrecognised model format"):
        models.load_model(tmp_path / "weights.h5")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "config.json").write_text("{not json")
    with pytest.raises(GenoclInputError, match="fix:"):
        models.load_model(tmp_path / "dir")


def _corrupt(path: Path, how: str) -> None:
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if how == "tampered":
        data[-5] ^= 0xFF  # one weight changed; the file still parses
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "missing":
        weights.unlink()
        return
    weights.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["tampered", "truncated", "missing"])
def test_damaged_genocl_dir(how, tiny_procapnet, tmp_path):
    path = models.save_model(tiny_procapnet, tmp_path / "m")
    _corrupt(path, how)
    expected = {"tampered": "SHA-256 differs", "truncated": "SHA-256 differs",
                "missing": "missing model.safetensors"}[how]
    with pytest.raises(GenoclInputError, match=expected) as err:
        models.load_model(path)
    assert "fix:" in str(err.value) and "\n" not in str(err.value)


def test_damaged_genocl_dir_without_checksum(tiny_procapnet, tmp_path):
    """Directories written before checksums: a truncated file is still refused."""
    path = models.save_model(tiny_procapnet, tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    del config["weights_sha256"], config["config_sha256"]
    (path / "config.json").write_text(json.dumps(config))
    models.load_model(path)
    _corrupt(path, "truncated")
    with pytest.raises(GenoclInputError, match="corrupted or incompatible checkpoint"):
        models.load_model(path)


# --------------------------------------------------------------------------- bundled minis


@pytest.mark.parametrize("name", ["enformer", "procapnet"])
def test_bundled_model(name):
    path = models.BUNDLED_MODELS[name]
    if not path.exists():
        pytest.skip(f"{path} not trained yet (genocl pretrain --model {name})")
    model = models.load_model(name)
    metrics = model.genocl_config["test_metrics"]
    assert math.isfinite(metrics["test_pearson_mean"]) and metrics["test_pearson_mean"] > 0
    assert model.data_params["arch"] == name
    x = one_hot(1, model.seq_len)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, len(model.task_names), model.output_length(model.seq_len))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("length", [64, 63])
def test_patched_attention_pool_equals_upstream(length):
    """The faster AttentionPool (genocl_plugin/workarounds.py) is the same function as upstream."""
    from enformer_pytorch.modeling_enformer import AttentionPool

    from genocl_plugin.workarounds import original_attention_pool_forward

    assert AttentionPool.forward is not original_attention_pool_forward(), "the workaround is not installed"
    torch.manual_seed(0)
    pool = AttentionPool(8)
    torch.nn.init.normal_(pool.to_attn_logits.weight, std=0.5)  # non-trivial attention weights
    grads, outputs = [], []
    for forward in (original_attention_pool_forward(), AttentionPool.forward):
        x = torch.randn(3, 8, length, generator=torch.Generator().manual_seed(1), requires_grad=True)
        pool.zero_grad()
        y = forward(pool, x)
        (y.square() * torch.arange(y.shape[-1])).sum().backward()
        outputs.append(y.detach())
        grads.append((x.grad, pool.to_attn_logits.weight.grad.clone()))
    assert outputs[0].shape == outputs[1].shape == (3, 8, (length + 1) // 2)
    torch.testing.assert_close(outputs[1], outputs[0])
    # Gradients are sums over many terms: float32 summation order differs, so rtol 1e-4.
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-4)


CTCF_BPNET = (Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrained" / "bpnet_ctcf_k562"
              / "example.final.torch")


@pytest.mark.skipif(not CTCF_BPNET.exists(), reason="needs ../shared/data/pretrained/bpnet_ctcf_k562")
def test_whole_pickled_bpnet_loads_without_trust_and_sees_ctcf():
    """bpnet-lite's own fit output (a whole pickled BPNet written under numpy 1.x, with its training
    log) loads through the allow-list, and its counts head tells CTCF summits from random windows."""
    import gzip

    import pyfaidx

    from genocl_plugin.data import reference
    from genocl_plugin.models import trusted_checkpoints

    with trusted_checkpoints(False):
        model = models.load_model(CTCF_BPNET)
    assert model.model_params["n_filters"] == 64 and model.seq_len == 2114 and model.output_length(2114) == 1000
    shared = CTCF_BPNET.parents[2]
    genome = pyfaidx.Fasta(str(shared / "genome" / "hg38_1m.fa.gz"))
    with gzip.open(shared / "tracks_peaks" / "bpnetlite_ENCSR000AKO.narrowPeak.gz", "rt") as handle:
        rows = [line.split("\t") for line in handle if line.startswith("chr1\t")]
    summits = sorted({int(r[1]) + int(r[9]) for r in rows if 5_000 < int(r[1]) + int(r[9]) < 990_000})
    background = np.random.default_rng(0).integers(20_000, 980_000, size=40)

    def log_count(pos: int) -> float:
        seq = str(genome["chr1"][int(pos) - 1057:int(pos) + 1057]).upper()
        x = torch.from_numpy(reference.codes_to_one_hot(reference.seq_to_codes(seq)[None]))
        with torch.no_grad():
            return float(torch.logsumexp(model(x, logits=True).flatten(), 0))

    assert len(summits) >= 10  # chr1 was never seen in this model's training
    assert np.mean([log_count(p) for p in summits]) > np.mean([log_count(p) for p in background]) + 0.5


def test_weights_follow_the_umask(tmp_path):
    """safetensors writes 0600; genocl's weights follow the user's umask (0644 under umask 022)."""
    import os
    import stat

    model = models.build_model("procapnet", model_params={"n_filters": 4, "n_layers": 1})
    old = os.umask(0o022)
    try:
        models.save_model(model, tmp_path / "m")
        assert stat.S_IMODE((tmp_path / "m" / "model.safetensors").stat().st_mode) == 0o644
        os.umask(0o077)
        models.save_model(model, tmp_path / "p")
        assert stat.S_IMODE((tmp_path / "p" / "model.safetensors").stat().st_mode) == 0o600
    finally:
        os.umask(old)
