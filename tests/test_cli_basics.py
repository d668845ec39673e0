"""The `genocl` front end: cheap --help, one-line errors with exit status 2, examples in help."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import genocl_plugin
from genocl_cli.main import main, user_errors
from genocl_plugin.errors import GenoclInputError, input_error

HEAVY = ("torch", "grelu", "pytorch_lightning", "lightning", "kipoi", "anndata",
         "enformer_pytorch", "bpnetlite", "pyfaidx")
RUN_GENOCL = "import sys; from genocl_cli.main import main; sys.argv[0] = 'genocl'; main()"


def genocl(*args, importtime: bool = False) -> subprocess.CompletedProcess:
    """Run `genocl ARGS` in a fresh interpreter (HOME is conftest's temporary one)."""
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-c", RUN_GENOCL, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level module names from `python -X importtime` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    return names


@pytest.mark.parametrize("args", [["--help"], ["screen", "--help"], ["update", "--help"]])
def test_help_does_not_import_heavy_packages(args):
    result = genocl(*args, importtime=True)
    assert result.returncode == 0, result.stderr
    assert "Usage: genocl" in result.stdout
    loaded = imported_modules(result.stderr)
    assert "click" in loaded  # the parser saw the import log
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and genocl_plugin.__version__ in result.output


def _leaf_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_help_shows_an_example():
    leaves = list(_leaf_commands(main))
    assert ("screen", "validate") in [path for path, _ in leaves]
    for path, _ in leaves:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output and "genocl " + " ".join(path) in result.output, path


def test_user_errors_turns_input_errors_into_exit_2():
    @click.command()
    @click.option("--kind")
    @user_errors
    def cmd(kind):
        if kind == "input":
            raise input_error("screen.h5ad", "obs['effect']", "3 NaN", "drop the rows")
        raise RuntimeError("a bug, not a user error")

    result = CliRunner().invoke(cmd, ["--kind", "input"])
    assert result.exit_code == 2
    assert result.stderr == "error: screen.h5ad: obs['effect']: 3 NaN; fix: drop the rows\n"
    assert result.stdout == ""
    bug = CliRunner().invoke(cmd, ["--kind", "bug"])
    assert bug.exit_code == 1 and isinstance(bug.exception, RuntimeError)  # not hidden
    assert issubclass(GenoclInputError, ValueError)


def test_real_process_errors_are_one_line(tmp_path):
    """In a real process (no pytest warning filters): one stderr line, status 2."""
    missing = genocl("screen", "validate", tmp_path / "absent.h5ad")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        f"error: {tmp_path / 'absent.h5ad'}: file: not found; "
        "fix: pass the path of an existing .h5ad screen"]
    out = tmp_path / "mine.h5ad"
    out.write_bytes(b"the user's own file")
    again = genocl("screen", "from-crispri", "--table", tmp_path / "t.tsv.gz", "--out", out)
    assert again.returncode == 2 and out.read_bytes() == b"the user's own file"
    assert again.stderr.splitlines() == [
        f"error: {out}: --out: already exists; fix: choose another path or pass --force"]


@pytest.mark.parametrize(("args", "needle"), [
    (["update", "--devices", "gpu"], "--devices: 'gpu' is an accelerator"),
    (["update", "--accelerator", "gpu"], "--accelerator: requested GPU is not available"),
    (["update", "--precision", "16-mixed"], "--precision: float16 mixed precision needs a GPU"),
    (["score-vcf", "--devices", "cuda"], "--devices: requested GPU is not available"),
    (["score-vcf", "--precision", "16-mixed"], "--precision: float16 needs a GPU"),
])
def test_hardware_refusals_come_before_torch_is_imported(args, needle, tmp_path, data_dir):
    """Issue 31: a GPU asked for on a machine without one is refused before torch / Lightning / gReLU load."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without a GPU")
    out = ["--out", tmp_path / "x"]
    if args[0] == "score-vcf":
        out = ["--model", "procapnet", "--vcf", data_dir / "gtex_eqtl_chr1_first1Mb.vcf",
               "--fasta", data_dir / "hg38_chr1_1-30000.fa", "--out", tmp_path / "s.tsv"]
    result = genocl(*args, *out, importtime=True)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr[-2000:]
    loaded = imported_modules(result.stderr)
    assert "click" in loaded and not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert list(tmp_path.iterdir()) == []


def test_real_process_conversion(data_dir, tmp_path):
    table = data_dir / "kircher2019_elements_subset.tsv.gz"
    fasta = data_dir / "kircher2019_elements_subset_GRCh38.fa"
    out = tmp_path / "mpra.h5ad"
    ok = genocl("screen", "from-satmut", "--table", table, "--fasta", fasta, "--elements", "HBB",
                "--out", out)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"wrote {out}: 105 variants over 1 elements"
    assert "Traceback" not in ok.stderr


def test_update_passes_max_eval_id_to_the_run(monkeypatch, tmp_path):
    """--max-eval-id reaches UpdateConfig; left out, it stays None (the check then uses --max-eval)."""
    import genocl_plugin.training.update as update_module

    seen = []

    class Stop(Exception):
        pass

    def fake_run_update(config, *args, **kwargs):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(update_module, "run_update", fake_run_update)
    runner = CliRunner()
    runner.invoke(main, ["update", "--out", str(tmp_path / "a"), "--max-eval", "48", "--max-eval-id", "300"])
    runner.invoke(main, ["update", "--out", str(tmp_path / "b"), "--max-eval", "48"])
    assert [(c.max_eval, c.max_eval_id) for c in seen] == [(48, 300), (48, None)]
