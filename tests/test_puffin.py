"""Puffin as a genocl model format: architecture, loading, strategies, scoring, zoo.

Always-run tests use a randomly initialised Puffin of the released shapes, saved under Puffin's
own parameter names (as ``resources/puffin.pth``). Tests on the real weights (shared/data
pretrained, academic-use licence, never copied into the project) skip where they are absent.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin.data import reference
from genocl_plugin.models import build_model, load_model, puffin

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PUFFIN_PTH = SHARED / "pretrained" / "puffin" / "puffin.pth"
PROCAP_PEAKS = SHARED / "tracks_peaks" / "clipnet_k562_procap_pints_autosomes.hg38.bed.gz"
HG38_1M = SHARED / "genome" / "hg38_1m.fa.gz"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def released_layout_state(seed: int = 0) -> dict:
    """A random state dict with the names and shapes of ``puffin.pth`` (scalers included)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {"conv": (10, 4, 51), "conv_inr": (10, 4, 15), "conv_sim": (32, 4, 3),
              "deconv": (10, 20, 601), "deconv_sim": (10, 64, 601), "deconv_inr": (20, 10, 15)}
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.weight"] = torch.randn(shape, generator=gen) * 0.05
        state[f"{name}.bias"] = torch.randn(shape[1] if name == "deconv_inr" else shape[0], generator=gen) * 0.05
    state["scaler"] = torch.ones(1)
    state["scaler2"] = torch.ones(1)
    return state


@pytest.fixture(scope="module")
def puffin_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("puffin") / "puffin.pth"
    torch.save(released_layout_state(), path)
    return path


def reference_forward(state: dict, x: torch.Tensor) -> torch.Tensor:
    """Puffin's output (``ln(signal + 1)``, untrimmed) written directly with torch.nn.functional."""
    f = torch.nn.functional

    def both(name, pad):
        w, b = state[f"{name}.weight"], state[f"{name}.bias"]
        return torch.cat([f.conv1d(x, w, b, padding=pad), f.conv1d(x.flip([1, 2]), w, b, padding=pad).flip([2])], 1)

    motif, inr, sim = f.softplus(both("conv", 25)), f.softplus(both("conv_inr", 7)), f.softplus(both("conv_sim", 1))
    z = (f.conv1d(motif, state["deconv.weight"], state["deconv.bias"], padding=300)
         + f.conv_transpose1d(inr, state["deconv_inr.weight"], state["deconv_inr.bias"], padding=7)
         + f.conv1d(sim, state["deconv_sim.weight"], state["deconv_sim.bias"], padding=300))
    return f.softplus(z)


def random_one_hot(n: int, length: int, seed: int = 0) -> torch.Tensor:
    codes = np.random.default_rng(seed).integers(0, 4, size=(n, length)).astype(np.uint8)
    return torch.from_numpy(reference.codes_to_one_hot(codes))


def test_loads_released_layout_and_matches_reference_forward(puffin_file):
    model = load_model(puffin_file)
    assert model.data_params["arch"] == "puffin"
    assert model.task_names == puffin.TRACK_NAMES
    x = random_one_hot(2, 1_000)
    with torch.no_grad():
        log_cov = model(x, logits=True)
        expected = reference_forward(torch.load(puffin_file, weights_only=True), x)
    assert log_cov.shape == (2, 10, 1_000 - 2 * puffin.TRIM)
    assert model.output_length(1_000) == 1_000 - 2 * puffin.TRIM
    # genocl's log coverage z: softplus(z) is Puffin's ln(signal + 1), over the untrimmed centre
    got = torch.nn.functional.softplus(log_cov)
    torch.testing.assert_close(got, expected[..., puffin.TRIM:-puffin.TRIM], rtol=1e-4, atol=1e-5)


def test_build_random_puffin_round_trips(tmp_path):
    from genocl_plugin.models import save_model

    torch.manual_seed(1)
    model = build_model("puffin")
    assert model.seq_len == puffin.DEFAULT_SEQ_LEN and model.bin_size == 1
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    x = random_one_hot(1, model.seq_len, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model(x, logits=True), again(x, logits=True))


