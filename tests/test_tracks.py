"""Coverage tracks as a task (assay="tracks"): converters, validation, a new head, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main as cli
from genocl_plugin.data import reference, screens, tracks
from genocl_plugin.models import build_model, load_model, save_model

BUNDLED_BW = ("track0.bw", "track30.bw", "track60.bw")  # tests/data/bundled_tracks (make_fixtures.py)


@pytest.fixture()
def mouse_screen(data_dir, tmp_path) -> Path:
    """3 real mm10 windows (train / valid / test), 4 mouse tracks, as a tracks screen."""
    adata = tracks.from_basenji_arrays(data_dir / "basenji_tiny_mm10_subset.npz",
                                       data_dir / "basenji_tiny_mm10_subset_targets.txt", prefix="mm10 ")
    return screens.write_screen(adata, tmp_path / "mouse.h5ad")


@pytest.fixture()
def tiny_dir(tmp_path) -> Path:
    """An untrained gReLU Enformer (512 bp in, 16 x 32-bp bins out) named with the bundled tracks."""
    torch.manual_seed(0)
    model = build_model("enformer", seq_len=512, task_names=reference.track_names())
    return save_model(model, tmp_path / "tiny")


def _update(tmp_path, model, data, out, *extra) -> dict:
    result = CliRunner().invoke(cli, ["update", "--model", str(model), "--data", str(data), "--out", str(out),
                                      "--max-train", "16", "--max-eval", "16", "--retention-crops", "4",
                                      "--batch-size", "8", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((Path(out) / "metrics.json").read_text())


def test_basenji_arrays_become_a_screen(data_dir, mouse_screen):
    adata = screens.read_screen(mouse_screen)
    raw = np.load(data_dir / "basenji_tiny_mm10_subset.npz")
    assert list(adata.obs["split"]) == ["train", "valid", "test"]
    assert adata.uns["track_names"][0] == "mm10 CAGE:heart, embryo E11 [CNhs10586+]"
    assert adata.uns["bin_size"] == 32
    assert adata.uns["coverage_offset"] == (16_384 - 256 * 32) // 2
    np.testing.assert_array_equal(adata.obsm["coverage"][2], raw["test_targets"][0].astype(np.float32))
    np.testing.assert_array_equal(adata.obsm["sequence"][0], raw["train_seq"][0])


def test_bigwigs_reproduce_the_bundled_targets(data_dir):
    """The bigWigs hold the bundled tracks at real hg38 coordinates: binning them gives the bundled values."""
    folder = data_dir / "bundled_tracks"
    adata = tracks.from_bigwigs([str(folder / b) for b in BUNDLED_BW], "bundled", str(folder / "crops.bed"),
                                bin_size=32)
    windows = reference.load_windows()
    checked = 0
    for row, (chrom, start) in enumerate(zip(adata.obs["chrom"], adata.obs["start"], strict=True)):
        for split in ("train", "valid", "test"):
            for w, coord in enumerate(windows[f"{split}_coords"]):
                c, rest = str(coord).split(":")
                w_start = int(rest.split("-")[0]) + reference.TARGET_CROP
                if c == chrom and w_start <= start < w_start + reference.N_BINS * 32:
                    first = (start - w_start) // 32
                    want = windows[f"{split}_targets"][w][first : first + 64][:, [0, 30, 60]].astype(np.float32)
                    np.testing.assert_allclose(adata.obsm["coverage"][row], want, rtol=1e-6)
                    checked += 1
    assert checked == adata.n_obs > 0
    seq = adata.obsm["sequence"][0]
    chrom, start, end = adata.obs.iloc[0][["chrom", "start", "end"]]
    np.testing.assert_array_equal(seq, reference.fetch_codes(chrom, int(start), int(end)))


@pytest.mark.parametrize("breakage, field", [
    (lambda a: a.obsm.__setitem__("coverage", -a.obsm["coverage"] - 1), "obsm['coverage']"),
    (lambda a: a.uns.__setitem__("track_names", ["x"] * len(a.uns["track_names"])), "uns['track_names']"),
    (lambda a: a.obs.__setitem__("split", ["train", "holdout", "test"]), "obs['split']"),
    (lambda a: a.uns.__setitem__("coverage_offset", 10_000), "uns['coverage_offset']"),
])
def test_bad_tracks_screen_is_one_line(mouse_screen, tmp_path, breakage, field):
    import anndata

    adata = anndata.read_h5ad(mouse_screen)
    breakage(adata)
    bad = tmp_path / "bad.h5ad"
    adata.write_h5ad(bad)
    result = CliRunner().invoke(cli, ["screen", "validate", str(bad)])
    assert result.exit_code == 2
    assert field in result.output and "fix:" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_new_tracks_get_a_head_and_learn(tmp_path, tiny_dir, mouse_screen):
    short = _update(tmp_path, tiny_dir, mouse_screen, tmp_path / "r1", "--strategy", "finetune", "--head-lr", "1e-2")
    longer = _update(tmp_path, tiny_dir, mouse_screen, tmp_path / "r4", "--strategy", "finetune", "--head-lr",
                     "1e-2", "--epochs", "4")
    assert short["config"]["strategy"] == "multihead"  # added for the new tracks
    nt = longer["new_task"]
    assert nt["before"]["pearson"] is None  # the base had no such tracks (NaN is written as null)
    assert np.isfinite(nt["after"]["pearson"])
    assert nt["kind"] == "tracks" and nt["after"]["n"] == 16
    # more training on the new head fits the training windows' coverage better
    assert longer["new_task"]["train_after"]["mse"] < short["new_task"]["train_after"]["mse"]
    model = load_model(tmp_path / "r4" / "model")
    names = screens.read_screen(mouse_screen).uns["track_names"]
    assert model.task_names[: len(reference.track_names())] == reference.track_names()
    assert model.task_names[-len(names):] == list(names)
    assert tracks.track_index(model, names) is not None
    assert (tmp_path / "r4" / "tracks_heldout.tsv").read_text().count("\n") == len(names) + 1
    assert model.screen_tracks == []  # a track head is not the perturbation readout


def test_frozen_trunk_keeps_old_outputs_bit_identical(tmp_path, tiny_dir, mouse_screen):
    _update(tmp_path, tiny_dir, mouse_screen, tmp_path / "r", "--strategy", "multihead,freeze", "--freeze", "trunk")
    base, new = load_model(tiny_dir), load_model(tmp_path / "r" / "model")
    x = torch.from_numpy(reference.codes_to_one_hot(reference.fetch_codes("chr1", 0, 512)[None] % 4))
    with torch.no_grad():
        old = base(x)
        out = new(x)
    assert out.shape[1] == old.shape[1] + 4
    torch.testing.assert_close(out[:, : old.shape[1]], old, rtol=0, atol=0)


def test_known_tracks_train_in_place(data_dir, tmp_path, tiny_dir):
    """Tracks the model already predicts (same names) are trained without a new head."""
    folder = data_dir / "bundled_tracks"
    names = [reference.track_names()[t] for t in (0, 30, 60)]
    adata = tracks.from_bigwigs([str(folder / b) for b in BUNDLED_BW], "bundled", str(folder / "crops.bed"),
                                bin_size=32, names=names)
    path = screens.write_screen(adata, tmp_path / "known.h5ad")
    metrics = _update(tmp_path, tiny_dir, path, tmp_path / "r", "--strategy", "finetune")
    assert metrics["config"]["strategy"] == "finetune"
    assert np.isfinite(metrics["new_task"]["before"]["pearson"])  # the base predicts these tracks already
    assert not load_model(tmp_path / "r" / "model").model_params.get("genocl_heads")
    result = CliRunner().invoke(cli, ["update", "--model", str(tiny_dir), "--data", str(path), "--out",
                                      str(tmp_path / "r2"), "--strategy", "multihead", "--max-train", "4"])
    assert result.exit_code == 2 and "drop multihead" in result.output


def test_partly_known_tracks_are_refused(data_dir, tmp_path, tiny_dir):
    folder = data_dir / "bundled_tracks"
    names = [reference.track_names()[0], "new track A", "new track B"]
    adata = tracks.from_bigwigs([str(folder / b) for b in BUNDLED_BW], "bundled", str(folder / "crops.bed"),
                                bin_size=32, names=names)
    path = screens.write_screen(adata, tmp_path / "mixed.h5ad")
    result = CliRunner().invoke(cli, ["update", "--model", str(tiny_dir), "--data", str(path), "--out",
                                      str(tmp_path / "r"), "--max-train", "4"])
    assert result.exit_code == 2 and "uns['track_names']" in result.output and "separate screens" in result.output
    assert not (tmp_path / "r").exists()


def test_evaluate_scores_the_tracks_task(tmp_path, tiny_dir, mouse_screen):
    from genocl_plugin.evaluation.evaluate import evaluate_runs

    metrics = _update(tmp_path, tiny_dir, mouse_screen, tmp_path / "r", "--strategy", "finetune", "--head-lr", "1e-2")
    run = evaluate_runs([tmp_path / "r"], max_crops=4)["runs"][0]
    matrix = np.array(run["matrix"])
    assert np.isnan(matrix[0, 1])  # the base model has no mouse tracks
    assert matrix[1, 1] == pytest.approx(metrics["new_task"]["after"]["pearson"], abs=1e-5)


def test_head_lr_gives_new_heads_their_own_rate(tiny_enformer):
    from genocl_plugin.strategies.multihead import attach_heads, feature_channels

    attach_heads(tiny_enformer.model, [{"name": "h", "in_channels": feature_channels(tiny_enformer.model),
                                        "task_names": ["a", "b"]}])
    tiny_enformer.train_params.update(lr=1e-4, head_lr=3e-3)
    groups = tiny_enformer.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-4, 3e-3]
    assert sum(p.numel() for p in groups[1]["params"]) == sum(
        p.numel() for p in tiny_enformer.model.genocl_heads.parameters())


def test_coverage_shorter_than_the_output_is_one_line(tmp_path, mouse_screen, enformer_geometry_dir):
    """At Enformer's geometry (896 x 128 bp = 114,688 bp out) 8-kb windows cannot be scored."""
    result = CliRunner().invoke(cli, ["update", "--model", str(enformer_geometry_dir), "--data", str(mouse_screen),
                                      "--out", str(tmp_path / "r"), "--strategy", "multihead"])
    assert result.exit_code == 2
    assert "obsm['coverage']" in result.output and "114,688" in result.output


