"""Kipoi model-zoo entries: publish, load through Kipoi, Kipoi's own checks, safety, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from genocl_cli.main import main
from genocl_plugin import zoo
from genocl_plugin.data.fileio import sha256sum
from genocl_plugin.errors import GenoclInputError
from genocl_plugin.evaluation import evaluate
from genocl_plugin.models import build_model, load_model, save_model

REPO_ZOO = Path(__file__).parents[1] / "model_zoo"
ENTRY = "enformer-mini/mpra_enhancers-v1"
REPORT = {
    "new_task": {"before": {"pearson": 0.11, "spearman": 0.09, "n": 48},
                 "after": {"pearson": 0.42, "spearman": 0.40, "n": 48}, "pearson_gain": 0.31},
    "retention": {"pearson_before": 0.61, "pearson_after": 0.58, "retention_ratio": 0.95,
                  "drift_pearson": 0.97, "drift_rel_l2": 0.1},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here: on 2 busy cores, 2 threads made each tiny forward ~9x slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory as `genocl update --out` writes it, around a tiny untrained Enformer."""
    torch.manual_seed(0)
    model = build_model("enformer", seq_len=512, task_names=[f"CAGE:t{i} [id{i}]" for i in range(74)])
    run = tmp_path_factory.mktemp("run") / "enhancers"
    lineage = [
        {"step": "pretrain", "data": "bundled basenji_tiny_hg38 (45 train / 10 valid windows)"},
        {"step": "update", "parent": "enformer", "screen": "/x/mpra_enhancers.h5ad", "screen_sha256": "ab" * 32,
         "strategy": "finetune", "time": "2025-01-01T00:00:00+00:00"},
    ]
    save_model(model, run / "model", extra={
        "name": "enformer-mini+mpra_enhancers", "lineage": lineage, "strategy": "finetune",
        "screens_seen": [{"path": "/x/mpra_enhancers.h5ad", "sha256": "ab" * 32, "assay": "MPRA"}],
        "metrics": REPORT, "test_metrics": {"pearson_mean": 0.3},
    })
    (run / "metrics.json").write_text(json.dumps(REPORT))
    return run


@pytest.fixture(scope="module")
def zoo_dir(run_dir, tmp_path_factory) -> Path:
    """A zoo with the run published (Kipoi's own test runs inside publish)."""
    root = tmp_path_factory.mktemp("zoo") / "model_zoo"
    zoo.publish(run_dir, root, ENTRY, authors=["Test Author"])
    return root


def copy_entry(zoo_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "zoo" / ENTRY
    shutil.copytree(zoo_dir / ENTRY, target)
    return target


def test_publish_writes_a_kipoi_entry(zoo_dir, run_dir):
    entry = zoo_dir / ENTRY
    names = {p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()}
    assert {"model.yaml", "dataloader.yaml", "model.safetensors", "config.json", "README.md",
            "genocl_kipoi.py", "example_files/intervals.bed", "example_files/sequence.fa",
            "example_files/sequence.fa.fai", "example_files/expected.h5"} <= names
    descr = yaml.safe_load((entry / "model.yaml").read_text())
    weights = entry / "model.safetensors"
    assert weights.read_bytes() == (run_dir / "model" / "model.safetensors").read_bytes()
    assert descr["args"]["sha256"] == sha256sum(weights)
    assert descr["args"]["md5"] == hashlib.md5(weights.read_bytes()).hexdigest()
    assert descr["info"]["authors"] == [{"name": "Test Author"}]
    assert "Avsec" in descr["info"]["cite_as"] and descr["info"]["doc"]
    assert descr["schema"]["targets"]["column_labels"] == [f"CAGE:t{i} [id{i}]" for i in range(74)]
    assert descr["schema"]["inputs"]["shape"] == "(4, 512)"
    assert descr["schema"]["targets"]["shape"] == "(74, 16)"
    assert any(dep.startswith("genocl") for dep in descr["dependencies"]["pip"])
    assert descr["test"]["expect"] == "example_files/expected.h5"
    card = (entry / "README.md").read_text()
    for text in ("mpra_enhancers.h5ad", "finetune", "pretrain", "0.4200", "0.9500", "## Limits"):
        assert text in card
    # nothing half-written or temporary is left beside the entry
    assert [p.name for p in entry.parent.iterdir()] == ["mpra_enhancers-v1"]


def test_kipoi_get_model_predicts_like_genocl(zoo_dir, run_dir):
    import h5py
    import kipoi

    kmodel = kipoi.get_model(str(zoo_dir / ENTRY), source="dir")
    ours = load_model(run_dir)
    with h5py.File(zoo_dir / ENTRY / "example_files" / "expected.h5") as handle:
        example = handle["inputs"][:]
    rng = np.random.default_rng(1)
    random = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (2, 512))].transpose(0, 2, 1)
    for batch in (example, random):
        np.testing.assert_array_equal(kmodel.predict_on_batch(batch), evaluate.predict(ours, batch))
    # kipoiseq's (batch, length, 4) layout is accepted too
    np.testing.assert_array_equal(kmodel.predict_on_batch(random.transpose(0, 2, 1)),
                                  evaluate.predict(ours, random))
    # the dataloader turns the example BED + FASTA into exactly the expected inputs
    loader = kmodel.default_dataloader.init_example()
    batch = next(loader.batch_iter(batch_size=8))
    np.testing.assert_array_equal(batch["inputs"], example)
    assert list(batch["metadata"]["ranges"]["id"])[0].startswith("chr")


