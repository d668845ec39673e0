"""benchmarks/screen_ceiling.py: k-mer change features, the study's splits, element means, the ridge."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("screen_ceiling_benchmark",
                                              Path(__file__).parents[1] / "benchmarks" / "screen_ceiling.py")
sc = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(sc)

COMP = str.maketrans("ACGT", "TGCA")


def canonical_counts(seq: str, k: int) -> Counter:
    """k-mer counts of a whole sequence, each k-mer and its reverse complement as one."""
    out = Counter()
    for i in range(len(seq) - k + 1):
        kmer = seq[i : i + k]
        if "N" not in kmer:
            out[min(kmer, kmer.translate(COMP)[::-1])] += 1
    return out


def kmer_id(kmer: str) -> int:
    return int(sc.kmer_ids(np.array(["ACGT".index(c) for c in kmer]), len(kmer))[0])


def test_kmer_ids_merge_reverse_complements_and_skip_n():
    assert kmer_id("AAC") == kmer_id("GTT")
    assert kmer_id("AAC") != kmer_id("AAG")
    ids = sc.kmer_ids(np.array([0, 1, 4, 2, 3]), 2)  # A C N G T
    assert ids[1] == -1 and ids[2] == -1 and ids[0] >= 0 and ids[3] >= 0


@pytest.mark.parametrize(("pos", "ref", "alt"), [(0, "A", "G"), (7, "T", "C"), (12, "G", "-"), (19, "A", "T")])
def test_variant_kmer_change_equals_whole_sequence_difference(pos, ref, alt):
    rng = np.random.default_rng(pos)
    seq = "".join(rng.choice(list("ACGT"), 20))
    seq = seq[:pos] + ref + seq[pos + 1:]
    k = 3
    change = sc.variant_kmer_change(seq, pos, ref, alt, k=k)
    alt_seq = seq[:pos] + ("" if alt == "-" else alt) + seq[pos + 1:]
    expected = canonical_counts(alt_seq, k)
    expected.subtract(canonical_counts(seq, k))
    dense = np.zeros(4**k + 1, dtype=np.float32)
    for kmer, n in expected.items():
        dense[kmer_id(kmer)] += n
    dense[-1] = float(alt == "-")
    np.testing.assert_array_equal(change, dense)


def test_ridge_recovers_a_linear_signal_and_a_huge_penalty_flattens_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 20))
    y = x @ rng.normal(size=20) + 0.1 * rng.normal(size=600)
    good = sc.ridge(x[:400], y[:400], 1e-3)(x[400:])
    flat = sc.ridge(x[:400], y[:400], 1e6)(x[400:])
    assert np.corrcoef(good, y[400:])[0, 1] > 0.95
    assert flat.std() < 0.01 * good.std()
    assert sc.choose_alpha(x, y, np.arange(300), np.arange(300, 400)) == min(sc.ALPHAS)


def test_study_split_is_the_updates_split_and_element_means_use_training_rows_only():
    from genocl_plugin.config import UpdateConfig
    from genocl_plugin.data import screens

    path = sc.BUNDLED / sc.SCREENS["enhancers"]
    screen = screens.read_screen(path)
    row_of = {name: i for i, name in enumerate(screen.obs_names)}
    train, held_blocks, held_elements = sc.study_split(path, row_of, 3, None, None)
    assert not set(train) & set(held_blocks) and not set(train) & set(held_elements)
    elements = screen.obs["element"].astype(str).to_numpy()
    assert not set(elements[held_elements]) & set(elements[train])
    assert set(elements[held_blocks]) <= set(elements[train])
    _, study_blocks, _ = sc.study_split(path, row_of, 3, sc.STUDY_TRAIN, sc.STUDY_EVAL)
    config = UpdateConfig(data=str(path), seed=3, holdout=sc.HOLDOUT, id_holdout=sc.ID_HOLDOUT,
                          max_train=sc.STUDY_TRAIN, max_eval=sc.STUDY_EVAL)
    _, _, _, test_id = screens.prepare_screen(config, None, in_distribution=True)
    assert list(screen.obs_names[study_blocks]) == list(test_id.obs_names)
    assert set(study_blocks) <= set(held_blocks) and len(study_blocks) == sc.STUDY_EVAL

    predicted = sc.element_means(screen, train, held_blocks)
    y = screen.obs["effect"].to_numpy(float)
    first = elements[held_blocks[0]]
    assert predicted[0] == pytest.approx(y[train][elements[train] == first].mean())


def motif_screen(element: str, variants: list[tuple[int, str, str]]):
    import anndata as ad
    import pandas as pd

    obs = pd.DataFrame({"element": "E", "pos": [v[0] for v in variants], "ref": [v[1] for v in variants],
                        "alt": [v[2] for v in variants]}, index=[f"v{i}" for i in range(len(variants))])
    screen = ad.AnnData(obs=obs)
    screen.uns["element_sequences"] = {"E": element}
    return screen


def test_motif_change_features_see_a_created_site_on_either_strand_and_nothing_far_away():
    site = "TGACGTAC"  # not its own reverse complement
    ppm = np.full((4, len(site)), 0.01)
    for j, base in enumerate(site):
        ppm[:, j] = 0.01
        ppm["ACGT".index(base), j] = 0.97
    filters, lengths = sc.log_odds_filters({"site": ppm})
    assert filters.shape == (2, 4, len(site)) and list(lengths) == [len(site), len(site)]
    broken = "TGACCTAC"  # the site with its 5th base changed (G -> C)
    rc = broken.translate(COMP)[::-1]  # GTAGGTCA: the broken site on the minus strand
    element = "A" * 20 + broken + "A" * 20 + rc + "A" * 20
    plus, minus = 20 + 4, 48 + len(site) - 1 - 4  # the changed base on either strand
    screen = motif_screen(element, [(plus, "C", "G"), (minus, "G", "C"), (5, "A", "C"), (plus, "C", "-")])
    change = sc.motif_change_features(screen, filters, lengths)[:, 0]
    odds = filters[0].numpy()
    gain = odds["ACGT".index("G"), 4] - odds["ACGT".index("C"), 4]
    assert change[0] == pytest.approx(gain, rel=1e-5)
    assert change[1] == pytest.approx(gain, rel=1e-5)  # the same site read on the other strand
    assert change[2] == 0  # 15 bp from any site: no window covering it changes its best match
    assert change[3] < 0  # deleting a base of the near-site only moves it further from the motif


def test_bundled_motif_filters_score_a_sequence_and_its_reverse_complement_alike():
    import torch

    filters, lengths, names = sc.motif_filters()
    assert len(names) == filters.shape[0] // 2 > 1000
    rng = np.random.default_rng(0)
    core = "".join(rng.choice(list("ACGT"), 60))
    pad = "N" * filters.shape[-1]  # every window of every (right-padded) motif fits
    seq, rc = pad + core + pad, pad + core.translate(COMP)[::-1] + pad
    from genocl_plugin.data import reference

    def best(s):
        x = torch.from_numpy(reference.codes_to_one_hot(reference.seq_to_codes(s)[None]).astype(np.float32))
        return torch.nn.functional.conv1d(x, filters).amax(-1)[0]

    n = len(names)
    # a motif's best forward match in the sequence is its best reverse-strand match in the reverse complement
    np.testing.assert_allclose(best(seq)[:n].numpy(), best(rc)[n:].numpy(), rtol=1e-5, atol=1e-4)


def test_probe_scores_fit_on_the_given_rows_and_subtract_the_base_per_split():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6))
    y = x[:, 0] + 0.2 * rng.normal(size=300)
    held, study = np.arange(200, 300), np.arange(200, 250)
    zero_shot = {"id": {"all": 0.25, "study_subsample": -0.5}}
    rows = sc.probe_scores(x, y, np.arange(200), 1e-3, [("id", held, study)], zero_shot, 512)
    by_name = {method: value for method, split, value in rows}
    fitted = by_name["enformer-mini trunk probe, 512 variants"]
    assert fitted["all"] > 0.9
    gain = by_name["enformer-mini trunk probe minus zero-shot, 512 variants"]
    assert gain == pytest.approx({"all": fitted["all"] - 0.25, "study_subsample": fitted["study_subsample"] + 0.5})
    # fitted on rows whose effects are shuffled, the probe learns nothing
    y_shuffled = y.copy()
    y_shuffled[:200] = rng.permutation(y_shuffled[:200])
    noise = dict((m, v) for m, _, v in sc.probe_scores(x, y_shuffled, np.arange(200), 1e-3, [("id", held, study)],
                                                      zero_shot, None))
    assert abs(noise["enformer-mini trunk probe, all variants"]["all"]) < 0.3