def test_not_puffin_keys_refused(tmp_path):
    state = released_layout_state()
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    result = CliRunner().invoke(main, ["score-vcf", "--model", str(path), "--vcf", "x.vcf", "--fasta", "x.fa",
                                       "--out", str(tmp_path / "o.tsv")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_strand_pairs_of_named_outputs():
    from genocl_plugin.scoring.variants import strand_pairs

    partner = strand_pairs(puffin.TRACK_NAMES)
    # Puffin's order: + strand 0-4, - strand reversed 5-9 (PRO-cap 4 <-> 5, FANTOM CAGE 0 <-> 9)
    assert list(partner) == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert [reference.assay_group(n) for n in puffin.TRACK_NAMES].count("CAGE") == 4


def test_freeze_lora_and_multihead_targets():
    from genocl_plugin.strategies.freeze import freeze_parts, head_prefixes
    from genocl_plugin.strategies.lora import lora_targets
    from genocl_plugin.strategies.multihead import attach_heads, feature_channels

    net = build_model("puffin").model
    assert head_prefixes(net) == ("puffin.effects.",)
    assert sorted(lora_targets(net)) == ["puffin.motifs.conv", "puffin.motifs.conv_inr", "puffin.motifs.conv_sim"]
    frozen = freeze_parts(net, ["embedding"])
    assert frozen and all(name.startswith("puffin.motifs.") for name in frozen)
    assert all(p.requires_grad for n, p in net.named_parameters() if n.startswith("puffin.effects."))
    assert feature_channels(net) == puffin.N_FEATURES
    attach_heads(net, [{"name": "screen1", "in_channels": puffin.N_FEATURES, "task_names": ["screen:a"]}])
    with torch.no_grad():
        out = net(random_one_hot(2, 800))
    assert out.shape == (2, 11, 800 - 2 * puffin.TRIM)


def test_update_publish_and_kipoi_on_random_puffin(puffin_file, tmp_path):
    """genocl update (new head + frozen motifs) -> publish -> the entry carries Puffin's licence."""
    import yaml

    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, [
        "update", "--model", str(puffin_file), "--strategy", "multihead,freeze", "--freeze", "embedding",
        "--max-train", "8", "--max-eval", "8", "--max-eval-id", "8", "--batch-size", "4", "--holdout", "0.3",
        "--mpra-input-length", "1400", "--out", str(run),
        "--data", str(Path(puffin.__file__).resolve().parents[1] / "bundled" / "mpra_promoters.h5ad")])
    assert result.exit_code == 0, result.output
    base, new = load_model(puffin_file), load_model(run)
    assert new.data_params["arch"] == "puffin"
    for name, tensor in base.model.state_dict().items():
        torch.testing.assert_close(new.model.state_dict()[name], tensor)  # old tracks bit for bit
    import json

    cage = json.loads((run / "metrics.json").read_text())["retention"]["real_cage"]
    assert cage["n_windows"] == 96 and np.isfinite(cage["pearson_before"])
    assert cage["pearson_after"] == pytest.approx(cage["pearson_before"], abs=1e-6)  # old heads unchanged
    assert "FANTOM CAGE outputs vs real CAGE" in result.output
    zoo = tmp_path / "zoo"
    result = runner.invoke(main, ["publish", str(run), "--zoo", str(zoo), "--name", "puffin/promoters-v1"])
    assert result.exit_code == 0, result.output
    entry = zoo / "puffin" / "promoters-v1"
    assert "academic research use only" in (entry / "LICENSE").read_text()
    info = yaml.safe_load((entry / "model.yaml").read_text())["info"]
    assert "academic research use only" in info["license"]
    assert "Dudnyk" in info["cite_as"]


@pytest.mark.skipif(not PUFFIN_PTH.exists(), reason="needs ../shared/data/pretrained/puffin")
def test_real_puffin_predicts_procap_at_k562_initiation_sites():
    """The released weights, read by genocl's own implementation, find real K562 PRO-cap peaks:
    predicted PRO-cap signal at the 22 peaks in hg38 chr1:1-1,000,000 exceeds random positions."""
    import pyfaidx

    model = load_model(PUFFIN_PTH)
    genome = pyfaidx.Fasta(str(HG38_1M))
    with gzip.open(PROCAP_PEAKS, "rt") as handle:
        rows = [line.split("\t") for line in handle]
    summits = [(int(r[1]) + int(r[2])) // 2 for r in rows if r[0] == "chr1" and int(r[2]) < 990_000
               and int(r[1]) > 10_000]
    assert len(summits) >= 10
    rng = np.random.default_rng(0)
    background = [int(p) for p in rng.integers(20_000, 980_000, size=60)]
    half = model.seq_len // 2

    def signal(pos: int) -> float:
        seq = str(genome["chr1"][pos - half:pos - half + model.seq_len])
        x = torch.from_numpy(reference.codes_to_one_hot(reference.seq_to_codes(seq.upper())[None]))
        with torch.no_grad():
            out = model(x, logits=True)[0]
        procap = [i for i, n in enumerate(model.task_names) if n.startswith("PRO-cap")]
        centre = out.shape[-1] // 2
        return float(torch.logsumexp(out[procap, centre - 250:centre + 250].flatten(), 0))

    at_peaks = np.array([signal(p) for p in summits])
    at_random = np.array([signal(p) for p in background])
    assert np.median(at_peaks) > np.median(at_random) + 1.0


def test_fft_convolution_equals_conv1d():
    """The FFT path of the 601-bp effect layers computes what nn.Conv1d computes, gradients included."""
    torch.manual_seed(0)
    fft = puffin.FFTConv1d(6, 3, kernel_size=601, padding=300)
    direct = torch.nn.Conv1d(6, 3, kernel_size=601, padding=300)
    direct.load_state_dict(fft.state_dict())
    x = torch.randn(2, 6, 700, requires_grad=True)
    a, b = fft(x), direct(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    (ga,) = torch.autograd.grad(a.square().sum(), fft.weight)
    (gb,) = torch.autograd.grad(b.square().sum(), direct.weight)
    torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-3)