def test_dataloader_examples_resolve_from_any_directory(zoo_dir, tmp_path, monkeypatch):
    """dataloader.yaml writes the example files relative to the entry and Kipoi returns them as
    written, so `Dl(**Dl.example_kwargs)` failed outside the entry ("FASTA not found")."""
    import h5py
    import kipoi

    entry = zoo_dir / ENTRY
    with h5py.File(entry / "example_files" / "expected.h5") as handle:
        expected = handle["inputs"][:]
    monkeypatch.chdir(zoo_dir)  # an entry path relative to the working directory
    factories = [kipoi.get_dataloader_factory(ENTRY, source="dir")]
    monkeypatch.chdir(tmp_path)
    factories += [kipoi.get_dataloader_factory(str(entry), source="dir"),
                  kipoi.get_model(str(entry), source="dir").default_dataloader]
    for factory in factories:
        kwargs = factory.example_kwargs
        for key in ("intervals_file", "fasta_file"):
            assert Path(kwargs[key]).is_absolute() and Path(kwargs[key]).is_file(), kwargs
        for loader in (factory(**kwargs), factory.init_example()):
            np.testing.assert_array_equal(next(loader.batch_iter(batch_size=8))["inputs"], expected)
    assert list(tmp_path.iterdir()) == []


def test_kipoi_test_passes_and_catches_wrong_expectations(zoo_dir, tmp_path):
    import h5py

    zoo.kipoi_test(zoo_dir / ENTRY)
    entry = copy_entry(zoo_dir, tmp_path)
    with h5py.File(entry / "example_files" / "expected.h5", "r+") as handle:
        handle["preds"][...] = handle["preds"][...] * 2 + 1
    with pytest.raises(GenoclInputError, match="test.expect"):
        zoo.kipoi_test(entry)


def test_kipoi_source_named_genocl(zoo_dir, tmp_path):
    """`genocl zoo register` points Kipoi's config (in a temporary HOME) at the zoo."""
    home = tmp_path / "home"
    config = home / ".kipoi" / "config.yaml"
    result = CliRunner().invoke(main, ["zoo", "register", "--zoo", str(zoo_dir), "--kipoi-config", str(config)])
    assert result.exit_code == 0, result.output
    sources = yaml.safe_load(config.read_text())["model_sources"]
    assert sources["genocl"] == {"type": "local", "local_path": str(zoo_dir.resolve())}
    assert "kipoi" in sources  # Kipoi's default source is kept
    script = textwrap.dedent(f"""
        import h5py, kipoi, numpy as np
        model = kipoi.get_model("{ENTRY}", source="genocl")
        with h5py.File(model.source_dir + "/example_files/expected.h5") as f:
            np.testing.assert_allclose(model.predict_on_batch(f["inputs"][:]), f["preds"][:], rtol=1e-5)
        print("OK", type(model).__name__)
    """)
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK GenoclKipoiModel" in proc.stdout


