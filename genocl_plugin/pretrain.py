"""Train the bundled mini base models on the bundled real hg38 windows.

``enformer-mini`` learns all 74 tracks at 32-bp bins. ``procapnet-mini`` learns the stranded
CAGE signal (the 12 plus-strand and 12 minus-strand FANTOM5 CAGE tracks summed per strand),
the closest real signal here to PRO-cap, with ProCapNet's loss. Both train through gReLU's
LightningModel with a plain pytorch_lightning Trainer and early stopping on the valid windows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genocl_plugin import reference
from genocl_plugin.models import GenoclLightningModel, build_model, save_model


def reference_targets(arch: str, targets: np.ndarray) -> np.ndarray:
    """Map bundled targets (n, bins, 74) to a model's binned output space (n, tracks, bins).

    Enformer predicts all 74 tracks; ProCapNet predicts the CAGE signal per strand.
    """
    if arch == "procapnet":
        plus, minus = reference.cage_strand_indices()
        return np.stack([targets[..., plus].sum(-1), targets[..., minus].sum(-1)], axis=1)
    return np.moveaxis(targets, -1, 1)


def pool_to_bins(pred: torch.Tensor, bin_size: int) -> torch.Tensor:
    """Sum base-resolution predictions (n, tracks, L) into bins (n, tracks, L // bin_size)."""
    if bin_size == 1:
        return pred
    n, t, length = pred.shape
    return pred.reshape(n, t, length // bin_size, bin_size).sum(-1)


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
    """

    def __init__(self, arch: str, split: str, seq_len: int, out_bins: int, jitter: int = 0,
                 seed: int = 0) -> None:
        self.arch, self.seq_len, self.out_bins, self.jitter = arch, seq_len, out_bins, jitter
        data = reference.load_windows()
        self.seqs = data[f"{split}_seq"]
        self.targets = data[f"{split}_targets"]
        span = out_bins * reference.BIN_SIZE
        self.flank = (seq_len - span) // 2
        self.starts = [
            (w, s) for w in range(len(self.seqs))
            for s in range(reference.TARGET_CROP, reference.WINDOW_LEN - reference.TARGET_CROP - span + 1, span)
        ]
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
        codes = self.seqs[w][out_start - self.flank : out_start - self.flank + self.seq_len]
        b0 = (out_start - reference.TARGET_CROP) // reference.BIN_SIZE
        y = reference_targets(self.arch, self.targets[w][None, b0 : b0 + self.out_bins].astype(np.float32))[0]
        if self.arch == "procapnet":
            # base-resolution profile: each 32-bp bin's signal spread evenly over its bases
            y = np.repeat(y, reference.BIN_SIZE, axis=-1) / reference.BIN_SIZE
        return torch.from_numpy(reference.codes_to_one_hot(codes)), torch.from_numpy(y.astype(np.float32))


def output_bins(model: GenoclLightningModel) -> int:
    """32-bp target bins covered by the model's output at its training input length."""
    return model.output_length(model.seq_len) * model.bin_size // reference.BIN_SIZE


def pretrain(arch: str, max_epochs: int = 6, batch_size: int = 16, lr: float = 5e-4,
             patience: int = 2, seed: int = 0, limit_train_batches: int | float = 1.0,
             model_params: dict | None = None, trainer_kwargs: dict | None = None,
             gradient_checkpointing: bool = False, num_workers: int = 0) -> tuple[GenoclLightningModel, dict]:
    """Train a mini base model from scratch on the bundled windows.

    Parameters
    ----------
    arch
        ``enformer`` or ``procapnet``.
    max_epochs, batch_size, lr, patience
        Training settings (early stopping on the valid windows' loss).
    seed
        Seed for weights and crops.
    limit_train_batches
        Passed to the Trainer (smaller for smoke tests).
    model_params
        Architecture overrides.
    trainer_kwargs
        Hardware settings for the Trainer (``hardware.trainer_settings``: accelerator, devices,
        precision, accumulate_grad_batches); default: one CPU-or-GPU device, 32-bit.
    gradient_checkpointing
        Recompute activations in backward (``hardware.enable_gradient_checkpointing``).
    num_workers
        DataLoader worker processes.

    Returns
    -------
    tuple
        The trained model (best valid epoch) and its held-out test-window metrics.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from genocl_plugin.evaluate import reference_metrics
    from genocl_plugin.hardware import enable_gradient_checkpointing

    pl.seed_everything(seed, workers=True)
    names = (reference.track_names() if arch == "enformer"
             else ["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"])
    model = build_model(arch, task_names=names, model_params=model_params,
                        train_params={"lr": lr, "batch_size": batch_size, "logger": "csv"})
    if gradient_checkpointing:
        enable_gradient_checkpointing(model.model)
    bins = output_bins(model)
    train = WindowCropDataset(arch, "train", model.seq_len, bins, jitter=bins * 16, seed=seed)
    valid = WindowCropDataset(arch, "valid", model.seq_len, bins)
    with tempfile.TemporaryDirectory() as tmp:
        best = ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1)
        trainer = pl.Trainer(
            max_epochs=max_epochs, logger=False, **{"accelerator": "auto", "devices": 1, **(trainer_kwargs or {})},
            callbacks=[best, EarlyStopping(monitor="val_loss", patience=patience, mode="min")],
            enable_progress_bar=True, limit_train_batches=limit_train_batches,
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
    model.eval()
    metrics = reference_metrics(model, "test")
    metrics["epochs_trained"] = int(trainer.current_epoch)
    metrics["best_val_loss"] = float(best.best_model_score) if best.best_model_score is not None else None
    return model, metrics


def write_pretrained(model: GenoclLightningModel, metrics: dict, out: str | Path, force: bool = False,
                     command: str | None = None) -> Path:
    """Save a pretrained model with its test metrics, the command that made it and a model card."""
    arch = model.data_params["arch"]
    command = command or f"genocl pretrain --model {arch} --out DIR"
    extra = {
        "command": command,
        "name": f"{arch}-mini",
        "test_metrics": metrics,
        "lineage": [{"step": "pretrain", "data": "bundled basenji_tiny_hg38 (45 train / 10 valid windows)"}],
        "screens_seen": [],
    }
    path = save_model(model, out, extra=extra, force=force)
    (Path(path) / "MODEL_CARD.md").write_text(model_card(arch, model, metrics, command))
    return path


def model_card(arch: str, model: GenoclLightningModel, metrics: dict, command: str) -> str:
    """A short, honest model card."""
    n_params = sum(p.numel() for p in model.model.parameters())
    what = {
        "enformer": "gReLU `EnformerModel` (384 channels, 5 conv blocks = 32-bp bins, 1 transformer), "
                    "all 74 tracks (24 CAGE, 10 DNase, 30 RNA, 10 RNA3).",
        "procapnet": "bpnet-lite `BPNet` in ProCapNet's layout (two strands, profile + counts, no control "
                     "tracks, ProCapNet's loss: multinomial profile NLL + 100 x log-count MSE), 64 filters. "
                     "Trained on stranded FANTOM5 CAGE (12 samples summed per strand) as the "
                     "transcription-initiation signal: CAGE is the closest real signal here to PRO-cap, "
                     "and it is binned at 32 bp, so the base-resolution profile is only as sharp as 32-bp data allow.",
    }[arch]
    lines = [
        f"# {arch}-mini", "", what, "",
        f"- parameters: {n_params:,}",
        f"- input: {model.seq_len} bp; output: {model.output_length(model.seq_len)} positions x "
        f"{model.bin_size} bp, {len(model.task_names)} tracks",
        "- data: 65 real hg38 windows (calico/baskerville tiny hg38, Apache-2.0): "
        "45 train, 10 valid (early stopping), 10 test",
        f"- reproduce: `{command}`",
        "", "## Held-out test windows", "",
    ]
    for key, value in metrics.items():
        lines.append(f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}")
    lines += ["", "These are small models trained on 45 windows on a CPU; they are far weaker than the "
              "published Enformer / ProCapNet and exist so genocl can be run and tested offline.", ""]
    return "\n".join(lines)
