"""Retention on peaks: what the model was trained to predict, from a narrowPeak or BED file.

Most users of ENCODE-style models have the experiment's peak file but no bigWig. With
``genocl update --reference-peaks PEAKS.narrowPeak.gz`` the update scores, before and after,
how well the model still tells peaks from their flanks and ranks peaks by strength:

- each peak is one window of the model's input length centred on its summit (narrowPeak
  column 10, else the peak's centre); its predicted signal is the log of the predicted coverage
  summed over every reference output and the output positions within ``half_width`` bp of the
  summit (default: the whole output);
- each peak has two *matched flanks*: the same window shifted ``flank_shift`` bp to the left and
  to the right (default :data:`FLANK_SHIFT_FACTOR` x the input length, ~10.6 kb for a 2,114-bp
  BPNet, so a flank lies in the peak's neighbourhood but outside its input window). A flank is
  kept only when its scored span overlaps no peak of the file and its whole window lies in the
  readable sequence;
- AUROC of peak vs flank signal (ranks, ties averaged), Pearson of the peak signal with
  log(signalValue) (narrowPeak column 7), and the drift of the updated model from its parent:
  Pearson of the log signal over peaks and flanks ("counts" drift) and, for base-pair profile
  models (1-bp outputs, two strands: BPNet / ProCapNet), the mean per-window Pearson of the log
  profiles ("profile" drift).

Sequences come from a genome FASTA (``--reference-fasta``) or, without one, from the bundled hg38
windows (:func:`genocl_plugin.data.reference.fetch_codes`), as for ``--reference-regions``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data import reference
from genocl_plugin.data.fileio import open_text
from genocl_plugin.errors import input_error
from genocl_plugin.progress import progress_iter

FIELD = "--reference-peaks"
# Flanks sit this many input lengths from the summit: 5 x 2,114 bp = 10.6 kb for a BPNet, far enough
# that the flank's input shares nothing with the peak's, near enough to share its GC and mappability.
FLANK_SHIFT_FACTOR = 5
DEFAULT_MAX_PEAKS = 2_000
MAX_N_FRACTION = 0.5  # windows more than half N (assembly gaps, padding) are not scored
PEAK_COLUMNS = ["chrom", "start", "end", "summit", "signal"]


# --- reading -------------------------------------------------------------------------------


def read_peaks(path: str | os.PathLike, field: str = FIELD) -> pd.DataFrame:
    """Read a narrowPeak or BED file (3+ columns), plain or gzipped (told by its magic bytes).

    Parameters
    ----------
    path
        The peak file. Lines starting with ``#``, ``track`` or ``browser`` and blank lines are
        skipped; columns are tab-separated (whitespace when a line has no tab).
    field
        The option named in error messages.

    Returns
    -------
    pandas.DataFrame
        ``chrom``, ``start``, ``end`` (0-based, half-open), ``summit`` (absolute bp: ``start`` +
        column 10 for a 10-column narrowPeak whose column 10 is not -1, else the centre) and
        ``signal`` (column 7 signalValue of a narrowPeak; NaN for BED), in file order. Rows with
        the same chromosome and summit are kept once (the strongest); ``attrs["n_duplicates"]``
        counts those dropped.

    Raises
    ------
    GenoclInputError
        Missing or unreadable file, damaged gzip, binary content, a line with fewer than three
        columns, non-integer or empty coordinates, a non-numeric signalValue or summit, a summit
        outside its peak, or no peak at all.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, field, "file not found", "pass a narrowPeak or BED file of peaks (plain or gzipped)")
    rows = []
    with open_text(path, field, "not a text file", "pass a narrowPeak or BED text file, plain or gzipped") as handle:
        for number, line in enumerate(handle, 1):
            row = _parse_peak_line(line, number, path)
            if row is not None:
                rows.append(row)
    if not rows:
        raise input_error(path, field, "no peaks", "pass a narrowPeak or BED file with at least one peak")
    table = pd.DataFrame(rows, columns=PEAK_COLUMNS)
    # The strongest of rows sharing a summit is kept; file order otherwise.
    order = table.sort_values("signal", ascending=False, na_position="last", kind="stable")
    kept = order.drop_duplicates(["chrom", "summit"]).sort_index().reset_index(drop=True)
    kept.attrs["n_duplicates"] = int(len(table) - len(kept))
    return kept


