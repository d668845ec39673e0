"""Hardware options (issue 11): checked flags, batch sizes that fit, out-of-memory as one
line, gradient checkpointing equal to plain backprop, precision and gradient accumulation."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from genocl_cli.main import main
from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.models import GenoclLightningModel, build_model
from genocl_plugin.training import hardware
from genocl_plugin.training.update import UpdateConfig, run_update

PROMOTERS = reference.BUNDLED / "mpra_promoters.h5ad"


# ------------------------------------------------------------------------- flags


@pytest.mark.parametrize(("args", "needle"), [
    (["--devices", "gpu"], "--devices: 'gpu' is an accelerator"),
    (["--devices", "cuda"], "--devices: 'cuda' is an accelerator"),
    (["--devices", "0"], "--devices: 0 devices"),
    (["--devices", "two"], "--devices: not a count"),
    (["--accelerator", "cpu", "--devices", "0,1"], "GPU indices, but training runs on the CPU"),
    (["--accumulate-grad-batches", "0"], "--accumulate-grad-batches: '0' is not an integer >= 1"),
    (["--batch-size", "0"], "--batch-size: '0' is not an integer >= 1"),
    (["--num-workers", "-1"], "--num-workers: '-1' is not an integer >= 0"),
])
def test_bad_hardware_flags_one_line(args, needle, tmp_path):
    result = CliRunner().invoke(main, ["update", "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "fix:" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("command", [["update"], ["pretrain", "--model", "procapnet"]])
def test_gpu_requested_without_gpu(command, tmp_path):
    result = CliRunner().invoke(main, [*command, "--out", str(tmp_path / "x"), "--accelerator", "gpu"])
    assert result.exit_code == 2
    assert "requested GPU is not available" in result.output
    result = CliRunner().invoke(main, [*command, "--out", str(tmp_path / "x"), "--precision", "16-mixed"])
    assert result.exit_code == 2 and "use --precision bf16-mixed on the CPU" in result.output


def test_trainer_settings_values():
    settings = hardware.trainer_settings("cpu", "2", "bf16-mixed", 4, 1, ddp=True)
    assert settings == {"accelerator": "cpu", "devices": 2, "precision": "bf16-mixed",
                        "accumulate_grad_batches": 4, "num_nodes": 1, "strategy": "ddp"}
    assert hardware.trainer_settings("auto", "auto")["devices"] == "auto"
    assert hardware.parse_devices("0,1") == [0, 1] and hardware.parse_devices("3,") == [3]
    assert hardware.trainer_settings("cpu", 1, "32")["precision"] == "32-true"
    with pytest.raises(GenoclInputError, match="--precision: unknown"):
        hardware.trainer_settings("cpu", 1, "8-bit")


# ------------------------------------------------------------------------- batch sizes


def test_default_batch_size_follows_model_size(monkeypatch):
    from genocl_plugin.training import memory

    monkeypatch.setattr(memory, "available_bytes", lambda *a, **k: 8 * memory.GB)  # the same on any machine
    mini = build_model("enformer")  # the bundled mini's layout
    assert hardware.default_batch_size(mini.model, mini.seq_len) == 16
    assert hardware.default_batch_size(mini.model, mini.seq_len, training=False) == 64
    # the same model at a 64x longer input needs smaller batches
    assert hardware.default_batch_size(mini.model, 64 * mini.seq_len) < 16
    big = torch.nn.Linear(10_000, 25_000)  # 250 M parameters, like a full Enformer
    assert hardware.default_batch_size(big, 196_608) == 1
    assert hardware.default_batch_size(big, 196_608, training=False) == 1


# ------------------------------------------------------------------------- out of memory


@pytest.mark.parametrize("command", ["update", "publish", "score-vcf"])
def test_out_of_memory_is_one_line(command, tmp_path, monkeypatch, tiny_procapnet_dir, data_dir):
    """A real allocator failure (128 TB) inside the command becomes one line naming the fixes."""
    def allocate(*args, **kwargs):
        return torch.empty(2**45)

    if command == "update":
        monkeypatch.setattr("genocl_plugin.training.update.train_on_screen", allocate)
        args = ["update", "--model", str(tiny_procapnet_dir), "--data", str(PROMOTERS), "--max-train", "8",
                "--max-eval", "8", "--retention-crops", "2", "--strategy", "finetune", "--out", str(tmp_path / "r")]
    elif command == "publish":
        monkeypatch.setattr("genocl_plugin.zoo.publishing.write_examples", allocate)
        args = ["publish", str(tiny_procapnet_dir), "--zoo", str(tmp_path / "zoo"), "--name", "a/b-v1"]
    else:
        monkeypatch.setattr("genocl_plugin.scoring.score.predict_window_sums", allocate)
        args = ["score-vcf", "--model", str(tiny_procapnet_dir), "--vcf", str(data_dir / "gtex_eqtl_chr1_first1Mb.vcf"),
                "--fasta", str(data_dir / "hg38_chr1_1-140000.fa.gz"), "--out", str(tmp_path / "s.tsv")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    # one error line, after the [stage i/n] lines of the stages that ran (the one that failed says so)
    lines = [line for line in result.output.splitlines()
             if line.strip() and not line.startswith(("warning", "[stage "))]
    assert len(lines) == 1, result.output
    if command != "publish":
        assert re.search(r"\] (training|scoring).*failed after \d", result.stderr), result.stderr
    for needle in ("out of memory", "can't allocate memory", "--batch-size", "--precision",
                   "--gradient-checkpointing"):
        assert needle in lines[0]
    assert not (tmp_path / "r").exists() and not list((tmp_path / "zoo").rglob("*.safetensors"))
    assert not (tmp_path / "s.tsv").exists()


def test_other_runtime_errors_still_raise(monkeypatch, tmp_path, tiny_procapnet_dir):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr("genocl_plugin.training.update.train_on_screen", broken)
    result = CliRunner().invoke(main, ["update", "--model", str(tiny_procapnet_dir), "--data", str(PROMOTERS),
                                       "--max-train", "8", "--max-eval", "8", "--strategy", "finetune",
                                       "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, RuntimeError) and "shape mismatch" in str(result.exception)


# ------------------------------------------------------------------------- gradient checkpointing


def _enformer_pytorch():
    return GenoclLightningModel(
        {"model_type": "EnformerPytorchTracks", "head": "human",
         "hparams": {"dim": 96, "depth": 2, "heads": 2, "dim_divisible_by": 16, "target_length": 4}},
        {"task": "regression", "loss": "poisson"}), 128 * 8


def _borzoi():
    return GenoclLightningModel(
        {"model_type": "BorzoiModel", "n_tasks": 3, "stem_channels": 32, "init_channels": 32, "channels": 96,
         "n_transformers": 1, "n_heads": 2, "key_len": 8, "value_len": 16, "final_pool_func": None,
         "crop_len": 2}, {"task": "regression", "loss": "poisson"}), 4096


@pytest.mark.parametrize("make", [
    lambda: (build_model("enformer", seq_len=512), 512),
    lambda: (build_model("procapnet", seq_len=352, model_params={"n_filters": 8, "n_layers": 3, "trimming": 48}), 352),
    _enformer_pytorch, _borzoi,
], ids=["grelu-enformer", "procapnet", "enformer-pytorch", "grelu-borzoi"])
def test_gradient_checkpointing_same_gradients(make):
    """Same loss, gradients and BatchNorm running statistics with and without checkpointing."""
    torch.manual_seed(0)
    model, seq_len = make()
    plain, ckpt = model.model, copy.deepcopy(model.model)
    assert hardware.enable_gradient_checkpointing(ckpt) >= 1
    assert list(ckpt.state_dict()) == list(plain.state_dict())
    plain.train()
    ckpt.train()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (2, seq_len)), 4).float().transpose(1, 2)
    losses = []
    for net in (plain, ckpt):
        torch.manual_seed(1)  # same dropout masks
        loss = net(x).exp().mean()
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1])
    for (name, p), (_, q) in zip(plain.named_parameters(), ckpt.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, a), (_, b) in zip(plain.state_dict().items(), ckpt.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)  # running stats updated once, not twice
    copy.deepcopy(ckpt)  # the swapped classes survive the deepcopy every update makes


@pytest.mark.parametrize("make", [lambda: (build_model("enformer", seq_len=512), 512), _enformer_pytorch],
                         ids=["grelu-enformer", "enformer-pytorch"])
def test_gradient_checkpointing_in_eval_mode_gradient_passes(monkeypatch, make):
    """EWC / MAS importances take gradients of the parent in eval mode (torch.autograd.grad): those
    passes are checkpointed too (at 196,608 bp they otherwise stored every activation), plain no-grad
    inference is not. enformer-pytorch's own (reentrant) checkpointing refused autograd.grad."""
    torch.manual_seed(0)
    model, seq_len = make()
    plain, ckpt = model.model.eval(), copy.deepcopy(model.model).eval()
    hardware.enable_gradient_checkpointing(ckpt)
    calls = []
    original = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or original(*a, **k))
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, seq_len)), 4).float().transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(ckpt(x), plain(x))
    assert not calls
    # allow_unused: enformer-pytorch keeps a mouse head the human outputs do not use
    grads = [torch.autograd.grad(net(x).exp().mean(), list(net.parameters()), allow_unused=True)
             for net in (plain, ckpt)]
    assert calls  # recomputed in backward, not stored
    assert sum(g is not None for g in grads[0]) > len(grads[0]) // 2
    for g, h in zip(*grads, strict=True):
        assert (g is None) == (h is None)
        if g is not None:
            torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------- precision, accumulation


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def test_accumulation_equals_larger_batch(tiny_procapnet_dir, tmp_path):
    """2 accumulated batches of 8 == one batch of 16 (one optimiser step over the same examples)."""
    common = {"model": str(tiny_procapnet_dir), "data": str(PROMOTERS), "max_train": 16, "max_eval": 8,
              "retention_crops": 2, "strategy": "finetune", "lr": 1e-2, "holdout": 0.25}
    run_update(UpdateConfig(batch_size=16, **common), tmp_path / "b16", trainer_kwargs={"accelerator": "cpu"})
    run_update(UpdateConfig(batch_size=8, accumulate_grad_batches=2, **common), tmp_path / "b8x2",
               trainer_kwargs={"accelerator": "cpu"})
    run_update(UpdateConfig(batch_size=8, **common), tmp_path / "b8", trainer_kwargs={"accelerator": "cpu"})
    a, b, c = _weights(tmp_path / "b16"), _weights(tmp_path / "b8x2"), _weights(tmp_path / "b8")
    base = load_file(str(tiny_procapnet_dir / "model.safetensors"))
    step = sum(float((a[k] - base[k]).abs().sum()) for k in a)
    accumulated = sum(float((a[k] - b[k]).abs().sum()) for k in a)
    two_steps = sum(float((a[k] - c[k]).abs().sum()) for k in a)
    assert step > 0
    # Adam's first step is ~lr * sign(grad), so float rounding of near-zero gradients moves a
    # few weights; the difference must still be tiny next to taking two steps of 8 instead.
    assert accumulated < 0.02 * two_steps, (accumulated, two_steps)
    assert accumulated < 0.02 * step


