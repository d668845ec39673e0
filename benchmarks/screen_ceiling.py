"""What the bundled MPRA screens can teach: the learnable signal behind an update's gain.

Issue 12 asks that an update on the bundled Kircher 2019 enhancer screen learn it: fine-tuning's
in-distribution gain (effect Pearson on held-out 50-bp position blocks of the training elements)
with a 95% interval above zero. The forgetting study's updates gain +0.04 to +0.06 with intervals
that include zero. This script measures, on exactly the study's splits (``prepare_screen`` with
the study's element hold-out 0.3, block hold-out 0.2 and seeds), how much there is to learn:

1. **element means**: predict each held-out variant by the mean measured effect of its element's
   training variants. Element identity alone; a model that learns only that an element's
   variants tend to be up or down gets this much.
2. **k-mer ridge**: ridge regression of the effect on the variant's change in k-mer counts (the
   k-mers it creates minus those it destroys, reverse complements merged, plus a deletion flag),
   the penalty chosen on an inner block split of the training variants. A second, unrelated model
   class that learns sequence features from the screen itself, with a learning curve in the
   number of training variants (the study trains on 512).
3. **motif ridge**: the same ridge on the change in each known motif's best match over the
   windows that cover the variant (HOCOMOCO v12 CORE, the 1,443 motifs gReLU ships, log-odds
   against a uniform background, the larger change of the two strands). What a model that
   already knew the vertebrate motif vocabulary, and nothing about these elements, could learn
   from the screen: the gap between it and ``--probe`` is the base's missing knowledge.
4. ``--probe``: the base model, on both screens. Its zero-shot effects, and a linear probe of its
   trunk (ridge on the change of the trunk's output, averaged over the element's output bins,
   between variant and reference) with the same learning curve as the ridges. A head-only update
   can only reweight these features, so the probe bounds it from below by what a linear readout
   of them can do. An update's gain is scored against the base's own zero-shot Pearson on the
   same rows, so the probe's gain over zero-shot (per seed, then mean [95% CI]) is the figure to
   hold an update's in-distribution gain against.
5. **evaluation noise**: every method is scored on all held-out rows and on the study's 192-row
   subsample of them (``--max-eval 192``), the size of the study's in-distribution check.

    python benchmarks/screen_ceiling.py            # k-mer and motif ridge + element means, both screens (~3 min)
    python benchmarks/screen_ceiling.py --probe    # + enformer-mini zero-shot and trunk probe (~25 min)
    python benchmarks/screen_ceiling.py --plot-only

Writes ``docs/results/screen_ceiling.json`` and ``.png``. Pearson over all held-out rows of a
seed (elements pooled), as the study scores its updates; mean [95% CI] over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import git_commit  # noqa: E402
from genocl_plugin import objectives  # noqa: E402
from genocl_plugin.config import UpdateConfig  # noqa: E402
from genocl_plugin.data import reference, screens  # noqa: E402
from genocl_plugin.evaluation.evaluate import pearson  # noqa: E402
from genocl_plugin.evaluation.stats import mean_ci  # noqa: E402

K = 5
MOTIFS = "hocomoco_v12"  # gReLU's bundled MEME file (grelu.resources.get_meme_file_path)
PSEUDOCOUNT = 0.01
ALPHAS = (1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2)  # penalty per training row
SEEDS = (0, 1, 2, 3, 4)
# The forgetting study's settings (benchmarks/forgetting.py SETTINGS["full"]).
HOLDOUT, ID_HOLDOUT, STUDY_TRAIN, STUDY_EVAL = 0.3, 0.2, 512, 192
TRAIN_SIZES = (128, 512, 2048, None)  # None: every training variant
PROBE = "enformer-mini trunk probe"
SCREENS = {"enhancers": "mpra_enhancers.h5ad", "promoters": "mpra_promoters.h5ad"}
BUNDLED = ROOT / "genocl_plugin" / "bundled"


def kmer_ids(codes: np.ndarray, k: int = K) -> np.ndarray:
    """Reverse-complement-merged id of each k-mer of a code sequence (-1 where it has an N)."""
    codes = np.asarray(codes).astype(np.int64)
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    fwd, rev = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for j in range(k):
        part = codes[j : j + n]
        bad |= part > 3
        fwd = fwd * 4 + np.minimum(part, 3)
        rev = rev + (3 - np.minimum(part, 3)) * 4**j
    ids = np.minimum(fwd, rev)
    ids[bad] = -1
    return ids


def variant_kmer_change(seq: str, pos: int, ref: str, alt: str, k: int = K) -> np.ndarray:
    """k-mer counts of the variant sequence minus the reference's, over the k-mers it touches.

    Returns a dense (4**k + 1,) vector: the count changes (reverse complements share the smaller
    id), then 1 for a deletion.
    """
    lo = max(0, pos - k + 1)
    ref_window = seq[lo : pos + len(ref) + k - 1]
    alt_seq = objectives.apply_variant(seq, pos, ref, alt)
    alt_len = 0 if alt == "-" else len(alt)
    alt_window = alt_seq[lo : pos + alt_len + k - 1]
    out = np.zeros(4**k + 1, dtype=np.float32)
    for window, sign in ((ref_window, -1.0), (alt_window, 1.0)):
        ids = kmer_ids(reference.seq_to_codes(window), k)
        np.add.at(out, ids[ids >= 0], sign)
    out[-1] = float(alt == "-")
    return out


def screen_features(screen, k: int = K) -> np.ndarray:
    """(rows, 4**k + 1) k-mer change features of every variant of an MPRA screen."""
    seqs = screen.uns["element_sequences"]
    obs = screen.obs
    return np.stack([variant_kmer_change(seqs[e], int(p), str(r), str(a), k) for e, p, r, a in
                     zip(obs["element"].astype(str), obs["pos"], obs["ref"], obs["alt"], strict=True)])


def motif_filters(meme: str = MOTIFS) -> tuple:
    """:func:`log_odds_filters` of a MEME motif database read by gReLU (a name or a path)."""
    from grelu.io.motifs import read_meme_file

    motifs = read_meme_file(meme)
    return (*log_odds_filters(motifs), list(motifs))


def log_odds(ppm, pseudocount: float = PSEUDOCOUNT) -> np.ndarray:
    """log2 odds of a (4, w) position probability matrix against a uniform background."""
    ppm = np.asarray(ppm, dtype=np.float64)
    return np.log2((ppm + pseudocount) / (1 + 4 * pseudocount) / 0.25)


def log_odds_filters(motifs: dict) -> tuple:
    """Log-odds filters of position probability matrices, both strands, for ``conv1d``.

    Parameters
    ----------
    motifs
        Name -> (4, width) probabilities (A, C, G, T rows), as gReLU's ``read_meme_file`` gives.

    Returns
    -------
    tuple
        ``(filters, lengths)``: a (2 * motifs, 4, longest) float32 tensor, forward strands first
        then reverse complements, each left-aligned and zero-padded; the (2 * motifs,) widths.
    """
    import torch

    longest = max(np.asarray(m).shape[1] for m in motifs.values())
    fwd = np.zeros((len(motifs), 4, longest), dtype=np.float32)
    rev = np.zeros_like(fwd)
    lengths = np.zeros(len(motifs), dtype=np.int64)
    for i, ppm in enumerate(motifs.values()):
        odds = log_odds(ppm)
        width = odds.shape[1]
        fwd[i, :, :width] = odds
        rev[i, :, :width] = odds[::-1, ::-1]  # A<->T, C<->G and reversed positions
        lengths[i] = width
    return torch.from_numpy(np.concatenate([fwd, rev])), np.concatenate([lengths, lengths])


def motif_change_features(screen, filters=None, lengths=None, batch: int = 512) -> np.ndarray:
    """(rows, motifs) change in each motif's best match over the windows covering each variant.

    For each motif and strand the best log-odds score (floored at zero: a window likelier under
    the background than under the motif is no match) over the windows that contain the variant's
    position is taken in the variant and the reference sequence; the feature is the difference,
    from whichever strand changes more. Windows reaching past the element are scored against N
    (zero), as the element sits in N padding in the study's inputs.
    """
    import torch

    if filters is None:
        filters, lengths, _ = motif_filters()
    longest = filters.shape[-1]
    n_motifs = filters.shape[0] // 2
    seqs = screen.uns["element_sequences"]
    obs = screen.obs
    rows = list(zip(obs["element"].astype(str), obs["pos"].astype(int), obs["ref"].astype(str),
                    obs["alt"].astype(str), strict=True))
    # window start j (of the longest - 1 bp on either side) covers the variant iff j + length > longest - 1
    starts = torch.arange(longest)
    covers = (starts[None, :] + torch.as_tensor(lengths)[:, None]) > longest - 1
    pad = "N" * longest

    def window(seq: str, pos: int) -> str:
        centre = pos + longest
        return (pad + seq + pad)[centre - longest + 1 : centre + longest]

    def best_matches(windows: list[str]) -> torch.Tensor:
        scores = []
        for lo in range(0, len(windows), batch):
            codes = np.stack([reference.seq_to_codes(w) for w in windows[lo : lo + batch]])
            x = torch.from_numpy(reference.codes_to_one_hot(codes).astype(np.float32))
            with torch.no_grad():
                best = torch.nn.functional.conv1d(x, filters).masked_fill(~covers[None], float("-inf")).amax(-1)
            # below zero a window is likelier background than motif: no match, whatever its score
            scores.append(best.clamp(min=0.0))
        return torch.cat(scores)

    # a saturation screen has ~3 variants per position: each reference window is scored once
    sites = sorted({(element, pos) for element, pos, _, _ in rows})
    site_of = {site: i for i, site in enumerate(sites)}
    ref_best = best_matches([window(seqs[element], pos) for element, pos in sites])
    out = np.zeros((len(rows), n_motifs), dtype=np.float32)
    for lo in range(0, len(rows), batch):  # by batch: all variants' scores at once would be rows x 2 x motifs
        part = rows[lo : lo + batch]
        change = (best_matches([window(objectives.apply_variant(seqs[element], pos, ref, alt), pos)
                                for element, pos, ref, alt in part])
                  - ref_best[[site_of[(element, pos)] for element, pos, _, _ in part]])
        fwd, rev = change[:, :n_motifs], change[:, n_motifs:]
        out[lo : lo + len(part)] = torch.where(fwd.abs() >= rev.abs(), fwd, rev).numpy()
    return out


def ridge(x: np.ndarray, y: np.ndarray, alpha: float):
    """Ridge regression on standardised features (penalty ``alpha`` per row); returns a predictor."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    coef = np.linalg.solve(z.T @ z + alpha * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda xn: ((xn - mean) / scale) @ coef + y.mean()