def _parse_peak_line(line: str, number: int, path: Path) -> tuple | None:
    """One peak line as ``(chrom, start, end, summit, signal)``; None for headers and blank lines."""
    text = line.rstrip("\r\n")
    if not text.strip() or text.startswith(("#", "track", "browser")):
        return None
    fields = text.split("\t")
    if len(fields) < 3:
        fields = text.split()
    where = f"line {number}"
    if len(fields) < 3:
        raise input_error(path, where, "fewer than 3 columns",
                          "write chrom<TAB>start<TAB>end (BED) or the 10 narrowPeak columns")
    if not fields[0].strip():
        raise input_error(path, where, "empty chromosome name", "write the chromosome in column 1")
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise input_error(path, where, f"start/end {fields[1]!r} {fields[2]!r} are not integers",
                          "write 0-based integer coordinates (header lines start with #, track or browser)") from None
    if start < 0 or end <= start:
        raise input_error(path, where, f"empty or negative peak {start}-{end}", "write peaks with 0 <= start < end")
    summit, signal = (start + end) // 2, float("nan")
    if len(fields) == 10:  # narrowPeak: column 7 signalValue, column 10 summit offset (-1: none)
        try:
            signal = float(fields[6])
        except ValueError:
            raise input_error(path, f"{where} column 7 (signalValue)", f"{fields[6]!r} is not a number",
                              "write narrowPeak's signalValue in column 7") from None
        try:
            offset = int(fields[9])
        except ValueError:
            raise input_error(path, f"{where} column 10 (peak)", f"{fields[9]!r} is not an integer",
                              "write the summit's offset from start in column 10, or -1") from None
        if offset != -1:
            # offset == end - start occurs in ENCODE files (ENCSR000AKO); the summit is then the peak's end
            if not 0 <= offset <= end - start:
                raise input_error(path, f"{where} column 10 (peak)",
                                  f"summit offset {offset} lies outside the {end - start}-bp peak",
                                  "write the summit's offset from start (0 <= offset <= end - start), or -1")
            summit = start + offset
    return fields[0].strip(), start, end, summit, signal


# --- sequence sources ------------------------------------------------------------------------


@dataclass
class SequenceSource:
    """Where windows are read from, and which windows can be read.

    Attributes
    ----------
    name
        What it is (for the report).
    read_codes
        ``read_codes(chrom, start, end) -> uint8 codes`` (0=A 1=C 2=G 3=T 4=N), N-padded.
    lengths
        Contig lengths of a FASTA; None for the bundled windows.
    """

    name: str
    read_codes: Callable[[str, int, int], np.ndarray]
    lengths: dict[str, int] | None = None

    def check(self, chroms, starts, ends, allow_padding: bool) -> tuple[np.ndarray, np.ndarray]:
        """Why each window cannot be read (``""``: it can), and whether it is N-padded.

        Parameters
        ----------
        chroms, starts, ends
            The windows (0-based, half-open).
        allow_padding
            FASTA: accept windows running past a contig end when at least half of them is on it
            (peaks); otherwise the whole window must lie on the contig (flanks). The bundled
            windows always need the whole window inside one of them.

        Returns
        -------
        tuple of np.ndarray
            ``reasons`` (object array: ``""``, ``contig_not_in_fasta``, ``mostly_off_contig``,
            ``off_contig`` or ``outside_bundled_windows``) and ``padded`` (bool).
        """
        chroms = np.asarray(chroms, dtype=object)
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        reasons = np.full(len(chroms), "", dtype=object)
        padded = np.zeros(len(chroms), dtype=bool)
        if self.lengths is None:
            inside = np.zeros(len(chroms), dtype=bool)
            for _split, w_chrom, w_start, w_end, _i in reference.window_table():
                inside |= (chroms == w_chrom) & (starts >= w_start) & (ends <= w_end)
            reasons[~inside] = "outside_bundled_windows"
            return reasons, padded
        length = np.array([self.lengths.get(c, -1) for c in chroms], dtype=np.int64)
        missing = length < 0
        on_contig = np.minimum(ends, length) - np.maximum(starts, 0)
        if allow_padding:
            bad = on_contig < (ends - starts) // 2
            padded = ~missing & ~bad & (on_contig < ends - starts)
            reasons[bad] = "mostly_off_contig"
        else:
            reasons[(starts < 0) | (ends > length)] = "off_contig"
        reasons[missing] = "contig_not_in_fasta"
        return reasons, padded


