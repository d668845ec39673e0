"""Cost of each strategy per training epoch relative to plain fine-tuning.

Every strategy runs in its own subprocess (so peak RSS is its own) on the bundled default
screen and model, in the same invocation. Reported: wall time per epoch (mean of the epochs
after the first, which pays one-off costs such as filling a replay buffer or a Fisher pass)
and peak RSS, both also as ratios to ``finetune``. The table is printed and written to the
"## Performance" section of docs/strategies.md.

    python benchmarks/update.py                    # procapnet-mini (cheap)
    python benchmarks/update.py --model enformer   # enformer-mini
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

STRATEGIES = ("finetune", "replay", "ewc", "replay,ewc", "lora")
DOC = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


def child(model_name: str, strategy: str, epochs: int, max_train: int) -> dict:
    """Train one strategy; return epoch times and peak RSS (runs inside the subprocess)."""
    import pytorch_lightning as pl
    import torch

    from genocl_plugin import objectives
    from genocl_plugin.errors import GenoclInputError
    from genocl_plugin.models import build_model, load_model
    from genocl_plugin.strategies import resolve_strategies
    from genocl_plugin.training.update import UpdateConfig, prepare_screen, train_on_screen

    torch.set_num_threads(2)
    config = UpdateConfig(model=model_name, strategy=strategy, epochs=epochs, max_train=max_train)
    try:
        model = load_model(model_name)
    except GenoclInputError:
        # Bundled weights not built yet: the same architecture untrained costs the same.
        model = build_model(model_name)
    path, train, _ = prepare_screen(config, model)
    dataset = objectives.screen_dataset(train, model, path=str(path))

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.times.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    train_on_screen(model, dataset, config, resolve_strategies(strategy) + [timer])
    steady = timer.times[1:] or timer.times
    return {"strategy": strategy, "epoch_s": sum(steady) / len(steady), "first_epoch_s": timer.times[0],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def table(rows: list[dict], model_name: str, max_train: int, epochs: int) -> str:
    """Markdown table of the measurements and their ratios to finetune."""
    base = next(r for r in rows if r["strategy"] == "finetune")
    lines = [f"Model `{model_name}` (bundled), bundled screen, {max_train} training perturbations, batch 16, "
             f"{epochs} epochs, CPU; time per epoch = mean of epochs 2..{epochs}.", "",
             "| strategy | s / epoch | × finetune | first epoch (s) | peak RSS (MB) | × finetune |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['strategy']} | failed: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['strategy']} | {r['epoch_s']:.2f} | {r['epoch_s'] / base['epoch_s']:.2f} | "
                     f"{r['first_epoch_s']:.2f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |")
    return "\n".join(lines)


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace (or append) the "## Performance" section of docs/strategies.md."""
    body = doc.read_text() if doc.exists() else "# Continual-learning strategies\n"
    section = "## Performance\n\nMeasured by `python benchmarks/update.py`.\n\n" + text + "\n"
    pattern = re.compile(r"## Performance\n.*?(?=\n## |\Z)", re.S)
    body = pattern.sub(lambda _: section, body) if pattern.search(body) else body.rstrip() + "\n\n" + section
    doc.write_text(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="procapnet", help="procapnet (default) or enformer")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train", type=int, default=256)
    parser.add_argument("--strategies", default=";".join(STRATEGIES), help="';'-separated list")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/strategies.md alone")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.model, args.child, args.epochs, args.max_train)))
        return
    rows = []
    for strategy in args.strategies.split(";"):
        proc = subprocess.run([sys.executable, __file__, "--child", strategy, "--model", args.model,
                               "--epochs", str(args.epochs), "--max-train", str(args.max_train)],
                              capture_output=True, text=True)
        result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not result:
            rows.append({"strategy": strategy, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:80]})
        else:
            rows.append(json.loads(result[-1][len("RESULT "):]))
        print(rows[-1], file=sys.stderr, flush=True)
    text = table(rows, args.model, args.max_train, args.epochs)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
