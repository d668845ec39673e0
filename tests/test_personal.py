"""Personal genomes (assay="personal"): converter, haplotypes, loss, metrics, update end to end.

Fixtures (tests/data, sources in tests/data/README.md): 5 GEUVADIS people with phased hg38
chr2 genotypes and expression, and the eQTL-Catalogue GEUVADIS test data (89 CEU people,
unphased dosages) for the two genes whose TSS lie inside the bundled hg38 windows. Expected
counts are recomputed here from the raw text files, not copied from the converter.
"""

from __future__ import annotations

import gzip
import json
import shutil

import anndata
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin import objectives
from genocl_plugin.data import personal, reference, screens
from genocl_plugin.evaluation import evaluate

VCF = "geuvadis_5indiv_chr2_1-70000.vcf.gz"
PHENO = "geuvadis_5indiv_pheno.tsv"
GENES = "geuvadis_5indiv_genes.tsv"
CHR2 = "hg38_chr2_personal.fa.gz"
DOSE = "geuvadis_qtlmap_LCL.dose.tsv.gz"
CQN = "geuvadis_qtlmap_cqn.tsv"
META = "geuvadis_qtlmap_phenotype_metadata.tsv"
SAMPLES = "geuvadis_qtlmap_sample_metadata.tsv"


def _fasta_copy(data_dir, tmp_path):
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(data_dir / (CHR2 + suffix), tmp_path / (CHR2 + suffix))
    return tmp_path / CHR2


def _vcf_rows(path):
    with gzip.open(path, "rt") as handle:
        return [line.rstrip("\n").split("\t") for line in handle if not line.startswith("#")]


# --- converter on real data ------------------------------------------------------------------