def fasta_source(fasta: str | os.PathLike, field: str = "--reference-fasta") -> SequenceSource:
    """A :class:`SequenceSource` over an indexed FASTA (``reference.open_fasta``; bgzip works).

    Windows running past a contig end are N-padded (``reference.fetch_codes``).
    """
    genome = reference.open_fasta(fasta, field=field)
    lengths = {name: len(genome[name]) for name in genome.keys()}

    def read_codes(chrom: str, start: int, end: int) -> np.ndarray:
        return reference.fetch_codes(chrom, start, end, fasta=genome)

    return SequenceSource(Path(str(fasta)).name, read_codes, lengths)


def bundled_source() -> SequenceSource:
    """A :class:`SequenceSource` over the 65 bundled 131-kb hg38 windows (no FASTA)."""

    def read_codes(chrom: str, start: int, end: int) -> np.ndarray:
        return reference.fetch_codes(chrom, start, end, fasta=None)

    return SequenceSource("bundled hg38 windows", read_codes, None)


def sequence_source(fasta: str | os.PathLike | None = None) -> SequenceSource:
    """The FASTA's source, or the bundled windows' when ``fasta`` is None or ``"bundled"``."""
    return bundled_source() if fasta in (None, "bundled") else fasta_source(fasta)


# --- the peak set ------------------------------------------------------------------------------


