"""genocl_plugin.scoring.variants and ``genocl score-vcf`` on real hg38 sequence and real GTEx variants.

Fixtures (tests/data, sources in tests/data/README_variants.md): ``hg38_chr1_1-140000.fa.gz``
(hg38 chr1:1-140,000, real coordinates) and ``gtex_eqtl_chr1_first1Mb.vcf`` (8 GTEx v8 eQTL
SNVs, a sites-only VCF without a #CHROM line, as published). Small VCFs for edge cases are
written by the tests from REF bases read out of the fixture FASTA.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.scoring import variants

DATA = Path(__file__).parent / "data"
FASTA = DATA / "hg38_chr1_1-140000.fa.gz"
GTEX = DATA / "gtex_eqtl_chr1_first1Mb.vcf"
HEADER = ("##fileformat=VCFv4.2\n##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Depth\">\n"
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


@pytest.fixture(scope="module")
def genome():
    return reference.open_fasta(FASTA)


def base(genome, pos: int, n: int = 1) -> str:
    """The hg38 bases at 1-based ``pos`` (n of them)."""
    return genome["chr1"][pos - 1 : pos - 1 + n]


def other(b: str) -> str:
    return next(x for x in "ACGT" if x != b)


def write_vcf(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def edge_case_rows(genome, multi_contig: str = "chr1") -> list[str]:
    """One record per case; real REF bases except the deliberate mismatch."""
    b = {p: base(genome, p) for p in (20001, 20011, 20021, 20031, 20051, 20061, 139990)}
    alts = [x for x in "ACGT" if x != b[20011]]
    return [
        f"chr1\t20001\tsnv\t{b[20001]}\t{other(b[20001])}\t.\t.\t.",
        f"{multi_contig}\t20011\tmulti\t{b[20011]}\t{alts[0]},{alts[1]},*\t.\tPASS\tDP=3",
        f"chr1\t20021\tsv\t{b[20021]}\t<DEL>\t.\t.\t.",
        f"chr1\t20031\tins\t{b[20031]}\t{b[20031]}GT\t.\t.\t.",
        f"chr1\t20041\tdel\t{base(genome, 20041, 3)}\t{base(genome, 20041)}\t.\t.\t.",
        f"chr1\t20051\tmismatch\t{other(b[20051])}\t{b[20051]}\t.\t.\t.",
        f"chr1\t20061\tnoalt\t{b[20061]}\t.\t.\t.\t.",
        f"chr1\t139990\tend\t{b[139990]}\t{other(b[139990])}\t.\t.\t.",  # window runs past the end
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny untrained ProCapNet-layout model saved as a genocl model directory."""
    from genocl_plugin.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=352, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny")


def run_cli(*args: str):
    from genocl_cli.main import main

    return CliRunner().invoke(main, ["score-vcf", *map(str, args)])


# --------------------------------------------------------------------------- reading


def test_read_variants_splits_multiallelic_and_keeps_fields(tmp_path, genome):
    vcf = write_vcf(tmp_path / "v.vcf", edge_case_rows(genome, multi_contig="1"))
    alleles = list(variants.read_variants(vcf))
    multi = [v for v in alleles if v.id == "multi"]
    assert [v.alt for v in multi][2] == "*" and [v.allele for v in multi] == [1, 2, 3]
    assert {v.record for v in multi} == {1} and multi[0].filter == "PASS" and multi[0].info == "DP=3"
    assert len(alleles) == 10 and alleles[-1].pos == 139990


def test_bcf_reads_like_vcf(tmp_path, genome):
    import pysam

    vcf = write_vcf(tmp_path / "v.vcf", edge_case_rows(genome),
                    header=HEADER.replace("#CHROM", "##contig=<ID=chr1,length=140000>\n"
                                          '##INFO=<ID=END,Number=1,Type=Integer,Description="End">\n'
                                          "#CHROM"))
    with pysam.VariantFile(str(vcf)) as src, pysam.VariantFile(str(tmp_path / "v.bcf"), "wb",
                                                               header=src.header) as dst:
        for record in src:
            dst.write(record)
    as_text = [v[:6] for v in variants.read_variants(vcf)]
    assert [v[:6] for v in variants.read_variants(tmp_path / "v.bcf")] == as_text


