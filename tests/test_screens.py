"""Screen layout, validation and converters (genocl_plugin.data.screens, `genocl screen`).

Converters run on real rows (tests/data, sources in tests/data/README.md) and are checked
against facts one can verify by hand in the raw tables.
"""

from __future__ import annotations

import gzip
import math
import shutil

import anndata
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin.data import reference, screens
from genocl_plugin.errors import GenoclInputError

KIRCHER = "kircher2019_elements_subset.tsv.gz"
KIRCHER_FASTA = "kircher2019_elements_subset_GRCh38.fa"
ENGREITZ = "engreitz_K562_subset.GRCh38.tsv.gz"
CHR1 = "hg38_chr1_1-30000.fa"
# 1-based, inclusive starts of the elements in the FASTA headers (= about.md of Kircher 2019)
ELEMENT_START_1BASED = {"F9": 139530463, "HBB": 5227022, "MYCrs11986220": 127519270}


@pytest.fixture(scope="module")
def raw_kircher(data_dir) -> pd.DataFrame:
    """The fixture table as published (both releases, NA rows kept)."""
    return pd.read_csv(data_dir / KIRCHER, sep="\t", dtype={"Chrom": str})


@pytest.fixture(scope="module")
def raw_engreitz(data_dir) -> pd.DataFrame:
    return pd.read_csv(data_dir / ENGREITZ, sep="\t")


@pytest.fixture(scope="module")
def mpra_screen(data_dir):
    return screens.from_satmut(data_dir / KIRCHER, data_dir / KIRCHER_FASTA)


@pytest.fixture(scope="module")
def crispri_screen(data_dir):
    return screens.from_crispri(data_dir / ENGREITZ)


@pytest.fixture()
def chr1_fasta(data_dir, tmp_path):
    """A copy of the real hg38 chr1:1-30,000 slice (pyfaidx writes its .fai beside it)."""
    path = tmp_path / CHR1
    shutil.copy(data_dir / CHR1, path)
    return path