@dataclass
class PeakSet:
    """Peak and matched-flank windows at a model's geometry (build with :func:`peak_set_for`).

    Attributes
    ----------
    name
        What the set is (for the report).
    geometry
        The model's :class:`~genocl_plugin.data.reference.Geometry`.
    windows
        One row per window: ``chrom``, ``start`` (input start, bp), ``centre`` (summit or flank
        centre), ``kind`` (``peak`` / ``flank``), ``peak`` (row of the peak table it comes from),
        ``signal`` (signalValue of peaks; NaN for flanks and BED peaks). Peaks first.
    read_codes
        ``read_codes(chrom, start, end) -> uint8 codes``.
    positions
        ``(first, stop)`` output positions scored (within ``half_width`` of the centre).
    track_names
        The model's reference outputs (summed into the signal).
    summary
        Counts and settings for metrics.json (peaks in the file, used, skipped by reason, ...).
    """

    name: str
    geometry: reference.Geometry
    windows: pd.DataFrame
    read_codes: Callable[[str, int, int], np.ndarray]
    positions: tuple[int, int]
    track_names: list[str]
    summary: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def is_peak(self) -> np.ndarray:
        """Bool mask of the peak windows."""
        return (self.windows["kind"] == "peak").to_numpy()

    @property
    def profile(self) -> bool:
        """Whether the model is a base-pair profile model (1-bp outputs on two strands)."""
        return self.geometry.bin_size == 1 and len(self.track_names) == 2

    def one_hot(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """(k, 4, seq_len) float32 one-hot inputs of windows ``idx``, and each window's fraction of N."""
        table, length = self.windows, self.geometry.seq_len
        codes = np.stack([self.read_codes(str(table["chrom"].iat[i]), int(table["start"].iat[i]),
                                          int(table["start"].iat[i]) + length) for i in np.atleast_1d(idx)])
        return reference.codes_to_one_hot(codes), (codes == 4).mean(1)


def scored_positions(geometry: reference.Geometry, half_width: int | None = None) -> tuple[int, int]:
    """Output positions ``[first, stop)`` overlapping ``centre ± half_width`` bp (None: all of them).

    Raises
    ------
    GenoclInputError
        ``half_width`` is not positive, or no output position lies that close to the centre.
    """
    if half_width is None:
        return 0, geometry.n_out
    if half_width <= 0:
        raise input_error("peaks", "half_width", f"{half_width} bp", "pass a positive number of bp")
    centre = geometry.seq_len // 2
    lo = geometry.offset + np.arange(geometry.n_out) * geometry.bin_size
    keep = np.flatnonzero((lo + geometry.bin_size > centre - half_width) & (lo < centre + half_width))
    if not len(keep):
        raise input_error("peaks", "half_width", f"no output position within {half_width} bp of the window centre",
                          "pass a larger half_width")
    return int(keep[0]), int(keep[-1]) + 1


def overlaps_any(chroms, starts, ends, peaks: pd.DataFrame) -> np.ndarray:
    """Whether each interval ``[start, end)`` overlaps any peak interval of ``peaks``."""
    chroms = np.asarray(chroms, dtype=object)
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    out = np.zeros(len(chroms), dtype=bool)
    for chrom, group in peaks.groupby("chrom", sort=False):
        rows = np.flatnonzero(chroms == chrom)
        if not len(rows):
            continue
        order = np.argsort(group["start"].to_numpy(), kind="stable")
        p_start = group["start"].to_numpy()[order]
        reach = np.maximum.accumulate(group["end"].to_numpy()[order])  # furthest end among peaks so far
        k = np.searchsorted(p_start, ends[rows], side="left")  # peaks starting before each interval's end
        out[rows] = (k > 0) & (reach[np.maximum(k - 1, 0)] > starts[rows])
    return out


def peak_set_for(model, peaks: str | os.PathLike | pd.DataFrame, fasta: str | os.PathLike | None = None,
                 holdout_chroms: list[str] | None = None, max_peaks: int | None = DEFAULT_MAX_PEAKS, seed: int = 0,
                 flank_shift: int | None = None, half_width: int | None = None,
                 seq_len: int | None = None) -> PeakSet:
    """Peak windows and their matched flanks at the model's geometry.

    Parameters
    ----------
    model
        The parent model (its geometry and reference outputs).
    peaks
        A peak file (:func:`read_peaks`) or its table.
    fasta
        Genome FASTA; None or ``"bundled"``: the bundled hg38 windows.
    holdout_chroms
        Score only peaks on these chromosomes (flanks come from the same); None: all peaks.
    max_peaks
        A seeded subset of this many usable peaks (None: all).
    seed
        Seed of the subset.
    flank_shift
        bp between a summit and its flanks' centres (default :data:`FLANK_SHIFT_FACTOR` x input length).
    half_width
        Score output positions within this many bp of the summit (default: the whole output).
    seq_len
        Input length override.

    Returns
    -------
    PeakSet
        Possibly without any window (then ``summary["not_measured"]`` says why).

    Raises
    ------
    GenoclInputError
        A bad peak file or FASTA, held-out chromosomes without peaks, bad ``flank_shift`` / ``half_width``.
    """
    geometry = reference.Geometry.of(model, seq_len)
    names = reference.reference_output_names(model)
    label = Path(str(peaks)).name if not isinstance(peaks, pd.DataFrame) else "peaks"
    table = peaks if isinstance(peaks, pd.DataFrame) else read_peaks(peaks)
    chosen = select_holdout(table, holdout_chroms, label)
    source = sequence_source(fasta)
    length = geometry.seq_len
    shift = int(flank_shift if flank_shift is not None else FLANK_SHIFT_FACTOR * length)
    if shift <= 0:
        raise input_error("peaks", "flank_shift", f"{shift} bp", "pass a positive distance in bp")
    first, stop = scored_positions(geometry, half_width)
    span_lo = geometry.offset + first * geometry.bin_size  # scored bp, relative to the input start
    span_hi = geometry.offset + stop * geometry.bin_size

    summits = chosen["summit"].to_numpy(np.int64)
    starts = summits - length // 2
    reasons, padded = source.check(chosen["chrom"].to_numpy(), starts, starts + length, allow_padding=True)
    usable = np.flatnonzero(reasons == "")
    skipped = {f"peak_{k}": int(v) for k, v in zip(*np.unique(reasons[reasons != ""], return_counts=True),
                                                     strict=True)}
    if max_peaks and len(usable) > max_peaks:
        usable = np.sort(np.random.default_rng(seed).choice(usable, max_peaks, replace=False))
    peak_rows = chosen.iloc[usable]
    windows = pd.DataFrame({"chrom": peak_rows["chrom"].to_numpy(), "start": starts[usable],
                            "centre": summits[usable], "kind": "peak", "peak": peak_rows.index.to_numpy(),
                            "signal": peak_rows["signal"].to_numpy(float)})
    flanks = pd.concat([windows.assign(centre=windows["centre"] + sign * shift, start=windows["start"] + sign * shift,
                                       kind="flank", signal=np.nan) for sign in (-1, 1)], ignore_index=True)
    flanks = flanks.drop_duplicates(["chrom", "start"]).reset_index(drop=True)
    f_reason, _ = source.check(flanks["chrom"].to_numpy(), flanks["start"].to_numpy(),
                               flanks["start"].to_numpy() + length, allow_padding=False)
    hits = overlaps_any(flanks["chrom"].to_numpy(), flanks["start"].to_numpy() + span_lo,
                        flanks["start"].to_numpy() + span_hi, table)
    f_reason[(f_reason == "") & hits] = "overlaps_peak"
    for reason, count in zip(*np.unique(f_reason[f_reason != ""], return_counts=True), strict=True):
        skipped[f"flank_{reason}"] = int(count)
    flanks = flanks[f_reason == ""]
    all_windows = pd.concat([windows, flanks], ignore_index=True)
    summary = {
        "n_peaks_in_file": int(len(table)), "n_duplicates_dropped": int(table.attrs.get("n_duplicates", 0)),
        "n_peaks_held_out": int(len(chosen)), "n_peaks_usable": int((reasons == "").sum()),
        "n_peaks_padded": int(padded[usable].sum()), "max_peaks": max_peaks, "seed": seed,
        "flank_shift": shift, "scored_bp": int(span_hi - span_lo), "seq_len": length,
        "sequence": source.name, "skipped": skipped,
    }
    if not len(windows):
        reasons_text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) or "none"
        fix = ("pass --reference-fasta GENOME.fa of the peaks' genome" if source.lengths is None
               else "use peaks on contigs of --reference-fasta, away from contig ends")
        summary["not_measured"] = f"no peak window of {length:,} bp can be read (skipped: {reasons_text}); {fix}"
    return PeakSet(f"{label} on {source.name}", geometry, all_windows, source.read_codes, (first, stop), names,
                   summary)