def test_converter_phased_vcf_counts_match_raw_files(data_dir, tmp_path):
    fasta = _fasta_copy(data_dir, tmp_path)
    length = 32_768
    adata, summary = personal.from_personal(data_dir / PHENO, data_dir / GENES, fasta, length,
                                            vcf=data_dir / VCF)
    genes = pd.read_csv(data_dir / GENES, sep="\t")
    rows = _vcf_rows(data_dir / VCF)
    samples = gzip.open(data_dir / VCF, "rt").read().split("#CHROM")[1].split("\n")[0].split("\t")[9:]
    import pyfaidx

    genome = pyfaidx.Fasta(str(fasta), as_raw=True, sequence_always_upper=True)
    in_window = []
    for r in rows:
        pos0 = int(r[1]) - 1
        if any(t - 1 - length // 2 <= pos0 < t - 1 + length // 2 for t in genes["tss"]):
            in_window.append(r)
    counts = pd.Series([int(r[1]) for r in in_window]).value_counts()
    multi = [r for r in in_window if counts[int(r[1])] > 1 or "," in r[4]]
    single = [r for r in in_window if not (counts[int(r[1])] > 1 or "," in r[4])]
    mismatch = [r for r in single if genome["chr2"][int(r[1]) - 1] != r[3]]
    assert summary["samples_both"] == len(samples) == 5
    assert summary["variants_in_windows"] == len(in_window)
    assert summary["skipped_multiallelic"] == len(multi)
    assert summary["skipped_ref_mismatch"] == len(mismatch) >= 1  # a real REF/ALT swap at chr2:31,926
    assert summary["variants_kept"] == len(single) - len(mismatch) == len(adata.uns["variants"]["pos"])
    assert adata.n_obs == summary["rows"] == 5 * len(genes)
    assert set(adata.obs["individual"]) == set(samples)
    # Haplotype codes equal the raw GT strings (a|b: bit 0 = a is ALT, bit 1 = b is ALT).
    kept = {int(r[1]) - 1: r for r in single if r not in mismatch}
    haps = adata.obsm["haplotypes"].toarray()
    fam = np.flatnonzero(adata.obs["gene_id"] == "ENSG00000184731")
    for row in fam:
        k = samples.index(adata.obs["individual"].iloc[row])
        for v, pos0 in enumerate(adata.uns["variants"]["pos"]):
            a, b = kept[int(pos0)][9 + k].split("|")
            assert haps[row, v] == (a == "1") + 2 * (b == "1")
    # TMEM18's TSS lies beyond the VCF (chr2:10k-70k here): its people carry no variant.
    tmem = np.flatnonzero(adata.obs["gene_id"] == "ENSG00000151353")
    assert haps[tmem].sum() == 0 and haps[fam].sum() > 0
    assert adata.uns["sequence_source"] == str(fasta.resolve())
    assert adata.obs["tss"].tolist()[fam[0]] == 46587  # 1-based 46,588 in the genes table


def test_converter_dosages_bundled_sequence(data_dir):
    adata, summary = personal.from_personal(data_dir / CQN, data_dir / META, "bundled", 2048,
                                            dosages=data_dir / DOSE, sample_map=data_dir / SAMPLES)
    dose = pd.read_csv(data_dir / DOSE, sep="\t", dtype={"CHROM": str})
    meta = pd.read_csv(data_dir / META, sep="\t", dtype={"chromosome": str})
    assert summary["samples_both"] == dose.shape[1] - 4 == 89
    assert adata.n_obs == 2 * 89
    in_window, mismatch = [], []
    for chrom, tss in zip(meta["chromosome"], meta["phenotype_pos"], strict=True):
        lo = tss - 1 - 1024
        hit = dose[(dose["CHROM"] == chrom) & (dose["POS"] - 1 >= lo) & (dose["POS"] - 1 < lo + 2048)]
        in_window.append(hit)
        for _, r in hit.iterrows():
            if len(r["REF"]) == 1 and len(r["ALT"]) == 1:
                base = reference.codes_to_seq(reference.fetch_codes(f"chr{chrom}", r["POS"] - 1, r["POS"]))
                if base != r["REF"]:
                    mismatch.append(r)
    hits = pd.concat(in_window)
    indels = hits[(hits["REF"].str.len() > 1) | (hits["ALT"].str.len() > 1)]
    assert summary["variants_in_windows"] == len(hits)
    assert summary["skipped_indel_or_symbolic"] == len(indels) >= 1
    assert summary["skipped_ref_mismatch"] == len(mismatch) >= 1
    assert summary["variants_kept"] == len(hits) - len(indels) - len(mismatch)
    # The dosage rule: 1 -> ALT on haplotype 1 only (code 1), 2 -> both (code 3).
    samples = dose.columns[4:]
    haps = adata.obsm["haplotypes"].toarray()
    v_pos = adata.uns["variants"]["pos"]
    first = dose[dose["POS"] - 1 == v_pos[0]].iloc[0]
    for row, person in enumerate(adata.obs["individual"]):
        if adata.obs["chrom"].iloc[row] == adata.uns["variants"]["chrom"][0]:
            d = int(round(float(first[person])))
            assert haps[row, 0] == {0: 0, 1: 1, 2: 3}[d]
    assert set(adata.obs["individual"]) == set(samples)
    # cqn expression values are stored as given
    cqn = pd.read_csv(data_dir / CQN, sep="\t", index_col=0)
    row = adata.obs.iloc[0]
    sample = pd.read_csv(data_dir / SAMPLES, sep="\t").set_index("genotype_id").loc[row["individual"], "sample_id"]
    assert row["expression"] == pytest.approx(cqn.loc[row["gene_id"], sample])


def test_written_screen_round_trips_and_validates(data_dir, tmp_path):
    adata, _ = personal.from_personal(data_dir / CQN, data_dir / META, "bundled", 2048,
                                      dosages=data_dir / DOSE, sample_map=data_dir / SAMPLES)
    path = screens.write_screen(adata, tmp_path / "p.h5ad")
    back = screens.read_screen(path)
    assert back.uns["assay"] == "personal" and back.uns["input_length"] == 2048
    assert (back.obsm["haplotypes"] != adata.obsm["haplotypes"]).nnz == 0


# --- haplotype sequences, loss, metrics ------------------------------------------------------

def _hand_case(tmp_path):
    """A 200-bp chr9 FASTA, 2 phased SNVs near a TSS, 2 people."""
    rng = np.random.default_rng(1)
    seq = "".join(rng.choice(list("ACGT"), 200))
    (tmp_path / "g.fa").write_text(f">chr9\n{seq}\n")
    tss1 = 101  # 1-based; 0-based 100, window [68, 132) for 64 bp
    p1, p2 = 80, 120  # 1-based variant positions
    alt = {"A": "C", "C": "G", "G": "T", "T": "A"}
    vcf = ("##fileformat=VCFv4.2\n##contig=<ID=chr9,length=200>\n"
           '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
           "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\tP2\n"
           f"chr9\t{p1}\t.\t{seq[p1 - 1]}\t{alt[seq[p1 - 1]]}\t.\tPASS\t.\tGT\t0|1\t1|1\n"
           f"chr9\t{p2}\t.\t{seq[p2 - 1]}\t{alt[seq[p2 - 1]]}\t.\tPASS\t.\tGT\t1|0\t0|0\n"
           f"chr9\t10\t.\t{seq[9]}\t{alt[seq[9]]}\t.\tPASS\t.\tGT\t1|1\t1|1\n")  # outside the window
    (tmp_path / "c.vcf").write_text(vcf)
    (tmp_path / "e.tsv").write_text("gene\tP1\tP2\nG1\t1.5\t2.5\n")
    (tmp_path / "genes.tsv").write_text(f"gene_id\tchrom\ttss\tstrand\nG1\tchr9\t{tss1}\t+\n")
    return seq, p1, p2, alt


def test_haplotype_sequences_equal_hand_built(tmp_path, tiny_enformer):
    seq, p1, p2, alt = _hand_case(tmp_path)
    adata, summary = personal.from_personal(tmp_path / "e.tsv", tmp_path / "genes.tsv", tmp_path / "g.fa", 64,
                                            vcf=tmp_path / "c.vcf")
    assert summary["variants_kept"] == 2 and summary["variants_in_windows"] == 2
    data = objectives.personal_dataset(adata, tiny_enformer)
    start = 100 - 32
    window = list(seq[start : start + 64])

    def with_alts(*positions):
        out = window.copy()
        for p in positions:
            out[p - 1 - start] = alt[seq[p - 1]]
        return "".join(out)

    expected = {"P1": (with_alts(p2), with_alts(p1)), "P2": (with_alts(p1), with_alts(p1))}
    for i, person in enumerate(data.individuals):
        h1, h2 = data.haplotypes(i)
        assert (reference.codes_to_seq(h1), reference.codes_to_seq(h2)) == expected[person]
    batch = objectives.collate_personal([data[i] for i in range(len(data))])
    tiny_enformer.eval()
    assert batch["seqs"].shape[0] == 2  # P1's haplotype 2 = both of P2's: each sequence kept once
    pred = objectives.predicted_expression(tiny_enformer, batch)
    # by hand: log2 of the readout (no CAGE names in the tiny model: all tracks) summed over both haplotypes
    one_hot = torch.from_numpy(reference.codes_to_one_hot(np.stack(data.haplotypes(0) + data.haplotypes(1))))
    with torch.no_grad():
        cov = tiny_enformer(one_hot, logits=True).exp()[:, :, data.lo[0]:data.hi[0]].sum(dim=(1, 2))
    expected = torch.log2(torch.stack([cov[0] + cov[1], cov[2] + cov[3]]))
    assert torch.allclose(pred.detach(), expected, rtol=1e-4)


def test_pairwise_loss_hand_computed():
    pred = torch.tensor([1.0, 2.0, 4.0, 10.0])
    meas = torch.tensor([0.0, 3.0, 3.0, 0.0])
    gene = torch.tensor([0, 0, 0, 1])  # the 4th row has no same-gene partner
    # MSE = (1 + 1 + 1 + 100) / 4; pairs of gene 0: (0,1) -> (-1 - -3)^2 = 4, (0,2) -> 0, (1,2) -> 4
    expected = 0.25 * (103 / 4) + 0.75 * (8 / 3)
    assert objectives.pairwise_loss(pred, meas, gene, alpha=0.25).item() == pytest.approx(expected)
    assert objectives.pairwise_loss(pred, meas, gene, alpha=1.0).item() == pytest.approx(103 / 4)
    # a constant offset per gene costs nothing in the pair term
    shifted = meas + 5.0
    assert objectives.pairwise_loss(shifted, meas, gene, alpha=0.0).item() == pytest.approx(0.0)


def test_gene_batches_hold_one_gene_and_cover_every_row():
    genes = ["a"] * 5 + ["b"] * 3 + ["c"]
    sampler = objectives.GeneBatchSampler(genes, batch_size=2, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(9))
    assert all(len({genes[i] for i in b}) == 1 and len(b) <= 2 for b in batches)
    assert len(sampler) == len(batches) == 3 + 2 + 1


def test_cross_individual_metrics_per_gene():
    pred = [1, 2, 3, 5, 5, 5 + 1e-7, 3, 2, 1]  # y: constant up to float32 round-off
    meas = [1, 2, 4, 1, 2, 3, 1, 2, 3]
    genes = ["x"] * 3 + ["y"] * 3 + ["z"] * 3
    m = evaluate.cross_individual_metrics(pred, meas, genes)
    assert m["per_gene"]["x"]["spearman"] == pytest.approx(1.0)
    assert m["per_gene"]["x"]["pearson"] == pytest.approx(np.corrcoef([1, 2, 3], [1, 2, 4])[0, 1])
    assert np.isnan(m["per_gene"]["y"]["pearson"])  # constant prediction: no correlation
    assert m["per_gene"]["z"]["pearson"] == pytest.approx(-1.0)
    assert m["n_genes"] == 2
    assert m["mean_pearson"] == pytest.approx((m["per_gene"]["x"]["pearson"] - 1) / 2)


def test_split_by_gene_and_by_individual(data_dir):
    adata, _ = personal.from_personal(data_dir / CQN, data_dir / META, "bundled", 2048,
                                      dosages=data_dir / DOSE, sample_map=data_dir / SAMPLES)
    train, test = personal.split_personal(adata, "gene", 0.5, seed=0)
    assert not set(train.obs["gene_id"]) & set(test.obs["gene_id"]) and test.n_obs == 89
    train, test = personal.split_personal(adata, "individual", 0.25, seed=0)
    assert not set(train.obs["individual"]) & set(test.obs["individual"])
    assert set(test.obs["gene_id"]) == set(adata.obs["gene_id"])


# --- genocl update end to end ----------------------------------------------------------------

@pytest.fixture(scope="module")
def qtlmap_screen(tmp_path_factory):
    from pathlib import Path

    data = Path(__file__).parent / "data"
    out = tmp_path_factory.mktemp("personal") / "personal.h5ad"
    result = CliRunner().invoke(main, [
        "screen", "from-personal", "--dosages", str(data / DOSE), "--expression", str(data / CQN),
        "--sample-map", str(data / SAMPLES), "--genes", str(data / META), "--fasta", "bundled",
        "--input-length", "2048", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "89 in both" in result.output and "REF mismatch" in result.output
    return out


@pytest.mark.parametrize("strategy", ["finetune", "replay,ewc"])
def test_update_on_personal_screen_end_to_end(qtlmap_screen, tmp_path, strategy):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "update", "--model", "enformer", "--data", str(qtlmap_screen), "--strategy", strategy,
        "--epochs", "1", "--retention-crops", "8", "--holdout-by", "individual", "--holdout", "0.25",
        "--max-train", "16", "--max-eval", "32", "--batch-size", "16", "--pairwise-alpha", "0.5", "--lr", "1e-3",
        "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "cross-individual Pearson per gene, mean (held-out individuals)" in result.output
    metrics = json.loads((run / "metrics.json").read_text())
    xind = metrics["new_task"]["cross_individual"]
    assert xind["holdout_by"] == "individual" and xind["pairwise_alpha"] == 0.5
    # chr7 gene carries SNVs in its window: its predictions vary across people, so it has a correlation
    assert xind["after"]["n_genes"] >= 1 and xind["after"]["mean_pearson"] is not None
    assert metrics["retention"]["pearson_after"] is not None
    assert (run / "report.png").stat().st_size > 0
    before = np.array([v["pearson"] for v in xind["before"]["per_gene"].values() if v["pearson"] is not None])
    after = np.array([v["pearson"] for v in xind["after"]["per_gene"].values() if v["pearson"] is not None])
    assert len(before) == len(after) >= 1
    if strategy == "finetune":
        result = CliRunner().invoke(main, ["evaluate", str(run), "--max-crops", "8"])
        assert result.exit_code == 0, result.output
        assert "cross-individual Pearson per gene" in result.output


# --- bad input: one line, exit 2 -------------------------------------------------------------

def _convert(args):
    return CliRunner().invoke(main, ["screen", "from-personal", *args])


def _assert_one_line_exit_2(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_bad_input_samples_do_not_overlap(data_dir, tmp_path):
    result = _convert(["--dosages", str(data_dir / DOSE), "--expression", str(data_dir / CQN),
                       "--genes", str(data_dir / META), "--fasta", "bundled", "--input-length", "2048",
                       "--out", str(tmp_path / "x.h5ad")])  # ERR... run IDs vs NA... genotype IDs
    _assert_one_line_exit_2(result, CQN, "samples", "--sample-map")
    assert not (tmp_path / "x.h5ad").exists()


def test_bad_input_unphased_vcf(data_dir, tmp_path):
    text = gzip.open(data_dir / VCF, "rt").read().replace("|", "/")
    (tmp_path / "unphased.vcf").write_text(text)
    fasta = _fasta_copy(data_dir, tmp_path)
    result = _convert(["--vcf", str(tmp_path / "unphased.vcf"), "--expression", str(data_dir / PHENO),
                       "--genes", str(data_dir / GENES), "--fasta", str(fasta), "--input-length", "2048",
                       "--out", str(tmp_path / "x.h5ad")])
    _assert_one_line_exit_2(result, "unphased.vcf", "GT", "unphased", "--dosages")


def test_bad_input_gene_off_the_fasta(data_dir, tmp_path):
    fasta = _fasta_copy(data_dir, tmp_path)
    (tmp_path / "genes.tsv").write_text("gene_id\tchrom\ttss\tstrand\nENSG00000151353\tchr2\t2000000\t-\n"
                                        "ENSG00000184731\tchr3\t46588\t-\n")
    result = _convert(["--vcf", str(data_dir / VCF), "--expression", str(data_dir / PHENO),
                       "--genes", str(tmp_path / "genes.tsv"), "--fasta", str(fasta), "--input-length", "2048",
                       "--out", str(tmp_path / "x.h5ad")])
    _assert_one_line_exit_2(result, "genes.tsv", "tss", "--fasta")
    # a stored screen whose TSS runs off its FASTA fails validation the same way
    adata, _ = personal.from_personal(data_dir / PHENO, data_dir / GENES, fasta, 2048, vcf=data_dir / VCF)
    obs = adata.obs.copy()
    obs["tss"] = obs["tss"] + 5_000_000
    adata.obs = obs
    adata.obsm["haplotypes"] = adata.obsm["haplotypes"][:, :0]
    adata.uns["variants"] = {k: v[:0] for k, v in adata.uns["variants"].items()}
    adata.write_h5ad(tmp_path / "off.h5ad")
    result = CliRunner().invoke(main, ["screen", "validate", str(tmp_path / "off.h5ad")])
    _assert_one_line_exit_2(result, "off.h5ad", "obs['tss']")


def test_bad_input_nan_expression(data_dir, tmp_path):
    lines = (data_dir / PHENO).read_text().splitlines()
    fields = lines[2].split("\t")
    fields[3] = "NA"
    (tmp_path / "pheno.tsv").write_text("\n".join([lines[0], lines[1], "\t".join(fields)]) + "\n")
    fasta = _fasta_copy(data_dir, tmp_path)
    result = _convert(["--vcf", str(data_dir / VCF), "--expression", str(tmp_path / "pheno.tsv"),
                       "--genes", str(data_dir / GENES), "--fasta", str(fasta), "--input-length", "2048",
                       "--out", str(tmp_path / "x.h5ad")])
    _assert_one_line_exit_2(result, "pheno.tsv", "expression", fields[0].split(".")[0])
    assert not (tmp_path / "x.h5ad").exists()


def test_bad_screen_nan_expression_fails_validation(data_dir, tmp_path):
    adata, _ = personal.from_personal(data_dir / CQN, data_dir / META, "bundled", 2048,
                                      dosages=data_dir / DOSE, sample_map=data_dir / SAMPLES)
    obs = adata.obs.copy()
    obs.iloc[3, obs.columns.get_loc("expression")] = np.nan
    adata.obs = obs
    adata.write_h5ad(tmp_path / "nan.h5ad")
    result = CliRunner().invoke(main, ["screen", "validate", str(tmp_path / "nan.h5ad")])
    _assert_one_line_exit_2(result, "nan.h5ad", "obs['expression']")
    assert isinstance(anndata.read_h5ad(tmp_path / "nan.h5ad"), anndata.AnnData)


def test_samples_as_rows_gives_the_same_screen(data_dir, tmp_path):
    fasta = _fasta_copy(data_dir, tmp_path)
    pd.read_csv(data_dir / PHENO, sep="\t", index_col=0).T.to_csv(tmp_path / "t.tsv", sep="\t")
    a, _ = personal.from_personal(data_dir / PHENO, data_dir / GENES, fasta, 2048, vcf=data_dir / VCF)
    b, _ = personal.from_personal(tmp_path / "t.tsv", data_dir / GENES, fasta, 2048, vcf=data_dir / VCF,
                                  samples_as_rows=True)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert (a.obsm["haplotypes"] != b.obsm["haplotypes"]).nnz == 0


def test_real_geometry_enformer_196kb_5313_tracks_and_procapnet(data_dir, tmp_path):
    """The personal path at real geometry: Enformer 196,608 bp -> 896 x 128-bp bins with 5,313
    tracks (enformer-pytorch, reduced width) and ProCapNet 2,114 -> 1,000 bp."""
    from enformer_pytorch import Enformer

    from genocl_plugin.models import build_model, load_model

    torch.manual_seed(0)
    Enformer.from_hparams(dim=96, depth=1, heads=2, dim_divisible_by=16).save_pretrained(
        tmp_path / "ep", safe_serialization=False)
    enformer = load_model(tmp_path / "ep").eval()
    fasta = _fasta_copy(data_dir, tmp_path)
    for model, n_out in ((enformer, 896), (build_model("procapnet", seq_len=2114, task_names=["plus", "minus"],
                                                       model_params={"n_filters": 8, "n_layers": 8,
                                                                     "trimming": 557}).eval(), 1000)):
        length = model.seq_len
        adata, summary = personal.from_personal(data_dir / PHENO, data_dir / GENES, fasta, length,
                                                vcf=data_dir / VCF)
        one = adata[adata.obs["gene_id"] == "ENSG00000184731"][:1].copy()
        data = objectives.personal_dataset(one, model)
        h1, h2 = data.haplotypes(0)
        assert len(h1) == length and model.output_length(length) == n_out
        # the window starts before chr2's first base (FAM110C's TSS is 46.6 kb in): N-padded there
        if length > 2 * 46_587:
            assert (h1[: length // 2 - 46_587] == 4).all()
        centre = (n_out * model.bin_size) // 2 // model.bin_size
        half_bins = max(model.bin_size, 32) // model.bin_size  # readout: TSS +- 1 bin (>= 32 bp)
        assert data.lo[0] <= centre < data.hi[0] and data.hi[0] - data.lo[0] <= 2 * half_bins + 1
        assert len(model.task_names) == (5313 if n_out == 896 else 2)
        if one.obsm["haplotypes"].nnz:  # the person's SNVs are in their haplotypes
            assert (h1 != data.gene_refs[0]).any() or (h2 != data.gene_refs[0]).any()
        with torch.no_grad():
            pred = objectives.predicted_expression(model, objectives.collate_personal([data[0]]))
        assert pred.shape == (1,) and torch.isfinite(pred).all()


def test_bundled_personal_example_is_the_converter_output(data_dir):
    bundled = screens.read_screen(reference.BUNDLED / "personal_example.h5ad")
    fresh, _ = personal.from_personal(data_dir / CQN, data_dir / META, "bundled", 2048,
                                      dosages=data_dir / DOSE, sample_map=data_dir / SAMPLES)
    pd.testing.assert_frame_equal(bundled.obs, fresh.obs, check_categorical=False, check_dtype=False)
    assert (bundled.obsm["haplotypes"] != fresh.obsm["haplotypes"]).nnz == 0
    assert list(bundled.uns["variants"]["pos"]) == list(fresh.uns["variants"]["pos"])


def test_personal_screen_refuses_ddp_in_one_line(tiny_enformer):
    from genocl_plugin.errors import GenoclInputError
    from genocl_plugin.training.update import UpdateConfig, train_on_screen

    data = objectives.PersonalDataset([np.zeros(512, np.uint8)], np.array([0]), [np.zeros(0, int)],
                                      [np.zeros(0, np.uint8)], [np.zeros(0, np.uint8)], np.array([7]),
                                      np.array([9]), np.array([1.0]), np.ones(74, bool), ["g|p"], ["g"], ["p"])
    with pytest.raises(GenoclInputError, match="one device"):
        train_on_screen(tiny_enformer, data, UpdateConfig(), [], {"devices": 2, "strategy": "ddp"})
