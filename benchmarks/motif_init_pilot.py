"""Pilot: an enformer-mini whose stem filters start as known motifs, pretrained by the recipe.

``benchmarks/screen_ceiling.py`` shows that a linear model on motif-match changes learns the
enhancer screen from the study's 512 variants while enformer-mini's trunk holds no such signal.
This pilot asks whether starting the stem convolution from motifs gives the trunk that knowledge:
it writes a genocl model directory whose first convolution holds up to 192 HOCOMOCO v12 motifs
(gReLU's bundled MEME file; primary motif per TF, C2H2 zinc fingers left out, greedy by
information content with near-duplicates and reverse complements skipped), the other weights
drawn exactly as ``genocl pretrain --seed S`` draws them. Then

    python benchmarks/motif_init_pilot.py /tmp/motif_init
    genocl pretrain --model enformer --init /tmp/motif_init --out /tmp/base_motif <the recipe's flags>

and the same ``genocl pretrain`` without ``--init`` is the control (same random weights apart
from the stem). Results: docs/pretrain/enformer_mini_motif_init_2026-12-01.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.screen_ceiling import log_odds  # noqa: E402

WIDTH = 15  # enformer-mini's stem kernel
C2H2_PREFIXES = ("ZN", "ZFP", "ZSC", "ZIM", "ZKSC", "ZSA", "Z3", "ZBT", "ZBED", "PRD")


def is_primary(name: str) -> bool:
    """Whether a HOCOMOCO v12 motif is its TF's primary (subtype 0) motif."""
    return ".0." in name


def centred_log_odds(ppm: np.ndarray, width: int = WIDTH, pseudocount: float = 0.01) -> tuple[np.ndarray, float]:
    """The most informative ``width`` columns of a (4, w) PPM as log-odds centred per column.

    Narrower motifs are padded with uniform columns. Returns ``(log_odds, information content)``.
    """
    ppm = np.asarray(ppm, dtype=float)
    if ppm.shape[1] < width:
        ppm = np.pad(ppm, ((0, 0), (0, width - ppm.shape[1])), constant_values=0.25)
    ic = 2 + (ppm * np.log2(ppm + 1e-9)).sum(0)
    start = int(np.argmax(np.convolve(ic, np.ones(width), "valid")))
    ppm = ppm[:, start : start + width]
    odds = log_odds(ppm, pseudocount)
    # centred, so a filter scores the match, not the base composition of the window
    return odds - odds.mean(0, keepdims=True), float(ic[start : start + width].sum())


def similarity(a: np.ndarray, b: np.ndarray, max_shift: int = 4) -> float:
    """Best Pearson of two (4, w) filters over small shifts, either strand of ``b``."""
    width = a.shape[1]
    best = -1.0
    for other in (b, b[::-1, ::-1]):
        for s in range(-max_shift, max_shift + 1):
            x = a[:, max(0, s) : width + min(0, s)]
            y = other[:, max(0, -s) : width - max(0, s)]
            best = max(best, float(np.corrcoef(x.ravel(), y.ravel())[0, 1]))
    return best


def select_motifs(motifs: dict, n: int = 192, min_ic: float = 8.0, max_similarity: float = 0.6,
                  width: int = WIDTH, rank: dict | None = None) -> list[tuple[str, np.ndarray]]:
    """Up to ``n`` distinct, informative motifs: (name, centred log-odds).

    Ranked by falling information content, or by falling ``rank[name]`` (e.g.
    :func:`track_relevance`) when given; C2H2 zinc fingers are then kept.
    """
    candidates = []
    for name, ppm in motifs.items():
        if not is_primary(name) or (rank is None and name.startswith(C2H2_PREFIXES)):  # one motif per TF
            continue
        odds, ic = centred_log_odds(ppm, width)
        if ic >= min_ic:
            candidates.append((ic if rank is None else rank[name], name, odds))
    picked: list[tuple[str, np.ndarray]] = []
    for _, name, odds in sorted(candidates, key=lambda c: -c[0]):
        if all(similarity(odds, other) < max_similarity for _, other in picked):
            picked.append((name, odds))
        if len(picked) == n:
            break
    return picked


