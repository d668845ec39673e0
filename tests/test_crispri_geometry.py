"""CRISPRi at real model geometry (issue 11): one input window of the model's own length per pair.

Models: an enformer-pytorch model at Enformer's geometry (196,608 bp in, 896 x 128-bp bins out;
reduced width) and a bpnet-lite BPNet at ProCapNet's (2,114 -> 1,000; reduced width).

Sequence: real hg38 chr2:1-534,288, written from genocl's bundled piece (chr2:10,001-534,288,
``genocl_plugin/bundled/SOURCE.md``) behind the real 10,000-bp N telomere gap, so coordinates
are hg38's. No EngreitzLab pair lies in this piece, so the pairs below are SYNTHETIC PAIRS AT
REAL hg38 COORDINATES: the TSSs are FAM110C's (Ensembl, chr2:46,588, minus strand) and a K562
PRO-cap peak at ACP1's promoter (chr2:264,747-264,825, Danko-Lab/clipnet_k562 PINTS peaks);
the "elements" are ENCSR000AKO CTCF ChIP-seq peaks of the same piece (bpnet-lite examples) and
two promoter-proximal intervals; the effects are made up (plumbing, not biology).
"""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pyfaidx
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin import models, objectives
from genocl_plugin.data import reference, screens
from genocl_plugin.errors import GenoclInputError

ACP1, FAM110C = 264_786, 46_587  # 0-based TSS positions
# (name, tss, elements (0-based half-open), synthetic effect)
PAIRS = [
    ("A_ctcf_18kb", ACP1, [(246_477, 246_901)], -0.4),
    ("B_ctcf_123kb", ACP1, [(142_111, 142_535)], -0.1),      # fits Enformer only off-centre
    ("C_ctcf_200kb", ACP1, [(464_843, 465_267)], -0.2),      # too far for Enformer's geometry
    ("D_ctcf_28kb_contig_start", FAM110C, [(18_653, 19_077)], -0.3),  # window runs past chr2's start
    ("E_two_279kb", FAM110C, [(11_449, 11_748), (290_151, 290_498)], -0.5),  # longer than the input
    ("F_two_28kb", ACP1, [(246_477, 246_901), (274_500, 274_924)], -0.6),
    ("G_procap_100bp", ACP1, [(264_887, 264_975)], -0.7),   # fits ProCapNet's geometry too
    ("H_proximal_1kb", ACP1, [(265_500, 265_800)], -0.8),   # fits ProCapNet's geometry too
]
FIT_ENFORMER = {"A_ctcf_18kb", "B_ctcf_123kb", "D_ctcf_28kb_contig_start", "F_two_28kb", "G_procap_100bp",
                "H_proximal_1kb"}
FIT_PROCAPNET = {"G_procap_100bp", "H_proximal_1kb"}


