"""The bad-input corpus: every command, every class of bad value or file (issue 14).

Each case runs the real CLI in-process (click's CliRunner) and asserts genocl's promise for bad
input: exit status 2, no traceback, exactly one ``error:`` line on stderr naming the option or
file (and the field; the last line, after the ``[stage i/n]`` lines of any stages that ran),
nothing on stdout, and every file that existed before byte-identical
afterwards (no new files either: temporary siblings and lock files are gone).

Cases are built by small functions ``case(tmp, shared) -> (argv, expected substrings)``; the
``shared`` fixtures (a tiny ProCapNet model directory, a valid MPRA screen, small tables) are
made once per session and are snapshotted too, so a case that damaged them would fail.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main

DATA = Path(__file__).parent / "data"
BUNDLED = Path(__file__).parents[1] / "genocl_plugin" / "bundled"
KIRCHER_TSV = DATA / "kircher2019_elements_subset.tsv.gz"
KIRCHER_FA = DATA / "kircher2019_elements_subset_GRCh38.fa"
ENGREITZ_TSV = DATA / "engreitz_K562_subset.GRCh38.tsv.gz"
VCF = DATA / "gtex_eqtl_chr1_first1Mb.vcf"
FASTA = DATA / "hg38_chr1_1-30000.fa"
# The [stage i/n] lines of the stages that ran before the error (genocl_plugin/progress.py) may
# precede the one error line; nothing else may.
STAGE_LINE = re.compile(r"\[stage[ \d./]*\] ")


# --------------------------------------------------------------------------- shared fixtures
@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> dict:
    """A tiny model directory, a zoo-like tree and valid screens, made once."""
    from genocl_plugin.models import build_model, save_model

    root = tmp_path_factory.mktemp("bad-inputs-shared")
    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=352, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    save_model(model, root / "tiny")
    torch.save(model.model.bpnet.state_dict(), root / "tiny_state.pt")
    _write_h5ad(_mpra_screen(), root / "mpra.h5ad")
    return {"root": root, "model": root / "tiny", "state": root / "tiny_state.pt",
            "screen": root / "mpra.h5ad"}


def _mpra_screen():
    import anndata

    seq = "ACGTACGTACGTACGTACGT"
    rows = [{"element": "E1" if i < 6 else "E2", "pos": i % 6, "ref": seq[i % 6],
             "alt": "A" if seq[i % 6] != "A" else "C", "effect": 0.1 * i} for i in range(12)]
    obs = pd.DataFrame(rows, index=[f"r{i}" for i in range(12)])
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "mpra"
    adata.uns["element_sequences"] = {"E1": seq, "E2": seq}
    return adata


def _crispri_screen():
    import anndata

    obs = pd.DataFrame({"gene": ["G1", "G2"], "tss_chrom": ["chr1", "chr1"], "tss_pos": [1000, 2000],
                        "tss_strand": ["+", "-"], "elements": ["chr1:500-700", "chr1:1500-1700"],
                        "effect": [-0.5, -0.2]}, index=["p0", "p1"])
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "crispri"
    adata.uns["sequence_source"] = "bundled"
    return adata


def _write_h5ad(adata, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def _screen(tmp: Path, edit, kind: str = "mpra") -> Path:
    adata = _mpra_screen() if kind == "mpra" else _crispri_screen()
    edit(adata)
    return _write_h5ad(adata, tmp / "screen.h5ad")


def _table(tmp: Path, source: Path, edit, name: str = "table.tsv") -> Path:
    df = pd.read_csv(source, sep="\t", dtype=str)
    edit(df)
    out = tmp / name
    df.to_csv(out, sep="\t", index=False)
    return out


def _copy_model(tmp: Path, shared: dict, name: str = "model") -> Path:
    dest = tmp / name
    shutil.copytree(shared["model"], dest)
    return dest


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


# --------------------------------------------------------------------------- the cases
CASES: dict[str, object] = {}


def case(name: str, cls: str):
    """Register ``func(tmp, shared) -> (argv, expected)`` under ``cls/name``."""

    def register(func):
        CASES[f"{cls}/{name}"] = func
        return func

    return register


def _opt(cls: str, name: str, argv: list[str], *expected: str) -> None:
    def build(tmp, shared):
        out = ["--out", str(tmp / "out")] if argv[0] in ("update", "pretrain") else []
        return [*argv, *out], expected

    CASES[f"{cls}/{name}"] = build


# ---- class 1: option values (click types; nothing is loaded) ----------------------------------
_UPDATE_BAD = {
    "epochs -1 (never unlimited)": (["--epochs", "-1"], "--epochs"),
    "epochs 0": (["--epochs", "0"], "--epochs"),
    "epochs text": (["--epochs", "abc"], "--epochs"),
    "epochs fraction": (["--epochs", "1.5"], "--epochs"),
    "batch-size 0": (["--batch-size", "0"], "--batch-size"),
    "batch-size -1": (["--batch-size", "-1"], "--batch-size"),
    "lr -1": (["--lr", "-1"], "--lr"),
    "lr 0": (["--lr", "0"], "--lr"),
    "lr nan": (["--lr", "nan"], "--lr"),
    "lr inf": (["--lr", "inf"], "--lr"),
    "lr text": (["--lr", "fast"], "--lr"),
    "devices abc": (["--devices", "abc"], "--devices"),
    "devices 0": (["--devices", "0"], "--devices"),
    "devices -1": (["--devices", "-1"], "--devices"),
    "devices repeated id": (["--devices", "0,0"], "--devices"),
    "num-nodes 0": (["--num-nodes", "0"], "--num-nodes"),
    "retention-crops -1": (["--retention-crops", "-1"], "--retention-crops"),
    "retention-crops 0": (["--retention-crops", "0"], "--retention-crops"),
    "max-train -5": (["--max-train", "-5"], "--max-train"),
    "max-train 0": (["--max-train", "0"], "--max-train"),
    "max-eval 0": (["--max-eval", "0"], "--max-eval"),
    "holdout 0": (["--holdout", "0"], "--holdout", "strictly between 0 and 1"),
    "holdout -1": (["--holdout", "-1"], "--holdout", "strictly between 0 and 1"),
    "holdout 1": (["--holdout", "1"], "--holdout", "strictly between 0 and 1"),
    "holdout 1.5": (["--holdout", "1.5"], "--holdout"),
    "holdout nan": (["--holdout", "nan"], "--holdout"),
    "replay-ratio -2": (["--replay-ratio", "-2"], "--replay-ratio"),
    "replay-ratio 0": (["--replay-ratio", "0"], "--replay-ratio"),
    "replay-budget-mb 0": (["--replay-budget-mb", "0"], "--replay-budget-mb"),
    "lora-rank 0": (["--lora-rank", "0"], "--lora-rank"),
    "lora-rank -3": (["--lora-rank", "-3"], "--lora-rank"),
    "ewc-decay 5": (["--ewc-decay", "5"], "--ewc-decay", "between 0 and 1"),
    "ewc-decay -0.1": (["--ewc-decay", "-0.1"], "--ewc-decay"),
    "ewc-lambda -1": (["--ewc-lambda", "-1"], "--ewc-lambda"),
    "si-c -1": (["--si-c", "-1"], "--si-c"),
    "mas-lambda nan": (["--mas-lambda", "nan"], "--mas-lambda"),
    "l2sp-alpha -1": (["--l2sp-alpha", "-1"], "--l2sp-alpha"),
    "distill-weight -1": (["--distill-weight", "-1"], "--distill-weight"),
    "max-drift 0": (["--max-drift", "0"], "--max-drift"),
    "max-drift 1.5": (["--max-drift", "1.5"], "--max-drift"),
    "seed -1": (["--seed", "-1"], "--seed"),
    "silencing bogus": (["--silencing", "bogus"], "--silencing"),
    "replay-policy bogus": (["--replay-policy", "bogus"], "--replay-policy"),
    "unknown option": (["--epoch", "2"], "--epoch"),
    "mpra-input-length 0": (["--mpra-input-length", "0"], "--mpra-input-length"),
    "id-holdout nan": (["--id-holdout", "nan"], "--id-holdout"),
    "id-holdout 5": (["--id-holdout", "5"], "--id-holdout", "[0, 1)"),
    "id-holdout -1": (["--id-holdout", "-1"], "--id-holdout", "[0, 1)"),
    "id-holdout 1": (["--id-holdout", "1"], "--id-holdout"),
}
for _name, (_args, *_expected) in _UPDATE_BAD.items():
    _opt("option", f"update {_name}", ["update", *_args], *_expected)
CASES["option/update without --out"] = lambda tmp, shared: (["update"], ("--out",))
# the memory pre-flight (genocl_plugin/training/memory.py): a step of a million examples fits no machine;
# refused after the (mini) model loads, before the reference set, the screen or any step
CASES["option/update batch-size beyond memory"] = lambda tmp, shared: (
    ["update", "--model", "procapnet", "--out", str(tmp / "r"), "--batch-size", "1000000"],
    ("--batch-size", "one training step needs", "is free", "use --batch-size"))
CASES["option/update --publish ../x"] = lambda tmp, shared: (
    ["update", "--out", str(tmp / "r"), "--publish", "../x"], ("--publish", "invalid entry name"))
CASES["option/update --publish ''"] = lambda tmp, shared: (
    ["update", "--out", str(tmp / "r"), "--publish", ""], ("--publish", "invalid entry name"))
CASES["option/update --zoo is a file"] = lambda tmp, shared: (
    (tmp / "zoo").write_text("a file") and
    ["update", "--out", str(tmp / "r"), "--publish", "g/m-v1", "--zoo", str(tmp / "zoo")], ("--zoo", "is a file"))

_PRETRAIN_BAD = {
    "batch-size 0": (["--batch-size", "0"], "--batch-size"),
    "max-epochs 0": (["--max-epochs", "0"], "--max-epochs"),
    "lr 0": (["--lr", "0"], "--lr"),
    "limit-train-batches 0": (["--limit-train-batches", "0"], "--limit-train-batches"),
    "limit-train-batches 2.5": (["--limit-train-batches", "2.5"], "--limit-train-batches"),
    "model bogus": (["--model", "bogus"], "--model"),
    "calibrate-output on procapnet": (["--calibrate-output"], "--calibrate-output", "leave out --calibrate-output"),
}
for _name, (_args, *_expected) in _PRETRAIN_BAD.items():
    _opt("option", f"pretrain {_name}", ["pretrain", "--model", "procapnet", *_args], *_expected)


def _fasta(tmp: Path) -> Path:
    """A copy of the test FASTA with its .fai (score-vcf would otherwise build it beside the file)."""
    import pyfaidx

    fasta = tmp / "g.fa"
    if not fasta.exists():
        shutil.copyfile(FASTA, fasta)
        pyfaidx.Faidx(str(fasta)).close()
    return fasta


def _score(tmp, *extra, out=None):
    return ["score-vcf", "--model", "procapnet", "--vcf", str(VCF), "--fasta", str(_fasta(tmp)),
            "--out", str(out or tmp / "scores.tsv"), *extra]


CASES["option/score-vcf batch-size 0"] = lambda tmp, shared: (_score(tmp, "--batch-size", "0"), ("--batch-size",))
CASES["option/score-vcf window 0"] = lambda tmp, shared: (_score(tmp, "--window", "0"), ("--window",))
CASES["option/score-vcf share-windows without window"] = lambda tmp, shared: (
    _score(tmp, "--share-windows"), ("--share-windows", "add --window"))
CASES["option/score-vcf devices abc"] = lambda tmp, shared: (_score(tmp, "--devices", "abc"), ("--devices",))
CASES["option/score-vcf out unknown format"] = lambda tmp, shared: (
    _score(tmp, out=tmp / "scores.txt"), ("--out", "unknown output format"))
CASES["option/score-vcf shard 0/0"] = lambda tmp, shared: (_score(tmp, "--shard", "0/0"), ("--shard",))
CASES["option/score-vcf region bad"] = lambda tmp, shared: (_score(tmp, "--region", "chr1:9-1"), ("--region",))
CASES["option/evaluate max-crops -1"] = lambda tmp, shared: (
    ["evaluate", str(tmp), "--max-crops", "-1"], ("--max-crops",))
CASES["option/evaluate run missing"] = lambda tmp, shared: (["evaluate", str(tmp / "nope")], ("RUNS", "nope"))
CASES["option/from-satmut max-per-element -3"] = lambda tmp, shared: (
    ["screen", "from-satmut", "--table", str(KIRCHER_TSV), "--fasta", str(KIRCHER_FA), "--out",
     str(tmp / "o.h5ad"), "--max-per-element", "-3"], ("--max-per-element",))
CASES["option/from-satmut seed -1"] = lambda tmp, shared: (
    ["screen", "from-satmut", "--table", str(KIRCHER_TSV), "--fasta", str(KIRCHER_FA), "--out",
     str(tmp / "o.h5ad"), "--seed", "-1"], ("--seed",))
CASES["option/zoo show without NAME"] = lambda tmp, shared: (["zoo", "show"], ("NAME",))
CASES["option/unknown command"] = lambda tmp, shared: (["updte"], ("updte",))


# ---- class 2: screen files (genocl screen validate, and update --data) -------------------------
def _nonascii(a):
    a.uns["element_sequences"] = {"E1": "ACGTACGTACGTACGTACGé", "E2": a.uns["element_sequences"]["E2"]}


def _bad_letter(a):
    a.uns["element_sequences"] = {"E1": "ACGTACGTACGTACGTACGX", "E2": a.uns["element_sequences"]["E2"]}


def _dup(a):
    a.obs.index = list(a.obs.index)
    obs = a.obs.copy()
    obs.iloc[1, :] = obs.iloc[0, :]
    a.obs = obs


def _set(column, value, row=0):
    def edit(a):
        obs = a.obs.copy()
        if isinstance(value, list):
            obs[column] = value
        else:  # a text value makes the whole column text (as a CSV import would); a number keeps it numeric
            obs[column] = obs[column].astype(str if isinstance(value, str) else type(value))
            obs.iloc[row, obs.columns.get_loc(column)] = value
        a.obs = obs
    return edit


_SCREEN_BAD = {
    "assay array": ("mpra", lambda a: a.uns.__setitem__("assay", np.array(["mpra", "crispri"])), "uns['assay']",
                    "not a string"),
    "assay unknown": ("mpra", lambda a: a.uns.__setitem__("assay", "chip"), "uns['assay']"),
    "effect 1e39 (inf in float32)": ("mpra", _set("effect", 1e39, 3), "obs['effect']", "float32"),
    "effect NaN": ("mpra", _set("effect", float("nan"), 2), "obs['effect']"),
    "effect booleans": ("mpra", _set("effect", [True, False] * 6), "obs['effect']", "booleans"),
    "effect text": ("mpra", _set("effect", "big", 1), "obs['effect']", "non-numeric"),
    "duplicated rows": ("mpra", _dup, "obs", "duplicated"),
    "alt == ref": ("mpra", _set("alt", list("ACGTAC") * 2), "obs['alt']", "alt == ref"),
    "non-ASCII element sequence": ("mpra", _nonascii, "element_sequences", "A/C/G/T/N"),
    "non-ACGTN letter in sequence": ("mpra", _bad_letter, "element_sequences", "'X'"),
    "element without sequence": ("mpra", _set("element", "E9", 0), "obs['element']"),
    "missing effect column": ("mpra", lambda a: a.obs.drop(columns="effect", inplace=True), "obs['effect']"),
    "pos outside element": ("mpra", _set("pos", 500, 0), "obs['pos']"),
    "pos text": ("mpra", _set("pos", "first", 0), "obs['pos']"),
    "ref differs from sequence": ("mpra", _set("ref", "T", 0), "obs['ref']"),
    "alt not DNA": ("mpra", _set("alt", "Z", 0), "obs['alt']"),
    "element_sequences missing": ("mpra", lambda a: a.uns.pop("element_sequences"), "uns['element_sequences']"),
    "crispri negative tss_pos": ("crispri", _set("tss_pos", -5, 0), "obs['tss_pos']"),
    "crispri bad strand": ("crispri", _set("tss_strand", "?", 0), "obs['tss_strand']"),
    "crispri sequence_source missing": ("crispri", lambda a: a.uns.pop("sequence_source"), "sequence_source"),
    "crispri sequence_source array": ("crispri", lambda a: a.uns.__setitem__("sequence_source", np.arange(3)),
                                      "sequence_source", "not a string"),
    "crispri bad interval": ("crispri", _set("elements", "chr1:700-500", 0), "obs['elements']"),
    "crispri effect inf": ("crispri", _set("effect", float("inf"), 1), "obs['effect']"),
}
for _name, (_kind, _edit, *_expected) in _SCREEN_BAD.items():
    CASES[f"screen/validate {_name}"] = (
        lambda kind, edit, expected: lambda tmp, shared: (
            ["screen", "validate", str(_screen(tmp, edit, kind))], ("screen.h5ad", *expected)))(_kind, _edit, _expected)
for _name in ("effect 1e39 (inf in float32)", "duplicated rows", "non-ASCII element sequence"):
    _kind, _edit, *_expected = _SCREEN_BAD[_name]
    CASES[f"screen/update --data {_name}"] = (
        lambda kind, edit, expected: lambda tmp, shared: (
            ["update", "--model", "procapnet", "--strategy", "finetune", "--data", str(_screen(tmp, edit, kind)),
             "--out", str(tmp / "run")], ("screen.h5ad", *expected)))(_kind, _edit, _expected)
CASES["screen/validate missing file"] = lambda tmp, shared: (
    ["screen", "validate", str(tmp / "absent.h5ad")], ("absent.h5ad", "file: not found"))
CASES["screen/validate a directory"] = lambda tmp, shared: (
    ["screen", "validate", str(tmp)], ("is a directory",))
CASES["screen/validate not h5ad"] = lambda tmp, shared: (
    (tmp / "s.h5ad").write_text("gene\teffect\n") and ["screen", "validate", str(tmp / "s.h5ad")],
    ("s.h5ad", "not a readable .h5ad"))
# --mpra-input-length against the tiny model (352 bp in, 48 bp trimmed each side) and 20-bp elements
for _name, (_length, *_expected) in {
    "too short for any output": ("96", "--mpra-input-length", "no output positions"),
    "output misses the element": ("112", "mpra.h5ad", "uns['element_sequences']", "does not fit"),
}.items():
    CASES[f"screen/update --mpra-input-length {_name}"] = (lambda length, expected: lambda tmp, shared: (
        ["update", "--model", str(shared["model"]), "--strategy", "finetune", "--data", str(shared["screen"]),
         "--mpra-input-length", length, "--out", str(tmp / "run")], expected))(_length, _expected)
CASES["screen/update --mpra-input-length on a CRISPRi screen"] = lambda tmp, shared: (
    ["update", "--model", str(shared["model"]), "--strategy", "finetune",
     "--data", str(shutil.copy(BUNDLED / "crispri_example.h5ad", tmp / "crispri.h5ad")), "--mpra-input-length", "256",
     "--out", str(tmp / "run")], ("crispri.h5ad", "uns['assay']", "MPRA screens only"))
CASES["screen/update --data missing"] = lambda tmp, shared: (
    ["update", "--model", "procapnet", "--strategy", "finetune", "--data", str(tmp / "no.h5ad"),
     "--out", str(tmp / "run")], ("no.h5ad", "not found"))


# ---- class 3: converters ----------------------------------------------------------------------
def _satmut(tmp, table=KIRCHER_TSV, fasta=KIRCHER_FA, *extra):
    return ["screen", "from-satmut", "--table", str(table), "--fasta", str(fasta), "--out",
            str(tmp / "o.h5ad"), "--elements", "HBB", *extra]


def _crispri(tmp, table=ENGREITZ_TSV, *extra):
    return ["screen", "from-crispri", "--table", str(table), "--out", str(tmp / "o.h5ad"), *extra]


def _cell(column, value, k=0):
    """Set ``column`` of the k-th row the conversion keeps (HBB GRCh38 rows of the Kircher table)."""
    def edit(df):
        keep = df.index
        if "Element" in df.columns:
            keep = df.index[(df["Element"] == "HBB") & (df["Release"] == "GRCh38")]
        df.loc[keep[k], column] = value
    return edit


_CONVERTER_BAD = {
    "satmut Pos text": (lambda t: _satmut(t, _table(t, KIRCHER_TSV, _cell("Pos", "chrX-1", 5))), "Pos"),
    "satmut Pos fraction": (lambda t: _satmut(t, _table(t, KIRCHER_TSV, _cell("Pos", "139530463.5", 5))), "Pos"),
    "satmut Coefficient big": (lambda t: _satmut(t, _table(t, KIRCHER_TSV, _cell("Coefficient", "big", 7))),
                               "Coefficient"),
    "satmut Coefficient 1e39": (lambda t: _satmut(t, _table(t, KIRCHER_TSV, _cell("Coefficient", "1e39", 7))),
                                "Coefficient"),
    "satmut missing column": (lambda t: _satmut(t, _table(t, KIRCHER_TSV, lambda d: d.drop(
        columns="Coefficient", inplace=True))), "Coefficient", "column missing"),
    "satmut missing table": (lambda t: _satmut(t, t / "none.tsv.gz"), "none.tsv.gz"),
    "satmut missing --fasta": (lambda t: _satmut(t, KIRCHER_TSV, t / "none.fa"), "none.fa", "--fasta"),
    "satmut binary --fasta": (lambda t: (t / "bin.fa").write_bytes(bytes(range(256)) * 4) and
                              _satmut(t, KIRCHER_TSV, t / "bin.fa"), "bin.fa", "--fasta"),
    "satmut --fasta directory": (lambda t: _satmut(t, KIRCHER_TSV, t), "--fasta", "is a directory"),
    "satmut --fasta without records": (lambda t: (t / "e.fa").write_text("ACGT\n") and
                                       _satmut(t, KIRCHER_TSV, t / "e.fa"), "e.fa", "--fasta"),
    "satmut --fasta letters": (lambda t: (t / "x.fa").write_text(">HBB chr11:1-4 GRCh38\nACQT\n") and
                               _satmut(t, KIRCHER_TSV, t / "x.fa"), "x.fa", "'Q'"),
    "satmut gzip --fasta not gzip": (lambda t: (t / "x.fa.gz").write_text(">HBB\nACGT\n") and
                                     _satmut(t, KIRCHER_TSV, t / "x.fa.gz"), "x.fa.gz", "--fasta"),
    "satmut unknown element": (lambda t: [*_satmut(t)[:-2], "--elements", "NOPE"], "NOPE"),
    "crispri EffectSize text": (lambda t: _crispri(t, _table(t, ENGREITZ_TSV, _cell("EffectSize", "big", 0))),
                                "EffectSize"),
    "crispri chromStart text": (lambda t: _crispri(t, _table(t, ENGREITZ_TSV, _cell("chromStart", "x", 1))),
                                "chromStart"),
    "crispri startTSS fraction": (lambda t: _crispri(t, _table(t, ENGREITZ_TSV, _cell("startTSS", "10.5", 1))),
                                  "startTSS"),
    "crispri negative chromStart": (lambda t: _crispri(t, _table(t, ENGREITZ_TSV, _cell("chromStart", "-4", 1))),
                                    "chromStart", "negative"),
    "crispri --dataset NoSuch": (lambda t: _crispri(t, ENGREITZ_TSV, "--dataset", "NoSuch"), "--dataset",
                                 "'NoSuch' is not a Dataset value"),
    "crispri missing column": (lambda t: _crispri(t, _table(t, ENGREITZ_TSV, lambda d: d.drop(
        columns="startTSS", inplace=True))), "startTSS", "column missing"),
    "crispri missing --fasta": (lambda t: _crispri(t, ENGREITZ_TSV, "--fasta", str(t / "no.fa")), "no.fa",
                                "--fasta"),
    "crispri missing table": (lambda t: _crispri(t, t / "none.tsv"), "none.tsv"),
    "crispri --out exists": (lambda t: (t / "o.h5ad").write_text("mine") and _crispri(t), "o.h5ad",
                             "already exists"),
}


def _personal(tmp: Path, sample_map: list[tuple[str, str]]) -> list[str]:
    """from-personal on the 5 GEUVADIS people (phased chr2 VCF, real hg38) with ``sample_map`` rows."""
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(DATA / f"hg38_chr2_personal.fa.gz{suffix}", tmp / f"chr2.fa.gz{suffix}")
    (tmp / "map.tsv").write_text("sample_id\tgenotype_id\n" + "".join(f"{a}\t{b}\n" for a, b in sample_map))
    return ["screen", "from-personal", "--vcf", str(DATA / "geuvadis_5indiv_chr2_1-70000.vcf.gz"),
            "--expression", str(DATA / "geuvadis_5indiv_pheno.tsv"), "--sample-map", str(tmp / "map.tsv"),
            "--genes", str(DATA / "geuvadis_5indiv_genes.tsv"), "--fasta", str(tmp / "chr2.fa.gz"),
            "--input-length", "2048", "--out", str(tmp / "p.h5ad")]


_PEOPLE = ["HG00096", "HG00097", "HG00099", "HG00100", "HG00101"]
_CONVERTER_BAD.update({
    # two people's expression mapped onto one genome: converted, it put values on the wrong people
    "personal --sample-map maps two samples to one genotype": (
        lambda t: _personal(t, [(p, "HG00096" if p == "HG00097" else p) for p in _PEOPLE]),
        "map.tsv", "genotype_id", "'HG00096' appears 2 times"),
    "personal --sample-map lists one sample twice": (
        lambda t: _personal(t, [(p, p) for p in _PEOPLE] + [("HG00096", "HG00099")]),
        "map.tsv", "sample_id", "'HG00096' appears 2 times"),
    "personal --sample-map renames onto another sample": (
        lambda t: _personal(t, [("HG00096", "HG00097")]), "map.tsv", "genotype_id", "'HG00097'"),
    "personal --vcf with DS but no GT": (lambda t: _personal_dosage_vcf(t), "ds.vcf", "FORMAT/GT", "no GT",
                                         "--dosages"),
    "personal --vcf records without GT (the header declares it)": (
        lambda t: _personal_dosage_vcf(t, declare_gt=True), "ds.vcf", "FORMAT/GT", "2:45564",
        "no readable GT"),
})


def _personal_dosage_vcf(tmp: Path, declare_gt: bool = False) -> list[str]:
    """The 5 people's VCF with each genotype replaced by its ALT dosage (FORMAT DS, no GT)."""
    lines = []
    for line in gzip.open(DATA / "geuvadis_5indiv_chr2_1-70000.vcf.gz", "rt"):
        if line.startswith("##FORMAT"):
            line = ('##FORMAT=<ID=DS,Number=A,Type=Float,Description="ALT dosage">\n'
                    + (line if declare_gt else ""))
        elif not line.startswith("#"):
            fields = line.rstrip("\n").split("\t")
            dosages = [str(sum(int(a) for a in g.replace("|", "/").split("/"))) for g in fields[9:]]
            line = "\t".join([*fields[:8], "DS", *dosages]) + "\n"
        lines.append(line)
    (tmp / "ds.vcf").write_text("".join(lines))
    argv = _personal(tmp, [(p, p) for p in _PEOPLE])
    argv[argv.index("--vcf") + 1] = str(tmp / "ds.vcf")
    return argv