def track_relevance(motifs: dict, width: int = WIDTH, bin_size: int = 32, windows: int | None = None) -> dict:
    """Each motif's Pearson, over the training windows' bins, of its best match with DNase.

    Only the bundled training windows are read (never a screen or the valid/test windows): the
    best log-odds match (floored at zero, either strand) of each motif's ``width`` most informative
    columns in each 32-bp bin of the target region, against log1p of the mean DNase track there.
    """
    import torch

    from genocl_plugin.data import reference

    data = np.load(reference.BUNDLED / "basenji_tiny_hg38.npz")
    seqs, targets = data["train_seq"], data["train_targets"]
    if windows is not None:
        seqs, targets = seqs[:windows], targets[:windows]
    dnase = [i for i, name in enumerate(reference.track_names()) if reference.assay_group(name) == "DNASE"]
    names = list(motifs)
    odds = np.stack([centred_log_odds(motifs[n], width)[0] for n in names])
    filters = torch.tensor(np.concatenate([odds, odds[:, ::-1, ::-1]]), dtype=torch.float32)
    bins = targets.shape[1]
    start = (seqs.shape[1] - bins * bin_size) // 2
    scores, signal = [], []
    for seq, target in zip(seqs, targets, strict=True):
        region = seq[start - width // 2 : start + bins * bin_size + width - 1 - width // 2]
        x = torch.from_numpy(reference.codes_to_one_hot(region[None]).astype(np.float32))
        with torch.no_grad():
            best = torch.nn.functional.conv1d(x, filters)[0].clamp(min=0)
            best = best.reshape(2, len(names), bins, bin_size).amax(dim=(0, 3))
        scores.append(best.numpy())
        signal.append(np.log1p(target[:, dnase].astype(np.float64).mean(1)))
    x, y = np.concatenate(scores, axis=1), np.concatenate(signal)
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean()
    r = (x @ y) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y) + 1e-12)
    return dict(zip(names, r.tolist(), strict=True))


def motif_initialised_enformer(out: Path, seed: int = 0, meme: str = "hocomoco_v12", gain: float = 3.0,
                               by: str = "information") -> list[str]:
    """Write an enformer-mini (the recipe's architecture) with motif stem filters; returns their names."""
    import pytorch_lightning as pl
    import torch
    from grelu.io.motifs import read_meme_file

    from genocl_plugin.data import reference
    from genocl_plugin.models import build_model, save_model
    from genocl_plugin.training.pretrain import RECIPES

    recipe = RECIPES["enformer"]
    pl.seed_everything(seed, workers=True)  # as `genocl pretrain --seed` does before it builds the model
    model = build_model("enformer", task_names=reference.track_names(), seq_len=recipe["seq_len"],
                        model_params=dict(recipe["model_params"]),
                        train_params={"lr": 5e-4, "batch_size": 8, "logger": "csv", "loss": recipe["loss"]})
    conv = model.model.embedding.conv_tower.blocks[0][0]
    motifs = read_meme_file(meme)
    # only primary motifs can be picked, so only they are scanned
    rank = (track_relevance({k: v for k, v in motifs.items() if is_primary(k)}, conv.kernel_size[0])
            if by == "tracks" else None)
    # min_ic 4 when ranked by the tracks: short motifs (AP-1, ETS, E-box) are the common ones
    picked = select_motifs(motifs, n=conv.out_channels, width=conv.kernel_size[0], rank=rank,
                           min_ic=8.0 if rank is None else 4.0)
    with torch.no_grad():
        filters = torch.tensor(np.stack([odds for _, odds in picked]), dtype=torch.float32)
        # a few times the random filters' norm, so the motifs stand out of the random ones beside them
        scale = conv.weight[: len(picked)].norm(dim=(1, 2)).mean() / filters.norm(dim=(1, 2)).mean()
        conv.weight[: len(picked)] = filters * scale * gain
    save_model(model, out)
    names = [name for name, _ in picked]
    (Path(out) / "motifs.json").write_text(json.dumps(names, indent=1) + "\n")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by", choices=["information", "tracks"], default="information",
                        help="Rank motifs by information content, or by their Pearson with DNase on the "
                             "training windows.")
    args = parser.parse_args()
    names = motif_initialised_enformer(args.out, args.seed, by=args.by)
    print(f"{args.out}: {len(names)} motif filters ({', '.join(n.split('.')[0] for n in names[:12])}, ...)")


if __name__ == "__main__":
    main()
