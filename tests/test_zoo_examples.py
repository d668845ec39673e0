"""Kipoi example files of published models are real sequence at the model's input length (issue 11).

Models at real geometry with reduced width: enformer-pytorch at Enformer's 196,608 bp ->
896 x 128 bp, and a bpnet-lite BPNet at ProCapNet's 2,114 -> 1,000. Default examples come from
genocl's bundled 524,288-bp hg38 piece (chr2:10,001-534,288); ``--example-fasta`` cuts them
from a genome (here real hg38 chr2:1-534,288 written from that piece).
"""

from __future__ import annotations

import h5py
import numpy as np
import pyfaidx
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin import models, zoo
from genocl_plugin.data import reference
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.evaluation import evaluate


@pytest.fixture(scope="module")
def chr2_fasta(tmp_path_factory):
    """Real hg38 chr2:1-534,288: the bundled piece behind the real 10,000-bp N telomere gap."""
    _, start, codes = reference.load_bundled_piece()
    seq = "N" * start + reference.codes_to_seq(codes)
    path = tmp_path_factory.mktemp("genome") / "hg38_chr2_1-534288.fa"
    path.write_text(">chr2\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    return path


@pytest.fixture(scope="module")
def procapnet_geometry_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = models.build_model("procapnet", seq_len=2_114, task_names=["plus", "minus"],
                               model_params={"n_filters": 8, "n_layers": 3, "trimming": 557})
    return models.save_model(model, tmp_path_factory.mktemp("pc") / "procapnet")


def test_bundled_piece_is_real_hg38():
    chrom, start, codes = reference.load_bundled_piece()
    assert (chrom, start, len(codes)) == ("chr2", 10_000, 524_288)
    assert not (codes > 3).any()
    # composition of real human DNA (AT-rich, CpG-depleted), not uniform random sequence
    seq = reference.codes_to_seq(codes)
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    cpg_ratio = seq.count("CG") / (seq.count("C") * seq.count("G") / len(seq))
    assert 0.35 < gc < 0.5 and cpg_ratio < 0.5
    # the first bases after hg38 chr2's telomere gap (UCSC hg38 chr2:10,001-10,030)
    assert seq[:30] == "CGTATCCCACACACCACACCCACACACCAC"


def _examples(entry):
    genome = pyfaidx.Fasta(str(entry / "example_files" / "sequence.fa"), as_raw=True, sequence_always_upper=True)
    rows = [line.split("\t") for line in (entry / "example_files" / "intervals.bed").read_text().splitlines()]
    return [genome[c][int(s):int(e)] for c, s, e, _ in rows], rows


def _check_entry(entry, seq_len):
    import kipoi

    seqs, rows = _examples(entry)
    assert len(seqs) >= 1
    for seq in seqs:
        assert len(seq) == seq_len and seq.count("N") / len(seq) < 0.01
    with h5py.File(entry / "example_files" / "expected.h5") as handle:
        inputs, preds = handle["inputs"][:], handle["preds"][:]
    assert inputs.shape == (len(seqs), 4, seq_len)
    assert np.array_equal(reference.codes_to_one_hot(np.stack([reference.seq_to_codes(s) for s in seqs])), inputs)
    kmodel = kipoi.get_model(str(entry), source="dir")
    # dataloader (BED + FASTA) -> exactly the expected inputs -> the model
    loader = kmodel.default_dataloader.init_example()
    batch = next(loader.batch_iter(batch_size=1))
    np.testing.assert_array_equal(batch["inputs"], inputs[:1])
    np.testing.assert_allclose(kmodel.predict_on_batch(batch["inputs"]), preds[:1], rtol=1e-4, atol=1e-5)
    return kmodel, seqs, rows


def test_published_enformer_geometry_examples_are_real(enformer_geometry_dir, tmp_path):
    entry = zoo.publish(enformer_geometry_dir, tmp_path / "zoo", "enformer-geometry/random-v1")
    _, seqs, rows = _check_entry(entry, 196_608)
    # three distinct windows from the bundled hg38 piece, named by their hg38 coordinates
    assert len(set(seqs)) == 3
    _, start, codes = reference.load_bundled_piece()
    for seq, (_, _, _, name) in zip(seqs, rows, strict=True):
        chrom, lo, hi = zoo.parse_region(name)
        assert chrom == "chr2" and reference.codes_to_seq(codes[lo - start : hi - start]) == seq


def test_published_procapnet_geometry_examples_are_real_and_pipeline_works(procapnet_geometry_dir, tmp_path):
    entry = zoo.publish(procapnet_geometry_dir, tmp_path / "zoo", "procapnet-geometry/random-v1")
    kmodel, seqs, _ = _check_entry(entry, 2_114)
    assert len(seqs) == 3 and len(set(seqs)) == 3
    example = entry / "example_files"
    preds = kmodel.pipeline.predict({"intervals_file": str(example / "intervals.bed"),
                                     "fasta_file": str(example / "sequence.fa")}, batch_size=2)
    ours = evaluate.predict(models.load_model(procapnet_geometry_dir),
                            reference.codes_to_one_hot(np.stack([reference.seq_to_codes(s) for s in seqs])))
    np.testing.assert_allclose(preds, ours, rtol=1e-4, atol=1e-5)


def test_publish_example_fasta_and_region(procapnet_geometry_dir, chr2_fasta, tmp_path):
    result = CliRunner().invoke(main, [
        "publish", str(procapnet_geometry_dir), "--zoo", str(tmp_path / "zoo"), "--name", "pc/fa-v1",
        "--example-fasta", str(chr2_fasta), "--example-region", "chr2:264,001-270,000"])
    assert result.exit_code == 0, result.output
    seqs, rows = _examples(tmp_path / "zoo" / "pc" / "fa-v1")
    genome = pyfaidx.Fasta(str(chr2_fasta), as_raw=True, sequence_always_upper=True)
    assert len(seqs) == 3
    for seq, (_, _, _, name) in zip(seqs, rows, strict=True):
        chrom, lo, hi = zoo.parse_region(name)
        assert 264_000 <= lo and hi <= 270_000 and genome[chrom][lo:hi] == seq and len(seq) == 2_114
    # without a region: the first stretch of the FASTA with < 1% N (not the telomere gap)
    chrom, start, codes, offsets, _ = zoo.example_sequence(2_114, fasta=chr2_fasta)
    assert chrom == "chr2" and start >= 10_000 and (codes < 4).all()


def test_reference_fasta_of_the_model_config_is_used(chr2_fasta, tmp_path):
    config = {"lineage": [{"hyperparameters": {"reference_fasta": str(chr2_fasta)}},
                          {"hyperparameters": {"reference_fasta": None}}]}
    assert zoo.config_reference_fasta(config) == str(chr2_fasta)
    assert zoo.config_reference_fasta({"lineage": [{"hyperparameters": {
        "reference_fasta": str(tmp_path / "moved.fa")}}]}) is None


def test_input_longer_than_bundled_piece_is_one_error(tmp_path):
    with pytest.raises(GenoclInputError, match="longer than genocl's bundled 524,288-bp hg38 piece"):
        zoo.example_sequence(655_360)
    # Borzoi's input is exactly the piece: one window
    _, _, codes, offsets, _ = zoo.example_sequence(524_288)
    assert offsets == [0] and len(codes) == 524_288
    torch.manual_seed(0)
    model = models.build_model("procapnet", seq_len=600_000, task_names=["plus", "minus"],
                               model_params={"n_filters": 4, "n_layers": 1, "trimming": 557})
    long_dir = models.save_model(model, tmp_path / "long")
    result = CliRunner().invoke(main, ["publish", str(long_dir), "--zoo", str(tmp_path / "zoo"), "--name", "a/b-v1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "600,000-bp input is longer" in lines[0] and "--example-fasta" in lines[0]
    assert not (tmp_path / "zoo" / "a" / "b-v1").exists()


def test_bad_example_region_is_one_error(procapnet_geometry_dir, chr2_fasta, tmp_path):
    for region, needle in (("chr2:5-1", "not chr:start-end"), ("chr9:1-5000", "not inside the FASTA"),
                           ("chr2:1-9000", "100% N"), ("chr2:20001-21000", "shorter than")):
        result = CliRunner().invoke(main, ["publish", str(procapnet_geometry_dir), "--zoo", str(tmp_path / "zoo"),
                                           "--name", "a/b-v1", "--example-fasta", str(chr2_fasta),
                                           "--example-region", region])
        assert result.exit_code == 2, (region, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (region, lines)
