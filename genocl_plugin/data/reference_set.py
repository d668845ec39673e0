"""The :class:`ReferenceSet`: windows a model already knows, with real tracks or pseudo-targets.

Replay, every importance estimate (EWC, SI, MAS), distillation, the forgetting budget and the
retention report read their windows, inputs and targets through it. Without real tracks the
targets are the parent model's own predictions (pseudo-targets), computed once per window on
first use and cached on disk (memory-mapped, fp16 log coverage); :func:`clean_stale_teacher_caches`
removes the caches of killed runs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from genocl_plugin.data.bundled_windows import SPLITS
from genocl_plugin.data.geometry import Geometry, pool_to_bins
from genocl_plugin.data.sequence import codes_to_one_hot


def clean_stale_teacher_caches(root: str | Path | None = None) -> list[Path]:
    """Remove ``genocl-teacher-<pid>-*`` cache directories whose process no longer runs.

    A killed run cannot delete its own cache (``TemporaryDirectory`` cleans up only on a normal
    exit), so the next run that builds a cache does it.

    Returns
    -------
    list of Path
        The directories removed.
    """
    removed = []
    root = Path(root or tempfile.gettempdir())
    for path in root.glob("genocl-teacher-*"):
        match = re.match(r"^genocl-teacher-(\d+)-", path.name)
        if match is None or not path.is_dir():
            continue
        try:
            os.kill(int(match[1]), 0)
            continue  # that process still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class ReferenceUnavailable(Exception):
    """No reference windows fit this model (the message says why and what to pass)."""


class ReferenceSet:
    """Windows a model already knows, at its geometry, with real tracks or cached pseudo-targets.

    Build one with :func:`bundled_reference_set`, :func:`bed_reference_set` or
    :func:`reference_set_for`. Items are numbered per split (``train`` / ``valid`` / ``test``);
    every accessor takes a split and an index array.

    Parameters
    ----------
    name
        What the set is (printed in reports).
    geometry
        The model's :class:`Geometry`.
    windows
        Per split, a DataFrame with ``chrom``, ``start`` (input start, bp) and ``group``
        (the region / window each item comes from).
    read_codes
        ``read_codes(chrom, start, end) -> uint8 codes``.
    track_names
        Names of the model's reference outputs (the leading outputs that targets cover).
    read_tracks
        ``read_tracks(chrom, out_start, n_bins) -> (tracks, n_bins)`` real signal summed over
        bins of ``track_bin`` bp starting at ``out_start``; None without real tracks.
    track_bin
        bp per bin of the real tracks (a multiple of the model's bin size).
    cache_dir
        Where pseudo-targets are memory-mapped (default: a temporary directory).
    summary
        Counts (regions used, skipped by reason) for the report.
    batch_size
        Batch size of the parent model's forward passes for pseudo-targets.
    arrays
        Per split, in-memory ``codes`` (and ``tracks``) instead of the readers (small sets).
    """

    def __init__(self, name: str, geometry: Geometry, windows: dict, read_codes, track_names: list[str],
                 read_tracks=None, track_bin: int | None = None, cache_dir: str | os.PathLike | None = None,
                 summary: dict | None = None, batch_size: int = 16, arrays: dict | None = None) -> None:
        self.name, self.geometry, self.windows = name, geometry, windows
        self.read_codes, self.read_tracks = read_codes, read_tracks
        self.track_names, self.track_bin = list(track_names), track_bin
        self.summary = dict(summary or {})
        self.batch_size = batch_size
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._tmp = None
        self._pseudo: dict[str, dict[int, np.ndarray]] = {}
        self._codes_cache: dict[str, np.ndarray] = (arrays or {}).get("codes", {})
        self._tracks_cache: dict[str, np.ndarray] = (arrays or {}).get("tracks", {})

    # items -------------------------------------------------------------------------------
    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.windows and len(self.windows[s])]

    def size(self, split: str) -> int:
        """Items in a split."""
        return len(self.windows.get(split, ()))

    def groups(self, split: str) -> np.ndarray:
        """The region / window each item of a split comes from."""
        return self.windows[split]["group"].to_numpy()

    def coords(self, split: str, idx) -> list[str]:
        """``chrom:start-end`` of the input windows."""
        table = self.windows[split].iloc[np.atleast_1d(idx)]
        return [f"{c}:{s}-{s + self.geometry.seq_len}" for c, s in zip(table["chrom"], table["start"], strict=True)]

    def subset(self, split: str, n: int | None, seed: int = 0) -> np.ndarray:
        """A seeded subset of ``n`` item indices in sorted order (all items if ``n`` is None or larger)."""
        total = self.size(split)
        if not n or total <= n:
            return np.arange(total)
        return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))

    def codes(self, split: str, idx) -> np.ndarray:
        """(k, seq_len) uint8 input sequences."""
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if split in self._codes_cache:
            return self._codes_cache[split][idx]
        table = self.windows[split]
        length = self.geometry.seq_len
        out = np.empty((len(idx), length), dtype=np.uint8)
        for row, i in enumerate(idx):
            out[row] = self.read_codes(str(table["chrom"].iat[i]), int(table["start"].iat[i]),
                                       int(table["start"].iat[i]) + length)
        return out

    def one_hot(self, split: str, idx):
        """(k, 4, seq_len) float32 torch tensor of the inputs."""
        import torch

        return torch.from_numpy(codes_to_one_hot(self.codes(split, idx)))

    # real tracks -------------------------------------------------------------------------
    @property
    def has_tracks(self) -> bool:
        """Whether real tracks are available for the reference outputs."""
        return self.read_tracks is not None or bool(self._tracks_cache)

    @property
    def track_bins(self) -> int:
        """Real-track bins per item (the output span in ``track_bin`` bins, remainder dropped)."""
        return self.geometry.out_span // self.track_bin if self.track_bin else 0

    @property
    def trainable_tracks(self) -> bool:
        """Whether real tracks can be training targets at the model's resolution (whole bins)."""
        return self.has_tracks and self.geometry.out_span % self.track_bin == 0

    def tracks(self, split: str, idx) -> np.ndarray:
        """(k, tracks, track_bins) float32 real signal at ``track_bin`` resolution."""
        if not self.has_tracks:
            raise ValueError(f"{self.name} has no real tracks")
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if split in self._tracks_cache:
            return self._tracks_cache[split][idx]
        table = self.windows[split]
        out = np.empty((len(idx), len(self.track_names), self.track_bins), dtype=np.float32)
        for row, i in enumerate(idx):
            out[row] = self.read_tracks(str(table["chrom"].iat[i]), int(table["start"].iat[i]) + self.geometry.offset,
                                        self.track_bins)
        return out

    def item_nbytes(self, pseudo: bool) -> int:
        """Memory one buffered window takes: its sequence and its targets (fp16 pseudo-targets, fp32 tracks)."""
        return self.geometry.seq_len + len(self.track_names) * self.geometry.n_out * (2 if pseudo else 4)

    def to_track_bins(self, pred: np.ndarray) -> np.ndarray:
        """Model outputs (k, tracks, n_out) pooled (summed) to the real tracks' bins."""
        return pool_to_bins(pred, self.track_bin // self.geometry.bin_size)

    # training targets --------------------------------------------------------------------
    def targets(self, split: str, idx, model=None, pseudo: bool | None = None) -> np.ndarray:
        """(k, tracks, n_out) float32 coverage targets at the model's resolution.

        Real tracks (each track bin spread evenly over its output positions) when they fit,
        else the parent model's predictions (``model``, computed once and cached).
        """
        use_pseudo = (not self.trainable_tracks) if pseudo is None else pseudo
        if not use_pseudo:
            real = self.tracks(split, idx)
            factor = self.track_bin // self.geometry.bin_size
            return real if factor == 1 else np.repeat(real, factor, axis=-1) / factor
        return np.exp(self.teacher_logits(split, idx, model))

    def teacher_logits(self, split: str, idx, model) -> np.ndarray:
        """(k, tracks, n_out) float32 log coverage of the parent model, cached (fp16, memory-mapped).

        The first call for an item runs ``model`` on it (a ``pseudo-targets`` stage line with its
        progress, see :mod:`genocl_plugin.progress`); later calls read the cache, so the parent's
        predictions are those it made before training.
        """
        import torch

        from genocl_plugin.progress import progress, stage

        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        cache = self._pseudo.setdefault(split, {})
        todo = np.array(sorted({int(i) for i in idx if int(i) not in cache}), dtype=np.int64)
        if len(todo):
            if model is None:
                raise ValueError("pseudo-targets need the parent model on first use")
            n_ref = len(self.track_names)
            with stage("pseudo-targets", f"the parent's predictions on {len(todo):,} {split} reference windows, "
                                         f"{n_ref:,} outputs"):
                was_training = model.training
                model.eval()
                starts = progress(range(0, len(todo), self.batch_size), total=len(todo),
                                  description=f"pseudo-targets ({split})", unit="window",
                                  count=lambda start: min(self.batch_size, len(todo) - start))
                rows = []
                with torch.no_grad():
                    for start in starts:
                        x = self.one_hot(split, todo[start : start + self.batch_size]).to(model.device)
                        rows.append(model(x, logits=True)[:, :n_ref].float().cpu().numpy().astype(np.float16))
                model.train(was_training)
                block = self._memmap(split, np.concatenate(rows))
                for row, i in enumerate(todo):
                    cache[int(i)] = block[row]
        return np.stack([cache[int(i)] for i in idx]).astype(np.float32)

    def _memmap(self, split: str, values: np.ndarray) -> np.ndarray:
        """Write a block of pseudo-targets to disk and map it back read-only."""
        if self._cache_dir is None:
            clean_stale_teacher_caches()
            # The pid in the name lets a later run tell the cache of a killed run from a live one.
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix=f"genocl-teacher-{os.getpid()}-")
            self._cache_dir = Path(self._tmp.name)
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._cache_dir / f"pseudo_{split}_{len(list(self._cache_dir.glob(f'pseudo_{split}_*')))}.f16"
        out = np.memmap(path, dtype=np.float16, mode="w+", shape=values.shape)
        out[:] = values
        out.flush()
        del out
        return np.memmap(path, dtype=np.float16, mode="r", shape=values.shape)

    def samples(self, n: int, seed: int = 0, model=None, split: str = "train"):
        """``n`` (x, y) pairs of batch size one for importance estimates (EWC, SI, MAS).

        ``y`` is the real tracks when they fit the model, else the model's own predictions.
        """
        import torch

        total = self.size(split)
        idx = np.random.default_rng(seed).choice(total, min(n, total), replace=False)
        device = getattr(model, "device", "cpu")
        x = self.one_hot(split, idx).to(device)
        y = torch.from_numpy(self.targets(split, idx, model)).to(device)
        return [(x[i : i + 1], y[i : i + 1]) for i in range(len(idx))]

    def describe(self) -> dict:
        """What the set holds (for metrics.json and the printed report)."""
        return {"name": self.name, "seq_len": self.geometry.seq_len, "n_out": self.geometry.n_out,
                "bin_size": self.geometry.bin_size, "tracks": "real" if self.has_tracks else "pseudo (parent model)",
                "n_outputs": len(self.track_names),
                **{f"n_{s}": self.size(s) for s in SPLITS}, **self.summary}
