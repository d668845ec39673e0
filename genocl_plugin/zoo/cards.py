"""The entry's README.md model card, and the descriptions of a model it shares with model.yaml."""

from __future__ import annotations

import math
from pathlib import Path

from genocl_plugin import __version__
from genocl_plugin.config import strategy_flags
from genocl_plugin.zoo.names import SOURCE_NAME


def _doc(model, config: dict, name: str, n_out: int) -> str:
    base = str(config.get("name", name)).split("+")[0]
    screens = [Path(str(s.get("path", "?"))).stem for s in config.get("screens_seen", [])]
    what = (f"{base} updated with genocl (strategy: {_strategy_text(config)}) on "
            f"{', '.join(screens)}" if screens else f"{base}, the genocl base model")
    return (f"{what}. Predicts {len(model.task_names)} coverage tracks at {model.bin_size}-bp "
            f"resolution ({n_out} positions) from {model.seq_len} bp of DNA.")


def _strategy_text(config: dict) -> str:
    """``--strategy`` with its hyperparameters as flags (e.g. ``freeze --freeze trunk``)."""
    if not config.get("strategy"):
        return "none (base model)"
    return strategy_flags(config["strategy"], config.get("strategy_params"))


def _base_data(config: dict) -> str:
    lineage = config.get("lineage") or [{}]
    return str(lineage[0].get("data") or lineage[0].get("source") or "unknown base data")


def _lineage_text(step: dict) -> str:
    if step.get("step") == "update":
        return f"update on {Path(str(step.get('screen', '?'))).name} ({step.get('strategy', '?')})"
    detail = step.get("data") or step.get("source") or ""
    return f"{step.get('step', '?')}" + (f" ({detail})" if detail else "")


def _fmt(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    return "n/a" if value is None else str(value)


def model_card(model, config: dict, name: str, checksums: dict, base_card: str = "",
               zoo_label: str = "model_zoo") -> str:
    """The entry's README.md: base model, lineage, screens, strategy, metrics, limits, use."""
    n_params = sum(p.numel() for p in model.model.parameters())
    n_out = model.output_length(model.seq_len)
    screens = config.get("screens_seen", [])
    lines = [
        f"# {name}", "", _doc(model, config, name, n_out), "",
        "| | |", "|---|---|",
        f"| base model | {str(config.get('name', '?')).split('+')[0]} |",
        f"| architecture | {model.data_params.get('arch', '?')} ({model.model_params.get('model_type')}), "
        f"{n_params:,} parameters |",
        f"| input | one-hot DNA (4, {model.seq_len}) |",
        f"| output | coverage ({len(model.task_names)} tracks, {n_out} positions x {model.bin_size} bp) |",
        f"| screens seen | {', '.join(Path(str(s.get('path'))).name for s in screens) or 'none'} |",
        f"| strategy | {_strategy_text(config)} |",
        f"| weights | `model.safetensors`, sha256 `{checksums['sha256']}`, md5 `{checksums['md5']}` |",
        f"| published with | genocl {__version__}, Kipoi 0.8.6 |",
        "", "## Lineage", "",
    ]
    for i, step in enumerate(config.get("lineage", []), start=1):
        extra = f", screen sha256 `{step['screen_sha256'][:16]}...`" if step.get("screen_sha256") else ""
        when = f", {step['time']}" if step.get("time") else ""
        lines.append(f"{i}. {_lineage_text(step)}{extra}{when}")
    lines += ["", "## Metrics", ""] + _metric_lines(config)
    lines += [
        "", "## Use", "", "```python", "import kipoi",
        f'model = kipoi.get_model("{name}", source="{SOURCE_NAME}")  # after `genocl zoo register`',
        f'# or: kipoi.get_model("{zoo_label}/{name}", source="dir")',
        "model.predict_on_batch(one_hot)  # (batch, 4, L) -> (batch, tracks, positions)",
        "```", "",
        f"Continue training: `genocl update --model {zoo_label}/{name} --data SCREEN.h5ad --out RUN`. "
        f"Check the entry: `genocl zoo test {name} --zoo {zoo_label}` (Kipoi's own `kipoi test`, offline).",
        "", "## Limits", "",
    ]
    if config.get("screens_seen"):
        lines.append("- The new-task and retention numbers come from one update, measured on a small "
                     "held-out split of the screen; they are not a benchmark. Read `n` before "
                     "trusting a correlation.")
    lines += [
        f"- Valid for {model.seq_len}-bp inputs; the example files are real sequence at that length "
        "(see the header of `example_files/sequence.fa`), a check of the entry, not an evaluation.",
        "- Weights load only through safetensors after their sha256 is checked, but Kipoi "
        "evaluates `model.yaml` schema shapes with Python's `eval` and imports `genocl_kipoi.py`: "
        "load entries only from zoos you trust.",
    ]
    if base_card:  # the pretrained model's own MODEL_CARD.md, headings nested under this one
        nested = [f"##{line}" if line.startswith("#") else line for line in base_card.strip().splitlines()]
        lines += ["", "## Base model card", "", *nested]
    return "\n".join(lines) + "\n"


def _metric_lines(config: dict) -> list[str]:
    lines = []
    report = config.get("metrics") or {}
    new = report.get("new_task") or {}
    if new:
        before, after = new.get("before", {}), new.get("after", {})
        lines += ["New task (held-out elements of the screen):", "",
                  "| metric | before | after |", "|---|---|---|"]
        for key in ("pearson", "spearman"):
            lines.append(f"| effect {key} | {_fmt(before.get(key))} | {_fmt(after.get(key))} |")
        lines += [f"| n | {_fmt(before.get('n'))} | {_fmt(after.get('n'))} |", ""]
    retention = report.get("retention") or {}
    if retention:
        lines += ["Retention (held-out reference windows):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in retention.items()]
        lines.append("")
    test = config.get("test_metrics") or {}
    if test:
        lines += ["Base model, held-out test windows:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in test.items()]
    return lines or ["No metrics recorded in this model's config."]