def test_gtex_vcf_without_chrom_line_is_read_with_a_warning():
    with pytest.warns(variants.VariantWarning, match="no #CHROM header line"):
        alleles = list(variants.read_variants(GTEX))
    assert [(v.pos, v.ref, v.alt) for v in alleles][:2] == [(14677, "G", "A"), (54490, "G", "A")]
    assert len(alleles) == 8


def test_read_variants_streams_lazily(tmp_path, genome):
    """The first records come out before the broken end of the file is read."""
    rows = [f"chr1\t{p}\t.\t{base(genome, p)}\tA\t.\t.\t." for p in range(20001, 22001)]
    raw = gzip.compress(write_vcf(tmp_path / "v.vcf", rows).read_bytes())
    (tmp_path / "cut.vcf.gz").write_bytes(raw[: len(raw) // 2])
    stream = variants.read_variants(tmp_path / "cut.vcf.gz")
    assert next(stream).pos == 20001
    with pytest.raises(GenoclInputError, match="truncated gzip"):
        list(stream)


def test_region_and_shards_partition_the_records(tmp_path, genome):
    import pysam

    rows = [f"chr1\t{p}\tr{p}\t{base(genome, p)}\tA\t.\t.\t." for p in range(20001, 20401, 4)]
    plain = write_vcf(tmp_path / "v.vcf", rows)
    pysam.tabix_compress(str(plain), str(tmp_path / "v.vcf.gz"))
    pysam.tabix_index(str(tmp_path / "v.vcf.gz"), preset="vcf")
    ids = [v.id for v in variants.read_variants(plain)]
    shards = [[v.id for v in variants.read_variants(plain, shard=(i, 3))] for i in (1, 2, 3)]
    assert sorted(sum(shards, [])) == sorted(ids) and all(shards)
    assert not set(shards[0]) & set(shards[1])
    # 1-based inclusive on POS; "1" names the "chr1" contig; the tabix index gives the same answer
    expected = [f"r{p}" for p in range(20101, 20201, 4)]
    assert [v.id for v in variants.read_variants(plain, region="1:20101-20200")] == expected
    assert [v.id for v in variants.read_variants(tmp_path / "v.vcf.gz", region="chr1:20101-20200")] == expected


# --------------------------------------------------------------------------- sequences


def test_variant_windows_place_alleles_left_anchored(genome):
    seq_len, centre = 352, 352 // 2 - 1
    start = 30000 - 1 - centre
    genome_seq = base(genome, start + 1, seq_len + 10)
    to_seq = reference.codes_to_seq
    ref_b = base(genome, 30000)
    ref_w, alt_w, fasta_ref = variants.variant_windows("chr1", 30000, ref_b, other(ref_b), genome, seq_len)
    assert to_seq(ref_w) == genome_seq[:seq_len] and fasta_ref == ref_b
    assert to_seq(alt_w) == genome_seq[:centre] + other(ref_b) + genome_seq[centre + 1 : seq_len]
    # insertion: left flank kept, the right end pushed out of the window
    _, ins, _ = variants.variant_windows("chr1", 30000, ref_b, ref_b + "GGT", genome, seq_len)
    assert to_seq(ins) == (genome_seq[: centre + 1] + "GGT" + genome_seq[centre + 1 :])[:seq_len]
    # deletion: the right side is read further from the genome
    deleted = base(genome, 30000, 4)
    _, dele, fasta_ref = variants.variant_windows("chr1", 30000, deleted, ref_b, genome, seq_len)
    assert fasta_ref == deleted
    assert to_seq(dele) == genome_seq[: centre + 1] + genome_seq[centre + 4 : seq_len + 3]


def test_variant_windows_pad_contig_ends_with_n(genome):
    ref_w, _, _ = variants.variant_windows("chr1", 139990, base(genome, 139990), "A", genome, 352)
    seq = reference.codes_to_seq(ref_w)
    inside = 140000 - (139990 - 1 - 175)  # bp of the window on the contig
    assert "N" not in seq[:inside] and seq[inside:] == "N" * (352 - inside)


def test_genome_reader_matches_direct_fetches(genome):
    """The block cache returns what pyfaidx returns, across block edges and the contig end."""
    fetch = variants.genome_reader(genome, block=1000)
    rng = np.random.default_rng(0)
    starts = np.concatenate([np.sort(rng.integers(-500, 140500, 40)), [139900, -300, 5]])
    for start in starts:
        start = int(start)
        np.testing.assert_array_equal(fetch("chr1", start, start + 700),
                                      reference.fetch_codes("chr1", start, start + 700, genome))


def test_allele_problems():
    assert variants.allele_problem("A", "*", 100) == "star"
    assert variants.allele_problem("A", "<DEL>", 100) == "symbolic"
    assert variants.allele_problem("A", "A[chr2:5[", 100) == "symbolic"
    assert variants.allele_problem("A", ".", 100) == "no_alt"
    assert variants.allele_problem("A", "R", 100) == "invalid_allele"
    assert variants.allele_problem("A", "A" * 101, 100) == "too_long"
    assert variants.allele_problem("AC", "A", 100) is None


def test_contig_aliases():
    aliases = variants.contig_aliases(["chr1", "chrM", "2"])
    assert aliases["1"] == "chr1" and aliases["chr2"] == "2" and aliases["MT"] == "chrM"


# --------------------------------------------------------------------------- tracks / window


def test_select_tracks_by_index_name_and_pattern():
    names = ["CAGE:a [X+]", "CAGE:a [X-]", "DNASE:b", "plus", "minus"]
    assert variants.select_tracks(names, ["2"]) == [2]
    assert variants.select_tracks(names, ["0,2", "DNASE:b"]) == [0, 2]
    assert variants.select_tracks(names, ["CAGE:*"]) == [0, 1]
    assert variants.select_tracks(names, None) == [0, 1, 2, 3, 4]
    with pytest.raises(GenoclInputError, match="no such track"):
        variants.select_tracks(names, ["RNA:*"])
    with pytest.raises(GenoclInputError, match="out of range"):
        variants.select_tracks(names, ["7"])
    assert list(variants.strand_pairs(names)) == [1, 0, 2, 4, 3]


def test_window_bins(tiny_procapnet):
    from types import SimpleNamespace

    enformer_like = SimpleNamespace(bin_size=32, output_length=lambda n: n // 32)
    assert variants.window_bins(enformer_like, 512) == (0, 16)
    assert variants.window_bins(enformer_like, 512, 32) == (7, 9)  # bins around bp 255.5
    assert variants.window_bins(tiny_procapnet, 352, 1) == (127, 128)  # offset 48: bp 175
    assert variants.window_bins(tiny_procapnet, 352, 10) == (122, 133)


# --------------------------------------------------------------------------- agreement with gReLU


@pytest.mark.parametrize("rc", [False, True])
def test_scores_equal_grelu_predict_variant_effects(tmp_path, tiny_procapnet, rc):
    """genocl's TSV scores == gReLU 1.1.0 predict_variant_effects on the same model and SNVs."""
    from grelu.transforms.prediction_transforms import Aggregate
    from grelu.variant import predict_variant_effects

    # gReLU's rc averaging never swaps strands; unstranded names make both do the same thing.
    tiny_procapnet.data_params["tasks"]["name"] = ["s0", "s1"]
    # gReLU reads an uncompressed FASTA and needs a .sizes file beside it.
    fasta = tmp_path / "chr1.fa"
    with gzip.open(FASTA, "rt") as src, open(fasta, "w") as dst:
        shutil.copyfileobj(src, dst)
    (tmp_path / "chr1.fa.sizes").write_text("chr1\t140000\n")
    reference.open_fasta(fasta)  # writes the .fai gReLU needs

    out = tmp_path / "scores.tsv"
    variants.score_vcf(GTEX, tiny_procapnet, fasta, out, rc=rc, batch_size=3, model_name="tiny")
    ours = pd.read_csv(out, sep="\t")
    df = ours[["#CHROM", "POS", "REF", "ALT"]].set_axis(["chrom", "pos", "ref", "alt"], axis=1)
    for score, compare_func in (("diff", "subtract"), ("log2fc", "log2FC")):
        theirs = predict_variant_effects(
            df.copy(), tiny_procapnet, genome=str(fasta), compare_func=compare_func, rc=rc,
            return_ad=False, num_workers=0, batch_size=8, check_reference=False,
            prediction_transform=Aggregate(length_aggfunc="sum"),
        )[..., 0]
        mine = ours[[f"tiny/s{t}/{score}" for t in (0, 1)]].to_numpy()
        assert np.abs(mine).max() > 1e-4  # real, non-zero effects, so a misplaced allele would fail
        np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=2e-6)


def test_rc_averages_strands_with_pairs_swapped(tiny_procapnet, genome):
    """With ``plus`` / ``minus`` tracks, the reverse strand's minus track counts as plus."""
    plan = variants.scoring_plan(tiny_procapnet)
    ref_w, _, _ = variants.variant_windows("chr1", 30000, base(genome, 30000), "A", genome, 352)
    codes = ref_w[None]
    both = variants.predict_window_sums(tiny_procapnet, codes, plan, rc=True)
    with torch.no_grad():
        x = torch.from_numpy(reference.codes_to_one_hot(codes))
        fwd = tiny_procapnet(x).sum(-1).double().numpy()
        rev = tiny_procapnet(x.flip(1, 2)).sum(-1).double().numpy()[:, ::-1]
    np.testing.assert_allclose(both, (fwd + rev) / 2, rtol=1e-5)


def test_score_batches_is_a_stream(tiny_procapnet, genome):
    """The first batch is scored from an endless variant stream: nothing waits for the end."""
    plan = variants.scoring_plan(tiny_procapnet)

    def endless():
        pos = 20001
        while True:
            yield variants.Variant("chr1", pos, ".", base(genome, pos), other(base(genome, pos)))
            pos += 1

    batch, scores = next(variants.score_batches(endless(), tiny_procapnet, genome, plan, batch_size=4))
    assert len(batch) == 4 and scores.shape == (4, 4)


# --------------------------------------------------------------------------- outputs


def test_edge_cases_counted_and_three_output_formats_agree(tmp_path, genome, tiny_procapnet):
    import anndata
    import pysam

    vcf = write_vcf(tmp_path / "v.vcf", edge_case_rows(genome))
    outs = {kind: tmp_path / f"s.{kind}" for kind in ("tsv", "vcf.gz", "h5ad", "1.tsv")}
    for kind, out in outs.items():
        summary = variants.score_vcf(vcf, tiny_procapnet, FASTA, out, model_name="tiny",
                                     batch_size=1 if kind == "1.tsv" else 4)
    assert summary["records"] == 8 and summary["alleles"] == 10 and summary["scored"] == 6
    assert {k: v for k, v in summary["skipped"].items() if v} == {
        "ref_mismatch": 1, "symbolic": 1, "star": 1, "no_alt": 1}
    skipped = pd.read_csv(f"{outs['h5ad']}.skipped.tsv", sep="\t")
    assert "FASTA chr1:20051" in skipped.set_index("ID").loc["mismatch", "detail"]

    tsv = pd.read_csv(outs["tsv"], sep="\t")
    assert list(tsv.columns[:5]) == ["#CHROM", "POS", "ID", "REF", "ALT"]
    assert list(tsv.columns[5:]) == ["tiny/plus/diff", "tiny/minus/diff", "tiny/plus/log2fc",
                                     "tiny/minus/log2fc"]
    assert list(tsv["ID"]) == ["snv", "multi", "multi", "ins", "del", "end"]
    # batches of 4 share the multi-allelic site's REF window; batches of 1 cannot
    np.testing.assert_allclose(tsv.iloc[:, 5:], pd.read_csv(outs["1.tsv"], sep="\t").iloc[:, 5:],
                               rtol=1e-3, atol=2e-6)  # float32 sums differ by batch shape

    assert Path(f"{outs['vcf.gz']}.tbi").exists()
    with pysam.VariantFile(str(outs["vcf.gz"])) as vf:
        assert {"tiny_diff_0", "tiny_log2fc_1"} <= set(vf.header.info)
        assert "track 1 'minus'" in vf.header.info["tiny_diff_1"].description
        records = list(vf.fetch("chr1", 20000, 20050))
    assert [r.id for r in records] == ["snv", "multi", "multi", "ins", "del"]
    assert records[1].info["DP"] == 3 and records[1].filter.keys() == ["PASS"]
    assert records[0].info["tiny_diff_1"] == pytest.approx(tsv["tiny/minus/diff"][0], rel=1e-5)

    adata = anndata.read_h5ad(outs["h5ad"])
    assert adata.shape == (6, 2) and list(adata.var_names) == ["plus", "minus"]
    np.testing.assert_allclose(adata.X, tsv[["tiny/plus/diff", "tiny/minus/diff"]], rtol=1e-5)
    np.testing.assert_allclose(adata.layers["log2fc"], tsv[["tiny/plus/log2fc", "tiny/minus/log2fc"]],
                               rtol=1e-5)
    assert list(adata.obs["id"]) == list(tsv["ID"])


def test_contig_names_harmonised(tmp_path, genome, tiny_procapnet):
    """A VCF saying ``1`` is scored against the FASTA's ``chr1`` and keeps its own name."""
    row = f"\t20001\t.\t{base(genome, 20001)}\tA\t.\t.\t."
    tables = []
    for contig in ("1", "chr1"):
        out = tmp_path / f"{contig}.tsv"
        variants.score_vcf(write_vcf(tmp_path / f"{contig}.vcf", [contig + row]), tiny_procapnet,
                           FASTA, out)
        tables.append(pd.read_csv(out, sep="\t", dtype={"#CHROM": str}))
    assert tables[0]["#CHROM"][0] == "1"
    np.testing.assert_array_equal(tables[0].iloc[:, 5:], tables[1].iloc[:, 5:])


def test_ref_mismatch_scored_when_allowed(tmp_path, genome, tiny_procapnet):
    vcf = write_vcf(tmp_path / "v.vcf", edge_case_rows(genome)[5:6])
    summary = variants.score_vcf(vcf, tiny_procapnet, FASTA, tmp_path / "s.tsv", allow_ref_mismatch=True)
    assert summary["scored"] == 1 and summary["ref_mismatch_scored"] == 1
    assert "ref_mismatch_scored" in (tmp_path / "s.tsv.skipped.tsv").read_text()


def test_aggregate_and_window(tmp_path, tiny_procapnet):
    out = tmp_path / "s.tsv"
    variants.score_vcf(GTEX, tiny_procapnet, FASTA, out, aggregate=True, window=50, scores=["log2fc"],
                       model_name="m")
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns[5:]) == ["m/aggregate/log2fc"] and len(table) == 8


def test_unsorted_vcf_is_written_without_index(tmp_path, genome, tiny_procapnet):
    rows = [f"chr1\t{p}\t.\t{base(genome, p)}\tA\t.\t.\t." for p in (20100, 20001)]
    summary = variants.score_vcf(write_vcf(tmp_path / "v.vcf", rows), tiny_procapnet, FASTA,
                                 tmp_path / "s.vcf.gz")
    assert summary["unsorted"] and not summary["indexed"]
    assert not (tmp_path / "s.vcf.gz.tbi").exists() and (tmp_path / "s.vcf.gz").exists()


# --------------------------------------------------------------------------- CLI and bad input


def test_cli_scores_the_gtex_vcf(tmp_path, model_dir):
    out = tmp_path / "gtex.vcf.gz"
    result = run_cli("--model", model_dir, "--vcf", GTEX, "--fasta", FASTA, "--out", out,
                     "--tracks", "plus", "--rc", "--window", "200", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "scored 8 of 8 alleles" in result.stdout
    assert "warning:" in result.stderr and "no #CHROM header line" in result.stderr
    assert (tmp_path / "gtex.vcf.gz.tbi").exists()
    lines = [x for x in gzip.open(out, "rt").read().splitlines() if not x.startswith("#")]
    assert len(lines) == 8 and "tiny_log2fc_0=" in lines[0]


def test_cli_progress_when_stderr_is_not_a_terminal(tmp_path, model_dir, monkeypatch):
    """Issue 31: redirected stderr gets [stage] lines and plain progress lines; rates never read 0.0."""
    monkeypatch.setenv("GENOCL_PROGRESS_INTERVAL", "0")
    result = run_cli("--model", model_dir, "--vcf", GTEX, "--fasta", FASTA, "--out", tmp_path / "s.tsv",
                     "--batch-size", "3")
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    stages = [line for line in err if line.startswith("[stage ")]
    assert len(stages) == 4, err
    assert stages[0].startswith(f"[stage 1/3] loading the model ({model_dir}) ... ")
    assert stages[1].startswith("[stage 2/3] counting variants (gtex_eqtl_chr1_first1Mb.vcf) ... ")
    assert stages[1].endswith(" s: 8 alleles")
    assert stages[2] == "[stage 3/3] scoring (8 alleles of gtex_eqtl_chr1_first1Mb.vcf in batches of 3) ..."
    assert re.fullmatch(r"\[stage 3/3\] scoring: done in \d+\.\d s", stages[3]), stages[3]
    progress = [line for line in err if line.startswith("  scoring gtex_eqtl_chr1_first1Mb.vcf: ")]
    assert [line.split(",")[0].split(": ")[1] for line in progress] == [
        "3/8 variants (38%)", "6/8 variants (75%)", "8/8 variants (100%)"]
    assert all(" ETA " in line and "0.0 variants/s" not in line for line in progress)
    summary = result.stdout.splitlines()[0]
    assert summary.startswith("scored 8 of 8 alleles") and "0.0 variants/s" not in summary
    assert " variants/s) -> " in summary or " s/variant) -> " in summary
    quiet = run_cli("--model", model_dir, "--vcf", GTEX, "--fasta", FASTA, "--out", tmp_path / "q.tsv",
                    "--no-progress")
    assert quiet.exit_code == 0 and not [x for x in quiet.stderr.splitlines() if x.startswith("  scoring")]


def one_line_error(result, *fragments: str) -> None:
    """Exit 2 and one ``error:`` line, the last on stderr (after the [stage i/n] lines of stages that ran)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("[stage ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stderr.strip().splitlines()[-1] == lines[0], result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_truncated_gzip_and_bgzip(tmp_path, genome, model_dir):
    import pysam

    rows = [f"chr1\t{p}\t.\t{base(genome, p)}\tA\t.\t.\t." for p in range(20001, 20151)]
    plain = write_vcf(tmp_path / "v.vcf", rows)
    raw = gzip.compress(plain.read_bytes())
    (tmp_path / "cut.vcf.gz").write_bytes(raw[: len(raw) * 2 // 3])
    out = tmp_path / "s.tsv"
    result = run_cli("--model", model_dir, "--vcf", tmp_path / "cut.vcf.gz", "--fasta", FASTA,
                     "--out", out, "--batch-size", "8")
    one_line_error(result, "truncated gzip")
    assert not out.exists() and not list(tmp_path.glob(".s.tsv*"))  # no partial output

    pysam.tabix_compress(str(plain), str(tmp_path / "b.vcf.gz"))
    data = (tmp_path / "b.vcf.gz").read_bytes()
    (tmp_path / "b.vcf.gz").write_bytes(data[:-100])
    one_line_error(run_cli("--model", model_dir, "--vcf", tmp_path / "b.vcf.gz", "--fasta", FASTA,
                           "--out", out), "truncated bgzip")


def test_bad_input_vcf_without_header(tmp_path, genome, model_dir):
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"chr1\t20001\t.\t{base(genome, 20001)}\tA\t.\t.\t.\n")
    one_line_error(run_cli("--model", model_dir, "--vcf", vcf, "--fasta", FASTA, "--out",
                           tmp_path / "s.tsv"), "no VCF header")


def test_bad_input_contig_missing_mid_stream_leaves_no_output(tmp_path, genome, model_dir):
    rows = [f"chr1\t{p}\t.\t{base(genome, p)}\tA\t.\t.\t." for p in (20001, 20002, 20003)]
    vcf = write_vcf(tmp_path / "v.vcf", [*rows, "chr9\t5000\t.\tA\tC\t.\t.\t."])
    out = tmp_path / "out" / "s.vcf.gz"
    result = run_cli("--model", model_dir, "--vcf", vcf, "--fasta", FASTA, "--out", out,
                     "--batch-size", "1")
    one_line_error(result, "'chr9' is not in the FASTA")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_fasta_without_index_is_indexed_and_plain_gzip_fasta_is_refused(tmp_path, model_dir):
    fasta = tmp_path / "chr1.fa"
    with gzip.open(FASTA, "rt") as src, open(fasta, "w") as dst:
        shutil.copyfileobj(src, dst)
    result = run_cli("--model", model_dir, "--vcf", GTEX, "--fasta", fasta, "--out", tmp_path / "s.tsv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "chr1.fa.fai").exists()

    gz = tmp_path / "plain.fa.gz"
    gz.write_bytes(gzip.compress(fasta.read_bytes()))
    one_line_error(run_cli("--model", model_dir, "--vcf", GTEX, "--fasta", gz, "--out",
                           tmp_path / "t.tsv"), "bgzip")


def test_bad_input_unknown_track_and_options(tmp_path, model_dir):
    out = tmp_path / "s.tsv"
    args = ["--model", model_dir, "--vcf", GTEX, "--fasta", FASTA, "--out", out]
    one_line_error(run_cli(*args, "--tracks", "DNASE:*"), "no such track")
    one_line_error(run_cli(*args, "--shard", "4/3"), "--shard")
    one_line_error(run_cli(*args, "--devices", "99"), "--devices")
    one_line_error(run_cli(*args[:-1], tmp_path / "s.bed"), "unknown output format")
    assert not out.exists()
