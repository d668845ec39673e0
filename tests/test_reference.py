"""The reference set: windows at any model geometry, real tracks from bigWigs, pseudo-targets, retention."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.evaluation import evaluate
from genocl_plugin.models import build_model, save_model

BUNDLED_TRACKS = (0, 30, 60)  # the tracks of tests/data/bundled_tracks (see make_fixtures.py)


def three_track_model(seq_len: int = 2048):
    """A tiny gReLU Enformer whose 3 outputs are named as 3 bundled tracks (32-bp bins)."""
    torch.manual_seed(0)
    names = [reference.track_names()[t] for t in BUNDLED_TRACKS]
    return build_model("enformer", seq_len=seq_len, task_names=names,
                       model_params={"n_tasks": 3})


class GeometryOnly:
    """Stands in for a model where only the geometry matters (no forward pass is made)."""

    def __init__(self, seq_len: int, n_out: int, bin_size: int, n_tracks: int) -> None:
        self.seq_len, self._n_out, self.bin_size = seq_len, n_out, bin_size
        self.task_names = [f"t{i}" for i in range(n_tracks)]

    def output_length(self, seq_len: int) -> int:
        return self._n_out


@pytest.fixture()
def pieces(tmp_path, data_dir):
    """hg38 chr1:1-60,000 + chr2:1-60,000 (real coordinates) and the reference BED, in tmp."""
    fasta = tmp_path / "hg38_pieces.fa"
    shutil.copy(data_dir / "hg38_chr1_chr2_1-60000.fa", fasta)
    return fasta, data_dir / "reference_regions_hg38.bed"


def test_bundled_set_is_the_old_tiling_with_real_tracks():
    """The bundled default cuts exactly the crops (and tracks) the bundled minis always used."""
    model = three_track_model()
    ref = reference.bundled_reference_set(model)
    codes, targets = reference.window_crops("test", 2048, n_bins=64)
    idx = np.arange(ref.size("test"))
    np.testing.assert_array_equal(ref.codes("test", idx), codes)
    np.testing.assert_array_equal(ref.tracks("test", idx), np.moveaxis(targets, -1, 1)[:, list(BUNDLED_TRACKS)])
    assert ref.trainable_tracks and ref.describe()["tracks"] == "real"


def test_bundled_tracks_aggregate_to_coarser_bins():
    """A 128-bp-bin model gets the bundled 32-bp tracks summed in fours (no crash, no NaN)."""
    model = GeometryOnly(4096, 32, 128, 3)
    model.task_names = [reference.track_names()[t] for t in BUNDLED_TRACKS]
    ref = reference.bundled_reference_set(model)
    fine = np.moveaxis(reference.window_crops("valid", 4096, n_bins=128)[1], -1, 1)[:, list(BUNDLED_TRACKS)]
    np.testing.assert_allclose(ref.tracks("valid", np.arange(ref.size("valid"))),
                               fine.reshape(len(fine), 3, 32, 4).sum(-1), rtol=1e-6)


def test_bigwig_tracks_give_the_bundled_retention(data_dir):
    """Real bigWigs cut from the bundled tracks (hg38 coordinates kept) give the same tracks and
    the same retention Pearson as the bundled-window path on the same windows."""
    model = three_track_model()
    bundled = reference.bundled_reference_set(model)
    user = reference.bed_reference_set(model, data_dir / "bundled_tracks" / "crops.bed", fasta="bundled",
                                       tracks=data_dir / "bundled_tracks" / "targets.txt")
    assert user.size("test") == 64 and user.has_tracks and user.track_bin == 32
    idx = np.arange(64)  # the crops of the first two bundled test windows
    np.testing.assert_array_equal(user.codes("test", idx), bundled.codes("test", idx))
    np.testing.assert_allclose(user.tracks("test", idx), bundled.tracks("test", idx), rtol=1e-6, atol=1e-6)
    updated = three_track_model()
    with torch.no_grad():
        for p in updated.parameters():
            p.add_(0.05 * torch.randn_like(p))
    base_u, target_u = evaluate.reference_predictions(model, "test", reference_set=user)
    new_u, _ = evaluate.reference_predictions(updated, "test", reference_set=user)
    # the bundled side on the same 64 crops only (reference_predictions would run all 320)
    target_b = bundled.tracks("test", idx)
    base_b, new_b = (bundled.to_track_bins(evaluate.predict(m, bundled.one_hot("test", idx))) for m in (model, updated))
    ours = evaluate.retention(base_u, new_u, target_u)
    theirs = evaluate.retention(base_b, new_b, target_b)
    for key in ("pearson_before", "pearson_after", "drift_pearson"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-5)
    assert np.isfinite(ours["pearson_after"])


def test_streamed_retention_equals_the_array_formula():
    rng = np.random.default_rng(0)
    base, target = rng.gamma(1.0, 2.0, (6, 4, 20)), rng.gamma(1.0, 2.0, (6, 4, 20))
    new = base * rng.lognormal(0, 0.3, base.shape)
    stats = evaluate.RetentionStats()
    for part in (slice(0, 2), slice(2, 5), slice(5, 6)):
        stats.add(base[part], new[part], target[part])
    streamed = stats.result(["CAGE:a", "CAGE:b", "DNASE:c", "x"])
    whole = evaluate.retention(base, new, target)
    for key in whole:
        assert streamed[key] == pytest.approx(whole[key], rel=1e-9)
    assert set(streamed["groups"]) == {"CAGE", "DNASE", "other"}
    assert streamed["groups"]["CAGE"]["n_tracks"] == 2


def test_bed_windows_at_full_enformer_geometry(tmp_path, data_dir):
    """196,608-bp windows centred on BED regions, N-padded past the contig end, split by the BED."""
    fasta = tmp_path / "chr1.fa.gz"
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(data_dir / f"hg38_chr1_1-140000.fa.gz{suffix}", f"{fasta}{suffix}")
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t60000\t61000\ttrain\nchr1\t70000\t71000\ttest\nchr1\t80000\t81000\tvalid\n"
                   "chrUn\t1\t100\ttrain\n")
    model = GeometryOnly(196_608, 896, 128, 5_313)
    ref = reference.bed_reference_set(model, bed, fasta=fasta)
    assert (ref.size("train"), ref.size("valid"), ref.size("test")) == (1, 1, 1)
    assert ref.describe()["skipped"] == {"contig_not_in_fasta": 1} and ref.describe()["n_padded"] == 3
    codes = ref.codes("test", [0])[0]
    assert codes.shape == (196_608,)
    start = 70_500 - 196_608 // 2  # centred on the region
    assert (codes[: -start] == 4).all()  # before the contig start: N
    genome = reference.open_fasta(fasta)
    np.testing.assert_array_equal(codes[-start + 20_000 : -start + 20_100],
                                  reference.seq_to_codes(str(genome["chr1"][20_000:20_100])))
    assert not ref.has_tracks and ref.geometry.offset == (196_608 - 896 * 128) // 2


def test_holdout_chroms_split(pieces):
    fasta, bed = pieces
    regions = reference.read_bed_regions(bed)
    regions["split"] = ""
    path = fasta.parent / "nosplit.bed"
    regions[["chrom", "start", "end"]].to_csv(path, sep="\t", header=False, index=False)
    model = GeometryOnly(2_114, 1_000, 1, 2)
    ref = reference.bed_reference_set(model, path, fasta=fasta, holdout_chroms=["chr2"])
    assert set(ref.windows["train"]["chrom"]) == {"chr1"}
    assert set(ref.windows["test"]["chrom"]) == set(ref.windows["valid"]["chrom"]) == {"chr2"}
    assert ref.size("valid") + ref.size("test") == 8
    with pytest.raises(GenoclInputError, match="column 4"):
        reference.bed_reference_set(model, path, fasta=fasta)


def test_bed_regions_are_read_by_content_not_name(tmp_path):
    """gzip is told by its magic bytes: a plain BED named .gz (and a gzipped one named .bed) is read."""
    import gzip

    text = "chr1\t100\t200\ttrain\nchr2\t300\t400\ttest\n"
    (tmp_path / "plain.bed.gz").write_text(text)
    (tmp_path / "packed.bed").write_bytes(gzip.compress(text.encode()))
    for name in ("plain.bed.gz", "packed.bed"):
        regions = reference.read_bed_regions(tmp_path / name)
        assert regions.values.tolist() == [["chr1", 100, 200, "train"], ["chr2", 300, 400, "test"]]


def test_targets_scale_must_be_numeric(tmp_path, data_dir):
    lines = (data_dir / "bundled_tracks" / "targets.txt").read_text().splitlines()
    (tmp_path / "t.txt").write_text("\n".join([lines[0], lines[1].replace("\t1.0\t", "\tx\t"), *lines[2:]]) + "\n")
    with pytest.raises(GenoclInputError, match=r"t\.txt: column scale: row 0: 'x' is not a finite number; fix: "):
        reference.read_targets_file(tmp_path / "t.txt", field="--reference-tracks")
    assert list(reference.read_targets_file(data_dir / "bundled_tracks" / "targets.txt")["scale"]) == [1.0] * 3


@pytest.mark.parametrize("case", ["no_regions_on_fasta", "rows_differ", "missing_chrom", "readout_nothing"])
def test_reference_bad_input_is_one_line(case, tmp_path, pieces, data_dir):
    fasta, bed = pieces
    model = three_track_model()
    if case == "no_regions_on_fasta":
        other = tmp_path / "other.bed"
        other.write_text("chr5\t100\t200\ttrain\nchr5\t300\t400\ttest\n")
        call = lambda: reference.bed_reference_set(model, other, fasta=fasta)  # noqa: E731
        expected = "no usable train window"
    elif case == "rows_differ":
        targets = tmp_path / "targets.txt"
        lines = (data_dir / "bundled_tracks" / "targets.txt").read_text().splitlines()
        targets.write_text("\n".join(lines[:3]) + "\n")
        call = lambda: reference.bed_reference_set(model, data_dir / "bundled_tracks" / "crops.bed",  # noqa: E731
                                                   fasta="bundled", tracks=targets)
        expected = "2 tracks but the model has 3 reference outputs"
    elif case == "missing_chrom":
        crops = tmp_path / "crops.bed"
        crops.write_text((data_dir / "bundled_tracks" / "crops.bed").read_text() + "chr1\t100000000\t100002048\ttest\n")
        call = lambda: reference.bed_reference_set(model, crops, fasta="bundled",  # noqa: E731
                                                   tracks=data_dir / "bundled_tracks" / "targets.txt")
        # chr1:100 Mb is not inside a bundled window either; use a FASTA-free check of the bigWig
        call = lambda: reference.bigwig_reader(data_dir / "bundled_tracks" / "targets.txt",  # noqa: E731
                                               model.task_names, 32,
                                               {"test": reference.read_bed_regions(crops)})
        expected = "chromosome chr1"
    else:
        call = lambda: reference.match_tracks(model.task_names, "CAGE:*K562*")  # noqa: E731
        expected = "matches none of the model's 3 tracks"
    with pytest.raises(GenoclInputError, match=expected) as err:
        call()
    assert "\n" not in str(err.value) and "fix:" in str(err.value)


def test_readout_tracks_by_pattern_and_cell_type():
    from genocl_plugin.objectives import readout_tracks

    model = build_model("enformer", seq_len=512, task_names=reference.track_names())
    names = reference.track_names()
    assert readout_tracks(model, "crispri", spec="0,2") == [0, 2]
    glob = readout_tracks(model, "crispri", spec="CAGE:*T Cells*")
    assert glob and all("T Cells" in names[i] and names[i].startswith("CAGE") for i in glob)
    regex = readout_tracks(model, "mpra", spec="re:^DNASE")
    assert regex == [i for i, n in enumerate(names) if n.startswith("DNASE")]
    cell = readout_tracks(model, "crispri", cell_type="CD4+ T Cells")
    assert cell and all("CD4+ T Cells" in names[i] for i in cell)
    everything = readout_tracks(model, "crispri")
    assert len(everything) == 24 and set(cell) < set(everything)


def run_update(args):
    from genocl_cli.main import main

    result = CliRunner().invoke(main, ["update", *args], catch_exceptions=False)
    return result


def test_procapnet_geometry_update_on_user_reference(tmp_path, pieces):
    """A BPNet with ProCapNet's 2,114 -> 1,000 geometry: replay,ewc + forgetting budget on a user BED."""
    fasta, bed = pieces
    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=2_114, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 557})
    save_model(model, tmp_path / "procapnet_fold")
    out = tmp_path / "run"
    result = run_update(["--model", str(tmp_path / "procapnet_fold"), "--strategy", "replay,ewc",
                         "--max-drift", "0.2", "--max-train", "8", "--max-eval", "8", "--retention-crops", "4",
                         "--batch-size", "4", "--replay-budget-mb", "0.01", "--reference-fasta", str(fasta),
                         "--reference-regions", str(bed), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    retention = metrics["retention"]
    assert np.isfinite(retention["drift_pearson"]) and np.isfinite(retention["drift_rel_l2"])
    assert retention["pearson_after"] is None  # no real tracks: drift only, said in the report
    assert retention["groups"]["strand"]["n_tracks"] == 2
    assert retention["reference"]["n_test"] == 4 and retention["reference"]["seq_len"] == 2_114
    assert metrics["strategies"]["ReplayCallback"]["targets"] == "pseudo (parent model)"
    assert metrics["strategies"]["DriftBudgetCallback"]["checks"]
    assert (out / "retention_per_track.tsv").read_text().count("\n") == 3
    assert "reference set: reference_regions_hg38.bed" in result.output


def test_enformer_pytorch_update_on_user_reference(tmp_path, pieces):
    """enformer-pytorch (128-bp bins, 10 tracks): distill, SI, MAS with a user BED and held-out chr2."""
    from enformer_pytorch import Enformer

    fasta, bed = pieces
    torch.manual_seed(0)
    enformer = Enformer.from_hparams(dim=48, depth=1, heads=2, dim_divisible_by=16, target_length=48,
                                     output_heads={"human": 10})
    enformer.save_pretrained(tmp_path / "enformer_dir", safe_serialization=False)
    out = tmp_path / "run"
    result = run_update(["--model", str(tmp_path / "enformer_dir"), "--strategy", "distill,si,mas",
                         "--max-train", "8", "--max-eval", "8", "--retention-crops", "4", "--batch-size", "4",
                         "--replay-budget-mb", "0.05", "--reference-fasta", str(fasta),
                         "--reference-regions", str(bed), "--out", str(out)])
    assert result.exit_code == 0, result.output
    retention = json.loads((out / "metrics.json").read_text())["retention"]
    assert retention["reference"]["seq_len"] == 12_288 and retention["reference"]["bin_size"] == 128
    assert np.isfinite(retention["drift_pearson"]) and 0 < retention["drift_rel_l2"]


def test_model_too_long_for_bundled_windows_says_why(tmp_path):
    """No bundled window fits 196,608 bp: fine-tuning still runs nothing silently; replay refuses with the fix."""
    model = GeometryOnly(196_608, 896, 128, 3)
    with pytest.raises(reference.ReferenceUnavailable, match="--reference-regions"):
        reference.bundled_reference_set(model)


@pytest.mark.parametrize("extra, expected", [
    (["--readout-tracks", "CAGE:*K562*"], "--readout-tracks: CAGE:*K562*: matches none"),
    (["--reference-fasta", "genome.fa"], "--reference-fasta: genome.fa: given without --reference-regions"),
    (["--reference-regions", "missing.bed"], "missing.bed: --reference-regions: file not found"),
])
def test_update_reference_options_bad_input_exit_2(extra, expected, tmp_path):
    from genocl_cli.main import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["update", "--model", "procapnet", "--strategy", "finetune", "--out",
                                       str(out), *extra])
    assert result.exit_code == 2, result.output
    # one error line; the [stage i/n] lines of the stages that ran before it may precede it
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("[stage ")]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_real_tracks_spread_evenly_over_finer_outputs():
    """A base-resolution model (ProCapNet layout) trains on each 32-bp track bin spread over its
    32 positions, so summing the targets back into bins gives the real tracks exactly."""
    model = GeometryOnly(800, 704, 1, 2)
    model.task_names = ["CAGE plus strand (sum of 12)", "CAGE minus strand (sum of 12)"]
    ref = reference.bundled_reference_set(model)
    idx = np.arange(5)
    targets = ref.targets("train", idx)
    assert ref.trainable_tracks and targets.shape == (5, 2, 704)
    np.testing.assert_allclose(ref.to_track_bins(targets), ref.tracks("train", idx), rtol=1e-5)
    assert (ref.tracks("train", idx) > 0).any()