for _name, (_build, *_expected) in _CONVERTER_BAD.items():
    CASES[f"converter/{_name}"] = (lambda build, expected: lambda tmp, shared: (build(tmp), expected))(
        _build, _expected)


# ---- class 4: model files ---------------------------------------------------------------------
def _update_model(tmp, model, *extra):
    return ["update", "--model", str(model), "--strategy", "finetune", "--out", str(tmp / "run"), *extra]


def _broken_config(data: bytes):
    def build(tmp, shared):
        model = _copy_model(tmp, shared)
        (model / "config.json").write_bytes(data)
        return _update_model(tmp, model), ("config.json",)
    return build


CASES["model/config.json not UTF-8"] = _broken_config(b"\xff\xfe{\x00}")
CASES["model/config.json a JSON list"] = _broken_config(b"[1, 2, 3]")
CASES["model/config.json truncated"] = _broken_config(b'{"format": "genocl-model", "model_par')


@case("config.json without safetensors is not blamed on enformer-pytorch", "model")
def _broken_no_weights(tmp, shared):
    model = tmp / "m"
    model.mkdir()
    (model / "config.json").write_bytes(b"[]")
    return _update_model(tmp, model), ("config.json", "is a JSON list")


@case("config.json edited (checksum)", "model")
def _edited_config(tmp, shared):
    model = _copy_model(tmp, shared)
    config = _config(model)
    config["name"] = "renamed by hand"
    (model / "config.json").write_text(json.dumps(config, indent=2))
    return _update_model(tmp, model), ("config.json", "config_sha256")


