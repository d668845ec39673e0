"""Full-width models on this machine: seconds per training step and peak memory, batch 1.

For each architecture at full width and real geometry (gReLU ``EnformerModel``: 196,608 bp,
7 conv blocks, 1,536 channels, 11 transformers, 5,313 tracks; gReLU ``BorzoiModel``: 524,288 bp,
1,536 channels, 8 transformers, U-net to 32-bp bins, 7,611 tracks; ProCapNet: bpnet-lite BPNet,
512 filters, 8 layers, 2,114 -> 1,000), and for each setting (fp32, bf16-mixed, gradient
checkpointing), two runners are timed:

- ``genocl``: one step of genocl's perturbation objective (``GenoclLightningModel`` with a
  screen batch of 1 perturbation = reference + perturbed sequence, finetune strategy);
- ``grelu``: one step of plain gReLU/Lightning fine-tuning of the same network on one
  (sequence, tracks) pair (gReLU's own ``training_step``).

Every configuration runs in its own process (``nice -n 15``) so its peak RSS (VmHWM from
/proc/self/status) is its own; the step time is the mean over the steps after a warm-up
step. The ratio genocl / gReLU is the figure (a perturbation step predicts two sequences).
Where a GPU is present, the same script reports GPU step time and peak GPU memory.

    python benchmarks/fullsize.py                      # both architectures, all settings
    python benchmarks/fullsize.py --arch procapnet     # one architecture
    python benchmarks/fullsize.py --out results.jsonl  # also keep the JSON lines

The table printed at the end is what docs/performance.md shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = {
    "enformer": {"seq_len": 196_608, "steps": 1,
                 "params": {"model_type": "EnformerModel", "n_tasks": 5313, "n_conv": 7, "channels": 1536,
                            "n_transformers": 11, "n_heads": 8, "key_len": 64, "crop_len": 320,
                            "final_act_func": None, "final_pool_func": None}},
    # gReLU's BorzoiModel at its default (Borzoi) widths: 524,288 bp -> 6,144 x 32-bp bins, 7,611 tracks
    "borzoi": {"seq_len": 524_288, "steps": 1,
               "params": {"model_type": "BorzoiModel", "n_tasks": 7611, "crop_len": 5120,
                          "final_act_func": None, "final_pool_func": None}},
    "procapnet": {"seq_len": 2_114, "steps": 3,
                  "params": {"model_type": "ProCapNetBPNet", "n_filters": 512, "n_layers": 8, "n_outputs": 2,
                             "n_control_tracks": 0, "trimming": 557}},
}
SETTINGS = ("fp32", "bf16-mixed", "checkpointing")
RUNNERS = ("grelu", "genocl")


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def child(arch: str, setting: str, runner: str, steps: int | None = None) -> dict:
    """One configuration (inside its own process)."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    from genocl_plugin.models import build_model
    from genocl_plugin.training.hardware import enable_gradient_checkpointing

    spec = ARCHS[arch]
    steps = spec["steps"] if steps is None else steps
    torch.manual_seed(0)
    # genocl's builder records the input length and bin size that output_length() reads
    if arch == "borzoi":
        # genocl builds only its two minis' families from scratch; a Borzoi is what users load
        # (gReLU .ckpt), so the benchmark builds the same GenoclLightningModel that loading gives.
        from genocl_plugin.models import GenoclLightningModel

        model = GenoclLightningModel(dict(spec["params"]), {"task": "regression", "loss": "poisson", "lr": 1e-5,
                                                            "optimizer": "adam", "logger": None})
        model.data_params = {"tasks": {"name": [f"track_{i}" for i in range(spec["params"]["n_tasks"])]},
                             "train": {"seq_len": spec["seq_len"], "bin_size": 32}, "arch": "borzoi"}
    else:
        model = build_model(arch, seq_len=spec["seq_len"], model_params=dict(spec["params"]),
                            train_params={"lr": 1e-5, "logger": None})
    n_params = sum(p.numel() for p in model.parameters())
    if setting == "checkpointing":
        enable_gradient_checkpointing(model.model)
    seq_len = spec["seq_len"]
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, seq_len)), 4).float().transpose(1, 2)
    with torch.no_grad():
        n_tracks, n_out = model.model.head.n_tasks, model.output_length(seq_len)
    if runner == "grelu":
        y = torch.rand(1, n_tracks, n_out)
        items = [(x[0], y[0])] * (steps + 1)
        loader = DataLoader(items, batch_size=1)
    else:
        alt = x.clone()
        alt[:, :, seq_len // 2 - 100 : seq_len // 2 + 100] = 0.25  # a silenced 200-bp element
        mask = torch.zeros(n_tracks, dtype=torch.bool)
        mask[0] = True
        batch = {"ref": x, "ref_index": torch.tensor([0]), "alt": alt, "lo": torch.tensor([n_out // 2 - 1]),
                 "hi": torch.tensor([n_out // 2 + 1]), "effect": torch.tensor([-1.0]), "track_mask": mask}
        loader = DataLoader([batch] * (steps + 1), batch_size=None)

    times: list[float] = []

    class Timer(pl.Callback):
        def on_train_batch_start(self, *args):
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args):
            times.append(time.perf_counter() - self.start)

    precision = "bf16-mixed" if setting == "bf16-mixed" else "32-true"
    trainer = pl.Trainer(max_steps=steps + 1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Timer()], precision=precision,
                         accelerator="auto", devices=1)
    model.train()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, train_dataloaders=loader)
    result = {"arch": arch, "setting": setting, "runner": runner, "params_m": n_params / 1e6,
              "seq_len": seq_len,
              # with --steps 0 only the first step is run; its time includes the warm-up cost
              "step_s": sum(times[1:]) / len(times[1:]) if times[1:] else times[0],
              "measured_steps": len(times[1:]), "first_step_s": times[0], "peak_rss_gb": peak_rss_gb(),
              "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if torch.cuda.is_available():
        result["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1024**3
    return result


def run_one(arch: str, setting: str, runner: str, log: Path | None = None, steps: int | None = None) -> dict:
    cmd = ["nice", "-n", "15", sys.executable, __file__, "--child", arch, setting, runner]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        with log.open("a") as handle:
            handle.write(proc.stderr[-3000:])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode < 0:  # killed by a signal: on a CPU box, SIGKILL is the kernel's OOM killer
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
        return {"arch": arch, "setting": setting, "runner": runner,
                "error": f"killed by signal {-proc.returncode} (machine RAM {ram:.0f} GB, no swap)"}
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"arch": arch, "setting": setting, "runner": runner, "error": tail[:200]}
    return json.loads(lines[-1])


def _cell(r: dict | None, key: str) -> str:
    if not r:
        return "-"
    return f"error: {r['error']}" if "error" in r else f"{r[key]:.2f}"


def _ratio(g: dict | None, c: dict | None, key: str) -> str:
    if g and c and "error" not in g and "error" not in c:
        return f"{c[key] / g[key]:.2f}"
    return "-"


def table(results: list[dict]) -> str:
    by = {(r["arch"], r["setting"], r["runner"]): r for r in results}
    rows = ["| model | setting | gReLU step (s) | genocl step (s) | ratio | gReLU peak RSS (GB) | "
            "genocl peak RSS (GB) | ratio |", "|---|---|---|---|---|---|---|---|"]
    for arch in ARCHS:
        for setting in SETTINGS:
            g, c = by.get((arch, setting, "grelu")), by.get((arch, setting, "genocl"))
            if not g and not c:
                continue

            rows.append(f"| {arch} | {setting} | {_cell(g, 'step_s')} | {_cell(c, 'step_s')} | "
                        f"{_ratio(g, c, 'step_s')} | {_cell(g, 'peak_rss_gb')} | {_cell(c, 'peak_rss_gb')} | "
                        f"{_ratio(g, c, 'peak_rss_gb')} |")
    return "\n".join(rows)


def meta_network(arch: str):
    """The benchmark's network for ``arch`` built on the meta device (shapes only, no memory)."""
    import torch

    from genocl_plugin.models import GenoclLightningModel, build_model

    spec = ARCHS[arch]
    with torch.device("meta"):
        if arch == "borzoi":
            return GenoclLightningModel(dict(spec["params"]), {"task": "regression", "loss": "poisson",
                                                               "optimizer": "adam", "logger": None}).model
        return build_model(arch, seq_len=spec["seq_len"], model_params=dict(spec["params"])).model


def estimate_table() -> str:
    """Each measured row of docs/results/fullsize_*.jsonl beside genocl's memory pre-flight estimate
    (genocl_plugin/training/memory.py; one weight copy, as the benchmark holds no parent)."""
    from genocl_plugin.training import memory

    rows = ["| model | setting | runner | measured peak RSS (GiB) | estimate (GiB) | estimate / measured |",
            "|---|---|---|---|---|---|"]
    for arch in ARCHS:
        net = meta_network(arch)
        seq_len = ARCHS[arch]["seq_len"]
        saved = memory.saved_activation_bytes(net, seq_len)
        n_params = sum(p.numel() for p in net.parameters())
        for line in (ROOT / f"docs/results/fullsize_{arch}.jsonl").read_text().splitlines():
            r = json.loads(line)
            parts = memory.step_estimate(
                net, seq_len, 1, precision="bf16-mixed" if r["setting"] == "bf16-mixed" else "32",
                checkpointing=r["setting"] == "checkpointing",
                sequences_per_example=2 if r["runner"] == "genocl" else 1, saved_bytes=saved)
            estimate = (parts["total"] - 4 * n_params) / memory.GB
            measured = f"{r['peak_rss_gb']:.2f}" if "peak_rss_gb" in r else "killed at 24 GB"
            ratio = f"{estimate / r['peak_rss_gb']:.2f}" if "peak_rss_gb" in r else "-"
            rows.append(f"| {arch} | {r['setting']} | {r['runner']} | {measured} | {estimate:.2f} | {ratio} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, metavar=("ARCH", "SETTING", "RUNNER"))
    parser.add_argument("--arch", action="append", choices=list(ARCHS))
    parser.add_argument("--setting", action="append", choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=None, help="JSON lines of results (appended).")
    parser.add_argument("--steps", type=int, default=None,
                        help="Measured steps after the warm-up step (default per architecture); 0 runs one step "
                             "and reports its time (warm-up included), for settings too slow for more on a CPU.")
    parser.add_argument("--estimate", action="store_true",
                        help="Print the measured rows beside genocl's memory pre-flight estimate (no training).")
    args = parser.parse_args()
    if args.estimate:
        print(estimate_table())
        return
    if args.child:
        import torch

        torch.set_num_threads(2)
        print(json.dumps(child(*args.child, steps=args.steps)), flush=True)
        return
    results = []
    for arch in args.arch or list(ARCHS):
        for setting in args.setting or list(SETTINGS):
            for runner in RUNNERS:
                result = run_one(arch, setting, runner, log=args.out.with_suffix(".log") if args.out else None,
                                 steps=args.steps)
                print(json.dumps(result), flush=True)
                results.append(result)
                if args.out:
                    with args.out.open("a") as handle:
                        handle.write(json.dumps(result) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
