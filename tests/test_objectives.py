"""The perturbation objectives' math, checked by hand on small cases."""

from __future__ import annotations

import math

import anndata
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from genocl_plugin import objectives
from genocl_plugin.data import reference


class CountAModel(nn.Module):
    """log coverage = log(1 + number of A bases in the input), one track, 4 output bins.

    Its predicted MPRA effect of a variant is therefore known in closed form.
    """

    task_names = ["CAGE:fake", "RNA:other"]
    bin_size = 1
    seq_len = 64

    def output_length(self, seq_len: int) -> int:
        return seq_len

    def forward(self, x: torch.Tensor, logits: bool = True) -> torch.Tensor:
        n_a = x[:, 0].sum(-1)  # (B,)
        per_pos = torch.log1p(n_a)[:, None, None] - math.log(x.shape[-1])
        # track 0 carries the signal spread over positions; track 1 is a constant decoy
        return torch.cat([per_pos.expand(-1, 1, x.shape[-1]), torch.zeros(x.shape[0], 1, x.shape[-1])], 1)


def test_activity_is_logsumexp_over_tracks_and_window():
    log_cov = torch.log(torch.tensor([[[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]]]))
    mask = torch.tensor([True, False])
    got = objectives.activity(log_cov, mask, torch.tensor([1]), torch.tensor([3]))
    assert got.item() == pytest.approx(math.log(2.0 + 3.0))
    both = objectives.activity(log_cov, torch.tensor([True, True]), torch.tensor([0]), torch.tensor([4]))
    assert both.item() == pytest.approx(math.log(110.0))


def _mpra_screen(element: str, rows: list[tuple[int, str, str, float]]):
    obs = pd.DataFrame(rows, columns=["pos", "ref", "alt", "effect"])
    obs.insert(0, "element", "E1")
    obs.index = [f"r{i}" for i in range(len(obs))]
    adata = anndata.AnnData(obs=obs)
    adata.uns["assay"] = "mpra"
    adata.uns["element_sequences"] = {"E1": element}
    return adata


def test_mpra_effect_matches_hand_computation():
    element = "ACGTAACCGGTTAAAC"  # 6 A
    screen = _mpra_screen(element, [(0, "A", "C", 0.0), (1, "C", "A", 0.0), (4, "A", "-", 0.0)])
    model = CountAModel()
    ds = objectives.mpra_dataset(screen, model)
    batch = objectives.collate_perturbations([ds[i] for i in range(len(ds))])
    got = objectives.predicted_effects(model, batch).numpy()
    # the readout track is the CAGE one only; activity = log(1 + #A), so the effect is log2 ratios
    expected = [math.log2(6 / 7), math.log2(8 / 7), math.log2(6 / 7)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # the single shared reference is computed once per batch
    assert batch["ref"].shape[0] == 1 and batch["alt"].shape[0] == 3


def test_mpra_dataset_centres_element_and_applies_variant():
    element = "ACGTAACCGGTTAAAC"
    screen = _mpra_screen(element, [(2, "G", "T", 0.5), (4, "A", "-", -0.2)])
    ds = objectives.mpra_dataset(screen, CountAModel())
    offset = (64 - len(element)) // 2
    ref = reference.codes_to_seq(ds.refs[0])
    assert ref[offset : offset + len(element)] == element
    assert set(ref[:offset] + ref[offset + len(element):]) == {"N"}
    snv = reference.codes_to_seq(ds.alts[0])
    assert snv[offset + 2] == "T" and snv[offset : offset + 2] == "AC"
    deletion = reference.codes_to_seq(ds.alts[1])
    assert deletion[offset : offset + len(element) - 1] == element[:4] + element[5:]
    assert (ds.lo[0], ds.hi[0]) == (offset, offset + len(element))
    np.testing.assert_allclose(ds.effect, [0.5, -0.2], rtol=1e-6)


def test_apply_variant_rejects_wrong_ref():
    with pytest.raises(ValueError):
        objectives.apply_variant("ACGT", 1, "G", "A")


def test_silence_mask_and_dinucleotide_shuffle():
    rng = np.random.default_rng(0)
    codes = reference.seq_to_codes("ACGTTGCAAACCGGTTACGATCGATCGGGCATACG")
    masked = objectives.silence(codes, 5, 15, "mask", rng)
    assert (masked[5:15] == 4).all() and (masked[:5] == codes[:5]).all() and (masked[15:] == codes[15:]).all()
    shuffled = objectives.silence(codes, 5, 30, "shuffle", rng)
    assert (shuffled[:5] == codes[:5]).all() and (shuffled[30:] == codes[30:]).all()
    before, after = reference.codes_to_seq(codes[5:30]), reference.codes_to_seq(shuffled[5:30])
    assert sorted(before) == sorted(after)
    pairs = lambda s: sorted(s[i : i + 2] for i in range(len(s) - 1))  # noqa: E731
    assert pairs(before) == pairs(after)
    assert before != after


def test_effect_loss_is_mse():
    loss = objectives.effect_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    assert loss.item() == pytest.approx((1 + 4) / 2)


def test_crispri_dataset_reads_bundled_window_and_tss():
    from genocl_plugin.data.screens import crispri_window_start, parse_interval
    from genocl_plugin.models import build_model

    # a BPNet whose 65,536-bp input holds the bundled pairs (21-54 kb element-TSS spans)
    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=65_536, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 8_192})
    screen = anndata.read_h5ad(reference.BUNDLED / "crispri_example.h5ad")
    ds = objectives.crispri_dataset(screen, model, silencing="mask")
    assert len(ds) == screen.n_obs and ds.skipped == 0
    trim = model.model.bpnet.trimming
    for i, (chrom, tss, elements) in enumerate(zip(screen.obs["tss_chrom"], screen.obs["tss_pos"],
                                                   screen.obs["elements"], strict=True)):
        _, e_start, e_end = parse_interval(elements)
        start = crispri_window_start(model, int(tss), [parse_interval(elements)], 32)
        assert len(ds.refs[i]) == model.seq_len
        split, w, w_start = reference.find_window(chrom, max(start, e_start), min(start + model.seq_len, tss + 1))
        window = reference.load_windows()[f"{split}_seq"][w]
        # the bundled window's bases where it covers the input, N where it does not
        lo, hi = max(start, w_start), min(start + model.seq_len, w_start + reference.WINDOW_LEN)
        assert (ds.refs[i][lo - start : hi - start] == window[lo - w_start : hi - w_start]).all()
        assert (ds.refs[i][: lo - start] == 4).all() and (ds.refs[i][hi - start :] == 4).all()
        # the element is N-masked in the silenced copy, and nothing else changed
        assert (ds.alts[i][e_start - start : e_end - start] == 4).all()
        assert (ds.alts[i][: e_start - start] == ds.refs[i][: e_start - start]).all()
        # the readout window (output positions) contains the TSS
        tss_out = tss - start - trim
        assert ds.lo[i] <= tss_out < ds.hi[i]
        assert ds.hi[i] - ds.lo[i] == 64  # +-32 bp around the TSS at base resolution