def select_holdout(table: pd.DataFrame, holdout_chroms: list[str] | None, label: str = "peaks") -> pd.DataFrame:
    """The peaks on ``holdout_chroms`` (all peaks when None or empty).

    Raises
    ------
    GenoclInputError
        No peak lies on those chromosomes.
    """
    if not holdout_chroms:
        return table
    chosen = table[table["chrom"].isin(list(holdout_chroms))]
    if not len(chosen):
        present = ", ".join(list(dict.fromkeys(table["chrom"]))[:4])
        raise input_error("--reference-holdout-chroms", ",".join(holdout_chroms),
                          f"no peak of {label} lies on these chromosomes (the file has {present}, ...)",
                          "name chromosomes present in the peak file")
    return chosen


# --- scoring -------------------------------------------------------------------------------------


def auroc(positive, negative) -> float:
    """Area under the ROC curve of ``positive`` vs ``negative`` scores (Mann-Whitney U / n+ n-).

    Ties count one half; non-finite scores are left out. NaN when either side is empty.
    """
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not len(pos) or not len(neg):
        return float("nan")
    from scipy.stats import rankdata  # average ranks for ties, as evaluate.spearman uses

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def _pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _log_signal(log_cov: np.ndarray, positions: tuple[int, int]) -> np.ndarray:
    """log(sum of exp(log coverage)) over tracks and the scored positions, per window (float64)."""
    part = log_cov[:, :, positions[0] : positions[1]].astype(np.float64).reshape(len(log_cov), -1)
    top = part.max(1, keepdims=True)
    return (top + np.log(np.exp(part - top).sum(1, keepdims=True)))[:, 0]


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson of each row of x with the same row of y (k, d) -> (k,), NaN for constant rows."""
    x = x.astype(np.float64) - x.mean(1, keepdims=True)
    y = y.astype(np.float64) - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(1) / den, np.nan)


def _batches(peak_set: PeakSet, batch_size: int, progress: bool, description: str):
    n = len(peak_set)
    starts = progress_iter(range(0, n, batch_size), total=n, description=description, unit="window",
                           count=lambda start: min(batch_size, n - start), enabled=progress)
    for start in starts:
        idx = np.arange(start, min(start + batch_size, len(peak_set)))
        x, n_fraction = peak_set.one_hot(idx)
        yield idx, x, n_fraction <= MAX_N_FRACTION


def _log_coverage(model, x: np.ndarray, n_ref: int, batch_size: int) -> np.ndarray:
    from genocl_plugin.evaluation.predict import predict

    return predict(model, x, batch_size=batch_size, logits=True)[:, :n_ref]


def peak_predictions(model, peak_set: PeakSet, batch_size: int = 16, progress: bool = True) -> np.ndarray:
    """Predicted log signal of every window of ``peak_set`` (NaN for windows more than half N).

    Two models' values over one set give their drift (:func:`peak_scores` with ``parent``).
    """
    out = np.full(len(peak_set), np.nan)
    n_ref = len(peak_set.track_names)
    for idx, x, ok in _batches(peak_set, batch_size, progress, "scoring peaks"):
        signal = _log_signal(_log_coverage(model, x, n_ref, batch_size), peak_set.positions)
        out[idx[ok]] = signal[ok]
    return out


def peak_scores(signal: np.ndarray, peak_set: PeakSet, parent: np.ndarray | None = None) -> dict:
    """AUROC (peaks vs flanks) and signal Pearson (peaks vs log signalValue) of per-window log signals.

    With ``parent`` (the parent model's values on the same set), also ``drift_counts_pearson``.
    """
    signal = np.asarray(signal, dtype=np.float64)
    is_peak = peak_set.is_peak
    value = peak_set.windows["signal"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_value = np.where(value > 0, np.log(value), np.nan)
    has_value = is_peak & np.isfinite(log_value) & np.isfinite(signal)
    out = {"auroc": auroc(signal[is_peak], signal[~is_peak]),
           "signal_pearson": _pearson(signal[has_value], log_value[has_value]),
           "n_peaks": int((is_peak & np.isfinite(signal)).sum()),
           "n_flanks": int((~is_peak & np.isfinite(signal)).sum()), "n_peaks_with_signal": int(has_value.sum())}
    if parent is not None:
        out["drift_counts_pearson"] = _pearson(parent, signal)
    return out


def peak_retention(base_model, new_model, peak_set: PeakSet, batch_size: int = 16, progress: bool = True) -> dict:
    """Peak-vs-flank AUROC and signal Pearson before and after an update, and the drift from the parent.

    Both models run on each batch of windows in turn (streamed: only per-window numbers are kept).

    Returns
    -------
    dict
        ``auroc_before`` / ``auroc_after``, ``signal_pearson_before`` / ``signal_pearson_after``
        (Pearson of the peaks' predicted log signal with log signalValue; NaN for BED peaks),
        ``drift_counts_pearson`` (Pearson of the updated vs parent predicted log signal over peaks
        and flanks), ``drift_profile_pearson`` (mean over windows of the per-window Pearson of the
        updated vs parent log profile over the whole output; None unless the model is a 1-bp,
        two-strand profile model), ``n_peaks``, ``n_flanks``, ``n_peaks_with_signal``,
        ``skipped`` (windows left out, by reason), the set's summary and ``per_window`` (a
        DataFrame: chrom, start, end, kind, signal_value, pred_before, pred_after[,
        profile_drift_pearson]).
    """
    n = len(peak_set)
    before, after = np.full(n, np.nan), np.full(n, np.nan)
    profile = np.full(n, np.nan) if peak_set.profile else None
    n_ref = len(peak_set.track_names)
    for idx, x, ok in _batches(peak_set, batch_size, progress, "retention on peaks and flanks"):
        base = _log_coverage(base_model, x, n_ref, batch_size)
        new = _log_coverage(new_model, x, n_ref, batch_size)
        before[idx[ok]] = _log_signal(base, peak_set.positions)[ok]
        after[idx[ok]] = _log_signal(new, peak_set.positions)[ok]
        if profile is not None:
            profile[idx[ok]] = _row_pearson(base.reshape(len(base), -1), new.reshape(len(new), -1))[ok]
    scores_before, scores_after = peak_scores(before, peak_set), peak_scores(after, peak_set, parent=before)
    skipped = dict(peak_set.summary.get("skipped", {}))
    gapped = np.isnan(before)
    for kind, mask in (("peak", peak_set.is_peak), ("flank", ~peak_set.is_peak)):
        if (gapped & mask).any():
            skipped[f"{kind}_mostly_n"] = int((gapped & mask).sum())
    table = peak_set.windows
    per_window = pd.DataFrame({"chrom": table["chrom"], "start": table["start"],
                               "end": table["start"] + peak_set.geometry.seq_len, "kind": table["kind"],
                               "signal_value": table["signal"], "pred_before": before, "pred_after": after})
    if profile is not None:
        per_window["profile_drift_pearson"] = profile
    return {
        "auroc_before": scores_before["auroc"], "auroc_after": scores_after["auroc"],
        "signal_pearson_before": scores_before["signal_pearson"],
        "signal_pearson_after": scores_after["signal_pearson"],
        "drift_counts_pearson": scores_after["drift_counts_pearson"],
        "drift_profile_pearson": (float(np.nanmean(profile)) if profile is not None and np.isfinite(profile).any()
                                  else None),
        "n_peaks": scores_after["n_peaks"], "n_flanks": scores_after["n_flanks"],
        "n_peaks_with_signal": scores_after["n_peaks_with_signal"],
        **{k: v for k, v in peak_set.summary.items() if k != "skipped"}, "skipped": skipped,
        "name": peak_set.name, "per_window": per_window,
    }


# --- genocl update / genocl evaluate -------------------------------------------------------------


def check_peaks_option(peaks: str | os.PathLike | None, fasta: str | os.PathLike | None = None,
                       holdout_chroms: list[str] | None = None) -> None:
    """Fail fast on a bad ``--reference-peaks`` (before any model loads).

    Reads the file (it exists, is a readable peak file, has a peak), checks that the held-out
    chromosomes have peaks and that the FASTA opens and holds at least one of their chromosomes.

    Raises
    ------
    GenoclInputError
        Any of those checks fails.
    """
    if peaks is None:
        return
    table = select_holdout(read_peaks(peaks), holdout_chroms, Path(str(peaks)).name)
    if fasta not in (None, "bundled"):
        lengths = fasta_source(fasta).lengths or {}
        if not table["chrom"].isin(list(lengths)).any():
            raise input_error(peaks, "chromosomes", f"none of {', '.join(list(dict.fromkeys(table['chrom']))[:3])} "
                              f"is a contig of {Path(str(fasta)).name}",
                              "pass the FASTA of the peaks' genome (same chromosome names)")


def peak_source(config) -> dict:
    """What an update's peak retention was measured on (stored in metrics.json, re-used by evaluate)."""
    fasta = config.reference_fasta
    return {"path": os.path.abspath(config.reference_peaks),
            "fasta": os.path.abspath(fasta) if fasta not in (None, "bundled") else fasta,
            "holdout_chroms": config.reference_holdout_chroms, "max_peaks": DEFAULT_MAX_PEAKS, "seed": config.seed}


def peak_set_from_source(model, source: dict) -> PeakSet:
    """The :class:`PeakSet` of a ``peaks.source`` entry of metrics.json, at ``model``'s geometry."""
    return peak_set_for(model, source["path"], fasta=source.get("fasta"), holdout_chroms=source.get("holdout_chroms"),
                        max_peaks=source.get("max_peaks", DEFAULT_MAX_PEAKS), seed=source.get("seed", 0),
                        flank_shift=source.get("flank_shift"), half_width=source.get("half_width"))


def update_report(config, base_model, new_model, run_dir: str | os.PathLike, batch_size: int = 16) -> dict:
    """Peak retention of one update: metrics for metrics.json, ``peaks.png`` and ``peaks_windows.tsv``.

    Parameters
    ----------
    config
        The :class:`~genocl_plugin.config.UpdateConfig` (``reference_peaks``, ``reference_fasta``,
        ``reference_holdout_chroms``, ``seed``).
    base_model, new_model
        The parent and the updated model.
    run_dir
        Where the PNG and the per-window table go.
    batch_size
        Windows per forward pass.

    Returns
    -------
    dict
        :func:`peak_retention`'s numbers (without ``per_window``) and ``source``; when no window
        could be read, ``not_measured`` says why.
    """
    source = peak_source(config)
    peak_set = peak_set_from_source(base_model, source)
    if "not_measured" in peak_set.summary:
        return {"source": source, **peak_set.summary}
    result = peak_retention(base_model, new_model, peak_set, batch_size=batch_size)
    per_window = result.pop("per_window")
    result["source"] = {**source, "flank_shift": result["flank_shift"]}
    run_dir = Path(run_dir)
    per_window.to_csv(run_dir / "peaks_windows.tsv", sep="\t", index=False, float_format="%.5f", na_rep="nan")
    plot_peaks(result, per_window, run_dir / "peaks.png")
    return result


def format_peaks(result: dict) -> list[str]:
    """The printed report's peak lines (AUROC, signal Pearson, drift)."""
    if result.get("not_measured"):
        return [f"note: peak retention not measured: {result['not_measured']}"]

    def num(value) -> str:
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"

    held = result.get("source", {}).get("holdout_chroms")
    lines = [f"peaks: {result['name']}: {result['n_peaks']} peaks"
             + (f" on {','.join(held)}" if held else "")
             + f", {result['n_flanks']} flanks {result['flank_shift']:,} bp away"
             + f" (signal over {result['scored_bp']:,} bp)",
             f"  peak vs flank AUROC                    {num(result['auroc_before'])} -> {num(result['auroc_after'])}",
             f"  signal Pearson (vs log signalValue)    {num(result['signal_pearson_before'])} -> "
             f"{num(result['signal_pearson_after'])}"
             + ("  (BED: no signalValue)" if not result.get("n_peaks_with_signal") else ""),
             f"  drift from parent: counts Pearson {num(result['drift_counts_pearson'])}"
             + (f", profile Pearson {num(result['drift_profile_pearson'])}"
                if result.get("drift_profile_pearson") is not None else "")]
    return lines


def plot_peaks(result: dict, per_window: pd.DataFrame, path: str | os.PathLike) -> Path:
    """PNG: AUROC and signal Pearson before / after (bars), predicted signal before vs after (scatter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(10, 4))
    labels = ["AUROC\npeak vs flank", "signal Pearson\nvs log signalValue"]
    x = np.arange(len(labels))
    for k, (when, color) in enumerate((("before", "grey"), ("after", "tab:blue"))):
        values = [result[f"auroc_{when}"], result[f"signal_pearson_{when}"]]
        bars.bar(x + (k - 0.5) * 0.38, np.nan_to_num(np.asarray(values, dtype=float)), width=0.38, color=color,
                 label=when)
    bars.set_xticks(x, labels)
    bars.axhline(0.5, color="grey", lw=0.6, ls=":")
    bars.axhline(0, color="k", lw=0.5)
    bars.set_ylim(min(-0.05, bars.get_ylim()[0]), 1.0)
    bars.legend(fontsize=8)
    bars.set_title(f"{result['n_peaks']} peaks, {result['n_flanks']} flanks")
    for kind, color in (("flank", "tab:grey"), ("peak", "tab:red")):
        rows = per_window[per_window["kind"] == kind]
        scatter.scatter(rows["pred_before"], rows["pred_after"], s=5, alpha=0.5, color=color, label=kind)
    finite = per_window[["pred_before", "pred_after"]].to_numpy(float)
    finite = finite[np.isfinite(finite).all(1)]
    if len(finite):
        lo, hi = float(finite.min()), float(finite.max())
        scatter.plot([lo, hi], [lo, hi], color="k", lw=0.6)
    scatter.set_xlabel("predicted log signal, parent")
    scatter.set_ylabel("predicted log signal, updated")
    drift = result.get("drift_counts_pearson")
    scatter.set_title(f"drift: counts r = {drift:.3f}" if drift is not None and np.isfinite(drift) else "drift")
    scatter.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
