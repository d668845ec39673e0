"""Resumable updates (issue 11): a run stopped at step k and resumed equals an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from genocl_cli.main import main
from genocl_plugin.data import reference
from genocl_plugin.training.resume import FAIL_AT_STEP_ENV, partial_dir

PROMOTERS = reference.BUNDLED / "mpra_promoters.h5ad"


class Result:
    def __init__(self, result) -> None:
        self.returncode, self.stderr = result.exit_code, result.output


def _update(base, out, *extra, fail_at=None):
    args = ["update", "--model", str(base), "--data", str(PROMOTERS), "--max-train", "24", "--max-eval", "8",
            "--retention-crops", "2", "--batch-size", "4", "--epochs", "2", "--lr", "1e-2",
            "--accelerator", "cpu", "--out", str(out), *extra]
    env = {FAIL_AT_STEP_ENV: str(fail_at) if fail_at else None}
    return Result(CliRunner().invoke(main, args, env=env))


@pytest.mark.parametrize(("strategy", "fail_at", "saved", "extra"), [
    ("finetune", 5, ["step=3.ckpt"], []),  # resumes mid-epoch 1 (3 of 6 batches done)
    ("lora", 8, ["step=3.ckpt", "step=6.ckpt"], []),  # resumes at the start of epoch 2
    # replay's draws continue where they stopped; EWC's importances and anchor stay the parent's;
    # the forgetting budget keeps the parent's predictions (its checks from step 4 on follow the resume)
    ("replay,ewc", 5, ["step=3.ckpt"], ["--max-drift", "0.0001"]),
])
def test_killed_and_resumed_equals_uninterrupted(tiny_procapnet_dir, tmp_path, strategy, fail_at, saved, extra):
    """24 examples / batch 4 = 6 steps per epoch, 2 epochs, a checkpoint every 3 steps."""
    strategy_args = ["--strategy", strategy, *extra]
    whole = _update(tiny_procapnet_dir, tmp_path / "whole", *strategy_args, "--checkpoint-every", "3")
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert not partial_dir(tmp_path / "whole").exists()  # a finished run removes its state

    out = tmp_path / "resumed"
    killed = _update(tiny_procapnet_dir, out, *strategy_args, "--checkpoint-every", "3", fail_at=fail_at)
    assert killed.returncode != 0 and not out.exists()
    assert sorted(p.name for p in partial_dir(out).glob("*.ckpt")) == saved
    # without --resume the partial state is neither reused nor deleted
    again = _update(tiny_procapnet_dir, out, *strategy_args, "--checkpoint-every", "3")
    assert again.returncode == 2 and "--resume" in again.stderr and partial_dir(out).exists()
    resumed = _update(tiny_procapnet_dir, out, *strategy_args, "--checkpoint-every", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not partial_dir(out).exists()

    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(out / "model" / "model.safetensors"))
    base = load_file(str(tiny_procapnet_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    assert any(k not in base or not torch.equal(a[k], base[k]) for k in a)  # it trained (or added adapters)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    state = tmp_path / "whole" / "model" / "strategy_state.safetensors"
    if "ewc" in strategy:  # the importances the next update continues from are the same too
        a, b = load_file(str(state)), load_file(str(out / "model" / "strategy_state.safetensors"))
        assert a.keys() == b.keys() and any(k.startswith("ewc/importance.") for k in a)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    if extra:  # the same budget checks, measured against the parent's predictions
        checks = [json.loads((run / "metrics.json").read_text())["strategies"]["DriftBudgetCallback"]["checks"]
                  for run in (tmp_path / "whole", out)]
        assert [c["step"] for c in checks[0]][:2] == [4, 8] and checks[0] == checks[1]


def test_resume_without_partial_state(tiny_procapnet_dir, tmp_path):
    result = _update(tiny_procapnet_dir, tmp_path / "run", "--strategy", "finetune", "--resume")
    assert result.returncode == 2
    assert ".run.partial: --resume: no checkpoint of an interrupted run" in result.stderr


def test_check_partial_skips_incomplete_newest_checkpoints(tmp_path, capsys):
    """A process killed while Lightning wrote step=9 / step=6 leaves them truncated or torn: --resume
    takes the newest complete checkpoint and says so in one line (the files stay)."""
    from genocl_plugin.training.resume import check_partial

    partial = partial_dir(tmp_path / "run")
    partial.mkdir()
    for step in (3, 6, 9):
        torch.save({"state_dict": {"w": torch.full((4096,), float(step))}}, partial / f"step={step}.ckpt")
    whole = (partial / "step=9.ckpt").read_bytes()
    (partial / "step=9.ckpt").write_bytes(whole[: len(whole) // 2])  # truncated
    torn = bytearray((partial / "step=6.ckpt").read_bytes())
    middle = len(torn) // 2
    torn[middle : middle + 64] = bytes(64)  # zeros inside the tensor data: parses, but fails its CRC
    (partial / "step=6.ckpt").write_bytes(bytes(torn))
    assert check_partial(tmp_path / "run", resume=True) == partial / "step=3.ckpt"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {partial}: skipped the newer step=9.ckpt")
    assert "step=6.ckpt (it is torn" in lines[0] and lines[0].endswith("resuming from step=3.ckpt")
    assert sorted(p.name for p in partial.iterdir()) == ["step=3.ckpt", "step=6.ckpt", "step=9.ckpt"]


def test_resume_from_an_older_checkpoint_when_the_newest_is_torn(tiny_procapnet_dir, tmp_path):
    """End to end: the killed run's newest checkpoint is truncated; --resume continues from the one
    before (Lightning writes over the torn file when it reaches that step) and finishes."""
    out = tmp_path / "run"
    args = ["--strategy", "finetune", "--checkpoint-every", "3"]
    killed = _update(tiny_procapnet_dir, out, *args, fail_at=8)
    assert killed.returncode != 0 and not out.exists()
    partial = partial_dir(out)
    assert sorted(p.name for p in partial.glob("*.ckpt")) == ["step=3.ckpt", "step=6.ckpt"]
    newest = partial / "step=6.ckpt"
    newest.write_bytes(newest.read_bytes()[:1000])
    result = CliRunner().invoke(main, [
        "update", "--model", str(tiny_procapnet_dir), "--data", str(PROMOTERS), "--max-train", "24",
        "--max-eval", "8", "--retention-crops", "2", "--batch-size", "4", "--epochs", "2", "--lr", "1e-2",
        "--accelerator", "cpu", "--out", str(out), *args, "--resume"])
    assert result.exit_code == 0, result.output[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {partial}: skipped the newer step=6.ckpt (it is truncated or not a torch "
                        "checkpoint); resuming from step=3.ckpt"]
    assert (out / "model" / "model.safetensors").is_file() and not partial.exists()