def test_update_cli_bf16_checkpointing(tiny_procapnet_dir, tmp_path):
    result = CliRunner().invoke(main, [
        "update", "--model", str(tiny_procapnet_dir), "--data", str(PROMOTERS), "--max-train", "16",
        "--max-eval", "8", "--retention-crops", "2", "--strategy", "finetune", "--accelerator", "cpu",
        "--precision", "bf16-mixed", "--gradient-checkpointing", "--accumulate-grad-batches", "2",
        "--batch-size", "4", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "run" / "metrics.json").read_text()
    assert '"precision": "bf16-mixed"' in config and '"gradient_checkpointing": true' in config
    weights = _weights(tmp_path / "run")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())


def test_score_vcf_bf16(tmp_path, data_dir):
    """--precision bf16-mixed autocasts the forward: coverage within bf16's ~0.4% resolution.

    SNV effects of a few tenths of a percent are below that resolution, so bf16 effect scores
    of weak variants are noise (docs/performance.md); the test checks predictions, and that
    the CLI really ran in bf16.
    """
    from genocl_plugin.models import load_model

    model = load_model("procapnet")
    x = torch.from_numpy(reference.codes_to_one_hot(reference.window_crops("test", model.seq_len, n_bins=4)[0][:2]))
    with torch.no_grad():
        fp32 = model(x)
        with hardware.autocast("cpu", "bf16-mixed"):
            bf16 = model(x).float()
    assert not torch.equal(fp32, bf16)
    total = fp32.sum(dim=(1, 2))
    torch.testing.assert_close(bf16.sum(dim=(1, 2)), total, rtol=0.03, atol=0)
    outs = {}
    for precision in ("32", "bf16-mixed"):
        out = tmp_path / f"{precision}.tsv"
        result = CliRunner().invoke(main, [
            "score-vcf", "--model", "procapnet", "--vcf", str(data_dir / "gtex_eqtl_chr1_first1Mb.vcf"),
            "--fasta", str(data_dir / "hg38_chr1_1-140000.fa.gz"), "--out", str(out), "--precision", precision,
            "--region", "chr1:1-140000", "--scores", "diff"])
        assert result.exit_code == 0, result.output
        outs[precision] = np.loadtxt(out, skiprows=1, usecols=(5, 6), ndmin=2)
    assert outs["32"].shape == outs["bf16-mixed"].shape and len(outs["32"]) > 0
    assert not np.array_equal(outs["32"], outs["bf16-mixed"])
