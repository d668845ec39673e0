"""The reference set: what a model already knows (windows, real tracks or pseudo-targets).

Replay, every importance estimate (EWC, SI, MAS), distillation, the forgetting budget and the
retention report draw their data from one :class:`ReferenceSet`, cut at the model's own input
and output geometry:

- :func:`bundled_reference_set`: crops of the bundled windows, the default of the bundled
  minis. These are the Basenji-style "tiny hg38" set of calico/baskerville (tests/data/tiny/hg38,
  Apache-2.0): 65 real hg38 windows of 131,072 bp (45 train / 10 valid / 10 test) with 74 real
  coverage tracks at 32-bp bins over the central 65,536 bp (``genocl_plugin/bundled/SOURCE.md``).
  A model's outputs get real tracks when their names are bundled track names.
- :func:`bed_reference_set`: windows of the model's input length centred on the regions of a
  BED file (e.g. Basenji's ``sequences_human.bed``) in the user's genome FASTA, split into
  train / valid / test by the BED's 4th column or by held-out chromosomes, with optional real
  tracks from one bigWig per model output (:func:`read_targets_file`, the Basenji/Borzoi
  ``targets.txt`` convention).

Without real tracks the targets are the parent model's own predictions (pseudo-targets),
computed once per window on first use and cached on disk (memory-mapped, fp16 log coverage).
This module also holds the sequence helpers (uint8 codes, one-hot, FASTA access).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genocl_plugin.data.fileio import open_text
from genocl_plugin.errors import input_error

BUNDLED = Path(__file__).resolve().parents[1] / "bundled"
WINDOW_LEN = 131_072
TARGET_CROP = 32_768  # bp of sequence on each side of the 65,536-bp target region
BIN_SIZE = 32
N_BINS = 2_048
SPLITS = ("train", "valid", "test")
# 524,288 bp of real hg38 chr2 (chr2:10,001-534,288), 2-bit packed: the example sequence of
# published models of any input length up to Borzoi's (bundled/SOURCE.md).
BUNDLED_PIECE = BUNDLED / "hg38_chr2_piece.npz"
# uint8 codes of the bundled sequences: 0=A 1=C 2=G 3=T 4=N
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[ord(chr(_b).lower())] = _i


@functools.lru_cache(maxsize=1)
def load_windows() -> dict[str, np.ndarray]:
    """Load the bundled windows (arrays memory-cached after the first call).

    Returns
    -------
    dict
        ``{split}_seq`` (N, 131072) uint8 codes, ``{split}_targets`` (N, 2048, 74) float16,
        ``{split}_coords`` (N,) ``chrom:start-end`` of the 131,072-bp sequence.
    """
    with np.load(BUNDLED / "basenji_tiny_hg38.npz") as data:
        out = {key: data[key] for key in data.files}
    # The npz coords are the 65,536-bp target regions (sequences.bed); store sequence spans.
    for split in SPLITS:
        out[f"{split}_coords"] = np.array([_sequence_span(c) for c in out[f"{split}_coords"]])
    return out


def _sequence_span(coord) -> str:
    text = coord.decode() if isinstance(coord, bytes) else str(coord)
    chrom, rest = text.split(":")
    start, end = (int(x) for x in rest.split("-"))
    if end - start == WINDOW_LEN:
        return text
    return f"{chrom}:{start - TARGET_CROP}-{end + TARGET_CROP}"


@functools.lru_cache(maxsize=1)
def track_names() -> list[str]:
    """Descriptions of the 74 bundled tracks (``CAGE:...``, ``DNASE:...``, ``RNA:...``)."""
    return names_from_targets(read_targets_file(BUNDLED / "targets.txt"))


def track_indices(prefix: str) -> list[int]:
    """Indices of the bundled tracks whose description starts with ``prefix`` (e.g. "CAGE")."""
    return [i for i, name in enumerate(track_names()) if name.startswith(prefix)]


def cage_strand_indices() -> tuple[list[int], list[int]]:
    """Indices of the plus- and minus-strand CAGE tracks (identifiers end in + / -)."""
    plus = [i for i, n in enumerate(track_names()) if n.startswith("CAGE") and n.endswith("+]")]
    minus = [i for i, n in enumerate(track_names()) if n.startswith("CAGE") and n.endswith("-]")]
    return plus, minus


def window_table() -> list[tuple[str, str, int, int, int]]:
    """All bundled windows as ``(split, chrom, start, end, index_in_split)``."""
    data = load_windows()
    table = []
    for split in SPLITS:
        for i, coord in enumerate(data[f"{split}_coords"]):
            chrom, rest = str(coord).split(":")
            start, end = (int(x) for x in rest.split("-"))
            table.append((split, chrom, start, end, i))
    return table


def find_window(chrom: str, start: int, end: int) -> tuple[str, int, int] | None:
    """The bundled window containing ``chrom:start-end``, as ``(split, index, window_start)``."""
    for split, w_chrom, w_start, w_end, i in window_table():
        if w_chrom == chrom and w_start <= start and end <= w_end:
            return split, i, w_start
    return None


@functools.lru_cache(maxsize=1)
def load_bundled_piece() -> tuple[str, int, np.ndarray]:
    """The bundled real hg38 piece: ``(chrom, start, codes)`` (0-based start, uint8 codes).

    Stored 2-bit packed (no N in the piece); the unpacked sequence is checked against the
    SHA-256 recorded when it was written (``scripts/make_bundled_piece.py``).
    """
    import hashlib

    with np.load(BUNDLED_PIECE) as data:
        bits = np.unpackbits(data["packed"]).reshape(-1, 2)
        codes = (bits[:, 0] * 2 + bits[:, 1]).astype(np.uint8)[: int(data["length"])]
        chrom, start, digest = str(data["chrom"]), int(data["start"]), str(data["sha256"])
    if hashlib.sha256(codes_to_seq(codes).encode("ascii")).hexdigest() != digest:
        raise input_error(BUNDLED_PIECE, "packed", "sequence differs from its recorded SHA-256",
                          "reinstall genocl (the bundled file is damaged)")
    codes.setflags(write=False)
    return chrom, start, codes


def codes_to_one_hot(codes: np.ndarray) -> np.ndarray:
    """uint8 codes (..., L) -> one-hot float32 (..., 4, L); N is all zeros (as in gReLU)."""
    codes = np.asarray(codes)
    eye = np.concatenate([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])
    return np.moveaxis(eye[np.minimum(codes, 4)], -1, -2)


def seq_to_codes(seq: str) -> np.ndarray:
    """DNA string -> uint8 codes (A0 C1 G2 T3, anything else N=4)."""
    return _CODE[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def codes_to_seq(codes: np.ndarray) -> str:
    """uint8 codes -> DNA string."""
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[np.minimum(codes, 4)].tobytes().decode()


def open_fasta(path: str | os.PathLike, field: str = "--fasta"):
    """Open an indexed FASTA with pyfaidx, building the index if it is missing.

    Raises
    ------
    GenoclInputError
        Missing file, or a FASTA pyfaidx cannot index (e.g. gzip that is not bgzip).
    """
    import pyfaidx

    path = Path(path)
    if not path.exists():
        raise input_error(path, field, "FASTA not found", "pass an existing FASTA file")
    try:
        return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True, rebuild=False)
    except Exception as err:
        raise input_error(
            path, field, f"cannot index FASTA ({type(err).__name__}: {err})".replace("\n", " "),
            "decompress it or recompress with `bgzip`, then `samtools faidx`",
        ) from None


def fetch_codes(chrom: str, start: int, end: int, fasta=None) -> np.ndarray:
    """uint8 codes of ``chrom:start-end`` from a FASTA or the bundled windows, N-padded.

    Positions outside the contig (or outside every bundled window) are N.
    """
    out = np.full(end - start, 4, dtype=np.uint8)
    if fasta is not None:
        length = len(fasta[chrom])
        lo, hi = max(start, 0), min(end, length)
        if hi > lo:
            out[lo - start : hi - start] = seq_to_codes(str(fasta[chrom][lo:hi]))
        return out
    # Every bundled window overlapping the interval contributes (an input longer than a
    # 131-kb window, e.g. Enformer's 196,608 bp, contains a window without either end in it).
    for split, w_chrom, w_start, w_end, i in window_table():
        lo, hi = max(start, w_start), min(end, w_end)
        if w_chrom == chrom and hi > lo:
            out[lo - start : hi - start] = load_windows()[f"{split}_seq"][i][lo - w_start : hi - w_start]
    return out


def window_crops(split: str, seq_len: int, n_bins: int | None = None, stride: int | None = None):
    """Tile the target regions of the bundled windows into model-sized crops.

    Parameters
    ----------
    split
        ``train``, ``valid`` or ``test``.
    seq_len
        Input length in bp (a multiple of 32).
    n_bins
        Output bins per crop (default ``seq_len // 32``: output covers the whole input).
    stride
        Step between crops in bp (default: the output span, non-overlapping).

    Returns
    -------
    tuple of np.ndarray
        ``codes`` (n, seq_len) uint8 and ``targets`` (n, n_bins, 74) float32, the real tracks
        of the central ``n_bins`` bins of each crop.
    """
    data = load_windows()
    n_bins = n_bins or seq_len // BIN_SIZE
    out_span = n_bins * BIN_SIZE
    flank = (seq_len - out_span) // 2
    stride = stride or out_span
    codes, targets = [], []
    for seq, tgt in zip(data[f"{split}_seq"], data[f"{split}_targets"], strict=True):
        for out_start in range(TARGET_CROP, WINDOW_LEN - TARGET_CROP - out_span + 1, stride):
            in_start = out_start - flank
            codes.append(seq[in_start : in_start + seq_len])
            b0 = (out_start - TARGET_CROP) // BIN_SIZE
            targets.append(tgt[b0 : b0 + n_bins].astype(np.float32))
    return np.stack(codes), np.stack(targets)


# --- model geometry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Input length and output layout of a model.

    Attributes
    ----------
    seq_len
        Input length (bp).
    n_out
        Output positions per input.
    bin_size
        bp per output position.
    offset
        bp from the input start to the first output position (centred output).
    """

    seq_len: int
    n_out: int
    bin_size: int
    offset: int

    @property
    def out_span(self) -> int:
        """bp covered by the output."""
        return self.n_out * self.bin_size

    @classmethod
    def of(cls, model, seq_len: int | None = None) -> Geometry:
        """The geometry of a genocl model, or of any gReLU model (probed with one forward pass)."""
        seq_len = int(seq_len or getattr(model, "seq_len", 0) or
                      (getattr(model, "data_params", {}) or {}).get("train", {}).get("seq_len") or 0)
        if seq_len <= 0:
            raise input_error("reference set", "seq_len", "the model records no input length", "pass seq_len=...")
        if hasattr(model, "output_length"):
            n_out, bin_size = int(model.output_length(seq_len)), int(model.bin_size)
        else:
            import torch

            with torch.no_grad():
                was_training = model.training
                model.eval()
                n_out = int(model(torch.zeros(1, 4, seq_len, device=model.device)).shape[-1])
                model.train(was_training)
            bin_size = int((model.data_params.get("train", {}) or {}).get("bin_size") or seq_len // n_out)
        return cls(seq_len, n_out, bin_size, (seq_len - n_out * bin_size) // 2)


def reference_output_names(model) -> list[str]:
    """Names of a model's reference outputs: its tracks before any ``screen:`` head."""
    data_params = getattr(model, "data_params", None) or {}
    names = getattr(model, "task_names", None) or (data_params.get("tasks") or {}).get("name")
    if names is None or len(names) == 0:
        # a gReLU LightningModel built without data: its head knows how many tracks it predicts
        names = [f"track_{i}" for i in range(int(model.model.head.n_tasks))]
    names = list(names)
    return [n for n in names if not str(n).startswith("screen:")]


def pool_to_bins(pred, factor: int):
    """Sum consecutive positions (n, tracks, L) into bins of ``factor`` (a trailing remainder is dropped)."""
    if factor == 1:
        return pred
    n, t, length = pred.shape
    usable = length // factor * factor
    return pred[..., :usable].reshape(n, t, usable // factor, factor).sum(-1)


def assay_group(name: str) -> str:
    """Assay group of a track name: CAGE, DNASE, ATAC, CHIP, RNA, strand or other.

    Basenji/Enformer ``targets.txt`` descriptions start with the assay (``CAGE:...``,
    ``DNASE:...``, ``CHIP:H3K27ac:...``); ProCapNet-style outputs are one track per strand.
    """
    text = str(name).strip()
    head = re.split(r"[:\s_/.\-]", text.upper(), maxsplit=1)[0]
    for group in ("CAGE", "DNASE", "ATAC", "CHIP", "RNA"):
        if head.startswith(group):
            return "DNASE" if group == "DNASE" else group
    if head in ("PLUS", "MINUS", "+", "-") or re.search(r"\b(plus|minus) strand\b", text, re.IGNORECASE):
        return "strand"
    return "other"


# --- track-name matching (readouts) ----------------------------------------------------------


def match_tracks(names: list[str], spec: str, field: str = "--readout-tracks") -> list[int]:
    """Indices of the tracks selected by ``spec``: comma-separated indices, exact names, globs or ``re:`` regexes.

    Raises
    ------
    GenoclInputError
        A part of ``spec`` matches no track (the message lists a few names).
    """
    import fnmatch

    chosen: list[int] = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        if part.isdigit():
            hits = [int(part)] if int(part) < len(names) else []
        elif part.startswith("re:"):
            try:
                pattern = re.compile(part[3:], re.IGNORECASE)
            except re.error as err:
                raise input_error(field, part, f"not a valid regular expression ({err})", "fix the pattern") from None
            hits = [i for i, n in enumerate(names) if pattern.search(str(n))]
        else:
            hits = [i for i, n in enumerate(names) if str(n) == part or
                    fnmatch.fnmatchcase(str(n).lower(), part.lower())]
        if not hits:
            examples = "; ".join(str(n) for n in names[:3])
            raise input_error(field, part, f"matches none of the model's {len(names)} tracks (e.g. {examples})",
                              "give indices, exact names, a glob such as 'CAGE:*K562*' or 're:<regex>'")
        chosen += [h for h in hits if h not in chosen]
    if not chosen:
        raise input_error(field, str(spec), "empty", "name at least one track")
    return chosen


def read_targets_file(path: str | os.PathLike, field: str = "--targets"):
    """Read a Basenji/Borzoi/Enformer ``targets.txt`` (tab-separated: index, identifier, file, description, ...).

    Returns
    -------
    pandas.DataFrame
        One row per model output, in output order, with at least ``identifier`` and ``description``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise input_error(path, field, "file not found", "pass a tab-separated targets file (Basenji targets.txt)")
    try:
        table = pd.read_csv(path, sep="\t", index_col=0)
    except Exception as err:
        raise input_error(path, field, f"not a tab-separated table ({type(err).__name__})",
                          "use the Basenji targets.txt layout: index, identifier, file, description") from None
    missing = [c for c in ("identifier", "description") if c not in table.columns]
    if missing:
        raise input_error(path, f"column {missing[0]}", "missing",
                          "use the Basenji targets.txt layout: index, identifier, file, description")
    if "scale" in table.columns:  # multiplies each track's coverage (bigwig_reader), as in Basenji
        scale = pd.to_numeric(table["scale"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(scale)
        if bad.any():
            row = int(np.argmax(bad))
            raise input_error(path, "column scale", f"row {table.index[row]}: {table['scale'].iloc[row]!r} is not a "
                              "finite number", "give each track's scale as a number (1.0: unscaled) or drop the column")
    return table


def names_from_targets(table) -> list[str]:
    """Track names as genocl writes them: ``description [identifier]`` (as the bundled tracks)."""
    return [f"{d} [{i}]" for d, i in zip(table["description"].astype(str), table["identifier"].astype(str),
                                         strict=True)]


def bundled_track_map(names: list[str]) -> list[list[int]] | None:
    """For each model output, the bundled tracks it is (matched by name), or None if any is unknown.

    The bundled ProCapNet mini's two outputs are the summed CAGE signal of each strand.
    """
    index = {n: i for i, n in enumerate(track_names())}
    plus, minus = cage_strand_indices()
    summed = {"CAGE plus strand (sum of 12)": plus, "CAGE minus strand (sum of 12)": minus}
    out = []
    for name in names:
        if name in index:
            out.append([index[name]])
        elif name in summed:
            out.append(summed[name])
        else:
            return None
    return out


# --- the reference set ----------------------------------------------------------------------


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


def bundled_reference_set(model, seq_len: int | None = None, cache_dir=None, batch_size: int = 16) -> ReferenceSet:
    """Crops of the bundled hg38 windows at the model's geometry (the bundled minis' default).

    Each window's 65,536-bp target region is tiled by the model's output span; real tracks are
    used for outputs whose names are bundled track names (aggregated to the model's bins when
    those are coarser than 32 bp), else pseudo-targets.

    Raises
    ------
    ReferenceUnavailable
        The model's input or output does not fit in the bundled windows.
    """
    import pandas as pd

    geometry = Geometry.of(model, seq_len)
    names = reference_output_names(model)
    track_bin = max(BIN_SIZE, geometry.bin_size)
    stride = max(geometry.out_span // BIN_SIZE * BIN_SIZE, BIN_SIZE)
    target_end = WINDOW_LEN - TARGET_CROP
    if (geometry.seq_len > WINDOW_LEN or geometry.out_span > target_end - TARGET_CROP
            or track_bin % geometry.bin_size or track_bin % BIN_SIZE):
        raise ReferenceUnavailable(
            f"the bundled reference windows are {WINDOW_LEN:,} bp with tracks over the central "
            f"{WINDOW_LEN - 2 * TARGET_CROP:,} bp; this model takes {geometry.seq_len:,} bp in and "
            f"{geometry.out_span:,} bp out: pass --reference-fasta and --reference-regions")
    data = load_windows()
    windows, codes, tracks = {}, {}, {}
    track_map = bundled_track_map(names)
    for split in SPLITS:
        rows = []
        for w, coord in enumerate(data[f"{split}_coords"]):
            chrom, rest = str(coord).split(":")
            w_start = int(rest.split("-")[0])
            for out_start in range(TARGET_CROP, target_end - geometry.out_span + 1, stride):
                in_start = out_start - geometry.offset
                if in_start >= 0 and in_start + geometry.seq_len <= WINDOW_LEN:
                    rows.append((chrom, w_start + in_start, w, w, in_start, out_start))
        table = pd.DataFrame(rows, columns=["chrom", "start", "group", "window", "in_window", "out_window"])
        windows[split] = table
        seqs = data[f"{split}_seq"]
        codes[split] = (np.stack([seqs[w][s : s + geometry.seq_len] for w, s in
                                  zip(table["window"], table["in_window"], strict=True)])
                        if len(table) else np.zeros((0, geometry.seq_len), np.uint8))
        if track_map is not None:
            per_bin = track_bin // BIN_SIZE
            n_bins = geometry.out_span // track_bin
            targets = data[f"{split}_targets"]
            out = np.empty((len(table), len(names), n_bins), dtype=np.float32)
            for row, (w, o) in enumerate(zip(table["window"], table["out_window"], strict=True)):
                b0 = (o - TARGET_CROP) // BIN_SIZE
                raw = targets[w][b0 : b0 + n_bins * per_bin].astype(np.float32)  # (bins, 74)
                mapped = np.stack([raw[:, idx].sum(-1) if len(idx) > 1 else raw[:, idx[0]] for idx in track_map])
                out[row] = mapped.reshape(len(names), n_bins, per_bin).sum(-1) if per_bin > 1 else mapped
            tracks[split] = out
    if not len(windows["train"]):
        raise ReferenceUnavailable("no crop of the bundled windows fits this model: pass --reference-fasta "
                                   "and --reference-regions")
    return ReferenceSet(
        "bundled hg38 windows (calico/baskerville tiny hg38)", geometry, windows, read_codes=None,
        track_names=names, track_bin=track_bin if track_map is not None else None, cache_dir=cache_dir,
        summary={"regions": {s: int(len(data[f"{s}_seq"])) for s in SPLITS}}, batch_size=batch_size,
        arrays={"codes": codes, "tracks": tracks})


def read_bed_regions(path: str | os.PathLike, field: str = "--reference-regions"):
    """Read a BED (chrom, start, end[, split]) into a DataFrame; the 4th column is kept as ``split``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise input_error(path, field, "file not found", "pass a BED file of regions (chrom, start, end[, split])")
    rows = []
    with open_text(path, field, "not a text BED file", "pass a plain or gzipped BED file") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                raise input_error(path, f"line {number}", "fewer than 3 tab-separated columns",
                                  "write chrom<TAB>start<TAB>end[<TAB>train|valid|test]")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise input_error(path, f"line {number}", f"start/end {fields[1]!r} {fields[2]!r} are not integers",
                                  "write 0-based integer BED coordinates") from None
            if end <= start or start < 0:
                raise input_error(path, f"line {number}", f"empty or negative region {start}-{end}",
                                  "write regions with 0 <= start < end")
            rows.append((fields[0], start, end, fields[3].strip().lower() if len(fields) > 3 else ""))
    if not rows:
        raise input_error(path, field, "no regions", "the BED needs at least one region per split")
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "split"])


def assign_splits(regions, holdout_chroms: list[str] | None, path) -> None:
    """Set ``regions["split"]``: the BED's own train/valid/test column, else held-out chromosomes.

    Held-out chromosomes give the ``test`` split, and every other held-out region goes to
    ``valid`` (the forgetting budget's checks) so ``test`` stays untouched by training decisions.
    """
    if holdout_chroms:
        held = regions["chrom"].isin(holdout_chroms).to_numpy()
        if not held.any():
            raise input_error("--reference-holdout-chroms", ",".join(holdout_chroms),
                              f"no region of {path} lies on these chromosomes",
                              "name chromosomes present in the BED")
        split = np.where(held, "test", "train").astype(object)
        held_idx = np.flatnonzero(held)
        if len(held_idx) > 1:
            split[held_idx[::2]] = "valid"
        else:
            split[held_idx] = "test"
        regions["split"] = split
        if len(held_idx) == 1:
            regions.loc[regions.index[held_idx[0]], "split"] = "test"
        return
    values = set(regions["split"])
    if not values <= set(SPLITS) or "train" not in values or "test" not in values:
        raise input_error(path, "column 4 (split)",
                          "needs train / valid / test labels (at least train and test)",
                          "add a 4th column or pass --reference-holdout-chroms chr8,chr9")


def bed_reference_set(model, regions: str | os.PathLike, fasta: str | os.PathLike | None = None,
                      tracks: str | os.PathLike | None = None, holdout_chroms: list[str] | None = None,
                      seq_len: int | None = None, cache_dir=None, batch_size: int = 16) -> ReferenceSet:
    """Windows of the model's input length centred on BED regions of the user's genome.

    Parameters
    ----------
    model
        The parent model (its geometry and reference output names).
    regions
        BED of regions the parent knows (e.g. Basenji's ``sequences_human.bed``).
    fasta
        Indexed genome FASTA; ``None`` or ``"bundled"`` reads the bundled hg38 windows.
    tracks
        Optional targets file naming one bigWig per reference output.
    holdout_chroms
        Chromosomes held out for valid/test when the BED has no split column.
    seq_len, cache_dir, batch_size
        Input length override, pseudo-target cache directory, teacher batch size.

    Windows are N-padded where they run past a contig end (as gReLU and kipoiseq pad);
    regions on contigs missing from the FASTA, or mostly outside their contig, are skipped
    and counted. A split left empty is an error.
    """
    import pandas as pd

    geometry = Geometry.of(model, seq_len)
    names = reference_output_names(model)
    table = read_bed_regions(regions)
    assign_splits(table, holdout_chroms, regions)
    genome = None if fasta in (None, "bundled") else open_fasta(fasta, field="--reference-fasta")
    lengths = ({k: len(genome[k]) for k in genome.keys()} if genome is not None else None)
    skipped = {"contig_not_in_fasta": 0, "mostly_off_contig": 0, "outside_bundled_windows": 0}
    padded = 0
    windows = {s: [] for s in SPLITS}
    for number, row in enumerate(table.itertuples(index=False)):
        centre = (row.start + row.end) // 2
        start = centre - geometry.seq_len // 2
        end = start + geometry.seq_len
        if genome is None:
            if find_window(row.chrom, start, end) is None:
                skipped["outside_bundled_windows"] += 1
                continue
        else:
            if row.chrom not in lengths:
                skipped["contig_not_in_fasta"] += 1
                continue
            inside = min(end, lengths[row.chrom]) - max(start, 0)
            if inside < geometry.seq_len // 2:
                skipped["mostly_off_contig"] += 1
                continue
            padded += inside < geometry.seq_len
        windows[row.split].append((row.chrom, start, number))
    frames = {s: pd.DataFrame(rows, columns=["chrom", "start", "group"]) for s, rows in windows.items()}
    for split in ("train", "test"):
        if not len(frames[split]):
            reasons = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items() if v) or "none in the BED"
            raise input_error(regions, f"{split} regions", f"no usable {split} window of {geometry.seq_len:,} bp "
                              f"(skipped: {reasons})",
                              "use regions on contigs of --reference-fasta, away from contig ends")
    if not len(frames["valid"]):
        frames["valid"] = frames["test"]
    read_tracks, track_bin = None, None
    if tracks is not None:
        read_tracks = bigwig_reader(tracks, names, geometry.bin_size, frames)
        track_bin = geometry.bin_size
    read_codes = functools.partial(fetch_codes, fasta=genome)
    where = "bundled hg38 windows" if genome is None else Path(str(fasta)).name
    return ReferenceSet(f"{Path(str(regions)).name} on {where}", geometry, frames, read_codes, names,
                        read_tracks=read_tracks, track_bin=track_bin, cache_dir=cache_dir,
                        summary={"skipped": {k: v for k, v in skipped.items() if v}, "n_padded": int(padded)},
                        batch_size=batch_size)


