"""Train the bundled mini base models on the bundled real hg38 windows.

``enformer-mini`` learns all 74 tracks at 32-bp bins. ``procapnet-mini`` learns the stranded
CAGE signal (the 12 plus-strand and 12 minus-strand FANTOM5 CAGE tracks summed per strand),
the closest real signal here to PRO-cap, with ProCapNet's loss. Both train through gReLU's
LightningModel with a plain pytorch_lightning Trainer and early stopping on the valid windows.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from genocl_plugin.data import reference
from genocl_plugin.models import GenoclLightningModel, build_model, load_model, save_model


def reference_targets(arch: str, targets: np.ndarray) -> np.ndarray:
    """Map bundled targets (n, bins, 74) to a model's binned output space (n, tracks, bins).

    Enformer predicts all 74 tracks; ProCapNet predicts the CAGE signal per strand.
    """
    if arch == "procapnet":
        plus, minus = reference.cage_strand_indices()
        return np.stack([targets[..., plus].sum(-1), targets[..., minus].sum(-1)], axis=1)
    return np.moveaxis(targets, -1, 1)


# The recipe of the shipped minis (``genocl pretrain`` defaults). enformer-mini sees 4,096 bp and
# predicts the central 96 bins (3,072 bp), so every output bin has >= 512 bp of context on each
# side (Basenji/Enformer crop the output the same way); 8,192 bp cost 1.9x more per output bin on
# this CPU (measured: batch 8 forward+backward 3.2 s at 4,096 bp vs 8.1 s at 8,192 bp / 128 bins).
RECIPES = {
    "enformer": {"seq_len": 4_096, "model_params": {"crop_len": 16}, "loss": "poisson",
                 "batch_size": 8, "lr": 1e-3, "max_epochs": 6},
    "procapnet": {"seq_len": None, "model_params": {}, "loss": "procapnet",
                  "batch_size": 16, "lr": 1e-3, "max_epochs": 5},
}
MAX_SHIFT = 3  # bp of sub-bin shift augmentation, as in Basenji (augment_shift 3)


@functools.lru_cache(maxsize=1)
def bundled_strand_pairs() -> np.ndarray:
    """Index of each bundled track's opposite-strand partner (``strand_pair`` of targets.txt)."""
    with open(reference.BUNDLED / "targets.txt") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        col = header.index("strand_pair")
        return np.array([int(line.rstrip("\n").split("\t")[col]) for line in handle])


def strand_permutation(arch: str) -> np.ndarray:
    """Track order of the reverse-complement strand in a model's output space.

    Reverse-complementing the input swaps each stranded track with its partner (CAGE +/-,
    stranded RNA +/-); unstranded tracks (DNase) map to themselves. ProCapNet's two outputs
    are the plus and minus strand.
    """
    if arch == "procapnet":
        return np.array([1, 0])
    return bundled_strand_pairs()