def choose_alpha(x: np.ndarray, y: np.ndarray, inner_train: np.ndarray, inner_valid: np.ndarray) -> float:
    """The ridge penalty that scores best on an inner (block) split of the training rows."""
    scores = {a: pearson(ridge(x[inner_train], y[inner_train], a)(x[inner_valid]), y[inner_valid])
              for a in ALPHAS}
    return max(scores, key=lambda a: scores[a] if np.isfinite(scores[a]) else -1.0)


def row_numbers(part, row_of: dict) -> np.ndarray:
    """The screen's row numbers of a split part (an AnnData view or copy of the screen)."""
    return np.array([row_of[name] for name in part.obs_names], dtype=int)


def study_split(path: Path, row_of: dict, seed: int, max_train: int | None, max_eval: int | None):
    """The study's split of one seed as row numbers: (train, held-out blocks, held-out elements).

    ``genocl update``'s own ``prepare_screen`` with the study's settings, so the rows are the
    ones the study's updates train and are scored on.
    """
    config = UpdateConfig(data=str(path), seed=seed, holdout=HOLDOUT, id_holdout=ID_HOLDOUT,
                          max_train=max_train, max_eval=max_eval)
    _, train, test, test_id = screens.prepare_screen(config, model=None, in_distribution=True)
    return tuple(row_numbers(part, row_of) for part in (train, test_id, test))


