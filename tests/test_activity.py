"""Activity libraries (assay="activity"): layout, converter, loss, dataset and `genocl update` end to end."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genocl_cli.main import main as cli
from genocl_plugin import objectives
from genocl_plugin.data import screens

WTC11 = Path(__file__).resolve().parents[2] / "shared" / "data" / "lentimpra_wtc11"
ADAPTER5, ADAPTER3 = "AGGACCGGATCAACT", "CATTGCGTGAACCGA"  # the WTC11 library's constant ends


def _random_seqs(n: int, rng: np.random.Generator, low: int = 150, high: int = 231) -> list[str]:
    return ["".join(rng.choice(list("ACGT"), size=int(rng.integers(low, high)))) for _ in range(n)]


def _screen(seqs, activity, **obs):
    import anndata

    frame = pd.DataFrame({"sequence": seqs, "activity": activity, **obs},
                         index=[f"s{i}" for i in range(len(seqs))])
    adata = anndata.AnnData(obs=frame)
    adata.uns["assay"] = "activity"
    adata.uns["source"] = "test"
    return adata


def _one_line_error(result, *needles) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "fix:" in lines[0], result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def _write_table(path: Path, frame: pd.DataFrame, sep: str = "\t") -> Path:
    text = frame.to_csv(sep=sep, index=False)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def _library(n: int = 24, seed: int = 0, pairs: int = 4) -> pd.DataFrame:
    """Adapter + insert + adapter oligos; the first ``pairs`` inserts also appear reverse-complemented."""
    rng = np.random.default_rng(seed)
    inserts = _random_seqs(n - pairs, rng, 40, 61)
    inserts += [screens.reverse_complement(s) for s in inserts[:pairs]]
    return pd.DataFrame({"seq": [ADAPTER5 + s + ADAPTER3 for s in inserts],
                         "mean_value": np.round(rng.normal(size=n), 3), "other": "x"})


# ---- layout and validation ---------------------------------------------------------------------


@pytest.mark.parametrize("breakage, field", [
    (lambda f: f.drop(columns="sequence"), "obs['sequence']"),
    (lambda f: f.drop(columns="activity"), "obs['activity']"),
    (lambda f: f.assign(sequence=["ACGU"] + list(f["sequence"][1:])), "obs['sequence']"),
    (lambda f: f.assign(sequence=[""] + list(f["sequence"][1:])), "obs['sequence']"),
    (lambda f: f.assign(activity=[np.nan] + list(f["activity"][1:])), "obs['activity']"),
    (lambda f: f.assign(activity=[np.inf] + list(f["activity"][1:])), "obs['activity']"),
    (lambda f: f.assign(activity=["high"] + [str(v) for v in f["activity"][1:]]), "obs['activity']"),
    (lambda f: f.assign(sequence=[f["sequence"].iloc[1]] + list(f["sequence"][1:])), "obs['sequence']"),
    (lambda f: f.assign(split=["train", "holdout"] + ["test"] * (len(f) - 2)), "obs['split']"),
    (lambda f: f.assign(group="g", split=["train"] + ["test"] * (len(f) - 1)), "obs['split']"),
    (lambda f: f.iloc[:0], "obs"),
])
def test_bad_activity_screen_is_one_line(tmp_path, breakage, field):
    import anndata

    good = _screen(_random_seqs(6, np.random.default_rng(0)), np.arange(6.0))
    screens.validate_screen(good)  # the unbroken screen is valid
    bad = anndata.AnnData(obs=breakage(good.obs.copy()))
    bad.uns["assay"] = "activity"
    path = tmp_path / "bad.h5ad"
    bad.write_h5ad(path)
    _one_line_error(CliRunner().invoke(cli, ["screen", "validate", str(path)]), "bad.h5ad", field)


def test_split_follows_the_column_else_holds_out_whole_groups():
    rng = np.random.default_rng(1)
    seqs = _random_seqs(40, rng)
    groups = [f"g{i // 2}" for i in range(40)]
    adata = _screen(seqs, rng.normal(size=40), group=groups)
    train, test = screens.split_activity(adata, test_fraction=0.25, seed=3)
    assert train.n_obs + test.n_obs == 40 and test.n_obs > 0
    assert not set(train.obs["group"]) & set(test.obs["group"])  # a group is never on both sides
    assert test.obs["group"].nunique() == round(0.25 * 20)
    split = rng.choice(["train", "valid", "test"], size=40)
    adata.obs["split"] = split
    adata.obs["group"] = [f"g{i}" for i in range(40)]
    train, test = screens.split_activity(adata, test_fraction=0.25, seed=3)
    assert list(train.obs_names) == [n for n, s in zip(adata.obs_names, split, strict=True) if s == "train"]
    assert list(test.obs_names) == [n for n, s in zip(adata.obs_names, split, strict=True) if s == "test"]


# ---- converter -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, sep", [("lib.tsv", "\t"), ("lib.csv.gz", ","), ("lib.tsv.gz", "\t")])
def test_converter_trims_pairs_strands_and_keeps_values(tmp_path, name, sep):
    frame = _library()
    table = _write_table(tmp_path / name, frame, sep)
    out = tmp_path / "lib.h5ad"
    result = CliRunner().invoke(cli, ["screen", "from-activity", str(table), "--sequence-column", "seq",
                                      "--activity-column", "mean_value", "--trim-adapters", "15", "15",
                                      "--source", "my library", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{ADAPTER5} in every row" in result.output and f"{ADAPTER3} in every row" in result.output
    adata = screens.read_screen(out)
    assert adata.uns["assay"] == "activity" and adata.uns["source"] == "my library"
    assert list(adata.obs["sequence"]) == [s[15:-15] for s in frame["seq"]]
    np.testing.assert_allclose(adata.obs["activity"].to_numpy(float), frame["mean_value"].to_numpy(float))
    # a sequence and its reverse complement share a group; the others are their own
    for _, rows in adata.obs.groupby("group", observed=True):
        assert len(rows) <= 2
        if len(rows) == 2:
            a, b = rows["sequence"]
            assert screens.reverse_complement(a) == b
    assert adata.obs["group"].nunique() == len(frame) - 4


def test_converter_group_and_split_columns_and_no_pairing(tmp_path):
    frame = _library().assign(family=[f"f{i // 6}" for i in range(24)],
                              fold=["train"] * 12 + ["Test"] * 6 + ["valid"] * 6)
    table = _write_table(tmp_path / "lib.tsv", frame)
    adata, summary = screens.from_activity(table, "seq", "mean_value", group_column="family", split_column="fold")
    assert list(adata.obs["group"]) == list(frame["family"]) and summary["groups"] == 4
    assert list(adata.obs["split"]) == [s.lower() for s in frame["fold"]]
    assert adata.obs["sequence"].iloc[0] == frame["seq"].iloc[0]  # no trimming asked
    alone, summary = screens.from_activity(table, "seq", "mean_value", trim_adapters=(15, 15), pair_strands=False)
    assert "group" not in alone.obs and summary["strand_pairs"] == 0


@pytest.mark.parametrize("edit, args, needles", [
    (lambda f: f, ["--sequence-column", "sequence"], ("--sequence-column", "'sequence'", "seq, mean_value")),
    (lambda f: f, ["--activity-column", "activity"], ("--activity-column",)),
    (lambda f: f.assign(seq=["ACGTXACGT"] + list(f["seq"][1:])), [], ("seq", "row 1", "'X'")),
    (lambda f: f.assign(mean_value=["1.0", "NA"] + list(f["mean_value"][2:])), [], ("mean_value", "row 2")),
    (lambda f: f.assign(mean_value=["1.0", "inf"] + list(f["mean_value"][2:])), [], ("mean_value", "row 2")),
    (lambda f: f.assign(seq=[""] + list(f["seq"][1:])), [], ("seq", "row 1", "no sequence")),
    (lambda f: f.assign(seq=list(f["seq"][:5]) + [f["seq"].iloc[2]] + list(f["seq"][6:])), [], ("row 6", "row 3")),
    (lambda f: f, ["--trim-adapters", "100", "100"], ("--trim-adapters", "nothing left")),
    (lambda f: f, ["--trim-adapters", "-1", "3"], ("--trim-adapters",)),
    (lambda f: f, ["--split-column", "other"], ("other", "'x'")),
    (lambda f: f.iloc[:0], [], ("no rows",)),
])
def test_converter_refuses_bad_input_in_one_line(tmp_path, edit, args, needles):
    frame = edit(_library().astype({"mean_value": str}))
    table = _write_table(tmp_path / "lib.tsv", frame)
    result = CliRunner().invoke(cli, ["screen", "from-activity", str(table), "--sequence-column", "seq",
                                      "--activity-column", "mean_value", *args, "--out", str(tmp_path / "o.h5ad")])
    if "--trim-adapters" in args and "-1" in args:  # click's own one-line usage error
        assert result.exit_code == 2 and "--trim-adapters" in result.output and "Traceback" not in result.output
        return
    _one_line_error(result, *needles)
    assert not (tmp_path / "o.h5ad").exists()


def test_converter_missing_and_binary_files_are_one_line(tmp_path):
    args = ["--sequence-column", "seq", "--activity-column", "mean_value", "--out", str(tmp_path / "o.h5ad")]
    _one_line_error(CliRunner().invoke(cli, ["screen", "from-activity", str(tmp_path / "absent.tsv"), *args]),
                    "absent.tsv", "not found")
    (tmp_path / "bin.tsv.gz").write_bytes(b"\x00\x01not gzip at all")
    _one_line_error(CliRunner().invoke(cli, ["screen", "from-activity", str(tmp_path / "bin.tsv.gz"), *args]),
                    "bin.tsv.gz", "not a text table")


@pytest.mark.skipif(not (WTC11 / "WTC11_test.tsv.gz").exists(), reason="lentiMPRA WTC11 data not present")
@pytest.mark.parametrize("name", ["WTC11_test.tsv.gz", "WTC11_valid.tsv.gz"])
def test_converter_on_real_lentimpra(tmp_path, name):
    table = WTC11 / name
    raw = pd.read_csv(table, sep="\t")
    out = tmp_path / "wtc11.h5ad"
    result = CliRunner().invoke(cli, ["screen", "from-activity", str(table), "--sequence-column", "seq",
                                      "--activity-column", "mean_value", "--trim-adapters", "15", "15",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "in every row" in result.output  # the library's adapters are constant
    adata = screens.read_screen(out)
    assert adata.n_obs == len(raw)
    assert list(adata.obs["sequence"]) == [s[15:-15] for s in raw["seq"]]
    np.testing.assert_allclose(adata.obs["activity"].to_numpy(float), raw["mean_value"].to_numpy(float))
    # both orientations of an element are one hold-out group
    sizes = adata.obs.groupby("group", observed=True).size()
    assert sizes.max() == 2 and (sizes == 2).sum() > len(raw) // 3
    inserts = set(adata.obs["sequence"])
    paired = sum(screens.reverse_complement(s) in inserts for s in adata.obs["sequence"])
    assert paired == 2 * (sizes == 2).sum()
    train, test = screens.split_activity(adata, 0.25, seed=0)
    held = set(test.obs["sequence"])
    assert not any(screens.reverse_complement(s) in held for s in train.obs["sequence"])
    result = CliRunner().invoke(cli, ["screen", "validate", str(out)])
    assert result.exit_code == 0 and "activity screen" in result.output


# ---- the loss ----------------------------------------------------------------------------------------


def test_activity_loss_is_scale_free_sign_aware_and_finite():
    rng = np.random.default_rng(0)
    measured = torch.tensor(rng.normal(size=32), dtype=torch.float32)
    exact = objectives.activity_loss(3.0 * measured - 7.0, measured)
    assert float(exact) < 1e-5  # an increasing affine map of the target is a perfect prediction
    noisy = measured + torch.tensor(rng.normal(size=32), dtype=torch.float32)
    loss = objectives.activity_loss(noisy, measured)
    r = np.corrcoef(noisy.numpy(), measured.numpy())[0, 1]
    assert float(loss) == pytest.approx(1 - r, abs=1e-5)  # 1 - Pearson
    assert float(objectives.activity_loss(0.01 * noisy + 100, measured)) == pytest.approx(float(loss), abs=1e-4)
    shuffled = objectives.activity_loss(measured[torch.randperm(32, generator=torch.Generator().manual_seed(0))],
                                        measured)
    assert float(shuffled) > float(loss) > float(exact)
    # ranking the batch backwards is the worst case, not as good as ranking it right
    backwards = objectives.activity_loss(-measured, measured)
    assert float(backwards) == pytest.approx(2.0, abs=1e-5) and float(backwards) > float(shuffled)
    for constant in (torch.full((8,), 1.234), torch.full((1,), 0.5)):
        pred = constant.clone().requires_grad_(True)
        value = objectives.activity_loss(pred, measured[: len(pred)])
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(pred.grad).all()
    # identical measurements too
    assert torch.isfinite(objectives.activity_loss(noisy[:8], torch.zeros(8)))


# ---- the dataset and the readout ------------------------------------------------------------------


def test_activity_rows_are_read_as_mpra_reads_an_element(tiny_procapnet):
    """A sequence is centred and read exactly as mpra_dataset centres and reads an element."""
    rng = np.random.default_rng(2)
    seqs = _random_seqs(5, rng, 20, 60)
    adata = _screen(seqs, rng.normal(size=5))
    dataset = objectives.screen_dataset(adata, tiny_procapnet)
    assert isinstance(dataset, objectives.ActivityDataset) and len(dataset) == 5
    import anndata

    # the same sequences as MPRA elements, one SNV each

    obs = pd.DataFrame({"element": [f"e{i}" for i in range(5)], "pos": 0, "ref": [s[0] for s in seqs],
                        "alt": ["A" if s[0] != "A" else "C" for s in seqs], "effect": 0.0})
    mpra = anndata.AnnData(obs=obs)
    mpra.uns.update({"assay": "mpra", "element_sequences": {f"e{i}": s for i, s in enumerate(seqs)}})
    pairs = objectives.mpra_dataset(mpra, tiny_procapnet)
    for i in range(5):
        j = pairs.ref_index[i]
        np.testing.assert_array_equal(dataset[i]["seq"], pairs.refs[j])
        assert (dataset[i]["lo"], dataset[i]["hi"]) == (pairs.lo[i], pairs.hi[i])
    assert torch.equal(dataset.track_mask, pairs.track_mask)
    tiny_procapnet.eval()
    batch = objectives.collate_activity([dataset[i] for i in range(5)])
    assert batch["kind"] == "activity" and not objectives.is_comparison(batch)
    with torch.no_grad():
        predicted = objectives.predicted_activity(tiny_procapnet, batch)
        out = tiny_procapnet(batch["seqs"], logits=True)
        by_hand = torch.stack([torch.logsumexp(out[i][:, batch["lo"][i] : batch["hi"][i]].flatten(), 0)
                               for i in range(5)]) / np.log(2)
        torch.testing.assert_close(predicted, by_hand)
        torch.testing.assert_close(objectives.batch_loss(tiny_procapnet, batch),
                                   objectives.activity_loss(predicted, batch["effect"]))
    np.testing.assert_allclose(objectives.predict_screen_effects(tiny_procapnet, dataset), predicted.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_sequence_longer_than_the_input_is_one_error(tiny_procapnet):
    from genocl_plugin.errors import GenoclInputError

    adata = _screen(["A" * 400, "C" * 30], [0.0, 1.0])  # the tiny model takes 352 bp
    with pytest.raises(GenoclInputError, match=r"obs\['sequence'\].*400-bp sequence is longer"):
        objectives.screen_dataset(adata, tiny_procapnet)
    with pytest.raises(GenoclInputError, match=r"obs\['sequence'\].*does not fit"):
        objectives.screen_dataset(adata[1:].copy(), tiny_procapnet, mpra_seq_len=112)  # 16-bp output


# ---- genocl update end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def activity_screen(tmp_path_factory) -> Path:
    """96 random 150-230 nt sequences (16 also reverse-complemented) whose activity is their GC content."""
    tmp = tmp_path_factory.mktemp("activity")
    rng = np.random.default_rng(5)
    seqs = _random_seqs(80, rng)
    seqs += [screens.reverse_complement(s) for s in seqs[:16]]
    gc = [(s.count("G") + s.count("C")) / len(s) for s in seqs]
    table = _write_table(tmp / "lib.tsv", pd.DataFrame({"sequence": seqs, "activity": np.round(gc, 4)}))
    out = tmp / "library.h5ad"
    result = CliRunner().invoke(cli, ["screen", "from-activity", str(table), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _update(data: Path, out: Path, *extra) -> dict:
    result = CliRunner().invoke(cli, ["update", "--model", "procapnet", "--data", str(data), "--max-train", "32",
                                      "--max-eval", "16", "--batch-size", "8", "--mpra-input-length", "2176",
                                      "--retention-crops", "4", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def test_update_reports_heldout_activity_pearson(tmp_path, activity_screen):
    from genocl_plugin.evaluation.evaluate import pearson, screen_task
    from genocl_plugin.models import load_model

    run = tmp_path / "run"
    metrics = _update(activity_screen, run, "--strategy", "finetune")
    nt = metrics["new_task"]
    assert nt["kind"] == "activity"
    for key in ("before", "after"):
        assert np.isfinite(nt[key]["pearson"]) and np.isfinite(nt[key]["spearman"]) and nt[key]["n"] == 16
    assert nt["pearson_gain"] == pytest.approx(nt["after"]["pearson"] - nt["before"]["pearson"])
    assert nt["train_before"]["n"] == nt["train_after"]["n"] == 32
    assert "in_distribution" not in nt and metrics["split"]["n_test_in_distribution"] == 0
    split = metrics["split"]
    assert split["n_train"] == 32 and split["n_test"] == 16
    assert not set(split["train_elements"]) & set(split["test_elements"])
    # the numbers are the Pearson of predicted log2 activity vs measured activity on the held-out rows
    for spec, key in (("procapnet", "before"), (run / "model", "after")):
        model = load_model(spec)
        held = screen_task(run, model)
        assert isinstance(held, objectives.ActivityDataset) and held.seq_len == 2176
        predicted = objectives.predict_screen_effects(model, held)
        assert pearson(predicted, held.effect) == pytest.approx(nt[key]["pearson"], abs=1e-5)
    table = pd.read_csv(run / "effects_heldout.tsv", sep="\t")
    assert len(table) == 16
    table_pearson = pearson(table["predicted_after"].to_numpy(), table["measured"].to_numpy())
    assert table_pearson == pytest.approx(nt["after"]["pearson"], abs=1e-3)


def test_multihead_update_reads_its_screen_head(tmp_path, activity_screen):
    from genocl_plugin.evaluation.evaluate import screen_task
    from genocl_plugin.models import load_model

    run = tmp_path / "multi"
    metrics = _update(activity_screen, run, "--strategy", "multihead", "--lr", "1e-2")
    base, model = load_model("procapnet"), load_model(run / "model")
    assert model.task_names[: len(base.task_names)] == base.task_names
    head = model.screen_tracks
    assert head == [len(base.task_names)] and metrics["new_task"]["readout_head"] == [model.task_names[head[0]]]
    held = screen_task(run, model)
    batch = objectives.collate_activity([held[i] for i in range(len(held))])
    with torch.no_grad():
        read = objectives.predicted_activity(model, batch)
        out = model(batch["seqs"], logits=True)
    screen_only = torch.zeros(out.shape[1], dtype=torch.bool)
    screen_only[head] = True
    old_tracks = held.track_mask  # what the dataset was built for (the strands)
    assert torch.allclose(read, objectives.activity(out, screen_only, batch["lo"], batch["hi"]) / np.log(2))
    assert not torch.allclose(read, objectives.activity(out, old_tracks, batch["lo"], batch["hi"]) / np.log(2),
                              atol=1e-3)
    table = pd.read_csv(run / "effects_heldout.tsv", sep="\t")
    np.testing.assert_allclose(table["predicted_after"].to_numpy(), read.numpy(), atol=1e-4)