@case("weights truncated", "model")
def _truncated(tmp, shared):
    model = _copy_model(tmp, shared)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return _update_model(tmp, model), ("model.safetensors", "SHA-256")


@case("bpnet state dict missing a key", "model")
def _bpnet_missing(tmp, shared):
    state = torch.load(shared["state"], weights_only=True)
    del state[next(k for k in state if k.startswith("rconvs."))]
    torch.save(state, tmp / "m.pt")
    return _update_model(tmp, tmp / "m.pt"), ("m.pt", "weights", "Missing key(s)", "rconvs.")


@case("bpnet state dict wrong shape", "model")
def _bpnet_shape(tmp, shared):
    state = torch.load(shared["state"], weights_only=True)
    key = next(k for k in state if k.startswith("rconvs.") and k.endswith(".weight"))
    state[key] = torch.zeros(3, 3, 3)
    torch.save(state, tmp / "m.pt")
    return _update_model(tmp, tmp / "m.pt"), ("m.pt", "weights", f"size mismatch for {key}")


@case("bpnet state dict without fconv", "model")
def _bpnet_no_fconv(tmp, shared):
    state = torch.load(shared["state"], weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fconv")}
    torch.save(state, tmp / "m.pt")
    return _update_model(tmp, tmp / "m.pt"), ("m.pt", "fconv.weight")


@case("not a model file", "model")
def _not_model(tmp, shared):
    (tmp / "m.pt").write_text("hello")
    return _update_model(tmp, tmp / "m.pt"), ("m.pt", "weights")


@case("missing model path", "model")
def _missing_model(tmp, shared):
    return _update_model(tmp, tmp / "nothing"), ("nothing", "--model")


@case("strategy state with one flipped bit", "model")
def _flipped_state(tmp, shared):
    from genocl_plugin import models
    from genocl_plugin.training import update

    class State:  # what a stateful strategy callback exposes to save_strategy_state
        state_name = "ewc"

        def state_dict_for_run(self):
            return {"importance.w": torch.arange(64, dtype=torch.float32)}

    model = models.load_model(shared["model"])
    models.save_model(model, tmp / "parent", extra={"strategy": "ewc", "strategy_state": ["ewc"]})
    path = update.save_strategy_state([State()], tmp / "parent")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01  # a bit in the tensor data, not the header
    path.write_bytes(bytes(data))
    return (["update", "--model", str(tmp / "parent"), "--strategy", "ewc", "--out", str(tmp / "run")],
            ("strategy_state.safetensors", "checksum mismatch"))


@case("--out is a file", "model")
def _out_file(tmp, shared):
    (tmp / "run").write_text("a file")
    return (["update", "--model", "procapnet", "--out", str(tmp / "run"), "--force"], ("run", "is a file"))


@case("enformer-pytorch dir with a refused weights file (blames the weights)", "model")
def _bad_bin(tmp, shared):
    model = tmp / "ep"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"dim": 96, "depth": 1, "heads": 2}))
    (model / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    return _update_model(tmp, model), ("pytorch_model.bin", "weights")


# ---- class 5: zoo -----------------------------------------------------------------------------
def _fake_entry(zoo: Path, name: str, model_yaml: str) -> Path:
    entry = zoo / name
    entry.mkdir(parents=True)
    (entry / "model.yaml").write_text(model_yaml)
    (entry / "config.json").write_text("{}")
    return entry


@case("zoo show ../outside/entry", "zoo")
def _zoo_escape(tmp, shared):
    _fake_entry(tmp / "outside", "entry", "args: {}\n")
    (tmp / "zoo").mkdir()
    return ["zoo", "show", "../outside/entry", "--zoo", str(tmp / "zoo")], ("NAME", "invalid entry name")


CASES["zoo/zoo show absolute name"] = lambda tmp, shared: (
    ["zoo", "show", str(tmp), "--zoo", str(tmp)], ("NAME", "invalid entry name"))
CASES["zoo/zoo test ../x"] = lambda tmp, shared: (
    ["zoo", "test", "a/../../x", "--zoo", str(tmp)], ("NAME", "invalid entry name"))
CASES["zoo/zoo show missing entry"] = lambda tmp, shared: (
    (tmp / "zoo").mkdir() or ["zoo", "show", "g/m-v1", "--zoo", str(tmp / "zoo")], ("g/m-v1", "no such entry"))
CASES["zoo/zoo list --zoo is a file"] = lambda tmp, shared: (
    (tmp / "z").write_text("x") and ["zoo", "list", "--zoo", str(tmp / "z")], ("--zoo", "not a directory"))
CASES["zoo/zoo list model.yaml a plain string"] = lambda tmp, shared: (
    _fake_entry(tmp / "zoo", "g/m-v1", "just a string\n") and ["zoo", "list", "--zoo", str(tmp / "zoo")],
    ("model.yaml", "not a mapping"))
CASES["zoo/zoo show model.yaml a plain string"] = lambda tmp, shared: (
    _fake_entry(tmp / "zoo", "g/m-v1", "just a string\n") and
    ["zoo", "show", "g/m-v1", "--zoo", str(tmp / "zoo")], ("model.yaml", "not a mapping"))
CASES["zoo/zoo show model.yaml not YAML"] = lambda tmp, shared: (
    _fake_entry(tmp / "zoo", "g/m-v1", "a: [unclosed\n") and
    ["zoo", "show", "g/m-v1", "--zoo", str(tmp / "zoo")], ("model.yaml", "unreadable YAML"))
CASES["zoo/zoo register list-shaped kipoi config"] = lambda tmp, shared: (
    (tmp / "kc.yaml").write_text("- a\n- b\n") and (tmp / "zoo").mkdir() is None and
    ["zoo", "register", "--zoo", str(tmp / "zoo"), "--kipoi-config", str(tmp / "kc.yaml")],
    ("kc.yaml", "not a mapping"))
CASES["zoo/zoo register model_sources a list"] = lambda tmp, shared: (
    (tmp / "kc.yaml").write_text("model_sources: [a, b]\n") and (tmp / "zoo").mkdir() is None and
    ["zoo", "register", "--zoo", str(tmp / "zoo"), "--kipoi-config", str(tmp / "kc.yaml")],
    ("kc.yaml", "model_sources"))
CASES["zoo/zoo register missing zoo"] = lambda tmp, shared: (
    ["zoo", "register", "--zoo", str(tmp / "nozoo"), "--kipoi-config", str(tmp / "kc.yaml")], ("--zoo",))
CASES["zoo/publish --zoo is a file"] = lambda tmp, shared: (
    (tmp / "zoo").write_text("x") and ["publish", str(shared["model"]), "--zoo", str(tmp / "zoo"), "--no-check"],
    ("--zoo", "is a file"))
CASES["zoo/publish --name ../x"] = lambda tmp, shared: (
    ["publish", str(shared["model"]), "--zoo", str(tmp / "zoo"), "--name", "../x-v1", "--no-check"],
    ("--name", "invalid entry name"))
CASES["zoo/publish --name ''"] = lambda tmp, shared: (
    ["publish", str(shared["model"]), "--zoo", str(tmp / "zoo"), "--name", "", "--no-check"],
    ("--name", "invalid entry name"))
CASES["zoo/publish --name absolute"] = lambda tmp, shared: (
    ["publish", str(shared["model"]), "--zoo", str(tmp / "zoo"), "--name", "/etc/x-v1", "--no-check"],
    ("--name", "invalid entry name"))
CASES["zoo/publish missing source"] = lambda tmp, shared: (
    ["publish", str(tmp / "none"), "--zoo", str(tmp / "zoo"), "--no-check"], ("none", "--model"))


@case("publish an entry whose config.json was edited", "zoo")
def _publish_edited(tmp, shared):
    from genocl_plugin.zoo import publish

    entry = publish(shared["model"], tmp / "zoo", "g/m-v1", check=False)
    config = _config(entry)
    config["metrics"] = {"new_task": {"after": {"pearson": 0.99}}}
    (entry / "config.json").write_text(json.dumps(config, indent=2))
    return (["publish", str(entry), "--zoo", str(tmp / "zoo2"), "--no-check"], ("m-v1", "config.json sha256"))


@case("publish a run whose model/config.json was edited", "zoo")
def _publish_edited_run(tmp, shared):
    run = tmp / "run"
    shutil.copytree(shared["model"], run / "model")
    config = _config(run / "model")
    config["screens_seen"] = []
    (run / "model" / "config.json").write_text(json.dumps(config))
    return (["publish", str(run), "--zoo", str(tmp / "zoo"), "--no-check"], ("config.json", "config_sha256"))


@case("publish a run whose weights were modified", "zoo")
def _publish_modified_weights(tmp, shared):
    run = tmp / "run"
    shutil.copytree(shared["model"], run / "model")
    weights = run / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x10
    weights.write_bytes(bytes(data))
    return (["publish", str(run), "--zoo", str(tmp / "zoo"), "--no-check"], ("model.safetensors", "SHA-256"))


# ---- class 6: evaluate ------------------------------------------------------------------------
def _run(tmp: Path, metrics: bytes) -> Path:
    run = tmp / "run"
    run.mkdir()
    (run / "metrics.json").write_bytes(metrics)
    return run


CASES["evaluate/metrics.json not JSON"] = lambda tmp, shared: (
    ["evaluate", str(_run(tmp, b"{not json"))], ("metrics.json", "not valid UTF-8 JSON"))
CASES["evaluate/metrics.json binary"] = lambda tmp, shared: (
    ["evaluate", str(_run(tmp, b"\x00\xff\xfe"))], ("metrics.json",))
CASES["evaluate/metrics.json a list"] = lambda tmp, shared: (
    ["evaluate", str(_run(tmp, b"[]"))], ("metrics.json", "is a JSON list"))
CASES["evaluate/metrics.json without config"] = lambda tmp, shared: (
    ["evaluate", str(_run(tmp, b'{"new_task": {}}'))], ("metrics.json", "config"))
CASES["evaluate/not a run directory"] = lambda tmp, shared: (
    ["evaluate", str(tmp)], ("metrics.json", "not a genocl run directory"))
CASES["evaluate/--label count"] = lambda tmp, shared: (
    ["evaluate", str(tmp), "--label", "a", "--label", "b"], ("--label",))


# ---- class 7: score-vcf -----------------------------------------------------------------------
CASES["score-vcf/--out is a directory"] = lambda tmp, shared: (
    (tmp / "scores.tsv").mkdir() or _score(tmp), ("scores.tsv", "is a directory"))
CASES["score-vcf/--out exists"] = lambda tmp, shared: (
    (tmp / "scores.tsv").write_text("old") and _score(tmp), ("scores.tsv", "already exists"))
CASES["score-vcf/--vcf missing"] = lambda tmp, shared: (
    ["score-vcf", "--model", "procapnet", "--vcf", str(tmp / "v.vcf"), "--fasta", str(_fasta(tmp)),
     "--out", str(tmp / "s.tsv")], ("v.vcf",))
CASES["score-vcf/--fasta missing"] = lambda tmp, shared: (
    ["score-vcf", "--model", "procapnet", "--vcf", str(VCF), "--fasta", str(tmp / "g.fa"),
     "--out", str(tmp / "s.tsv")], ("g.fa", "--fasta"))
CASES["score-vcf/--model missing"] = lambda tmp, shared: (
    ["score-vcf", "--model", str(tmp / "m"), "--vcf", str(VCF), "--fasta", str(_fasta(tmp)),
     "--out", str(tmp / "s.tsv")], ("--model",))
CASES["score-vcf/--vcf not a VCF"] = lambda tmp, shared: (
    (tmp / "v.vcf").write_text("hello\n") and
    ["score-vcf", "--model", "procapnet", "--vcf", str(tmp / "v.vcf"), "--fasta", str(_fasta(tmp)),
     "--out", str(tmp / "s.tsv")], ("v.vcf",))
CASES["score-vcf/--vcf gzip that is not"] = lambda tmp, shared: (
    (tmp / "v.vcf.gz").write_bytes(gzip.compress(b"##fileformat=VCFv4.2\n")[:10]) and
    ["score-vcf", "--model", "procapnet", "--vcf", str(tmp / "v.vcf.gz"), "--fasta", str(_fasta(tmp)),
     "--out", str(tmp / "s.tsv")], ("v.vcf.gz",))


# ---- class 8: reference files (update --reference-regions / --reference-tracks) ---------------
def _reference(tmp, shared, *extra):
    return ["update", "--model", str(shared["model"]), "--strategy", "finetune", "--out", str(tmp / "run"), *extra]


@case("--reference-regions plain text named .gz (read by its bytes, not its name)", "reference")
def _regions_plain_gz(tmp, shared):
    # No split column and no --reference-holdout-chroms: refused after the file was read as text.
    (tmp / "regions.bed.gz").write_text("chr9\t68875912\t68877960\nchr9\t68877960\t68880008\n")
    return (_reference(tmp, shared, "--reference-regions", str(tmp / "regions.bed.gz")),
            ("regions.bed.gz", "column 4 (split)"))


@case("--reference-regions damaged gzip", "reference")
def _regions_damaged_gz(tmp, shared):
    (tmp / "regions.bed.gz").write_bytes(gzip.compress(b"chr9\t68875912\t68877960\ttrain\n" * 50)[:30])
    return (_reference(tmp, shared, "--reference-regions", str(tmp / "regions.bed.gz")),
            ("regions.bed.gz", "--reference-regions", "damaged gzip"))


@case("--reference-tracks scale column not a number", "reference")
def _tracks_scale_text(tmp, shared):
    tracks = DATA / "bundled_tracks"
    (tmp / "targets.txt").write_text(
        "\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription\n"
        f"0\tA+\t{tracks / 'track0.bw'}\t384\t1.0\tsum\tCAGE:plus\n"
        f"1\tA-\t{tracks / 'track30.bw'}\t384\thigh\tsum\tCAGE:minus\n")
    return (_reference(tmp, shared, "--reference-regions", str(tracks / "crops.bed"),
                       "--reference-tracks", str(tmp / "targets.txt")),
            ("targets.txt", "scale", "'high'"))


# ---- class 9: resume (update --resume and its .<out>.partial/ directory) ----------------------
def _partial(tmp: Path) -> Path:
    partial = tmp / ".run.partial"
    partial.mkdir()
    return partial


@case(".<out>.partial is a file, with --resume", "resume")
def _partial_file_resume(tmp, shared):
    (tmp / ".run.partial").write_text("not a directory")
    return _reference(tmp, shared, "--resume"), (".run.partial", "not a directory")


@case(".<out>.partial is a file, without --resume", "resume")
def _partial_file(tmp, shared):
    (tmp / ".run.partial").write_text("not a directory")
    return _reference(tmp, shared), (".run.partial", "not a directory")


@case("the only checkpoint is random bytes", "resume")
def _partial_random(tmp, shared):
    (_partial(tmp) / "step=3.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    return _reference(tmp, shared, "--resume"), (".run.partial", "--resume", "no complete checkpoint", "step=3.ckpt")


@case("every checkpoint is truncated", "resume")
def _partial_truncated(tmp, shared):
    partial = _partial(tmp)
    torch.save({"state_dict": {"w": torch.arange(4096, dtype=torch.float32)}}, partial / "step=3.ckpt")
    data = (partial / "step=3.ckpt").read_bytes()
    (partial / "step=3.ckpt").write_bytes(data[: len(data) // 2])
    (partial / "step=6.ckpt").write_bytes(data[:100])
    return (_reference(tmp, shared, "--resume"),
            (".run.partial", "no complete checkpoint", "step=6.ckpt", "step=3.ckpt"))


# --------------------------------------------------------------------------- the test
def _snapshot(*roots: Path) -> dict[str, bytes]:
    files = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path)] = path.read_bytes()
            elif path.is_dir():
                files[str(path) + "/"] = b""
    return files


def test_corpus_is_large_and_covers_every_command():
    classes = {name.split("/")[0] for name in CASES}
    commands = set()
    for name in CASES:
        commands.update(w for w in name.replace("/", " ").split() if w in (
            "update", "pretrain", "score-vcf", "evaluate", "validate", "from-satmut", "satmut", "crispri",
            "zoo", "publish", "register", "show", "list", "test"))
    assert len(CASES) >= 100, len(CASES)
    assert classes == {"option", "screen", "converter", "model", "zoo", "evaluate", "score-vcf", "reference",
                       "resume"}
    assert {"update", "pretrain", "score-vcf", "evaluate", "validate", "satmut", "crispri", "publish",
            "register", "show", "list", "test"} <= commands


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, shared):
    tmp = tmp_path / "case"
    tmp.mkdir()
    argv, expected = CASES[name](tmp, shared)
    before = _snapshot(tmp, shared["root"])
    result = CliRunner().invoke(main, [str(a) for a in argv], catch_exceptions=True)
    after = _snapshot(tmp, shared["root"])
    output = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{name}: raised {result.exception!r}")
    assert "Traceback" not in output
    assert result.exit_code == 2, f"{name}: exit {result.exit_code}\n{output}"
    lines = [line for line in result.stderr.splitlines() if not STAGE_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: {lines}"
    assert result.stderr.splitlines()[-1] == lines[0], result.stderr  # the error is the last line
    assert "; fix: " in lines[0], lines[0]
    for text in expected:
        assert text in lines[0], f"{name}: {text!r} not in {lines[0]!r}"
    assert result.stdout == "", result.stdout
    assert after == before, f"{name}: files changed: {sorted(set(after) ^ set(before))}"


# --------------------------------------------------------------------------- not errors, but not silent
def test_ref_n_is_a_mismatch(tmp_path):
    """docs/scoring.md: a FASTA N under REF counts as a mismatch (skipped and reported)."""
    fasta = tmp_path / "g.fa"
    shutil.copyfile(FASTA, fasta)
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   "chr1\t5000\tn\tN\tA\t.\t.\t.\n")
    out = tmp_path / "s.tsv"
    result = CliRunner().invoke(main, ["score-vcf", "--model", "procapnet", "--vcf", str(vcf),
                                       "--fasta", str(fasta), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "scored 0 of 1 alleles" in result.stdout and "ref_mismatch 1" in result.stdout
    assert "ref_mismatch" in Path(f"{out}.skipped.tsv").read_text()


def test_real_process_usage_error_is_one_line(tmp_path):
    """Outside CliRunner too: click's usage errors are one line naming `genocl CMD --help`, exit 2."""
    import subprocess
    import sys

    code = "import sys; from genocl_cli.main import main; sys.argv[0] = 'genocl'; main()"
    for args, needle in ((["update", "--epochs", "-1", "--out", str(tmp_path / "r")], "--epochs"),
                         (["update", "--out", str(tmp_path / "r"), "--bogus"], "--bogus")):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1 and needle in proc.stderr
        assert "fix: " in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("content", "expected"), [
    ("- a\n- b\n", "is a YAML list, not a mapping"),
    ("model_sources: [a, b]\n", "model_sources"),
    ("model_sources: {kipoi: [x]\n", "unreadable YAML"),
    ("", "is empty"),
])
def test_malformed_kipoi_config_is_one_line(tmp_path, content, expected):
    """Kipoi reads ~/.kipoi/config.yaml when first imported and crashed there on a malformed one; genocl
    imports Kipoi for every zoo command, so that became a traceback (a fresh process: Kipoi imports once)."""
    import subprocess
    import sys

    home = tmp_path / "home"
    config = home / ".kipoi" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(content)
    (tmp_path / "zoo").mkdir()
    code = "import sys; from genocl_cli.main import main; sys.argv[0] = 'genocl'; main()"
    env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": str(tmp_path / "mpl"), "OMP_NUM_THREADS": "1"}
    before = _snapshot(home, tmp_path / "zoo")
    proc = subprocess.run([sys.executable, "-c", code, "zoo", "list", "--zoo", str(tmp_path / "zoo")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: "), lines
    assert expected in lines[0] and "; fix: " in lines[0] and "delete" in lines[0]
    assert _snapshot(home, tmp_path / "zoo") == before  # the config is not rewritten, nothing is added