def reverse_complement(one_hot: np.ndarray, y: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reverse-complement a one-hot (4, L) input (ACGT order) and its targets (tracks, positions)."""
    return one_hot[::-1, ::-1].copy(), y[perm, ::-1].copy()


class WindowCropDataset(Dataset):
    """Crops of the bundled windows with their real tracks, in a model's output space.

    Parameters
    ----------
    arch
        ``enformer`` or ``procapnet``.
    split
        ``train``, ``valid`` or ``test``.
    seq_len
        Model input length (bp).
    out_bins
        Number of 32-bp target bins the output covers.
    jitter
        Randomly shift crops by whole bins up to this many bp (training augmentation).
    augment
        Training augmentation: a random +/- ``MAX_SHIFT`` bp shift of the input against its
        targets and a random reverse complement (strands swapped), as in Basenji/Borzoi.
    """

    def __init__(self, arch: str, split: str, seq_len: int, out_bins: int, jitter: int = 0,
                 seed: int = 0, augment: bool = False) -> None:
        self.arch, self.seq_len, self.out_bins, self.jitter = arch, seq_len, out_bins, jitter
        self.augment = augment
        data = reference.load_windows()
        self.seqs = data[f"{split}_seq"]
        self.targets = data[f"{split}_targets"]
        span = out_bins * reference.BIN_SIZE
        self.flank = (seq_len - span) // 2
        self.starts = [
            (w, s) for w in range(len(self.seqs))
            for s in range(reference.TARGET_CROP, reference.WINDOW_LEN - reference.TARGET_CROP - span + 1, span)
        ]
        self.perm = strand_permutation(arch)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx: int):
        w, out_start = self.starts[idx]
        if self.jitter:
            shift = int(self.rng.integers(-self.jitter, self.jitter + 1)) // reference.BIN_SIZE
            span = self.out_bins * reference.BIN_SIZE
            lo, hi = reference.TARGET_CROP, reference.WINDOW_LEN - reference.TARGET_CROP - span
            out_start = int(np.clip(out_start + shift * reference.BIN_SIZE, lo, hi))
        in_start = out_start - self.flank
        if self.augment:
            in_start += int(self.rng.integers(-MAX_SHIFT, MAX_SHIFT + 1))
        in_start = int(np.clip(in_start, 0, reference.WINDOW_LEN - self.seq_len))
        codes = self.seqs[w][in_start : in_start + self.seq_len]
        b0 = (out_start - reference.TARGET_CROP) // reference.BIN_SIZE
        y = reference_targets(self.arch, self.targets[w][None, b0 : b0 + self.out_bins].astype(np.float32))[0]
        if self.arch == "procapnet":
            # base-resolution profile: each 32-bp bin's signal spread evenly over its bases
            y = np.repeat(y, reference.BIN_SIZE, axis=-1) / reference.BIN_SIZE
        x = reference.codes_to_one_hot(codes)
        if self.augment and self.rng.random() < 0.5:
            x, y = reverse_complement(x, y, self.perm)
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))


def output_bins(model: GenoclLightningModel) -> int:
    """32-bp target bins covered by the model's output at its training input length."""
    return model.output_length(model.seq_len) * model.bin_size // reference.BIN_SIZE


def resolution_metrics(pred: np.ndarray, target: np.ndarray, arch: str, split: str = "test",
                       resolutions: tuple[int, ...] = (32, 128)) -> dict:
    """Pearson of predictions vs real tracks per assay group at several bin sizes.

    Parameters
    ----------
    pred, target
        (crops, tracks, 32-bp bins) predicted and real coverage.
    arch
        ``enformer`` (groups CAGE / DNASE / RNA of the bundled tracks) or ``procapnet``
        (profile Pearson and the counts Pearson: log1p total per crop).
    split
        Key prefix.
    resolutions
        Bin sizes in bp (multiples of 32); 32-bp bins are summed into coarser ones.

    Returns
    -------
    dict
        ``{split}_pearson_{group}_{res}bp`` (and ``{split}_counts_pearson`` for ProCapNet).
    """
    from genocl_plugin.evaluation.evaluate import pearson, pearson_per_track

    out = {}
    names = reference.track_names() if arch == "enformer" else []
    for res in resolutions:
        k = res // reference.BIN_SIZE
        n_bins = pred.shape[-1] // k * k
        p = pred[..., :n_bins].reshape(*pred.shape[:2], -1, k).sum(-1)
        t = target[..., :n_bins].reshape(*target.shape[:2], -1, k).sum(-1)
        per_track = pearson_per_track(p, t)
        out[f"{split}_pearson_mean_{res}bp"] = float(np.nanmean(per_track))
        for prefix in ("CAGE", "DNASE", "RNA") if names else ():
            idx = [i for i, n in enumerate(names) if n.split(":")[0] == prefix]
            out[f"{split}_pearson_{prefix.lower()}_{res}bp"] = float(np.nanmean(per_track[idx]))
    if arch == "procapnet":
        out[f"{split}_counts_pearson"] = pearson(np.log1p(pred.sum((1, 2))), np.log1p(target.sum((1, 2))))
    return out


def cross_sample_agreement(split: str = "test", resolutions: tuple[int, ...] = (32, 128)) -> dict:
    """How well each bundled track is predicted by the mean of the other samples of its assay.

    A data-only reference point for the test-window Pearson of a model (no sequence involved):
    Pearson of each track with the leave-one-out mean of the other tracks of its group
    (CAGE / DNASE / RNA), averaged per group. It measures how much of a track is signal shared
    across samples; a sequence model predicting that shared signal would score about this.
    """
    from genocl_plugin.evaluation.evaluate import pearson

    names = reference.track_names()
    targets = reference.load_windows()[f"{split}_targets"].astype(np.float32)
    out = {}
    for res in resolutions:
        k = res // reference.BIN_SIZE
        x = targets.reshape(targets.shape[0], -1, k, targets.shape[-1]).sum(2).reshape(-1, targets.shape[-1])
        for prefix in ("CAGE", "DNASE", "RNA"):
            idx = [i for i, n in enumerate(names) if n.split(":")[0] == prefix]
            rs = [pearson(x[:, i], x[:, [j for j in idx if j != i]].mean(1)) for i in idx]
            out[f"{split}_{prefix.lower()}_{res}bp"] = float(np.nanmean(rs))
    return out


class WarmupCosine(Callback):
    """Linear warm-up then cosine decay of the learning rate, per optimiser step."""

    def __init__(self, lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 0.05) -> None:
        self.lr, self.warmup, self.total, self.min_ratio = lr, max(warmup_steps, 1), max(total_steps, 1), min_ratio

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        return self.lr * (self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = self.lr_at(trainer.global_step)


# The valid-window score that selects the best epoch (``select="score"``): what the models are
# judged on. Poisson valid loss can rise while Pearson improves (it also scores the coverage
# scale), which made loss-based selection keep worse enformer-mini epochs.
SCORE_KEY = {"enformer": "valid_pearson_mean_128bp", "procapnet": "valid_counts_pearson"}
# Valid crops scored per epoch: counts Pearson needs every crop (on 64 random crops even a
# trained procapnet-mini scores ~0), enformer-mini is too slow for all 210.
CURVE_CROPS = {"enformer": 96, "procapnet": None}


class LearningCurve(Callback):
    """Per-epoch train/valid loss and valid-window Pearson per assay group (the learning curve).

    Logs ``val_score`` (``SCORE_KEY`` of the arch) for checkpoint selection and early stopping.
    """

    def __init__(self, arch: str, max_crops: int | None = 64, log_path: str | Path | None = None) -> None:
        self.arch, self.max_crops, self.log_path = arch, max_crops, log_path
        self.history: list[dict] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        from genocl_plugin.evaluation.evaluate import reference_predictions

        pred, target = reference_predictions(pl_module, "valid", max_crops=self.max_crops)
        row = {"epoch": int(trainer.current_epoch) + 1, "step": int(trainer.global_step),
               "lr": float(trainer.optimizers[0].param_groups[0]["lr"])}
        for key in ("train_loss_epoch", "val_loss"):
            value = trainer.callback_metrics.get(key)
            row[key] = float(value) if value is not None else None
        row.update(resolution_metrics(pred, target, self.arch, "valid"))
        pl_module.log("val_score", float(np.nan_to_num(row[SCORE_KEY[self.arch]], nan=-1.0)))
        self.history.append(row)
        if self.log_path:
            with open(self.log_path, "a") as handle:
                handle.write(json.dumps(row) + "\n")


def plot_learning_curve(history: list[dict], path: str | Path, title: str) -> Path:
    """Plot valid loss and valid Pearson per epoch (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key in ("train_loss_epoch", "val_loss"):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax1.plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=key)
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend()
    keys = [k for k in (history[0] if history else {}) if k.startswith("valid_") and (
        k.endswith("_128bp") or k.endswith("counts_pearson")) and "mean" not in k]
    for key in keys:
        ax2.plot(epochs, [row[key] for row in history], marker="o", label=key.replace("valid_", ""))
    ax2.set_xlabel("epoch"), ax2.set_ylabel("Pearson (valid windows)"), ax2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


CALIBRATION_CROPS = 160  # training crops the output offsets are fitted on (~20 s on 2 CPU cores)


def calibrate_output_offsets(model: GenoclLightningModel, arch: str, seed: int = 0,
                             n_crops: int = CALIBRATION_CROPS) -> np.ndarray:
    """Shift each track's output bias so its mean prediction equals its training-crop mean.

    The Poisson-optimal per-track offset, ``log(sum y) - log(sum exp(logits))``, fitted on
    ``n_crops`` training crops (no augmentation) and added to the output layer's bias. Pearson
    is unchanged (a per-track scale), the Poisson loss drops at once. Why it matters: Adam moves
    a bias by about ``lr`` per step, so 300 steps at 5e-4 move it by ~0.15 in log scale, while the
    shipped enformer-mini predicts 7-52x the tracks' mean per assay group (a log offset of
    2.0-3.9; training-crop Poisson loss 0.70, 0.22 after this step alone, measured 2026-12-01).
    With it, 300 steps from those weights scored higher on every assay group's test Pearson in
    each of 3 seeds (docs/pretrain/enformer_mini_calibrated_2026-12-01.json).

    Parameters
    ----------
    model
        An enformer-mini (gReLU ``EnformerModel``; its head ends in a biased 1x1 convolution).
    arch
        ``enformer`` (the only architecture with a per-track exp output here).
    seed
        Which crops are drawn.
    n_crops
        How many training crops.

    Returns
    -------
    numpy.ndarray
        The per-track offsets added to the bias (log scale).
    """
    if arch != "enformer":
        raise ValueError("output calibration is for enformer-mini (per-track exp outputs); procapnet-mini's "
                         "profile is a softmax")
    layer = model.model.head.channel_transform.conv.layer
    data = WindowCropDataset(arch, "train", model.seq_len, output_bins(model))
    idx = np.random.default_rng(seed).choice(len(data), min(n_crops, len(data)), replace=False)
    was_training = model.training
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for start in range(0, len(idx), 16):
            xs, ys = zip(*[data[int(j)] for j in idx[start : start + 16]], strict=True)
            logits.append(model(torch.stack(xs), logits=True))
            targets.append(torch.stack(ys))
    sum_y, sum_pred = torch.cat(targets).sum((0, 2)), torch.cat(logits).exp().sum((0, 2))
    shift = torch.log(sum_y.clamp_min(1e-6)) - torch.log(sum_pred)
    layer.bias.data += shift.to(layer.bias.dtype)
    model.train(was_training)
    return shift.numpy()


def pretrain(arch: str, max_epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
             patience: int = 3, seed: int = 0, limit_train_batches: int | float = 1.0,
             model_params: dict | None = None, seq_len: int | None = None, loss: str | None = None,
             warmup_steps: int = 100, augment: bool = True, log_path: str | Path | None = None,
             init: str | Path | None = None, limit_val_batches: int | float = 1.0, select: str = "score",
             trainer_kwargs: dict | None = None, gradient_checkpointing: bool = False, num_workers: int = 0,
             calibrate_output: bool = False) -> tuple[GenoclLightningModel, dict]:
    """Train a mini base model from scratch on the bundled windows.

    The recipe (``RECIPES``): reverse-complement and shift augmentation, whole-bin crop jitter,
    a count loss on the Basenji-transformed targets (Poisson for enformer-mini, ProCapNet's
    multinomial + log-count loss for procapnet-mini), linear warm-up + cosine learning-rate
    decay, gradient clipping, and the best epoch by valid-window loss (early stopping).

    Parameters
    ----------
    arch
        ``enformer`` or ``procapnet``.
    max_epochs, batch_size, lr
        Training settings (default: the arch's recipe).
    patience
        Early stopping patience (epochs) on the valid windows' loss.
    seed
        Seed for weights and crops.
    limit_train_batches
        Passed to the Trainer (smaller for smoke tests).
    model_params
        Architecture overrides (on top of the recipe's).
    seq_len
        Input length (default: the recipe's).
    loss
        ``poisson``, ``poisson_multinomial`` (Borzoi, total weight 0.2) or ``procapnet``.
    warmup_steps
        Linear learning-rate warm-up steps.
    augment
        Reverse-complement and shift augmentation.
    log_path
        Append one JSON line per epoch (the learning curve) to this file.
    init
        Start from this model's weights (a genocl model directory of the same architecture;
        input length and output crop may differ) instead of a random initialisation.
    limit_val_batches
        Passed to the Trainer (fraction or number of valid batches per epoch).
    select
        Keep the epoch with the best valid ``score`` (``SCORE_KEY``: track Pearson at 128 bp for
        enformer, counts Pearson for procapnet) or the lowest valid ``loss``; early stopping
        follows the same quantity.
    trainer_kwargs
        Hardware settings for the Trainer (``hardware.trainer_settings``: accelerator, devices,
        precision, accumulate_grad_batches); default: one CPU-or-GPU device, 32-bit.
    gradient_checkpointing
        Recompute activations in backward (``hardware.enable_gradient_checkpointing``).
    num_workers
        DataLoader worker processes.
    calibrate_output
        Before training, set each track's output offset to its Poisson optimum on training crops
        (:func:`calibrate_output_offsets`; enformer only).

    Returns
    -------
    tuple
        The trained model (best valid epoch) and its held-out test-window metrics, with the
        per-epoch ``history``.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from genocl_plugin.evaluation.evaluate import reference_metrics, reference_predictions
    from genocl_plugin.training.hardware import enable_gradient_checkpointing
    from genocl_plugin.workarounds import quiet_lightning

    quiet_lightning()  # Lightning noise a genocl user cannot act on; see workarounds.py

    recipe = RECIPES[arch]
    max_epochs = max_epochs or recipe["max_epochs"]
    batch_size = batch_size or recipe["batch_size"]
    lr = lr or recipe["lr"]
    loss = loss or recipe["loss"]
    pl.seed_everything(seed, workers=True)
    names = (reference.track_names() if arch == "enformer"
             else ["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"])
    train_params = {"lr": lr, "batch_size": batch_size, "logger": "csv", "loss": loss}
    if loss == "poisson_multinomial":
        train_params["total_weight"] = 0.2  # Borzoi's weight of the Poisson total term
    model = build_model(arch, task_names=names, seq_len=seq_len or recipe["seq_len"],
                        model_params={**recipe["model_params"], **(model_params or {})},
                        train_params=train_params)
    if init is not None:
        # Conv and transformer weights do not depend on the input length or the output crop.
        model.model.load_state_dict(load_model(init).model.state_dict())
    if calibrate_output:
        calibrate_output_offsets(model, arch, seed=seed)
    if gradient_checkpointing:
        enable_gradient_checkpointing(model.model)
    bins = output_bins(model)
    train = WindowCropDataset(arch, "train", model.seq_len, bins, jitter=bins * 16, seed=seed, augment=augment)
    valid = WindowCropDataset(arch, "valid", model.seq_len, bins)
    n_batches = math.ceil(len(train) / batch_size)
    if limit_train_batches != 1.0:
        n_batches = min(n_batches, int(limit_train_batches) if limit_train_batches > 1
                        else max(int(n_batches * limit_train_batches), 1))
    curve = LearningCurve(arch, max_crops=CURVE_CROPS[arch], log_path=log_path)
    monitor, mode = ("val_score", "max") if select == "score" else ("val_loss", "min")
    with tempfile.TemporaryDirectory() as tmp:
        best = ModelCheckpoint(dirpath=tmp, monitor=monitor, mode=mode, save_top_k=1)
        trainer = pl.Trainer(
            max_epochs=max_epochs, logger=False, **{"accelerator": "auto", "devices": 1, **(trainer_kwargs or {})},
            callbacks=[best, EarlyStopping(monitor=monitor, patience=patience, mode=mode),
                       WarmupCosine(lr, min(warmup_steps, n_batches), n_batches * max_epochs), curve],
            enable_progress_bar=True, limit_train_batches=limit_train_batches, gradient_clip_val=1.0,
            limit_val_batches=limit_val_batches,
            enable_model_summary=False, default_root_dir=tmp,
        )
        model.train_params["logger"] = "csv"  # gReLU prints metrics when logger is None
        workers = {"num_workers": num_workers, "persistent_workers": num_workers > 0}
        trainer.fit(model, DataLoader(train, batch_size=batch_size, shuffle=True, **workers),
                    DataLoader(valid, batch_size=batch_size, **workers))
        if best.best_model_path:
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            model.load_state_dict(state)
    model.train_params["logger"] = None
    model.train_params["max_epochs"] = max_epochs
    model.eval()
    metrics = reference_metrics(model, "test")
    pred, target = reference_predictions(model, "test")
    metrics.update(resolution_metrics(pred, target, arch, "test"))
    metrics["epochs_trained"] = int(trainer.current_epoch)
    metrics[f"best_{monitor}"] = float(best.best_model_score) if best.best_model_score is not None else None
    metrics["history"] = curve.history
    return model, metrics


def write_pretrained(model: GenoclLightningModel, metrics: dict, out: str | Path, force: bool = False,
                     command: str | None = None, init_lineage: list | None = None) -> Path:
    """Save a pretrained model with its test metrics, the command that made it and a model card.

    ``init_lineage``: the lineage of the model training started from (``pretrain(init=...)``).
    """
    init_lineage = list(init_lineage or [])
    arch = model.data_params["arch"]
    command = command or f"genocl pretrain --model {arch} --out DIR"
    metrics = dict(metrics)
    history = metrics.pop("history", [])
    extra = {
        "command": command,
        "name": f"{arch}-mini",
        "test_metrics": metrics,
        "lineage": [*init_lineage,
                    {"step": "pretrain", "data": "bundled basenji_tiny_hg38 (45 train / 10 valid windows)"}],
        "screens_seen": [],
    }
    path = save_model(model, out, extra=extra, force=force)
    (Path(path) / "MODEL_CARD.md").write_text(model_card(arch, model, metrics, command, bool(history),
                                                         extra["lineage"]))
    if history:
        (Path(path) / "learning_curve.json").write_text(json.dumps(history, indent=1) + "\n")
        plot_learning_curve(history, Path(path) / "learning_curve.png", f"{arch}-mini pretraining")
    return path


def model_card(arch: str, model: GenoclLightningModel, metrics: dict, command: str,
               curve: bool = False, lineage: list | None = None) -> str:
    """A short, honest model card."""
    n_params = sum(p.numel() for p in model.model.parameters())
    what = {
        "enformer": "gReLU `EnformerModel` (384 channels, 5 conv blocks = 32-bp bins, 1 transformer, "
                    "output cropped 16 bins each side), all 74 tracks (24 CAGE, 10 DNase, 30 RNA, 10 RNA3).",
        "procapnet": "bpnet-lite `BPNet` in ProCapNet's layout (two strands, profile + counts, no control "
                     "tracks, ProCapNet's loss: multinomial profile NLL + 100 x log-count MSE), 64 filters. "
                     "Trained on stranded FANTOM5 CAGE (12 samples summed per strand) as the "
                     "transcription-initiation signal: CAGE is the closest real signal here to PRO-cap, "
                     "and it is binned at 32 bp, so the base-resolution profile is only as sharp as 32-bp data allow.",
    }[arch]
    # The lineage lists every warm start back to the first; the card names the one this run began from.
    direct_init = [step for step in (lineage or []) if step.get("step") == "init"][-1:]
    lines = [
        f"# {arch}-mini", "", what, "",
        f"- parameters: {n_params:,}",
        f"- input: {model.seq_len} bp; output: {model.output_length(model.seq_len)} positions x "
        f"{model.bin_size} bp, {len(model.task_names)} tracks",
        "- data: 65 real hg38 windows (calico/baskerville tiny hg38, Apache-2.0): "
        "45 train, 10 valid (early stopping), 10 test",
        f"- reproduce: `{command}`",
        *[f"- `--init` weights: sha256 `{step['weights_sha256']}`, made by `{step.get('command')}`"
          + (" (the previous bundled model; `git log -- genocl_plugin/bundled` finds it)") for step in direct_init],
        "- recipe: reverse-complement (strand pairs swapped) and +/-3 bp shift augmentation, whole-bin "
        "crop jitter, " + ("Poisson loss on the Basenji-transformed (soft-clipped sqrt) targets"
                           if arch == "enformer" else "ProCapNet's loss") +
        ", linear warm-up + cosine learning-rate decay, gradient clipping 1.0, best epoch by "
        + ("valid loss" if "--select loss" in command else f"valid-window `{SCORE_KEY[arch]}`"),
        *["- the `--init` weights scored on the test windows: "
          + ", ".join(f"{k} {v:.4f}" for k, v in step["test_metrics"].items() if k.startswith("test_pearson")
                      or k.endswith("counts_pearson"))
          for step in direct_init if step.get("test_metrics")],
        "", "## Held-out test windows", "",
        "Pearson per track over all test crops and bins, averaged per assay group; 128-bp values sum "
        "four 32-bp bins.", "",
    ]
    for key, value in metrics.items():
        lines.append(f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}")
    if arch == "enformer":
        agree = cross_sample_agreement("test")
        lines += ["", "Data-only reference (no model): Pearson of each test track with the mean of the other "
                  "samples of its assay, per group: " + ", ".join(f"{k.replace('test_', '')} {v:.3f}"
                                                                 for k, v in agree.items()) + ". "
                  "Tracks share this much signal across samples, so these numbers are not the ceiling of the data; "
                  "the model is limited by its CPU training budget."]
    if curve:
        lines += ["", "Learning curve (valid windows): `learning_curve.png`, `learning_curve.json`."]
    lines += ["", "These are small models trained on 45 windows on a CPU; they are far weaker than the "
              "published Enformer / ProCapNet and exist so genocl can be run and tested offline.", ""]
    return "\n".join(lines)
