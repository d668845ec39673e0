"""--reference-peaks: reading peak files, matched flanks, AUROC / signal Pearson / drift, the CLI."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.evaluation import peaks

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CTCF_PEAKS = SHARED / "tracks_peaks" / "bpnetlite_ENCSR000AKO.narrowPeak.gz"
GENOME_1M = SHARED / "genome" / "hg38_1m.fa.gz"
BUNDLED_STRANDS = ["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"]


def narrowpeak(rows) -> str:
    """narrowPeak text from (chrom, start, end, signal, summit_offset) rows."""
    return "".join(f"{c}\t{s}\t{e}\tp{i}\t1000\t.\t{v}\t-1\t-1\t{o}\n" for i, (c, s, e, v, o) in enumerate(rows))


def bundled_peak_rows(n_windows: int = 8, offsets=(40_000, 65_000, 90_000)) -> list[tuple]:
    """Peaks well inside the first bundled windows (flanks of a 2,176-bp model stay inside them)."""
    rows = []
    for k, (_split, chrom, w_start, _w_end, _i) in enumerate(reference.window_table()[:n_windows]):
        for j, off in enumerate(offsets):
            start = w_start + off - 200
            rows.append((chrom, start, start + 400, 10.0 + 3 * k + j, 150 + 20 * j))
    return rows


# --------------------------------------------------------------------------- reading
def test_read_narrowpeak_summits_signal_and_duplicates(tmp_path):
    path = tmp_path / "p.narrowPeak"
    path.write_text("track name=peaks\n# a comment\n\n" + narrowpeak([
        ("chr1", 1000, 1400, 5.5, 150),   # summit = start + offset
        ("chr1", 2000, 2400, 7.0, -1),    # no summit: centre
        ("chr1", 3000, 3120, 2.0, 120),   # offset == length (seen in ENCODE files): the end
        ("chr2", 1000, 1400, 9.0, 150),   # same summit as row 0 but another chromosome
        ("chr1", 900, 1500, 1.0, 250),    # same summit as row 0, weaker: dropped
    ]))
    table = peaks.read_peaks(path)
    assert list(table.columns) == peaks.PEAK_COLUMNS
    assert table["chrom"].tolist() == ["chr1", "chr1", "chr1", "chr2"]
    assert table["summit"].tolist() == [1000 + 150, (2000 + 2400) // 2, 3120, 1000 + 150]
    assert table["signal"].tolist() == [5.5, 7.0, 2.0, 9.0]
    assert table.attrs["n_duplicates"] == 1


def test_read_bed_plain_gzip_and_misnamed_gz_agree(tmp_path):
    text = "chr1\t100\t300\nchr1 500 900\nchr2\t10\t20\tname\t0\t+\n"
    (tmp_path / "plain.bed").write_text(text)
    (tmp_path / "real.bed.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "plain_named.bed.gz").write_text(text)   # .gz by name only
    (tmp_path / "gz_unnamed.bed").write_bytes(gzip.compress(text.encode()))  # gzip without the suffix
    tables = [peaks.read_peaks(tmp_path / n) for n in ("plain.bed", "real.bed.gz", "plain_named.bed.gz",
                                                       "gz_unnamed.bed")]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])
    first = tables[0]
    assert first[["chrom", "start", "end"]].values.tolist() == [["chr1", 100, 300], ["chr1", 500, 900],
                                                                ["chr2", 10, 20]]
    assert first["summit"].tolist() == [200, 700, 15]
    assert first["signal"].isna().all()   # BED: no signalValue


@pytest.mark.parametrize("content, expected", [
    ("chr1\tabc\t100\n", "not integers"),
    ("chrom\tstart\tend\nchr1\t1\t5\n", "line 1"),
    ("chr1\t100\n", "fewer than 3 columns"),
    ("chr1\t500\t100\n", "empty or negative"),
    ("", "no peaks"),
    ("# only a header\ntrack name=x\n", "no peaks"),
    ("chr1\t100\t200\t.\t0\t.\tstrong\t-1\t-1\t50\n", "signalValue"),
    ("chr1\t100\t200\t.\t0\t.\t3.0\t-1\t-1\t500\n", "outside the 100-bp peak"),
    (b"\x00\xff\xfe\x80" * 50, "not a text file"),
    (gzip.compress(b"chr1\t1\t2\n" * 200)[:25], "damaged gzip"),
])
def test_read_peaks_refuses_bad_files_in_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.bed.gz"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(GenoclInputError) as err:
        peaks.read_peaks(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "; fix: " in message and "\n" not in message


def test_missing_peak_file(tmp_path):
    with pytest.raises(GenoclInputError, match="file not found"):
        peaks.read_peaks(tmp_path / "none.narrowPeak")


# --------------------------------------------------------------------------- the CLI refuses bad files
def _bad_cli_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "coords.bed").write_text("chr1\tstart\t100\n")
    (tmp / "empty.bed").write_text("")
    (tmp / "binary.bed.gz").write_bytes(gzip.compress(b"chr1\t1\t2\n" * 100)[:20])
    (tmp / "ok.bed").write_text("chr1\t100\t200\n")
    fasta = tmp / "g.fa"
    shutil.copyfile(DATA / "hg38_chr1_1-30000.fa", fasta)
    shutil.copyfile(DATA / "hg38_chr1_1-30000.fa.fai", tmp / "g.fa.fai")
    (tmp / "chrz.bed").write_text("chrZ\t100\t200\n")
    return {
        "missing": (["--reference-peaks", str(tmp / "none.bed")], "file not found"),
        "non-numeric": (["--reference-peaks", str(tmp / "coords.bed")], "not integers"),
        "empty": (["--reference-peaks", str(tmp / "empty.bed")], "no peaks"),
        "damaged gzip": (["--reference-peaks", str(tmp / "binary.bed.gz")], "damaged gzip"),
        "holdout without peaks": (["--reference-peaks", str(tmp / "ok.bed"), "--reference-holdout-chroms", "chr9"],
                                  "no peak of ok.bed"),
        "chromosome not in FASTA": (["--reference-peaks", str(tmp / "chrz.bed"), "--reference-fasta", str(fasta)],
                                    "is a contig of g.fa"),
    }


@pytest.mark.parametrize("case", ["missing", "non-numeric", "empty", "damaged gzip", "holdout without peaks",
                                  "chromosome not in FASTA"])
def test_update_refuses_bad_peak_files_before_loading_the_model(tmp_path, case, monkeypatch):
    from genocl_plugin import models
    from genocl_plugin.training import update

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded before the peak file was checked")

    monkeypatch.setattr(models, "load_model", no_load)
    monkeypatch.setattr(update, "load_model", no_load)
    tmp = tmp_path / "in"
    tmp.mkdir()
    argv, expected = _bad_cli_cases(tmp)[case]
    before = sorted(p.name for p in tmp.iterdir())
    result = CliRunner().invoke(main, ["update", "--model", "procapnet", *argv, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "; fix: " in lines[0], lines
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (tmp_path / "run").exists() and sorted(p.name for p in tmp.iterdir()) == before


# --------------------------------------------------------------------------- helpers
def test_auroc_hand_cases():
    assert peaks.auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert peaks.auroc([0, 1, 2], [3, 4, 5]) == 0.0
    assert peaks.auroc([1, 1, 1], [1, 1]) == 0.5
    # pairs (pos, neg): (1,2) 0, (1,0) 1, (2,2) 0.5, (2,0) 1 -> 2.5 / 4
    assert peaks.auroc([1, 2], [2, 0]) == pytest.approx(0.625)
    assert np.isnan(peaks.auroc([1.0], []))
    assert peaks.auroc([1, np.nan, 3], [2]) == 0.5   # non-finite scores are left out


def test_auroc_equals_pair_counting():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 55).astype(float)   # many ties
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert peaks.auroc(pos, neg) == pytest.approx(pairs, abs=1e-12)


def test_overlaps_any_and_scored_positions():
    table = pd.DataFrame({"chrom": ["c1", "c1", "c2"], "start": [100, 150, 0], "end": [1000, 200, 10]})
    hits = peaks.overlaps_any(["c1", "c1", "c1", "c2", "c3", "c1"], [0, 999, 1000, 10, 0, 50],
                              [100, 1005, 1100, 20, 5, 101], table)
    assert hits.tolist() == [False, True, False, False, False, True]
    geometry = reference.Geometry(seq_len=100, n_out=10, bin_size=4, offset=30)  # output 30..70, centre 50
    assert peaks.scored_positions(geometry) == (0, 10)
    assert peaks.scored_positions(geometry, half_width=4) == (4, 6)   # bins 46-50 and 50-54
    assert peaks.scored_positions(geometry, half_width=5) == (3, 7)   # 45 and 55 reach into bins 3 and 6
    with pytest.raises(GenoclInputError):
        peaks.scored_positions(geometry, half_width=0)


def test_fasta_source_pads_near_contig_ends_and_skips_the_rest(tmp_path):
    shutil.copyfile(DATA / "hg38_chr1_1-30000.fa", tmp_path / "g.fa")
    shutil.copyfile(DATA / "hg38_chr1_1-30000.fa.fai", tmp_path / "g.fa.fai")
    source = peaks.fasta_source(tmp_path / "g.fa")
    assert source.lengths == {"chr1": 30_000}
    chroms, starts = ["chr1", "chr1", "chr1", "chrZ"], np.array([20_000, 29_500, 29_950, 100])
    reasons, padded = source.check(chroms, starts, starts + 200, allow_padding=True)
    assert reasons.tolist() == ["", "", "mostly_off_contig", "contig_not_in_fasta"]
    assert padded.tolist() == [False, False, False, False]
    reasons, padded = source.check(chroms, starts, starts + 1000, allow_padding=True)
    assert reasons.tolist() == ["", "", "mostly_off_contig", "contig_not_in_fasta"] and padded[1]
    reasons, _ = source.check(chroms, starts, starts + 1000, allow_padding=False)   # flanks: whole window
    assert reasons.tolist() == ["", "off_contig", "off_contig", "contig_not_in_fasta"]
    codes = source.read_codes("chr1", 29_500, 30_500)
    assert (codes[500:] == 4).all() and (codes[:500] < 4).any()


# --------------------------------------------------------------------------- end to end on the bundled mini
@pytest.fixture(scope="module")
def procapnet_mini():
    from genocl_plugin.models import load_model

    return load_model("procapnet")


@pytest.fixture()
def bundled_peaks(tmp_path) -> Path:
    path = tmp_path / "peaks.narrowPeak"
    path.write_text(narrowpeak(bundled_peak_rows()))
    return path


def test_peak_set_windows_and_flanks(procapnet_mini, bundled_peaks):
    peak_set = peaks.peak_set_for(procapnet_mini, bundled_peaks)
    geometry, table = peak_set.geometry, peak_set.windows
    shift = peaks.FLANK_SHIFT_FACTOR * geometry.seq_len
    summits = peaks.read_peaks(bundled_peaks)["summit"].to_numpy()
    is_peak = peak_set.is_peak
    assert is_peak.sum() == len(summits) and (~is_peak).sum() == 2 * len(summits)   # all flanks fit here
    # each window is centred on a summit or a summit +- the shift, and fully inside a bundled window
    np.testing.assert_array_equal(table["start"] + geometry.seq_len // 2, table["centre"])
    np.testing.assert_array_equal(np.sort(table["centre"][is_peak]), np.sort(summits))
    offsets = table["centre"][~is_peak].to_numpy()[:, None] - summits[None, :]
    assert (np.abs(offsets) == shift).any(1).all()
    for chrom, start in zip(table["chrom"], table["start"], strict=True):
        assert reference.find_window(chrom, int(start), int(start) + geometry.seq_len) is not None
    assert peak_set.summary["skipped"] == {} and peak_set.profile


def test_flanks_on_a_peak_or_off_the_windows_are_dropped(procapnet_mini, tmp_path):
    _split, chrom, w_start, _w_end, _i = reference.window_table()[0]
    shift = peaks.FLANK_SHIFT_FACTOR * procapnet_mini.seq_len
    a = w_start + 60_000
    path = tmp_path / "p.bed"
    # B sits on A's right flank; C is so close to the window start that its left flank leaves it
    path.write_text(f"{chrom}\t{a - 100}\t{a + 100}\n{chrom}\t{a + shift - 100}\t{a + shift + 100}\n"
                    f"{chrom}\t{w_start + 9_000}\t{w_start + 9_400}\n")
    peak_set = peaks.peak_set_for(procapnet_mini, path)
    skipped = peak_set.summary["skipped"]
    assert skipped["flank_overlaps_peak"] == 2   # A's right flank is on B, B's left flank on A
    assert skipped["flank_outside_bundled_windows"] == 1   # C's left flank
    flanks = peak_set.windows[~peak_set.is_peak]
    assert len(flanks) == 3 and a + shift not in flanks["centre"].tolist()


def test_holdout_chroms_and_max_peaks(procapnet_mini, bundled_peaks):
    table = peaks.read_peaks(bundled_peaks)
    held = table["chrom"].iloc[0]
    peak_set = peaks.peak_set_for(procapnet_mini, bundled_peaks, holdout_chroms=[held])
    assert set(peak_set.windows["chrom"]) == {held}
    assert peak_set.is_peak.sum() == (table["chrom"] == held).sum()
    with pytest.raises(GenoclInputError, match="no peak of"):
        peaks.peak_set_for(procapnet_mini, bundled_peaks, holdout_chroms=["chrY_nothing"])
    small = peaks.peak_set_for(procapnet_mini, bundled_peaks, max_peaks=5, seed=1)
    again = peaks.peak_set_for(procapnet_mini, bundled_peaks, max_peaks=5, seed=1)
    assert small.is_peak.sum() == 5 and small.windows.equals(again.windows)


def test_peaks_outside_the_bundled_windows_are_not_measured(procapnet_mini, tmp_path):
    path = tmp_path / "far.bed"
    path.write_text("chr1\t5000000\t5000400\n")
    peak_set = peaks.peak_set_for(procapnet_mini, path)
    assert len(peak_set) == 0 and "--reference-fasta" in peak_set.summary["not_measured"]
    assert peak_set.summary["skipped"] == {"peak_outside_bundled_windows": 1}


def test_peak_retention_same_model_and_perturbed(procapnet_mini, bundled_peaks):
    peak_set = peaks.peak_set_for(procapnet_mini, bundled_peaks)
    same = peaks.peak_retention(procapnet_mini, procapnet_mini, peak_set, batch_size=16, progress=False)
    per_window = same.pop("per_window")
    assert 0 <= same["auroc_before"] <= 1 and same["auroc_after"] == same["auroc_before"]
    assert same["drift_counts_pearson"] == pytest.approx(1.0, abs=1e-9)
    assert same["drift_profile_pearson"] == pytest.approx(1.0, abs=1e-6)
    assert same["n_peaks"] == 24 and same["n_flanks"] == 48 and same["n_peaks_with_signal"] == 24
    assert np.isfinite(same["signal_pearson_before"])
    json.dumps(same)   # metrics.json-ready
    # the signal is the log of the predicted coverage summed over both strands and the whole output
    x, _ = peak_set.one_hot([0, 30])
    with torch.no_grad():
        log_cov = procapnet_mini(torch.from_numpy(x), logits=True)[:, :2].double()
    np.testing.assert_allclose(per_window["pred_before"].to_numpy()[[0, 30]],
                               torch.logsumexp(log_cov.reshape(2, -1), dim=1).numpy(), rtol=1e-5)
    # AUROC and signal Pearson follow from the per-window values
    is_peak = per_window["kind"].to_numpy() == "peak"
    pred = per_window["pred_before"].to_numpy()
    assert same["auroc_before"] == pytest.approx(peaks.auroc(pred[is_peak], pred[~is_peak]))
    assert same["signal_pearson_before"] == pytest.approx(
        np.corrcoef(pred[is_peak], np.log(per_window["signal_value"].to_numpy()[is_peak]))[0, 1])

    moved = copy.deepcopy(procapnet_mini)
    torch.manual_seed(0)
    with torch.no_grad():
        for param in moved.parameters():
            param.add_(0.05 * torch.randn_like(param))
    drifted = peaks.peak_retention(procapnet_mini, moved, peak_set, batch_size=16, progress=False)
    assert drifted["auroc_before"] == same["auroc_before"]
    assert drifted["drift_counts_pearson"] < 1 and drifted["drift_profile_pearson"] < 1
    assert 0 <= drifted["auroc_after"] <= 1
    lines = peaks.format_peaks({k: v for k, v in drifted.items() if k != "per_window"})
    assert "AUROC" in lines[1] and "profile Pearson" in lines[3]


# --------------------------------------------------------------------------- update and evaluate, end to end
def test_update_and_evaluate_with_reference_peaks(tmp_path):
    from genocl_plugin.evaluation import evaluate as ev
    from genocl_plugin.models import build_model, save_model

    torch.manual_seed(0)
    base = build_model("procapnet", seq_len=800, task_names=BUNDLED_STRANDS,
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    base_dir = save_model(base, tmp_path / "base")
    for name in ("hg38_chr1_1-1000000.fa.gz", "hg38_chr1_1-1000000.fa.gz.fai", "hg38_chr1_1-1000000.fa.gz.gzi"):
        shutil.copyfile(DATA / name, tmp_path / name)
    fasta = tmp_path / "hg38_chr1_1-1000000.fa.gz"
    rows = [("chr1", s, s + 300, float(1 + (s // 25_000) % 7), 120) for s in range(30_000, 980_000, 25_000)]
    rows.append(("chr2", 50_000, 50_300, 3.0, 100))   # another chromosome, not held out
    peak_file = tmp_path / "peaks.narrowPeak.gz"
    peak_file.write_bytes(gzip.compress(narrowpeak(rows).encode()))
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "update", "--model", str(base_dir), "--strategy", "finetune", "--max-train", "16", "--max-eval", "8",
        "--retention-crops", "2", "--lr", "1e-2", "--reference-peaks", str(peak_file),
        "--reference-fasta", str(fasta), "--reference-holdout-chroms", "chr1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "peak vs flank AUROC" in result.output and "drift from parent: counts Pearson" in result.output
    metrics = json.loads((run / "metrics.json").read_text())
    found = metrics["peaks"]
    for key in ("auroc_before", "auroc_after", "signal_pearson_before", "signal_pearson_after",
                "drift_counts_pearson", "drift_profile_pearson", "n_peaks", "n_flanks", "skipped", "source"):
        assert key in found, key
    # every chr1 peak is scored, but for those in an assembly gap of the piece (more than half N)
    assert found["n_peaks"] + found["skipped"].get("peak_mostly_n", 0) == len(rows) - 1
    assert found["n_peaks"] > 20 and found["n_flanks"] > 0
    assert 0 <= found["auroc_after"] <= 1 and found["drift_counts_pearson"] < 1
    assert found["source"]["holdout_chroms"] == ["chr1"] and found["source"]["fasta"] == str(fasta)
    assert metrics["config"]["reference_peaks"] == str(peak_file)
    # the retention windows stayed the bundled ones (the FASTA and held-out chromosomes were the peaks')
    assert metrics["retention"]["reference"]["name"].startswith("bundled hg38 windows")
    assert (run / "peaks.png").stat().st_size > 0
    table = pd.read_csv(run / "peaks_windows.tsv", sep="\t")
    assert set(table["chrom"]) == {"chr1"}
    assert (table["kind"] == "peak").sum() == len(rows) - 1
    assert ((table["kind"] == "peak") & table["pred_after"].notna()).sum() == found["n_peaks"]

    evaluation = ev.evaluate_runs([run], max_crops=2)
    scored = evaluation["runs"][0]["peaks"]
    before, after = scored["models"]
    assert before["drift_counts_pearson"] == pytest.approx(1.0, abs=1e-9)
    assert before["auroc"] == pytest.approx(found["auroc_before"], abs=1e-9)
    assert after["auroc"] == pytest.approx(found["auroc_after"], abs=1e-9)
    assert after["drift_counts_pearson"] == pytest.approx(found["drift_counts_pearson"], abs=1e-6)
    assert "peaks (" in ev.format_evaluation(evaluation)


# --------------------------------------------------------------------------- real data (skipped when absent)
@pytest.mark.skipif(not (CTCF_PEAKS.exists() and GENOME_1M.exists()), reason="../shared/data is not here")
def test_real_ctcf_peaks_on_the_hg38_piece(procapnet_mini, tmp_path):
    table = peaks.read_peaks(CTCF_PEAKS)
    assert len(table) > 50_000 and (table["summit"] >= table["start"]).all()
    assert (table["summit"] <= table["end"]).all() and (table["signal"] > 0).all()
    for suffix in ("", ".fai", ".gzi"):
        shutil.copyfile(f"{GENOME_1M}{suffix}", tmp_path / f"g.fa.gz{suffix}")
    peak_set = peaks.peak_set_for(procapnet_mini, table, fasta=tmp_path / "g.fa.gz", holdout_chroms=["chr1"])
    in_piece = table[(table["chrom"] == "chr1") & (table["summit"] < 1_000_000)]
    assert 0 < peak_set.is_peak.sum() <= len(in_piece)
    assert set(peak_set.windows["chrom"]) == {"chr1"}
    flanks = peak_set.windows[~peak_set.is_peak]
    span = peak_set.geometry.offset, peak_set.geometry.offset + peak_set.geometry.out_span
    assert not peaks.overlaps_any(flanks["chrom"], flanks["start"] + span[0], flanks["start"] + span[1],
                                  table).any()
    result = peaks.peak_retention(procapnet_mini, procapnet_mini, peak_set, progress=False)
    assert 0 <= result["auroc_before"] <= 1 and np.isfinite(result["signal_pearson_before"])
    assert result["drift_counts_pearson"] == pytest.approx(1.0, abs=1e-9)
