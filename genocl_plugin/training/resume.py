"""Resumable updates: Lightning checkpoints in a hidden partial directory next to ``--out``.

``genocl update --checkpoint-every N`` saves the Trainer's state every N optimiser steps into
``.<out name>.partial/`` (model, optimiser, loop progress, every callback's
``state_dict()``, and the RNG states); ``--resume`` continues from the newest checkpoint
there and reaches the same final weights as an uninterrupted run with the same seed. What
makes the result identical:

- the shuffling order of each epoch comes from ``(seed, epoch)`` alone
  (:class:`EpochSeededSampler`), not from the global RNG, and the sampler skips the batches
  already trained in the interrupted epoch;
- the torch / numpy / python RNG states (dropout, replay draws) are saved and restored
  (:class:`ResumeState`);
- strategy callbacks keep their own state through Lightning's ``Callback.state_dict`` /
  ``load_state_dict``.

A finished run removes its partial directory. The partial directory is genocl's own
(not ``fileio.atomic_dir``): it is written while training and only read by ``--resume``.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Sampler

from genocl_plugin.errors import input_error

# Test hook: raise after this many optimiser steps, as a killed process would stop.
FAIL_AT_STEP_ENV = "GENOCL_TEST_FAIL_AT_STEP"


def partial_dir(out: str | os.PathLike) -> Path:
    """``.<name>.partial`` beside the run directory ``out``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def checkpoints(partial: Path) -> list[Path]:
    """The ``step=<k>.ckpt`` files of a partial directory, newest (highest step) first."""
    found = []
    for path in partial.glob("step=*.ckpt"):
        try:
            found.append((int(path.stem.split("=")[1]), path))
        except (IndexError, ValueError):
            continue
    return [path for _, path in sorted(found, reverse=True)]


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (torn, truncated, not a checkpoint), or None if it can.

    A process killed while Lightning wrote it leaves a truncated file; a torn write leaves one
    whose bytes do not match the CRC-32 its zip records. Both are checked without loading the
    tensors: ``zipfile`` verifies every member's CRC, and ``torch.load(mmap=True,
    weights_only=True)`` (how Lightning loads it on resume, tensors mapped, not read) parses it.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            return f"is torn (its member {bad} fails the CRC check)"
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except zipfile.BadZipFile:
        return "is truncated or not a torch checkpoint"
    except Exception as err:  # any failure to parse it means: cannot resume from it
        return f"is unreadable ({type(err).__name__})"
    return None


def latest_checkpoint(partial: Path) -> Path | None:
    """The newest complete checkpoint in a partial directory (by step), or None."""
    return next((path for path in checkpoints(partial) if checkpoint_problem(path) is None), None)


def check_partial(out: str | os.PathLike, resume: bool) -> Path | None:
    """The checkpoint to resume from (``--resume``), after checking the partial directory.

    Checkpoints are tried newest first; incomplete ones (a process killed while writing) are
    skipped, with one ``warning:`` line on stderr naming them and the one resumed from. They are
    left in place (Lightning writes over them when the resumed run reaches their step).

    Raises
    ------
    GenoclInputError
        ``--resume`` with nothing to resume or no complete checkpoint, a partial path that is not
        a directory, or a partial directory left by an interrupted run when ``--resume`` was not
        given (it is never silently deleted).
    """
    partial = partial_dir(out)
    if partial.exists() and not partial.is_dir():
        raise input_error(partial, "--resume" if resume else "--out",
                          "is a file, not a directory (genocl keeps an interrupted run's checkpoints there)",
                          f"move or delete {partial.name}, then run again")
    if resume:
        candidates = checkpoints(partial) if partial.exists() else []
        if not candidates:
            raise input_error(partial, "--resume", "no checkpoint of an interrupted run here",
                              "run without --resume (add --checkpoint-every N to make it resumable)")
        skipped = []
        for path in candidates:
            problem = checkpoint_problem(path)
            if problem is None:
                if skipped:
                    print(f"warning: {partial}: skipped the newer {', '.join(skipped)}; resuming from {path.name}",
                          file=sys.stderr, flush=True)
                return path
            skipped.append(f"{path.name} (it {problem})")
        raise input_error(partial, "--resume", f"no complete checkpoint: {', '.join(skipped)}",
                          f"delete {partial.name} and run without --resume to start afresh")
    if partial.exists() and any(partial.iterdir()):
        raise input_error(partial, "--out", "an interrupted run of this --out left its checkpoints here",
                          "continue it with --resume, or delete the directory to start afresh")
    return None


def remove_partial(out: str | os.PathLike) -> None:
    """Delete the partial directory of a finished run."""
    shutil.rmtree(partial_dir(out), ignore_errors=True)


class EpochSeededSampler(Sampler):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` at every epoch start. ``skip`` batches of the current epoch
    are left out once (those a resumed run already trained on).
    """

    def __init__(self, n: int, seed: int, batch_size: int) -> None:
        self.n, self.seed, self.batch_size = n, seed, batch_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        start, self.skip = self.skip * self.batch_size, 0
        return iter(order[start:])

    def __len__(self) -> int:
        return self.n


class ResumeState(pl.Callback):
    """Saves RNG states and the position in the epoch; restores them on resume.

    Parameters
    ----------
    sampler
        The training loader's :class:`EpochSeededSampler`.
    """

    def __init__(self, sampler: EpochSeededSampler) -> None:
        self.sampler = sampler
        self.fail_at = int(os.environ.get(FAIL_AT_STEP_ENV, "0") or 0)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        # Plain types and tensors only, so the checkpoint loads with weights_only=True.
        name, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss = random.getstate()
        checkpoint["genocl_resume"] = {
            "batches_in_epoch": int(progress.processed),
            "epoch": int(trainer.current_epoch),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": [str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                          float(cached)],
            "python_rng": [int(version), list(internal), gauss],
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = checkpoint.get("genocl_resume")
        if not state:
            return
        torch.set_rng_state(state["torch_rng"])
        name, keys, pos, has_gauss, cached = state["numpy_rng"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        # A checkpoint written after the last batch of an epoch resumes at the next epoch.
        per_epoch = -(-self.sampler.n // self.sampler.batch_size)
        self.sampler.skip = state["batches_in_epoch"] % per_epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.fail_at and trainer.global_step >= self.fail_at:
            raise SystemExit(f"{FAIL_AT_STEP_ENV}={self.fail_at}: stopping as a killed run would")


def checkpoint_callback(partial: Path, every_n_steps: int) -> pl.callbacks.ModelCheckpoint:
    """Lightning's ModelCheckpoint writing ``step=<k>.ckpt`` every N steps (the newest two kept)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    return ModelCheckpoint(dirpath=str(partial), filename="{step}", every_n_train_steps=every_n_steps,
                           save_top_k=2, monitor="step", mode="max", save_last=False,
                           enable_version_counter=False, auto_insert_metric_name=True)