def test_tampered_weights_are_rejected(zoo_dir, tmp_path):
    import kipoi

    entry = copy_entry(zoo_dir, tmp_path)
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # flip one byte inside a tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(GenoclInputError, match=r"model\.safetensors: args\.sha256: sha256 mismatch"):
        kipoi.get_model(str(entry), source="dir", with_dataloader=False)
    result = CliRunner().invoke(main, ["zoo", "test", ENTRY, "--zoo", str(tmp_path / "zoo")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "sha256 mismatch" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    shown = CliRunner().invoke(main, ["zoo", "show", ENTRY, "--zoo", str(tmp_path / "zoo")])
    assert "model.safetensors sha256: MISMATCH" in shown.output


def test_tampered_config_is_rejected(zoo_dir, tmp_path):
    import kipoi

    entry = copy_entry(zoo_dir, tmp_path)
    config = json.loads((entry / "config.json").read_text())
    config["data_params"]["train"]["seq_len"] = 1024
    (entry / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenoclInputError, match=r"config\.json: args\.config_sha256"):
        kipoi.get_model(str(entry), source="dir", with_dataloader=False)


def test_versions_are_never_overwritten(zoo_dir, run_dir):
    with pytest.raises(GenoclInputError, match="already published.*enformer-mini/mpra_enhancers-v2"):
        zoo.publish(run_dir, zoo_dir, ENTRY, check=False)
    assert zoo.resolve_name(zoo_dir, "enformer-mini/mpra_enhancers") == "enformer-mini/mpra_enhancers-v2"
    assert zoo.resolve_name(zoo_dir, "other/new") == "other/new-v1"
    before = (zoo_dir / ENTRY / "model.yaml").stat().st_mtime_ns
    assert zoo.resolve_name(zoo_dir, ENTRY, force=True) == ENTRY
    assert (zoo_dir / ENTRY / "model.yaml").stat().st_mtime_ns == before


def test_force_replaces_and_next_version_is_free(run_dir, tmp_path):
    root = tmp_path / "zoo"
    first = zoo.publish(run_dir, root, "g/m", check=False)
    second = zoo.publish(run_dir, root, "g/m", check=False)
    assert (first.name, second.name) == ("m-v1", "m-v2")
    (first / "marker").write_text("old")
    again = zoo.publish(run_dir, root, "g/m-v1", force=True, check=False)
    assert again == first and not (first / "marker").exists()
    assert sorted(p.name for p in (root / "g").iterdir()) == ["m-v1", "m-v2"]


def test_failed_publish_leaves_no_entry(run_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(zoo.publishing, "write_examples", broken)
    with pytest.raises(RuntimeError):
        zoo.publish(run_dir, tmp_path / "zoo", "g/m-v1", check=False)
    assert list((tmp_path / "zoo" / "g").iterdir()) == []


def test_failed_kipoi_check_leaves_no_entry(run_dir, tmp_path, monkeypatch):
    real = zoo.write_examples

    def wrong_expectations(out, model, *args, **kwargs):
        import h5py

        inputs, preds = real(out, model, *args, **kwargs)
        with h5py.File(out / "expected.h5", "r+") as handle:
            handle["preds"][...] = handle["preds"][...] + 1
        return inputs, preds

    monkeypatch.setattr(zoo.publishing, "write_examples", wrong_expectations)
    with pytest.raises(GenoclInputError, match="kipoi test"):
        zoo.publish(run_dir, tmp_path / "zoo", "g/m-v1")
    assert list((tmp_path / "zoo" / "g").iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "a//b", "a/b c", "/", "g/.hidden", "", " "])
def test_invalid_names(name, tmp_path):
    with pytest.raises(GenoclInputError, match="--name: invalid entry name"):
        zoo.resolve_name(tmp_path, name)


def test_default_names():
    assert zoo.default_name({"name": "enformer-mini"}) == "enformer-mini/base"
    config = {"name": "enformer-mini+a+b", "screens_seen": [{"path": "/d/a.h5ad"}, {"path": "b.h5ad"}]}
    assert zoo.default_name(config) == "enformer-mini/a+b"


def test_procapnet_entry_and_cli(tiny_procapnet, tmp_path):
    model_dir = save_model(tiny_procapnet, tmp_path / "pcn", extra={
        "name": "procapnet-mini", "screens_seen": [],
        "lineage": [{"step": "pretrain", "data": "bundled windows"}]})
    root = tmp_path / "model_zoo"
    runner = CliRunner()
    result = runner.invoke(main, ["publish", str(model_dir), "--zoo", str(root)])
    assert result.exit_code == 0, result.output + str(result.exception)
    assert "procapnet-mini/base-v1" in result.output and "kipoi test: passed" in result.output
    import kipoi

    kmodel = kipoi.get_model(str(root / "procapnet-mini" / "base-v1"), source="dir")
    x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (2, 352))].transpose(0, 2, 1)
    np.testing.assert_array_equal(kmodel.predict_on_batch(x), evaluate.predict(tiny_procapnet, x))
    assert kmodel.schema.targets.column_labels == ["plus", "minus"]

    listed = runner.invoke(main, ["zoo", "list", "--zoo", str(root)])
    assert listed.exit_code == 0
    assert "procapnet-mini/base-v1" in listed.output and "pretrain (bundled windows)" in listed.output
    shown = runner.invoke(main, ["zoo", "show", "procapnet-mini/base-v1", "--zoo", str(root)])
    assert shown.exit_code == 0 and "model.safetensors sha256: ok" in shown.output
    again = runner.invoke(main, ["publish", str(model_dir), "--zoo", str(root), "--name",
                                 "procapnet-mini/base-v1"])
    assert again.exit_code == 2 and "already published" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("args", [
    ["publish", "no/such/run", "--zoo", "Z"],
    ["zoo", "show", "x/y-v1", "--zoo", "."],
    ["zoo", "list", "--zoo", "no/such/zoo"],
    ["zoo", "register", "--zoo", "no/such/zoo"],
])
def test_cli_bad_input_is_one_line(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_dataloader_bad_bed_is_one_clear_error(tmp_path):
    bed = tmp_path / "x.bed"
    bed.write_text("chr1\tten\t20\n")
    with pytest.raises(GenoclInputError, match=r"x\.bed: line 1: .*fix: write a tab-separated BED"):
        zoo.read_bed(bed)


def test_kipoi_hdf5_writer_works_on_numpy2(tmp_path):
    """Regression test for the one Kipoi workaround in genocl_plugin/zoo/kipoi_compat.py (np.string_)."""
    from kipoi.readers import HDF5Reader
    from kipoi.writers import HDF5BatchWriter

    assert np.string_ is np.bytes_ and np.unicode_ is np.str_
    assert zoo.restore_numpy_aliases_for_kipoi() == []  # idempotent
    batch = {"inputs": np.ones((2, 4, 8), np.float32), "preds": np.arange(6, dtype=np.float32).reshape(2, 3)}
    HDF5BatchWriter.dump(str(tmp_path / "out.h5"), batch)
    with HDF5Reader(str(tmp_path / "out.h5")) as reader:
        loaded = reader.load_all()
    np.testing.assert_array_equal(loaded["preds"], batch["preds"])


@pytest.mark.skipif(not any(REPO_ZOO.rglob("model.yaml")), reason="model_zoo/ has no entries yet")
def test_repository_zoo_entries_pass_kipoi_checks():
    """The committed entries pass Kipoi's test; the newest base entry holds the bundled weights."""
    from genocl_plugin.models import BUNDLED_MODELS

    entries = {e["name"]: e for e in zoo.list_entries(REPO_ZOO)}
    for name, entry in entries.items():
        assert all(zoo.verify_entry(entry["path"]).values()), name
        zoo.kipoi_test(entry["path"])
    for arch, bundled in BUNDLED_MODELS.items():
        if not (bundled / "model.safetensors").exists():
            continue
        bases = [n for n in entries if n.startswith(f"{arch}-mini/base-v")]
        assert bases, f"publish the bundled {arch}: genocl publish {arch} --name {arch}-mini/base"
        newest = max(bases, key=lambda n: int(n.rsplit("-v", 1)[1]))
        assert sha256sum(entries[newest]["path"] / "model.safetensors") == sha256sum(
            bundled / "model.safetensors"), f"bundled {arch} changed: publish it as a new version"


def test_publish_an_imported_bpnet_checkpoint(tiny_procapnet, tmp_path):
    """A non-genocl checkpoint (a bpnet-lite state dict) is re-saved as safetensors."""
    path = tmp_path / "fold0.torch"
    torch.save(tiny_procapnet.model.bpnet.state_dict(), path)
    entry = zoo.publish(path, tmp_path / "zoo", None)
    assert entry == tmp_path / "zoo" / "fold0" / "base-v1"
    config = json.loads((entry / "config.json").read_text())
    assert config["lineage"] == [{"step": "import", "source": str(path), "sha256": sha256sum(path)}]
    import kipoi

    kmodel = kipoi.get_model(str(entry), source="dir", with_dataloader=False)
    x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (2, 1096))].transpose(0, 2, 1)
    np.testing.assert_array_equal(kmodel.predict_on_batch(x), evaluate.predict(load_model(path), x))