@pytest.fixture(scope="module")
def chr2_fasta(tmp_path_factory):
    """Real hg38 chr2:1-534,288 (the bundled piece behind the 10,000-bp N telomere gap)."""
    chrom, start, codes = reference.load_bundled_piece()
    assert (chrom, start) == ("chr2", 10_000)
    seq = "N" * start + reference.codes_to_seq(codes)
    path = tmp_path_factory.mktemp("genome") / "hg38_chr2_1-534288.fa"
    path.write_text(">chr2\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    return path


def crispri_screen(fasta, names=None) -> anndata.AnnData:
    rows = [p for p in PAIRS if names is None or p[0] in names]
    obs = pd.DataFrame({
        "gene": [n for n, *_ in rows], "tss_chrom": "chr2", "tss_pos": [t for _, t, _, _ in rows],
        "tss_strand": ".", "elements": [";".join(f"chr2:{s}-{e}" for s, e in iv) for _, _, iv, _ in rows],
        "effect": [x for *_, x in rows],
    }, index=[n for n, *_ in rows])
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "crispri"
    adata.uns["sequence_source"] = str(fasta)
    screens.validate_screen(adata)
    return adata


SINGLE = [n for n, _, iv, _ in PAIRS if len(iv) == 1]  # EngreitzLab rows hold one element each


def engreitz_table(path, names=None):
    """The single-element pairs as an EngreitzLab EPCrisprBenchmark TSV (the converter's input)."""
    rows = [p for p in PAIRS if p[0] in SINGLE and (names is None or p[0] in names)]
    table = pd.DataFrame([
        {"chrom": "chr2", "chromStart": iv[0][0], "chromEnd": iv[0][1], "name": n, "EffectSize": 2 ** x - 1,
         "chrTSS": "chr2", "startTSS": t, "endTSS": t + 1, "measuredGeneSymbol": n}
        for n, t, iv, x in rows])
    table.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture(scope="module")
def enformer_geometry(enformer_geometry_dir):
    """enformer-pytorch at Enformer's geometry (196,608 bp -> 896 x 128 bp), narrow, 4 tracks."""
    path = enformer_geometry_dir
    model = models.load_model(path)
    assert (model.seq_len, model.bin_size, model.output_length(model.seq_len)) == (196_608, 128, 896)
    return path, model


@pytest.fixture(scope="module")
def procapnet_geometry(tmp_path_factory):
    """bpnet-lite BPNet at ProCapNet's geometry (2,114 -> 1,000), 8 filters."""
    torch.manual_seed(0)
    model = models.build_model("procapnet", seq_len=2_114, task_names=["plus", "minus"],
                               model_params={"n_filters": 8, "n_layers": 3, "trimming": 557})
    assert model.output_length(model.seq_len) == 1_000
    return models.save_model(model, tmp_path_factory.mktemp("pc") / "procapnet"), model


@pytest.mark.parametrize("which, expected", [("enformer_geometry", FIT_ENFORMER),
                                             ("procapnet_geometry", FIT_PROCAPNET)])
def test_each_pair_gets_its_own_window_at_the_model_input_length(which, expected, chr2_fasta, request):
    _, model = request.getfixturevalue(which)
    screen = crispri_screen(chr2_fasta)
    fits, message = screens.crispri_fit(screen, model)
    assert {n for n, ok in zip(screen.obs_names, fits, strict=True) if ok} == expected
    assert message.startswith(f"kept {len(expected)} pairs; skipped {len(PAIRS) - len(expected)}: "
                              f"element-TSS span > what a {model.seq_len:,}-bp input")

    ds = objectives.crispri_dataset(screen, model, silencing="mask")
    assert len(ds) == len(expected) and ds.skipped == len(PAIRS) - len(expected)
    genome = pyfaidx.Fasta(str(chr2_fasta), as_raw=True, sequence_always_upper=True)
    half = screens.readout_half_width(model)
    offset = model.output_offset()
    out_span = model.output_length(model.seq_len) * model.bin_size
    kept = screen[fits]
    for i, (name, tss, elements) in enumerate(zip(kept.obs_names, kept.obs["tss_pos"], kept.obs["elements"],
                                                  strict=True)):
        iv = [screens.parse_interval(x) for x in elements.split(";")]
        start = screens.crispri_window_start(model, int(tss), iv, half)
        ref, alt = ds.refs[i], ds.alts[i]
        assert len(ref) == len(alt) == model.seq_len  # the model's own input length, always
        # real sequence from the FASTA, N before the contig start
        lo_g = max(start, 0)
        assert reference.codes_to_seq(ref[lo_g - start:]) == genome["chr2"][lo_g : start + model.seq_len]
        assert (ref[: lo_g - start] == 4).all()
        # every element inside the input and silenced (N), nothing else changed
        silenced = np.zeros(model.seq_len, dtype=bool)
        for _, s, e in iv:
            assert start <= s and e <= start + model.seq_len
            silenced[s - start : e - start] = True
        assert (alt[silenced] == 4).all() and (alt[~silenced] == ref[~silenced]).all()
        # the TSS readout inside the output, and the readout window covers the TSS
        assert start + offset <= tss - half and tss + half <= start + offset + out_span
        tss_out = (tss - start - offset) // model.bin_size
        assert ds.lo[i] <= tss_out < ds.hi[i]
        left = min([tss] + [s for _, s, _ in iv])
        right = max([tss + 1] + [e for _, _, e in iv])
        centred = (left + right) // 2 - model.seq_len // 2
        if name in ("A_ctcf_18kb", "G_procap_100bp", "D_ctcf_28kb_contig_start"):
            assert start == centred  # centred between element and TSS when that fits
        if name == "B_ctcf_123kb":  # centring would put the TSS outside the output: shifted to fit
            assert start != centred and tss + half == start + offset + out_span
        if name == "D_ctcf_28kb_contig_start":
            assert start < 0 and (ref[:-start] == 4).all()


def test_enformer_geometry_effects_and_loss_are_finite(enformer_geometry, chr2_fasta):
    _, model = enformer_geometry
    # an off-centre window and one running past the contig start (N-padded)
    screen = crispri_screen(chr2_fasta, {"B_ctcf_123kb", "D_ctcf_28kb_contig_start"})
    ds = objectives.crispri_dataset(screen, model)
    effects = objectives.predict_screen_effects(model, ds, batch_size=2)
    assert effects.shape == (2,) and np.isfinite(effects).all()
    batch = objectives.collate_perturbations([ds[0]])
    model.train()
    loss = objectives.batch_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad()


def test_procapnet_geometry_effects_and_loss_are_finite(procapnet_geometry, chr2_fasta):
    _, model = procapnet_geometry
    ds = objectives.crispri_dataset(crispri_screen(chr2_fasta), model)
    assert len(ds) == 2 and ds.skipped == 6
    effects = objectives.predict_screen_effects(model, ds)
    assert np.isfinite(effects).all() and np.ptp(effects) > 0
    model.train()
    loss = objectives.batch_loss(model, objectives.collate_perturbations([ds[i] for i in range(len(ds))]))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0


def test_nothing_fits_is_one_error(procapnet_geometry, chr2_fasta):
    _, model = procapnet_geometry
    with pytest.raises(GenoclInputError, match="no element-TSS pair fits the model: kept 0 pairs; skipped 2"):
        objectives.crispri_dataset(crispri_screen(chr2_fasta, {"A_ctcf_18kb", "C_ctcf_200kb"}), model)


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("which, fit", [("enformer_geometry", FIT_ENFORMER), ("procapnet_geometry", FIT_PROCAPNET)])
def test_converter_with_model_skips_and_counts(which, fit, chr2_fasta, tmp_path, request):
    model_dir, model = request.getfixturevalue(which)
    kept = len(fit & set(SINGLE))
    table = engreitz_table(tmp_path / "pairs.tsv")
    out = tmp_path / "crispri.h5ad"
    result = _cli("screen", "from-crispri", "--table", table, "--fasta", chr2_fasta, "--model", model_dir,
                  "--out", out)
    assert result.exit_code == 0, result.output
    assert f"kept {kept} pairs; skipped {len(SINGLE) - kept}: element-TSS span > what a {model.seq_len:,}-bp" \
        in result.output
    written = screens.read_screen(out)
    assert sorted(written.obs["gene"]) == sorted(fit & set(SINGLE))
    assert screens.crispri_fit(written, model)[0].all()
    # without --model every pair inside the FASTA is kept
    plain = _cli("screen", "from-crispri", "--table", table, "--fasta", chr2_fasta, "--out", tmp_path / "all.h5ad")
    assert plain.exit_code == 0 and f"{len(SINGLE)} element-gene pairs" in plain.output


def test_converter_nothing_fits_is_one_line(procapnet_geometry, chr2_fasta, tmp_path):
    model_dir, _ = procapnet_geometry
    table = engreitz_table(tmp_path / "far.tsv", {"A_ctcf_18kb", "C_ctcf_200kb"})
    out = tmp_path / "none.h5ad"
    result = _cli("screen", "from-crispri", "--table", table, "--fasta", chr2_fasta, "--model", model_dir,
                  "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "far.tsv: --model: no element-TSS pair fits" in lines[0]
    assert "kept 0 pairs; skipped 2" in lines[0]
    assert not out.exists()


def test_update_skips_and_counts_at_procapnet_geometry(procapnet_geometry, chr2_fasta, tmp_path, capsys):
    from genocl_plugin.training.update import UpdateConfig, run_update

    model_dir, _ = procapnet_geometry
    path = screens.write_screen(crispri_screen(chr2_fasta), tmp_path / "pairs.h5ad")
    config = UpdateConfig(model=str(model_dir), data=str(path), strategy="finetune", batch_size=1,
                          holdout=0.5, retention_crops=2)
    result = run_update(config, tmp_path / "run", trainer_kwargs={"accelerator": "cpu"})
    assert "kept 2 pairs; skipped 6: element-TSS span > what a 2,114-bp input with 1,000-bp output" \
        in capsys.readouterr().out
    split = result["report"]["split"]
    assert split["n_train"] == 1 and split["n_test"] == 1 and split["crispri_fit"].startswith("kept 2 pairs")
    for key in ("before", "after"):
        assert np.isfinite(result["report"]["new_task"][key]["mse"])


def test_shuffle_keeps_n_in_place_and_dinucleotides_of_each_run():
    rng = np.random.default_rng(0)
    seq = "NN" + "ACGTTGCAAGGCTTACGATCGGATTACA" + "NNN" + "GGATCCATTGACCGTAGCAT" + "N"
    codes = reference.seq_to_codes(seq)
    out = reference.codes_to_seq(objectives.dinuc_shuffle_codes(codes, rng))
    assert [i for i, b in enumerate(out) if b == "N"] == [i for i, b in enumerate(seq) if b == "N"]
    pairs = lambda s: sorted(s[i : i + 2] for i in range(len(s) - 1))  # noqa: E731
    for run_in, run_out in zip(seq.split("N"), out.split("N"), strict=True):
        assert pairs(run_in) == pairs(run_out)
    assert out != seq
    # silencing an element that reaches into N (a gap, a contig end) works
    silenced = objectives.silence(codes, 20, 40, "shuffle", rng)
    assert (silenced[:20] == codes[:20]).all() and (silenced[30:33] == 4).all()


def test_bundled_sequence_for_an_input_longer_than_a_window():
    # an Enformer-length input around a 131-kb bundled window: the window's bases, N outside
    split, chrom, w_start, w_end, i = reference.window_table()[0]
    codes = reference.fetch_codes(chrom, w_start - 40_000, w_end + 25_536)
    assert len(codes) == 196_608
    assert (codes[40_000 : 40_000 + reference.WINDOW_LEN] == reference.load_windows()[f"{split}_seq"][i]).all()
    assert (codes[:40_000] == 4).all() and (codes[40_000 + reference.WINDOW_LEN :] == 4).all()