def element_means(screen, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row predicted by its element's mean training effect (0 for an unseen element)."""
    elements = screen.obs["element"].astype(str).to_numpy()
    y = screen.obs["effect"].to_numpy(float)
    means = {e: y[train][elements[train] == e].mean() for e in set(elements[train])}
    return np.array([means.get(e, 0.0) for e in elements[rows]])


def base_model_features(screen, path: Path, model_spec: str = "enformer") -> tuple[np.ndarray, np.ndarray]:
    """A base's zero-shot effects and trunk-change features for every row (2,048-bp inputs).

    ``model_spec``: anything ``genocl_plugin.models.load_model`` takes with an Enformer-type
    trunk (``embedding``, ``head``); default the bundled enformer-mini.
    """
    import torch
    from rich.progress import Progress

    from genocl_plugin import models

    model = models.load_model(model_spec).eval()
    net = model.model
    dataset = objectives.mpra_dataset(screen, model, path=str(path), seq_len=2048)
    mask = dataset.track_mask
    with torch.no_grad():
        ref_emb = net.embedding(torch.from_numpy(reference.codes_to_one_hot(np.stack(dataset.refs))))
        ref_out = net.head(ref_emb)
    n, batch = len(dataset), 64
    feats = np.zeros((n, ref_emb.shape[1]), dtype=np.float32)
    effects = np.zeros(n, dtype=np.float32)
    with torch.no_grad(), Progress() as progress:
        task = progress.add_task("enformer-mini on every variant", total=n)
        for start in range(0, n, batch):
            idx = np.arange(start, min(n, start + batch))
            emb = net.embedding(torch.from_numpy(reference.codes_to_one_hot(np.stack([dataset.alts[i] for i in idx]))))
            ref_idx = torch.as_tensor(dataset.ref_index[idx])
            lo, hi = torch.as_tensor(dataset.lo[idx]), torch.as_tensor(dataset.hi[idx])
            bins = torch.arange(emb.shape[-1])[None, :]
            inside = (bins >= lo[:, None]) & (bins < hi[:, None])
            diff = (emb - ref_emb[ref_idx]) * inside[:, None, :]
            feats[idx] = (diff.sum(-1) / inside.sum(-1, keepdim=True)).numpy()
            alt_act = objectives.activity(net.head(emb), mask, lo, hi)
            ref_act = objectives.activity(ref_out[ref_idx], mask, lo, hi)
            effects[idx] = ((alt_act - ref_act) / objectives.LN2).numpy()
            progress.advance(task, len(idx))
    return effects, feats


def score(pred: np.ndarray, y: np.ndarray, rows: np.ndarray, study_rows: np.ndarray) -> dict:
    """Pearson on all held-out rows and on the study's subsample of them."""
    pos = {r: i for i, r in enumerate(rows)}
    sub = np.array([pos[r] for r in study_rows])
    return {"all": pearson(pred, y[rows]), "study_subsample": pearson(pred[sub], y[study_rows])}


def probe_scores(probe_x: np.ndarray, y: np.ndarray, train: np.ndarray, alpha: float, splits,
                 zero_shot: dict, size: int | None) -> list[tuple[str, str, dict]]:
    """The trunk probe fitted on ``train`` rows, and its gain over the base's zero-shot Pearson.

    ``splits``: ``(split, held-out rows, study rows)`` triples; ``zero_shot[split]``: the base's
    :func:`score` on them. Returns ``(method, split, score)`` rows for :func:`run_screen`.
    """
    f = ridge(probe_x[train], y[train], alpha)
    out = []
    for split, held, study_rows in splits:
        value = score(f(probe_x[held]), y, held, study_rows)
        out.append((f"{PROBE}, {size or 'all'} variants", split, value))
        out.append((f"{PROBE} minus zero-shot, {size or 'all'} variants", split,
                    {k: v - zero_shot[split][k] for k, v in value.items()}))
    return out


def run_screen(name: str, probe: bool) -> dict:
    """Every method on one screen over the study's seeds."""
    path = BUNDLED / SCREENS[name]
    screen = screens.read_screen(path)
    row_of = {name: i for i, name in enumerate(screen.obs_names)}
    y = screen.obs["effect"].to_numpy(float)
    t0 = time.time()
    features = {"k-mer": screen_features(screen)}
    print(f"{name}: {screen.n_obs} variants, k-mer features in {time.time() - t0:.0f} s", flush=True)
    t0 = time.time()
    features["motif"] = motif_change_features(screen)
    print(f"{name}: motif features ({features['motif'].shape[1]} motifs) in {time.time() - t0:.0f} s", flush=True)
    base = probe_x = None
    if probe:
        base, probe_x = base_model_features(screen, path)
    rows: dict[str, dict] = {}

    def add(method: str, split: str, seed: int, value: dict) -> None:
        for key, v in value.items():
            rows.setdefault(method, {}).setdefault(f"{split}_{key}", {})[seed] = v

    n_train = []
    for seed in SEEDS:
        train, test_id, test = study_split(path, row_of, seed, None, None)
        _, study_id, study_ood = study_split(path, row_of, seed, STUDY_TRAIN, STUDY_EVAL)
        splits = (("id", test_id, study_id), ("ood", test, study_ood))
        n_train.append(len(train))
        # element means exist only for elements seen in training: the in-distribution split
        add("element means", "id", seed, score(element_means(screen, train, test_id), y, test_id, study_id))
        # the penalty is chosen on the block hold-out repeated inside the training rows
        inner_train, inner_valid = screens.split_by_position_blocks(screen[train], ID_HOLDOUT, seed=seed + 1000)
        inner_train, inner_valid = (row_numbers(p, row_of) for p in (inner_train, inner_valid))
        rng = np.random.default_rng(seed)
        zero_shot, probe_alpha = {}, None
        if probe:
            # one penalty per seed, from the full inner split (the same for every training size)
            probe_alpha = choose_alpha(probe_x, y, inner_train, inner_valid)
            for split, held, study_rows in splits:
                zero_shot[split] = score(base[held], y, held, study_rows)
                add("enformer-mini zero-shot", split, seed, zero_shot[split])
        for size in TRAIN_SIZES:
            sub, inner_sub = train, inner_train
            if size is not None and size < len(train):
                sub = np.sort(rng.choice(train, size, replace=False))
                inner_sub = np.sort(rng.choice(inner_train, min(size, len(inner_train)), replace=False))
            for kind, x in features.items():
                f = ridge(x[sub], y[sub], choose_alpha(x, y, inner_sub, inner_valid))
                for split, held, study_rows in splits:
                    add(f"{kind} ridge, {size or 'all'} variants", split, seed, score(f(x[held]), y, held, study_rows))
            if probe:  # the same training rows as the ridges
                for method, split, value in probe_scores(probe_x, y, sub, probe_alpha, splits, zero_shot, size):
                    add(method, split, seed, value)
        print(f"{name} seed {seed}: {len(train)} train, {len(test_id)} held-out blocks, {len(test)} held-out elements",
              flush=True)
    return {"n_variants": int(screen.n_obs), "n_train_all": float(np.mean(n_train)),
            "methods": {m: {k: {**mean_ci(list(v.values())), "per_seed": v} for k, v in cols.items()}
                        for m, cols in rows.items()}}


def plot(result: dict, path: Path) -> Path:
    """Held-out Pearson vs training variants (k-mer and motif ridge) with the other methods as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["screens"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sc = result["screens"][name]
        methods = sc["methods"]
        for kind, marker, shift, style in (("k-mer ridge", "o", 1.0, "-"), ("motif ridge", "s", 1.06, "--"),
                                           (PROBE + ",", "^", 0.94, ":")):
            # side by side (shift), so the error bars do not overlap
            curve = [(m, methods[m]) for m in methods if m.startswith(kind)]
            if not curve:
                continue
            xs = [sc["n_train_all"] if "all variants" in m else int(m.split(", ")[1].split()[0]) for m, _ in curve]
            for split, colour in (("id", "C0"), ("ood", "C1")):
                mean = [v[f"{split}_all"]["mean"] for _, v in curve]
                lo = [v[f"{split}_all"]["ci_low"] for _, v in curve]
                hi = [v[f"{split}_all"]["ci_high"] for _, v in curve]
                ax.errorbar(np.multiply(xs, shift), mean, yerr=[np.subtract(mean, lo), np.subtract(hi, mean)],
                            marker=marker, color=colour, linestyle=style, capsize=3,
                            label=f"{kind.rstrip(',')}, held-out {'blocks' if split == 'id' else 'elements'}")
        for (m, style) in (("element means", "--"), ("enformer-mini zero-shot", "-.")):
            if m in methods:
                ax.axhline(methods[m]["id_all"]["mean"], color="grey", linestyle=style, label=f"{m} (held-out blocks)")
        ax.axvline(STUDY_TRAIN, color="black", alpha=0.2)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(xs, [f"{x:,.0f}" for x in xs])
        ax.set_xlabel("training variants (vertical line: the study's 512)")
        ax.set_ylabel("effect Pearson, held-out rows")
        ax.set_title(f"{name} ({sc['n_variants']} variants)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "screen_ceiling.json")
    parser.add_argument("--probe", action="store_true", help="Also enformer-mini's zero-shot effects and trunk probe.")
    parser.add_argument("--plot-only", action="store_true", help="Redraw the PNG from the saved JSON.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.plot_only:
        print(plot(json.loads(args.out.read_text()), args.out.with_suffix(".png")))
        return
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    result = {"command": "python benchmarks/screen_ceiling.py" + (" --probe" if args.probe else ""),
              "commit": git_commit(),
              "k": K, "seeds": list(SEEDS), "holdout": HOLDOUT, "id_holdout": ID_HOLDOUT,
              "study_max_train": STUDY_TRAIN, "study_max_eval": STUDY_EVAL, "screens": {}}
    for name in SCREENS:
        result["screens"][name] = run_screen(name, probe=args.probe)
    result["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, sc in result["screens"].items():
        for method, cols in sc["methods"].items():
            text = "  ".join(f"{k} {v['mean']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]" for k, v in cols.items())
            print(f"{name:10s} {method:42s} {text}")
    print(plot(result, args.out.with_suffix(".png")), f"{result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
