"""score-vcf --share-windows: one REF pass per input window shared by nearby variants, each read at
its own output bins (genocl_plugin/scoring/score.py), on real hg38 sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genocl_plugin.errors import GenoclInputError
from genocl_plugin.scoring import forward as scoring_forward
from genocl_plugin.scoring import score_variants
from genocl_plugin.scoring.plan import scoring_plan

DATA = Path(__file__).parent / "data"


class LocalConv(torch.nn.Module):
    """Two strand-paired tracks that see only +-3 bp (a 7-bp convolution, no padding, 1-bp
    bins): a variant's effect on the bins around it does not depend on where the window sits,
    so shared-window scores must equal centred ones."""

    def __init__(self, seq_len: int = 301) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(4, 2, 7)
        self.seq_len, self.bin_size, self.task_names = seq_len, 1, ["signal +", "signal -"]

    def output_length(self, seq_len: int) -> int:
        return seq_len - 6

    def forward(self, x):
        return torch.nn.functional.softplus(self.conv(x))


@pytest.fixture()
def genome() -> Path:
    """30 kb of real hg38 chr1 (tests/data/README.md); its first 10 kb are N."""
    return DATA / "hg38_chr1_1-30000.fa"


def _sequence(genome: Path) -> str:
    return "".join(line.strip() for line in genome.read_text().splitlines()[1:]).upper()


def _snvs(genome: Path, positions) -> pd.DataFrame:
    seq = _sequence(genome)
    rows = []
    for pos in positions:
        ref = seq[pos - 1]
        rows.append(("chr1", pos, f"v{pos}", ref, "ACGT"[("ACGT".index(ref) + 1) % 4]))
    return pd.DataFrame(rows, columns=["chrom", "pos", "id", "ref", "alt"])


def test_shared_windows_equal_centred_scores_for_a_local_model(genome, monkeypatch):
    model = LocalConv()
    variants = _snvs(genome, range(12_000, 12_600, 7))  # dense: 86 SNVs in 600 bp
    rows = []
    original = scoring_forward.predict_track_outputs

    def counting(forward, codes, *args, **kwargs):
        rows.append(len(codes))
        return original(forward, codes, *args, **kwargs)

    monkeypatch.setattr("genocl_plugin.scoring.score.predict_track_outputs", counting)
    centred = score_variants(variants, model, genome, window=5, batch_size=16)
    shared = score_variants(variants, model, genome, window=5, batch_size=16, share_windows=True)
    assert list(shared.obs["id"]) == list(centred.obs["id"]) == list(variants["id"])
    np.testing.assert_allclose(shared.X, centred.X, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shared.layers["log2fc"], centred.layers["log2fc"], rtol=1e-5, atol=1e-6)
    assert np.abs(centred.X).max() > 1e-3  # the variants do change the signal
    # 86 ALT passes, and REF passes for windows of up to 301 - 2 x (3 + 3) bp of variants, not 86
    assert sum(rows) < 86 + 86 // 4
    rc = score_variants(variants, model, genome, window=5, rc=True, share_windows=True)
    np.testing.assert_allclose(rc.X, score_variants(variants, model, genome, window=5, rc=True).X,
                               rtol=1e-5, atol=1e-6)


def test_indels_and_mismatches_are_scored_centred(genome):
    model = LocalConv()
    snvs = _snvs(genome, [12_000, 12_010])
    seq = _sequence(genome)
    wrong = "ACGT"[("ACGT".index(seq[12_019]) + 2) % 4]
    extra = pd.DataFrame([("chr1", 12_005, "del", seq[12_004:12_006], seq[12_004]),
                          ("chr1", 12_020, "mismatch", wrong, seq[12_019])], columns=snvs.columns)
    variants = pd.concat([snvs, extra], ignore_index=True)
    centred = score_variants(variants, model, genome, window=5)
    shared = score_variants(variants, model, genome, window=5, share_windows=True)
    assert list(shared.obs["id"]) == list(centred.obs["id"]) == ["v12000", "v12010", "del"]
    np.testing.assert_allclose(shared.X, centred.X, rtol=1e-5, atol=1e-6)
    assert list(shared.uns["skipped"]["reason"]) == list(centred.uns["skipped"]["reason"]) == ["ref_mismatch"]


def test_share_windows_needs_a_window_that_fits():
    model = LocalConv()
    with pytest.raises(GenoclInputError, match="--share-windows: --window: .*add --window"):
        scoring_plan(model, window=None, share_windows=True)
    with pytest.raises(GenoclInputError, match="--window: leaves no room"):
        scoring_plan(model, window=400, share_windows=True)
    assert scoring_plan(model, window=5, share_windows=True).share_margin == 3 + 3