def fasta_screen(fasta, rows) -> anndata.AnnData:
    """A hand-made CRISPRi screen over a FASTA: rows are (gene, chrom, tss, elements, effect)."""
    obs = pd.DataFrame(rows, columns=["gene", "tss_chrom", "tss_pos", "elements", "effect"])
    obs["tss_strand"] = "+"
    obs.index = [f"row{i}" for i in range(len(obs))]
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "crispri"
    adata.uns["sequence_source"] = str(fasta)
    return adata


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    """Exit 2, exactly one stderr line `error: ...` holding each needle, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "fix:" in lines[0]
    assert "Traceback" not in result.output
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


# --------------------------------------------------------------------------- from_satmut


def test_from_satmut_known_rows(mpra_screen):
    obs = mpra_screen.obs
    # elements.tsv.gz: "X 139530463 G A 270 5435 2910 -0.279235111945082 ... F9 GRCh38"
    row = obs.loc["F9:139530463:G>A"]
    assert row["pos"] == 0 and row["ref"] == "G" and row["alt"] == "A"
    assert row["effect"] == pytest.approx(-0.279235111945082)
    assert row["chrom"] == "chrX" and row["barcodes"] == 270
    # "X 139530465 C - ... -0.0509011131535936": a 1-bp deletion, third base of F9 (GTC...)
    deletion = obs.loc["F9:139530465:C>-"]
    assert (deletion["pos"], deletion["ref"], deletion["alt"]) == (2, "C", "-")
    assert deletion["effect"] == pytest.approx(-0.0509011131535936)
    # "11 5227030 T C ... 0.0788390883880286 ... HBB": HBB starts at 5227022 -> pos 8
    hbb = obs.loc["HBB:5227030:T>C"]
    assert hbb["pos"] == 8 and mpra_screen.uns["element_sequences"]["HBB"][8] == "T"
    assert hbb["effect"] == pytest.approx(0.0788390883880286)
    # the last base of F9 (chrX:139530765, 303 bp) is pos 302
    assert obs.loc["F9:139530765:A>-", "pos"] == 302
    assert len(mpra_screen.uns["element_sequences"]["F9"]) == 303


def test_from_satmut_every_row_matches_the_raw_table(mpra_screen, raw_kircher):
    raw = raw_kircher[raw_kircher["Release"] == "GRCh38"].dropna(subset=["Pos"])
    raw = raw.set_index(raw["Element"] + ":" + raw["Pos"].astype(int).astype(str) + ":"
                        + raw["Ref"] + ">" + raw["Alt"])
    obs = mpra_screen.obs
    assert set(obs.index) == set(raw.index)  # every GRCh38 row with a position, nothing else
    raw = raw.loc[obs.index]
    sequences = mpra_screen.uns["element_sequences"]
    starts = obs["element"].astype(str).map(ELEMENT_START_1BASED)
    np.testing.assert_array_equal(obs["pos"], raw["Pos"].astype(int) - starts)
    np.testing.assert_allclose(obs["effect"], raw["Coefficient"])
    np.testing.assert_allclose(obs["pvalue"], raw["pValue"])
    for element, pos, ref in zip(obs["element"].astype(str), obs["pos"], obs["ref"], strict=True):
        assert sequences[element][pos] == ref


def test_from_satmut_drops_na_rows_and_other_release(mpra_screen, raw_kircher):
    myc = raw_kircher[(raw_kircher["Element"] == "MYCrs11986220")
                      & (raw_kircher["Release"] == "GRCh38")]
    assert myc["Pos"].isna().sum() == 4  # the fixture holds the 4 published NA rows
    assert (mpra_screen.obs["element"] == "MYCrs11986220").sum() == myc["Pos"].notna().sum()
    grch37 = raw_kircher[raw_kircher["Release"] == "GRCh37"]["Pos"].dropna().astype(int)
    assert not set(grch37) & set(mpra_screen.obs["genomic_pos"])
    assert (mpra_screen.obs["alt"] == "-").sum() == 24  # 6 F9 + 9 HBB + 9 MYC deletions
    assert mpra_screen.uns["element_coordinates"]["F9"] == "chrX:139530462-139530765"


def test_from_satmut_release_must_match_fasta(data_dir):
    with pytest.raises(GenoclInputError, match=r"header.*GRCh38, not GRCh37.*--release GRCh38"):
        screens.from_satmut(data_dir / KIRCHER, data_dir / KIRCHER_FASTA, release="GRCh37")


def test_from_satmut_element_selection_and_subsampling(data_dir):
    hbb = screens.from_satmut(data_dir / KIRCHER, data_dir / KIRCHER_FASTA, elements=["HBB"])
    assert set(hbb.obs["element"]) == {"HBB"} and list(hbb.uns["element_sequences"]) == ["HBB"]
    small = screens.from_satmut(data_dir / KIRCHER, data_dir / KIRCHER_FASTA, max_per_element=10,
                                seed=1)
    assert small.obs["element"].value_counts().max() == 10 and small.n_obs == 30
    again = screens.from_satmut(data_dir / KIRCHER, data_dir / KIRCHER_FASTA, max_per_element=10,
                                seed=1)
    assert list(small.obs_names) == list(again.obs_names)
    with pytest.raises(GenoclInputError, match="'SORT1' not in the FASTA"):
        screens.from_satmut(data_dir / KIRCHER, data_dir / KIRCHER_FASTA, elements=["SORT1"])


def test_from_satmut_bad_tables(data_dir, tmp_path):
    no_coef = tmp_path / "no_coef.tsv"
    raw = pd.read_csv(data_dir / KIRCHER, sep="\t")
    raw.drop(columns="Coefficient").to_csv(no_coef, sep="\t", index=False)
    with pytest.raises(GenoclInputError, match="Coefficient: column missing"):
        screens.from_satmut(no_coef, data_dir / KIRCHER_FASTA)
    with pytest.raises(GenoclInputError, match="unreadable TSV"):
        screens.from_satmut(tmp_path / "absent.tsv.gz", data_dir / KIRCHER_FASTA)


def test_screen_roundtrip(mpra_screen, tmp_path):
    path = screens.write_screen(mpra_screen, tmp_path / "mpra.h5ad")
    back = screens.read_screen(path)
    pd.testing.assert_frame_equal(back.obs, mpra_screen.obs)
    assert back.uns["element_sequences"] == mpra_screen.uns["element_sequences"]
    with pytest.raises(GenoclInputError, match="already exists.*--force"):
        screens.write_screen(mpra_screen, path)


# --------------------------------------------------------------------------- from_crispri


def test_from_crispri_keeps_only_pairs_inside_bundled_windows(crispri_screen, raw_engreitz):
    assert len(raw_engreitz) == 9
    assert sorted(crispri_screen.obs["gene"]) == ["CAB39", "CAB39", "FADS3"]
    fads3 = crispri_screen.obs.loc["FADS3|chr11:61871048-61871769"]
    # raw row: chr11 61871048 61871769 ... EffectSize 0.0597111420831336 chr11 61892050 61892051
    assert fads3["tss_chrom"] == "chr11" and fads3["tss_pos"] == 61892050
    assert fads3["effect"] == pytest.approx(math.log2(1 + 0.0597111420831336))
    raw = raw_engreitz.set_index(raw_engreitz["measuredGeneSymbol"] + "|" + raw_engreitz["chrom"]
                                 + ":" + raw_engreitz["chromStart"].astype(str) + "-"
                                 + raw_engreitz["chromEnd"].astype(str))
    raw = raw.loc[crispri_screen.obs_names]
    np.testing.assert_allclose(crispri_screen.obs["effect"], np.log2(1 + raw["EffectSize"]))
    np.testing.assert_array_equal(crispri_screen.obs["tss_pos"], raw["startTSS"])
    for chrom, tss, elements in zip(crispri_screen.obs["tss_chrom"], crispri_screen.obs["tss_pos"],
                                    crispri_screen.obs["elements"], strict=True):
        _, start, end = screens.parse_interval(elements)
        assert reference.find_window(chrom, min(start, tss), max(end, tss + 1)) is not None
    assert crispri_screen.uns["sequence_source"] == "bundled"


def test_from_crispri_records_the_cell_type(crispri_screen, raw_engreitz, data_dir, tmp_path):
    """The EngreitzLab table's CellType becomes uns["cell_type"] (the readout's default cell type)."""
    assert set(raw_engreitz["CellType"]) == {"K562"}
    assert crispri_screen.uns["cell_type"] == "K562"
    assert list(crispri_screen.obs["cell_type"]) == ["K562"] * 3
    out = tmp_path / "k562.h5ad"
    result = run_cli("screen", "from-crispri", "--table", data_dir / ENGREITZ, "--out", out)
    assert result.exit_code == 0, result.output
    assert "cell type: K562 (uns['cell_type'])" in result.output
    assert anndata.read_h5ad(out).uns["cell_type"] == "K562"
    # several cell types among the kept pairs: the most common is stored, and the summary says so
    table = raw_engreitz.copy()
    table.loc[table["measuredGeneSymbol"] == "FADS3", "CellType"] = "HepG2"
    table.to_csv(tmp_path / "mixed.tsv", sep="\t", index=False)
    result = run_cli("screen", "from-crispri", "--table", tmp_path / "mixed.tsv", "--out", tmp_path / "mixed.h5ad")
    assert result.exit_code == 0, result.output
    assert "uns['cell_type'] is the most common, K562 (2 of 3 pairs; also HepG2 1)" in result.output
    mixed = anndata.read_h5ad(tmp_path / "mixed.h5ad")
    assert mixed.uns["cell_type"] == "K562" and sorted(mixed.obs["cell_type"]) == ["HepG2", "K562", "K562"]


def test_from_crispri_nothing_inside(data_dir, chr1_fasta):
    with pytest.raises(GenoclInputError, match="no element-gene pair lies inside.*fix: pass --fasta"):
        screens.from_crispri(data_dir / ENGREITZ, datasets=["Nasser2021"])
    with pytest.raises(GenoclInputError, match="no element-gene pair"):
        screens.from_crispri(data_dir / ENGREITZ, sequence_source=str(chr1_fasta))


def test_from_crispri_with_fasta(raw_engreitz, chr1_fasta, tmp_path, monkeypatch):
    """Real rows moved onto the real chr1 slice: only pairs inside the 30 kb are kept."""
    table = raw_engreitz.head(3).copy()
    table["chrom"] = table["chrTSS"] = ["chr1", "chr1", "chr2"]
    table["chromStart"], table["chromEnd"] = [20_000, 29_900, 20_000], [20_500, 30_100, 20_500]
    table["startTSS"], table["endTSS"] = [25_000, 25_000, 25_000], [25_001, 25_001, 25_001]
    path = tmp_path / "moved.tsv"
    table.to_csv(path, sep="\t", index=False)
    monkeypatch.chdir(tmp_path)
    adata = screens.from_crispri(path, sequence_source=chr1_fasta.name)  # a relative path
    assert list(adata.obs_names) == [f"{table['measuredGeneSymbol'].iloc[0]}|chr1:20000-20500"]
    assert adata.obs["effect"].iloc[0] == pytest.approx(math.log2(1 + table["EffectSize"].iloc[0]))
    assert adata.uns["sequence_source"] == str(chr1_fasta.resolve())


# --------------------------------------------------------------------------- validation

def _mpra_broken(kind: str, base: anndata.AnnData) -> tuple[anndata.AnnData, str]:
    adata = base.copy()
    for column in ("ref", "alt"):  # writing .h5ad turns strings into categoricals in place
        adata.obs[column] = adata.obs[column].astype(str)
    first = adata.obs_names[0]
    if kind == "assay missing":
        del adata.uns["assay"]
        return adata, "uns['assay']: is None"
    if kind == "assay wrong":
        adata.uns["assay"] = "starr"
        return adata, "uns['assay']: is 'starr'"
    if kind == "column missing":
        adata.obs = adata.obs.drop(columns="ref")
        return adata, "obs['ref']: missing (assay=mpra)"
    if kind == "NaN effect":
        adata.obs.loc[first, "effect"] = np.nan
        return adata, f"obs['effect']: 1 non-finite values (first: row {first})"
    if kind == "ref mismatch":
        adata.obs.loc["F9:139530463:G>A", "ref"] = "T"  # F9 starts with G
        return adata, "obs['ref']: row F9:139530463:G>A: ref 'T' != element F9 sequence 'G'"
    if kind == "pos outside element":
        adata.obs.loc["F9:139530463:G>A", "pos"] = 303  # F9 is 303 bp
        return adata, "obs['pos']: row F9:139530463:G>A: position 303 is outside element F9"
    if kind == "pos negative":
        adata.obs.loc["F9:139530463:G>A", "pos"] = -1
        return adata, "obs['pos']: row F9:139530463:G>A: position -1 is outside element F9"
    if kind == "no sequences":
        del adata.uns["element_sequences"]
        return adata, "uns['element_sequences']: missing or empty"
    if kind == "bad alt":
        adata.obs.loc["F9:139530463:G>A", "alt"] = "X"
        return adata, "obs['alt']: row F9:139530463:G>A: alt 'X'"
    raise AssertionError(kind)


MPRA_CASES = ["assay missing", "assay wrong", "column missing", "NaN effect", "ref mismatch",
              "pos outside element", "pos negative", "no sequences", "bad alt"]


@pytest.mark.parametrize("kind", MPRA_CASES)
def test_mpra_validation_errors(kind, mpra_screen, tmp_path):
    adata, expected = _mpra_broken(kind, mpra_screen)
    path = tmp_path / "broken.h5ad"
    with pytest.raises(GenoclInputError) as err:
        screens.validate_screen(adata, path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "; fix: " in message
    assert "\n" not in message
    adata.write_h5ad(path)  # bypasses validation, as a user's own script would
    assert_one_line_error(run_cli("screen", "validate", path), path, expected)


def _crispri_broken(kind: str, base: anndata.AnnData) -> tuple[anndata.AnnData, str]:
    adata = base.copy()
    adata.obs["elements"] = adata.obs["elements"].astype(str)
    fads3 = "FADS3|chr11:61871048-61871769"
    if kind == "element outside windows":
        adata.obs.loc[fads3, "elements"] = "chr11:1000-1500"
        return adata, f"obs['elements']: row {fads3}: chr11:1000-61892051 is outside the bundled"
    if kind == "column missing":
        adata.obs = adata.obs.drop(columns="tss_pos")
        return adata, "obs['tss_pos']: missing (assay=crispri)"
    if kind == "NaN effect":
        adata.obs.loc[fads3, "effect"] = np.nan
        return adata, f"obs['effect']: 1 non-finite values (first: row {fads3})"
    if kind == "bad interval":
        adata.obs.loc[fads3, "elements"] = "chr11:61871769-61871048"
        return adata, f"obs['elements']: row {fads3}: empty interval"
    if kind == "other chromosome":
        adata.obs.loc[fads3, "elements"] = "chr11:61871048-61871769;chr2:230658599-230659099"
        return adata, f"obs['elements']: row {fads3}: element on chr2 but TSS on chr11"
    if kind == "no source":
        del adata.uns["sequence_source"]
        return adata, "uns['sequence_source']: missing"
    if kind == "bad strand":
        adata.obs["tss_strand"] = "plus"
        return adata, "obs['tss_strand']: values ['plus']"
    raise AssertionError(kind)


CRISPRI_CASES = ["element outside windows", "column missing", "NaN effect", "bad interval",
                 "other chromosome", "no source", "bad strand"]


@pytest.mark.parametrize("kind", CRISPRI_CASES)
def test_crispri_validation_errors(kind, crispri_screen, tmp_path):
    adata, expected = _crispri_broken(kind, crispri_screen)
    path = tmp_path / "broken.h5ad"
    with pytest.raises(GenoclInputError) as err:
        screens.validate_screen(adata, path)
    assert expected in str(err.value) and "; fix: " in str(err.value)
    adata.write_h5ad(path)
    assert_one_line_error(run_cli("screen", "validate", path), path, expected)


def test_crispri_validation_against_a_fasta(chr1_fasta, tmp_path):
    good = fasta_screen(chr1_fasta, [("A", "chr1", 25_000, "chr1:20000-20500", -0.1),
                                     ("B", "chr1", 12_000, "chr1:10500-11000;chr1:14000-14500",
                                      0.05)])
    screens.validate_screen(good)
    path = tmp_path / "good.h5ad"
    screens.write_screen(good, path)
    result = run_cli("screen", "validate", path)
    assert result.exit_code == 0 and "valid crispri screen with 2 rows" in result.output

    cases = [
        ([("A", "chr1", 25_000, "chr1:29900-30100", 0.1)],
         "obs['elements']: row row0: chr1:25000-30100 runs past the contig end"),
        ([("A", "chr2", 25_000, "chr2:20000-20500", 0.1)],
         f"obs['tss_chrom']: row row0: 'chr2' is not a contig of {chr1_fasta}"),
    ]
    for rows, expected in cases:
        bad = fasta_screen(chr1_fasta, rows)
        with pytest.raises(GenoclInputError) as err:
            screens.validate_screen(bad, "bad.h5ad")
        assert expected in str(err.value)
        bad.write_h5ad(tmp_path / "bad.h5ad")
        assert_one_line_error(run_cli("screen", "validate", tmp_path / "bad.h5ad"), expected)

    missing = fasta_screen(tmp_path / "absent.fa", [("A", "chr1", 25_000, "chr1:20000-20500", 0.1)])
    with pytest.raises(GenoclInputError, match=r"absent.fa: uns\['sequence_source'\]: FASTA not"):
        screens.validate_screen(missing)


def test_read_screen_file_errors(tmp_path):
    with pytest.raises(GenoclInputError, match="file: not found"):
        screens.read_screen(tmp_path / "absent.h5ad")
    text = tmp_path / "screen.h5ad"
    text.write_text("gene\teffect\nFADS3\t0.1\n")
    with pytest.raises(GenoclInputError, match=r"not a readable \.h5ad"):
        screens.read_screen(text)
    assert_one_line_error(run_cli("screen", "validate", tmp_path / "absent.h5ad"),
                          tmp_path / "absent.h5ad", "file: not found")
    assert_one_line_error(run_cli("screen", "validate", text), text, "not a readable .h5ad")


# --------------------------------------------------------------------------- CLI converters


def test_cli_from_satmut_and_force(data_dir, tmp_path):
    out = tmp_path / "mpra.h5ad"
    args = ["screen", "from-satmut", "--table", data_dir / KIRCHER, "--fasta",
            data_dir / KIRCHER_FASTA, "--elements", "F9,HBB", "--out", out]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "204 variants over 2 elements" in result.output
    assert screens.read_screen(out).n_obs == 204
    before = out.read_bytes()
    assert_one_line_error(run_cli(*args), out, "--out: already exists", "--force")
    assert out.read_bytes() == before
    result = run_cli(*args[:-2], "--elements", "HBB", "--out", out, "--force")
    assert result.exit_code == 0 and screens.read_screen(out).n_obs == 105


def test_cli_from_satmut_errors(data_dir, tmp_path):
    out = tmp_path / "x.h5ad"
    assert_one_line_error(
        run_cli("screen", "from-satmut", "--table", data_dir / KIRCHER, "--fasta",
                data_dir / KIRCHER_FASTA, "--release", "GRCh37", "--out", out),
        data_dir / KIRCHER_FASTA, "header", "--release GRCh38")
    assert_one_line_error(
        run_cli("screen", "from-satmut", "--table", tmp_path / "absent.tsv.gz", "--fasta",
                data_dir / KIRCHER_FASTA, "--out", out),
        "absent.tsv.gz", "unreadable TSV")
    assert not out.exists()


def test_cli_from_crispri(data_dir, chr1_fasta, tmp_path):
    out = tmp_path / "crispri.h5ad"
    args = ["screen", "from-crispri", "--table", data_dir / ENGREITZ, "--out", out]
    result = run_cli(*args)
    assert result.exit_code == 0 and "3 element-gene pairs" in result.output
    before = out.read_bytes()
    assert_one_line_error(run_cli(*args), out, "already exists")
    assert out.read_bytes() == before
    assert_one_line_error(
        run_cli("screen", "from-crispri", "--table", data_dir / ENGREITZ, "--fasta", chr1_fasta,
                "--out", tmp_path / "other.h5ad"),
        "no element-gene pair lies inside")
    assert_one_line_error(
        run_cli("screen", "from-crispri", "--table", data_dir / ENGREITZ, "--fasta",
                tmp_path / "absent.fa", "--out", tmp_path / "other.h5ad"),
        "--fasta: FASTA not found")
    assert not (tmp_path / "other.h5ad").exists()


def test_fixture_tables_are_the_published_format(data_dir):
    """The fixtures keep the upstream headers (so the converters see what users have)."""
    with gzip.open(data_dir / KIRCHER, "rt") as handle:
        assert handle.readline().rstrip("\n").split("\t") == [
            "Chrom", "Pos", "Ref", "Alt", "Barcodes", "DNA", "RNA", "Coefficient", "pValue",
            "Element", "Release"]
    with gzip.open(data_dir / ENGREITZ, "rt") as handle:
        assert len(handle.readline().split("\t")) == 42


# --------------------------------------------------------------------------- in-distribution split


def test_split_by_position_blocks_holds_out_blocks_inside_every_element(mpra_screen):
    train, test = screens.split_by_position_blocks(mpra_screen, test_fraction=0.25, block_bp=20, gap_bp=5, seed=1)
    assert test.n_obs > 0 and train.n_obs > 0
    assert not set(train.obs_names) & set(test.obs_names)
    for element in mpra_screen.obs["element"].unique():
        tr = train.obs[train.obs["element"] == element]
        te = test.obs[test.obs["element"] == element]
        # every element with >= 2 blocks keeps training rows and loses at least one block
        if mpra_screen.obs.loc[mpra_screen.obs["element"] == element, "pos"].floordiv(20).nunique() >= 2:
            assert len(tr) and len(te)
        # held-out rows are whole blocks: no training row shares a block with a held-out row
        assert not set(tr["pos"] // 20) & set(te["pos"] // 20)
        # and no training row is within the guard band of a held-out position
        if len(tr) and len(te):
            gap = np.abs(tr["pos"].to_numpy()[:, None] - te["pos"].to_numpy()[None, :]).min()
            assert gap >= 5
    # the rows dropped are only guard-band rows
    assert train.n_obs + test.n_obs <= mpra_screen.n_obs
    again = screens.split_by_position_blocks(mpra_screen, test_fraction=0.25, block_bp=20, gap_bp=5, seed=1)[1]
    assert list(again.obs_names) == list(test.obs_names)


def test_split_by_position_blocks_off_for_crispri_and_zero_fraction(crispri_screen, mpra_screen):
    train, test = screens.split_by_position_blocks(crispri_screen)
    assert test.n_obs == 0 and train.n_obs == crispri_screen.n_obs
    train, test = screens.split_by_position_blocks(mpra_screen, test_fraction=0)
    assert test.n_obs == 0 and train.n_obs == mpra_screen.n_obs


def test_max_eval_id_sizes_the_in_distribution_check_alone():
    """--max-eval-id subsamples the held-out blocks; --max-eval still sizes the held-out elements."""
    from genocl_plugin.config import UpdateConfig

    path = screens.BUNDLED_SCREENS["enformer"]
    config = UpdateConfig(data=str(path), seed=0, holdout=0.3, max_train=64, max_eval=48)
    _, _, test, test_id = screens.prepare_screen(config, None, in_distribution=True)
    assert test.n_obs == 48 and test_id.n_obs == 48
    config.max_eval_id = 300
    _, _, test2, test_id2 = screens.prepare_screen(config, None, in_distribution=True)
    assert test2.n_obs == 48 and list(test2.obs_names) == list(test.obs_names)
    assert test_id2.n_obs == 300 and not set(test_id2.obs["element"]) & set(test.obs["element"])
