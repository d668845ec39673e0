"""benchmarks/motif_init_pilot.py: which motifs become stem filters, and the filters it writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("motif_init_pilot",
                                              Path(__file__).parents[1] / "benchmarks" / "motif_init_pilot.py")
mi = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mi)


def ppm_of(site: str, sharp: float = 0.97) -> np.ndarray:
    ppm = np.full((4, len(site)), (1 - sharp) / 3)
    for j, base in enumerate(site):
        ppm["ACGT".index(base), j] = sharp
    return ppm


def revcomp(site: str) -> str:
    return site.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def test_centred_log_odds_keeps_the_informative_window_and_pads_short_motifs():
    ppm = np.concatenate([np.full((4, 10), 0.25), ppm_of("TGACGTCAGG")], axis=1)  # 10 uniform columns first
    odds, ic = mi.centred_log_odds(ppm, width=10)
    assert odds.shape == (4, 10)
    np.testing.assert_allclose(odds.mean(0), 0, atol=1e-12)
    assert odds[3, 0] == odds[:, 0].max()  # the window starts at the site's T
    assert ic == pytest.approx(10 * (2 + 0.97 * np.log2(0.97) + 0.03 * np.log2(0.01)), rel=1e-3)
    short, short_ic = mi.centred_log_odds(ppm_of("GATA"), width=10)
    assert short.shape == (4, 10) and short_ic == pytest.approx(4 / 10 * ic, rel=1e-3)


def test_select_motifs_skips_duplicates_reverse_complements_zinc_fingers_and_weak_motifs():
    sites = {"A.H12CORE.0.P.B": "TGACGTCAGGAT", "A_rc.H12CORE.0.P.B": revcomp("TGACGTCAGGAT"),
             "A.H12CORE.1.P.B": "CCCTTTAAAGGG",  # not a primary motif
             "ZNF9.H12CORE.0.P.B": "ACGTTGCAACGT", "B.H12CORE.0.P.B": "GGGGCCCCATAT",
             "C.H12CORE.0.P.B": "CATTAGCGATCG"}
    motifs = {name: ppm_of(site) for name, site in sites.items()}
    motifs["weak.H12CORE.0.P.B"] = ppm_of("ACGTACGTACGT", sharp=0.3)
    names = [name for name, _ in mi.select_motifs(motifs, n=10, width=12)]
    assert len(names) == 3 and "B.H12CORE.0.P.B" in names and "C.H12CORE.0.P.B" in names
    assert len({"A.H12CORE.0.P.B", "A_rc.H12CORE.0.P.B"} & set(names)) == 1
    assert [name for name, _ in mi.select_motifs(motifs, n=2, width=12)] == names[:2]


def test_motif_initialised_enformer_writes_the_motifs_into_the_stem(tmp_path):
    from genocl_plugin.models import load_model

    names = mi.motif_initialised_enformer(tmp_path / "init")
    stem = load_model(str(tmp_path / "init")).model.embedding.conv_tower.blocks[0][0].weight.detach().numpy()
    assert 50 <= len(names) <= stem.shape[0]
    first = stem[0]
    np.testing.assert_allclose(first.sum(0), 0, atol=1e-5)  # a centred motif, not a random filter
    assert abs(stem[len(names)].sum(0)).max() > 1e-3  # the filters after the motifs stay random
    norms = np.linalg.norm(stem.reshape(len(stem), -1), axis=1)
    assert norms[: len(names)].mean() == pytest.approx(3 * norms[len(names):].mean(), rel=0.2)


def test_select_motifs_by_rank_follows_the_rank_and_keeps_zinc_fingers():
    sites = {"ZNF9.H12CORE.0.P.B": "ACGTTGCAACGT", "B.H12CORE.0.P.B": "GGGGCCCCATAT", "C.H12CORE.0.P.B": "CATTAGCGATCG"}
    motifs = {name: ppm_of(site) for name, site in sites.items()}
    rank = {"ZNF9.H12CORE.0.P.B": 0.3, "B.H12CORE.0.P.B": 0.1, "C.H12CORE.0.P.B": 0.2}
    names = [name for name, _ in mi.select_motifs(motifs, n=3, width=12, rank=rank)]
    assert names == ["ZNF9.H12CORE.0.P.B", "C.H12CORE.0.P.B", "B.H12CORE.0.P.B"]


def test_track_relevance_ranks_a_cpg_motif_above_an_at_motif_on_the_training_windows():
    motifs = {"cpg": ppm_of("CGCGCGCGCGCGCGC"), "at": ppm_of("ATATATATATATATA")}
    r = mi.track_relevance(motifs, width=15, windows=3)
    assert set(r) == {"cpg", "at"} and all(-1 <= v <= 1 for v in r.values())
    # open chromatin is GC- and CpG-rich (promoters, CpG islands): a CpG motif tracks DNase, an AT one does not
    assert r["cpg"] > 0.05 > r["at"]