def bigwig_reader(targets_path: str | os.PathLike, names: list[str], bin_size: int, windows: dict):
    """A ``read_tracks(chrom, out_start, n_bins)`` over one bigWig per model output (pyBigWig).

    The targets file's ``file`` column names the bigWigs (relative paths are relative to the
    targets file); a ``scale`` column, when present, multiplies each track as in Basenji.

    Raises
    ------
    GenoclInputError
        Row count differs from the model's outputs, a bigWig is missing or unreadable, or lacks
        a chromosome of the reference windows.
    """
    import pyBigWig

    targets_path = Path(targets_path)
    table = read_targets_file(targets_path, field="--reference-tracks")
    if "file" not in table.columns:
        raise input_error(targets_path, "column file", "missing", "name one bigWig per model output in a 'file' column")
    if len(table) != len(names):
        raise input_error(targets_path, "rows", f"{len(table)} tracks but the model has {len(names)} reference outputs",
                          "list exactly one bigWig per model output, in output order")
    files = [Path(f) if Path(f).is_absolute() else targets_path.parent / f for f in table["file"].astype(str)]
    scale = table["scale"].to_numpy(float) if "scale" in table.columns else np.ones(len(files))
    chroms = sorted({c for frame in windows.values() for c in frame["chrom"]})
    lengths = []
    for file in files:
        if not file.is_file():
            raise input_error(targets_path, f"file {file}", "bigWig not found", "fix the path in the targets file")
        try:
            handle = pyBigWig.open(str(file))
            header = handle.chroms() if handle is not None else None
        except (RuntimeError, OSError):
            header = None
        if not header or not handle.isBigWig():
            raise input_error(file, "bigWig", "not a readable bigWig", "pass bigWig files (e.g. bedGraphToBigWig)")
        missing = [c for c in chroms if c not in header]
        handle.close()
        if missing:
            raise input_error(file, f"chromosome {missing[0]}", "not in this bigWig",
                              "use bigWigs of the same genome as --reference-fasta, or drop those regions")
        lengths.append(header)

    def read(chrom: str, out_start: int, n_bins: int) -> np.ndarray:
        out = np.zeros((len(files), n_bins * bin_size), dtype=np.float32)
        for t, file in enumerate(files):
            lo, hi = max(out_start, 0), min(out_start + n_bins * bin_size, lengths[t][chrom])
            if hi > lo:
                with contextlib.closing(pyBigWig.open(str(file))) as handle:
                    values = np.asarray(handle.values(chrom, lo, hi, numpy=True), dtype=np.float32)
                out[t, lo - out_start : hi - out_start] = np.nan_to_num(values) * scale[t]
        return out.reshape(len(files), n_bins, bin_size).sum(-1)

    return read


def reference_set_for(model, fasta=None, regions=None, tracks=None, holdout_chroms=None, cache_dir=None,
                      batch_size: int = 16) -> ReferenceSet:
    """The reference set of an update: the user's BED + FASTA if given, else the bundled windows.

    Raises
    ------
    ReferenceUnavailable
        No regions were given and the bundled windows do not fit the model.
    GenoclInputError
        Bad reference files or flags.
    """
    if regions is None:
        if fasta is not None or tracks is not None or holdout_chroms:
            flag = "--reference-fasta" if fasta is not None else (
                "--reference-tracks" if tracks is not None else "--reference-holdout-chroms")
            raise input_error(flag, str(fasta or tracks or holdout_chroms), "given without --reference-regions",
                              "pass --reference-regions REGIONS.bed (the windows to cut)")
        return bundled_reference_set(model, cache_dir=cache_dir, batch_size=batch_size)
    return bed_reference_set(model, regions, fasta=fasta, tracks=tracks, holdout_chroms=holdout_chroms,
                             cache_dir=cache_dir, batch_size=batch_size)