def test_bigwig_tracks_at_enformer_geometry(data_dir, tmp_path, enformer_geometry_dir):
    """196,608 bp in, 896 x 128-bp bins out: from-tracks --model sizes the context, update adds a head."""
    import pyBigWig

    fasta = data_dir / "hg38_chr1_1-1000000.fa.gz"
    codes = reference.fetch_codes("chr1", 0, 1_000_000, fasta=reference.open_fasta(str(fasta)))
    gc = ((codes == 1) | (codes == 2)).reshape(-1, 32).mean(1).astype(np.float32)  # per-32-bp GC fraction
    bw = tmp_path / "gc.bw"
    handle = pyBigWig.open(str(bw), "w")
    handle.addHeader([("chr1", 1_000_000)])
    handle.addEntries("chr1", 0, values=[float(v) for v in gc], span=32, step=32)
    handle.close()
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t300000\t414688\ttrain\nchr1\t500000\t614688\ttest\n")
    screen = tmp_path / "gc.h5ad"
    result = CliRunner().invoke(cli, ["screen", "from-tracks", "--bigwig", str(bw), "--fasta", str(fasta),
                                      "--regions", str(bed), "--model", str(enformer_geometry_dir),
                                      "--names", "GC fraction", "--out", str(screen)])
    assert result.exit_code == 0, result.output
    adata = screens.read_screen(screen)
    assert adata.obsm["sequence"].shape == (2, 196_608) and adata.uns["coverage_offset"] == 40_960
    assert adata.obsm["coverage"].shape == (2, 896, 1)
    np.testing.assert_allclose(adata.obsm["coverage"][0, :, 0], gc[300_000 // 32 : 414_688 // 32].reshape(-1, 4).sum(1)
                               * 32, rtol=1e-5)
    metrics = _update(tmp_path, enformer_geometry_dir, screen, tmp_path / "r", "--strategy", "multihead",
                      "--batch-size", "1")
    assert metrics["new_task"]["after"]["n"] == 1 and np.isfinite(metrics["new_task"]["after"]["pearson"])
    model = load_model(tmp_path / "r" / "model")
    assert model.task_names[-1] == "GC fraction"


def test_bed_names_are_not_splits_and_missing_inputs_are_one_line(data_dir, tmp_path):
    folder = data_dir / "bundled_tracks"
    rows = (folder / "crops.bed").read_text().splitlines()[:2]
    bed6 = tmp_path / "named.bed"
    bed6.write_text("".join("\t".join(r.split("\t")[:3] + [f"peak{k}", "0", "+"]) + "\n" for k, r in enumerate(rows)))
    adata = tracks.from_bigwigs([str(folder / BUNDLED_BW[0])], "bundled", str(bed6), bin_size=32)
    assert "split" not in adata.obs and adata.n_obs == 2
    result = CliRunner().invoke(cli, ["screen", "from-tracks", "--bigwig", str(folder / BUNDLED_BW[0]),
                                      "--out", str(tmp_path / "x.h5ad")])
    assert result.exit_code == 2 and "--regions" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5ad").exists()


def test_l2sp_leaves_a_new_head_free_and_anchors_it_in_the_next_update(tiny_enformer):
    """L2-SP anchors pretrained weights; a head created by this update has no starting point."""
    from genocl_plugin.strategies.l2sp import L2SPCallback
    from genocl_plugin.strategies.multihead import MultiHeadCallback

    MultiHeadCallback(task_names=["mm10 a", "mm10 b"]).setup(None, tiny_enformer, "fit")
    cb = L2SPCallback(alpha=1.0)
    cb.on_fit_start(None, tiny_enformer)
    head = [n for n, _ in tiny_enformer.model.named_parameters() if n.startswith("genocl_heads.heads.screen1.")]
    assert head and not set(head) & set(cb.anchor)
    assert len(cb.anchor) > 10  # the trunk is anchored
    with torch.no_grad():
        for name, param in tiny_enformer.model.named_parameters():
            if name in head:
                param += 1.0
    assert cb.loss_term(tiny_enformer, None).item() == 0.0  # moving the new head costs nothing
    # the next update (the head exists already): anchored to its trained weights
    tiny_enformer.new_head_prefixes = ()
    MultiHeadCallback(head_name="screen1").setup(None, tiny_enformer, "fit")
    later = L2SPCallback(alpha=1.0)
    later.load_state_from_run(cb.state_dict_for_run())
    later.on_fit_start(None, tiny_enformer)
    assert set(head) <= set(later.anchor)
