"""Pilot: a short enformer-mini training run with a plain PyTorch loop (not ``genocl pretrain``).

Trains the gReLU ``EnformerModel`` of enformer-mini on genocl's ``WindowCropDataset`` (RC and
shift augmentation, crop jitter) with warm-up + cosine decay over exactly ``steps`` steps, scores
the valid windows every ``eval_every`` steps, keeps the best valid mean 128-bp Pearson and scores
it once on the test windows. One JSON line per run is appended to ``--out``.

Usage::

    python benchmarks/pretrain_pilot.py '{"label": "poisson", "lr": 5e-4, "bs": 8, "steps": 300, "warmup": 30,
        "eval_every": 100, "threads": 1, "loss": "poisson", "init": "genocl_plugin/bundled/enformer_mini"}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from genocl_plugin import pretrain, reference
from genocl_plugin.evaluate import reference_predictions
from genocl_plugin.models import build_model, load_model


def scores(model, split: str) -> dict:
    """Mean 128-bp Pearson per assay group on one split (10 windows for train, as a fit check)."""
    model.eval()
    with torch.no_grad():
        pred, target = reference_predictions(model, split, max_crops=10 if split == "train" else None)
    model.train()
    return {k: round(v, 4) for k, v in pretrain.resolution_metrics(pred, target, "enformer", split).items()
            if "128bp" in k}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", help="JSON: label, lr, bs, steps, warmup, eval_every, threads, loss, init, seed")
    parser.add_argument("--out", default="docs/pretrain/pilot_2026-12-01.jsonl")
    args = parser.parse_args()
    s = json.loads(args.settings)
    torch.set_num_threads(s.get("threads", 2))
    torch.manual_seed(s.get("seed", 0))
    model = build_model("enformer", task_names=reference.track_names(), seq_len=4096, model_params={"crop_len": 16},
                        train_params={"lr": s["lr"], "batch_size": s["bs"], "loss": s["loss"], "total_weight": 0.2})
    if s.get("init"):
        model.model.load_state_dict(load_model(s["init"]).model.state_dict())
    bins = pretrain.output_bins(model)
    train = pretrain.WindowCropDataset("enformer", "train", model.seq_len, bins, jitter=bins * 16,
                                       seed=s.get("seed", 0), augment=True)
    loader = DataLoader(train, batch_size=s["bs"], shuffle=True, drop_last=True)
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    schedule = pretrain.WarmupCosine(s["lr"], s["warmup"], s["steps"])
    step, losses, history, best = 0, [], [], -np.inf
    start = time.time()
    model.train()
    with tempfile.TemporaryDirectory() as tmp:
        best_path = Path(tmp) / "best.pt"
        while step < s["steps"]:
            for x, y in loader:
                for group in opt.param_groups:
                    group["lr"] = schedule.lr_at(step)
                loss = model.loss(model(x, logits=True), y)  # gReLU's Poisson takes log rates
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                losses.append(loss.item())
                if step % s["eval_every"] == 0 or step == s["steps"]:
                    row = {**scores(model, "valid"), **{k: v for k, v in scores(model, "train").items()
                                                        if "dnase" in k or "mean" in k},
                           "step": step, "loss": float(np.mean(losses[-100:])),
                           "minutes": round((time.time() - start) / 60, 2)}
                    history.append(row)
                    print(s["label"], row, flush=True)
                    if row["valid_pearson_mean_128bp"] > best:
                        best = row["valid_pearson_mean_128bp"]
                        torch.save(model.model.state_dict(), best_path)
                if step >= s["steps"]:
                    break
        model.model.load_state_dict(torch.load(best_path, weights_only=True))
    result = {"label": s["label"], "settings": s, "history": history, "test": scores(model, "test")}
    print(s["label"], "test", result["test"], flush=True)
    with open(args.out, "a") as handle:
        handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