def test_training_effects_see_one_network_not_two_dropout_masks():
    """In train mode the reference and the perturbed sequence must not get different dropout
    masks: on enformer-mini that noise was 4x the effects themselves."""
    from genocl_plugin.models import load_model

    torch.manual_seed(0)
    model = load_model("enformer")
    dropout = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropout and max(m.p for m in dropout) >= 0.4  # the mini's transformer dropout
    screen = anndata.read_h5ad(reference.BUNDLED / "mpra_enhancers.h5ad")
    dataset = objectives.mpra_dataset(screen[:64], model)
    batch = objectives.collate_perturbations([dataset[i] for i in range(0, 64, 8)])
    model.train()
    model.on_train_batch_start(batch, 0)  # what Lightning calls before each training step
    with torch.no_grad():
        first, second = (objectives.predicted_effects(model, batch) for _ in range(2))
    torch.testing.assert_close(first, second)  # no dropout noise in the effect
    # gradients still flow through the effect
    model.zero_grad()
    objectives.effect_loss(objectives.predicted_effects(model, batch), batch["effect"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.on_train_batch_end(None, batch, 0)
    assert all(m.training for m in dropout)  # dropout is back on for everything else
    with torch.no_grad():
        x = batch["ref"][:1]
        assert not torch.equal(model(x, logits=True), model(x, logits=True))


def test_update_steps_on_screens_run_without_dropout_also_under_checkpointing():
    """The whole step of a screen batch runs with dropout off (strategy terms included), so
    gradient checkpointing's backward recomputes blocks in the mode their forward ran in."""
    from genocl_plugin.models import load_model
    from genocl_plugin.training.hardware import enable_gradient_checkpointing

    model = load_model("enformer")
    enable_gradient_checkpointing(model.model)
    dropout = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    screen = anndata.read_h5ad(reference.BUNDLED / "mpra_enhancers.h5ad")
    dataset = objectives.mpra_dataset(screen[:16], model)
    batch = objectives.collate_perturbations([dataset[i] for i in range(0, 16, 4)])
    model.train()
    model.on_train_batch_start(batch, 0)
    assert not any(m.training for m in dropout)
    loss = objectives.batch_loss(model, batch)
    loss.backward()  # a CheckpointError if dropout changed mode between forward and recompute
    model.on_train_batch_end(None, batch, 0)
    assert all(m.training for m in dropout)
    # track batches keep dropout
    model.on_train_batch_start({"kind": "tracks", "target": torch.zeros(1)}, 0)
    assert all(m.training for m in dropout)
    model.on_train_batch_end(None, {}, 0)


def test_mpra_input_length_centres_element_in_shorter_input():
    element = "ACGTAACCGGTTAAAC"
    screen = _mpra_screen(element, [(0, "A", "C", 0.0), (1, "C", "A", 0.0)])
    model = CountAModel()
    full = objectives.mpra_dataset(screen, model)
    short = objectives.mpra_dataset(screen, model, seq_len=32)
    assert len(short.refs[0]) == 32 and len(full.refs[0]) == 64
    ref = reference.codes_to_seq(short.refs[0])
    offset = (32 - len(element)) // 2
    assert ref[offset : offset + len(element)] == element and set(ref.replace(element, "")) == {"N"}
    # the readout window is the element's output positions in the shorter input
    assert (short.lo[0], short.hi[0]) == (offset, offset + len(element))
    # CountAModel's effect does not depend on the N padding, so both inputs agree
    effects = [objectives.predicted_effects(model, objectives.collate_perturbations([d[i] for i in range(len(d))]))
               for d in (full, short)]
    np.testing.assert_allclose(effects[0].numpy(), effects[1].numpy(), rtol=1e-6)


class FixedOutputModel(CountAModel):
    """Crops its output to 8 bins of 8 bp whatever the input (like enformer-pytorch's target_length)."""

    bin_size = 8

    def output_length(self, seq_len: int) -> int:
        return 8


def test_mpra_input_length_refusals():
    screen = _mpra_screen("ACGTAACCGGTTAAAC", [(0, "A", "C", 0.0)])
    with pytest.raises(Exception, match="fit the 8-bp output"):
        objectives.mpra_dataset(screen, CountAModel(), seq_len=8)  # output 8 bp < 16-bp element
    with pytest.raises(Exception, match="too short for this model"):
        objectives.mpra_dataset(screen, FixedOutputModel(), seq_len=32)  # needs 64 bp of input
    with pytest.raises(Exception, match="multiple of the model's 8-bp"):
        objectives.mpra_dataset(screen, FixedOutputModel(), seq_len=36)


def test_mpra_input_length_at_real_enformer_geometry():
    """gReLU Enformer geometry (128-bp bins, 320 bins cropped per side; reduced width): the
    shortest input is 81,920 bp plus the element, and the element's readout window sits in the
    output of the shorter input."""
    import anndata

    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    model = build_model("enformer", task_names=["CAGE:a", "DNASE:b"], seq_len=196_608,
                        model_params={"n_tasks": 2, "n_conv": 7, "channels": 384, "n_transformers": 1, "n_heads": 2,
                                      "key_len": 8, "crop_len": 320, "final_pool_func": None})
    screen = anndata.read_h5ad(reference.BUNDLED / "mpra_enhancers.h5ad")[:6].copy()
    with pytest.raises(Exception, match="no output positions"):
        objectives.mpra_dataset(screen, model, seq_len=81_920)
    with pytest.raises(Exception, match="does not fit the 512-bp output"):
        objectives.mpra_dataset(screen, model, seq_len=82_432)  # 4 output bins
    ds = objectives.mpra_dataset(screen, model, seq_len=90_112)  # 64 output bins = 8,192 bp
    assert {len(r) for r in ds.refs} == {90_112}
    element = len(screen.uns["element_sequences"][screen.obs["element"].iloc[0]])
    lo, hi = int(ds.lo[0]), int(ds.hi[0])
    # the element is centred: its output bins are the middle ones of the 64
    assert 0 < lo < hi < 64 and lo + hi in (63, 64, 65) and (hi - lo) * 128 >= element
    model.eval()
    batch = objectives.collate_perturbations([ds[0], ds[1]])
    with torch.no_grad():
        effects = objectives.predicted_effects(model, batch)
    assert effects.shape == (2,) and torch.isfinite(effects).all()


def test_mpra_input_length_at_procapnet_geometry():
    """ProCapNet geometry (2,114 bp in, 557 bp trimmed per side, 1,000 bp out; reduced width): the
    promoters' longest element (600 bp) needs an input of at least 1,714 bp."""
    import anndata

    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=2_114, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 8, "trimming": 557})
    assert model.output_length(2_114) == 1_000
    screen = anndata.read_h5ad(reference.BUNDLED / "mpra_promoters.h5ad")
    lengths = {e: len(seq) for e, seq in screen.uns["element_sequences"].items()}
    longest = max(lengths, key=lengths.get)
    assert lengths[longest] == 600
    screen = screen[(screen.obs["element"].astype(str) == longest).to_numpy()][:16].copy()
    with pytest.raises(Exception, match="does not fit the 598-bp output"):
        objectives.mpra_dataset(screen, model, seq_len=1_712)
    ds = objectives.mpra_dataset(screen, model, seq_len=1_714)
    assert {len(r) for r in ds.refs} == {1_714}
    model.eval()
    with torch.no_grad():
        effects = objectives.predicted_effects(model, objectives.collate_perturbations([ds[0], ds[1]]))
    assert torch.isfinite(effects).all()
