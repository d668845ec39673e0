"""Crash safety: a run, entry or output killed half-way never loses what the user had (issue 14).

Real processes are killed with ``os._exit(137)`` (what SIGKILL leaves behind: no ``finally``,
no cleanup) at named points, through the test-only hook ``GENOCL_TEST_KILL_AT`` of
:func:`genocl_plugin.data.fileio.crash_point`. ``GENOCL_NO_RENAME_EXCHANGE=1`` forces the fallback
that replaces a directory in two renames, so the crash between them is tested too.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genocl_plugin.data import fileio, reference
from genocl_plugin.errors import GenoclInputError

PROMOTERS = reference.BUNDLED / "mpra_promoters.h5ad"
FASTA = Path(__file__).parent / "data" / "hg38_chr1_1-30000.fa"


def genocl(*args, kill_at: str | None = None, no_exchange: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(fileio.KILL_ENV, None)
    env.pop("GENOCL_NO_RENAME_EXCHANGE", None)
    if kill_at:
        env[fileio.KILL_ENV] = kill_at
    if no_exchange:
        env["GENOCL_NO_RENAME_EXCHANGE"] = "1"
    return subprocess.run([sys.executable, "-m", "genocl_cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from genocl_plugin.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=800, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    return save_model(model, tmp_path_factory.mktemp("crash") / "base")


# --------------------------------------------------------------------------- replacement itself
def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "out"
    old.mkdir()
    (old / "a.txt").write_text("old content")
    new = tmp_path / ".out.abcdefgh.tmp"
    new.mkdir()
    (new / "a.txt").write_text("new content")
    (new / "b.txt").write_text("only in new")
    return old, new


def test_replace_swaps_directories_in_one_step(tmp_path):
    old, new = _dirs(tmp_path)
    fileio.replace(new, old)
    assert tree(old) == {"a.txt": b"new content", "b.txt": b"only in new"}
    assert leftovers(tmp_path) == []


def test_exchange_is_atomic_swap(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("A")
    (b / "x").write_text("B")
    if not fileio.exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here; the fallback is tested below")
    assert (a / "x").read_text() == "B" and (b / "x").read_text() == "A"


class Killed(BaseException):
    """Stands for the process dying at a crash point (no cleanup of the replacement runs)."""


def test_simulated_crash_between_the_two_renames(tmp_path, monkeypatch):
    old, new = _dirs(tmp_path)
    monkeypatch.setenv("GENOCL_NO_RENAME_EXCHANGE", "1")

    def die(name):
        if name == "replace:between":
            raise Killed

    monkeypatch.setattr(fileio, "crash_point", die)
    with pytest.raises(Killed):
        fileio.replace(new, old)
    assert not old.exists() and (tmp_path / ".out.old").is_dir()  # the crash window
    # any reader restores the previous content at its path
    assert fileio.recover_replaced(old) == old
    assert tree(old) == {"a.txt": b"old content"}
    assert not (tmp_path / ".out.old").exists()


def test_readers_recover_a_model_dir_left_as_old(tiny_model, tmp_path):
    from genocl_plugin import models

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    (run / "metrics.json").write_text(json.dumps({"config": {"model": "procapnet"}}))
    before = tree(run)
    os.replace(run, tmp_path / ".run.old")  # what a crash between the renames leaves
    assert models.resolve_model_dir(run) == run / "model"
    assert tree(run) == before
    models.load_model(run)


def test_recovery_waits_for_a_live_writer(tmp_path):
    old, _ = _dirs(tmp_path)
    os.replace(old, tmp_path / ".out.old")
    lock = fileio.lock_path(old)
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        fileio.recover_replaced(old)
        assert not old.exists()  # the writer is still between its renames: left alone
    finally:
        holder.kill()
        holder.wait()
    fileio.recover_replaced(old)
    assert tree(old) == {"a.txt": b"old content"}


def test_next_run_cleans_what_a_killed_run_left(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep").write_text("old")
    (tmp_path / ".run.k1ll3d00.tmp").mkdir()
    (tmp_path / ".run.k1ll3d00.tmp" / "half").write_text("half-written")
    (tmp_path / ".run.old").mkdir()
    (tmp_path / ".run.x.tmp").mkdir()  # not a genocl temporary name: not touched
    (tmp_path / ".other.abcdefgh.tmp").mkdir()  # another output's: not touched
    with fileio.atomic_dir(out, force=True) as tmp:
        (tmp / "keep").write_text("new")
    assert tree(out) == {"keep": b"new"}
    assert leftovers(tmp_path) == [".other.abcdefgh.tmp", ".run.x.tmp"]


def test_stale_teacher_caches_are_removed(tmp_path):
    from genocl_plugin.data.reference import clean_stale_teacher_caches

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"genocl-teacher-{dead}-abc"
    live = tmp_path / f"genocl-teacher-{os.getpid()}-abc"
    other = tmp_path / "genocl-teacher-legacy"
    for path in (stale, live, other):
        path.mkdir()
    assert clean_stale_teacher_caches(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_sealed_json_round_trips_and_catches_edits(tmp_path):
    data = fileio.seal({"b": (1, 2), "a": {10: "x", 9: "y"}, "f": 0.1})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data, indent=2))
    read = fileio.read_json_object(path)
    fileio.check_seal(read, path)
    read["f"] = 0.2
    with pytest.raises(GenoclInputError, match="config_sha256"):
        fileio.check_seal(read, path)


# --------------------------------------------------------------------------- claims
def test_a_second_writer_fails_at_once(tiny_model, tmp_path):
    out = tmp_path / "run"
    with fileio.claim(out):
        proc = genocl("update", "--model", tiny_model, "--data", PROMOTERS, "--strategy", "finetune",
                      "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {out}: --out: another genocl process is writing it now; "
        "fix: wait for that process to finish, or choose another output"]
    assert not out.exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- killed processes
# Each kill is a real process (about 10-20 s of imports each on a busy 2-core machine), so the
# points are chosen to cover each window once; the run after a kill is made in-process.
UPDATE = ["--data", PROMOTERS, "--strategy", "finetune", "--max-train", "32", "--max-eval", "16",
          "--retention-crops", "8", "--force"]


def cli(*args):
    from click.testing import CliRunner

    from genocl_cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_update_killed_between_the_renames_keeps_the_previous_run(tiny_model, tmp_path):
    from genocl_plugin import models

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    (run / "metrics.json").write_text(json.dumps({"config": {"model": str(tiny_model)}}))
    before = tree(run)
    killed = genocl("update", "--model", tiny_model, *UPDATE, "--out", run, kill_at="replace:between",
                    no_exchange=True)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert not run.exists() and (tmp_path / ".run.old").is_dir()  # killed inside the window
    # the previous run is complete and readable at its path (a reader restores .run.old)
    assert models.load_model(run) is not None
    assert tree(run) == before
    # the next run of the same output cleans up what the killed one left and completes
    assert [p for p in leftovers(tmp_path) if p.endswith(".tmp")]
    again = cli("update", "--model", tiny_model, *UPDATE, "--out", run)
    assert again.exit_code == 0, again.output[-2000:]
    assert (run / "report.png").exists() and leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def published(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    from genocl_plugin.zoo import publish

    zoo = tmp_path_factory.mktemp("zoo") / "model_zoo"
    entry = publish(tiny_model, zoo, "tiny/base-v1", check=False)
    return zoo, entry


@pytest.mark.parametrize("point, no_exchange, holds", [
    ("atomic_dir:base-v1", True, "old"),  # new entry complete in its temporary dir, not yet moved
    ("replace:exchanged", False, "new"),  # swapped in; the old copy not yet deleted
])
def test_publish_killed_leaves_a_complete_entry(published, tiny_model, tmp_path, point, no_exchange, holds):
    from genocl_plugin.zoo import entry_summary, find_entry, verify_entry

    zoo_src, _ = published
    zoo = tmp_path / "model_zoo"
    shutil.copytree(zoo_src, zoo)
    entry = zoo / "tiny" / "base-v1"
    before = tree(entry)
    killed = genocl("publish", tiny_model, "--zoo", zoo, "--name", "tiny/base-v1", "--force", "--no-check",
                    kill_at=point, no_exchange=no_exchange)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert find_entry(zoo, "tiny/base-v1") == entry and entry_summary(entry, "tiny/base-v1")
    assert all(verify_entry(entry).values())
    assert (tree(entry) == before) == (holds == "old")
    assert leftovers(zoo / "tiny")  # the killed run's temporary directory
    again = cli("publish", tiny_model, "--zoo", zoo, "--name", "tiny/base-v1", "--force", "--no-check")
    assert again.exit_code == 0, again.output[-2000:]
    assert leftovers(zoo / "tiny") == []


def _vcf(path: Path) -> Path:
    seq = "".join(line.strip() for line in FASTA.read_text().splitlines()[1:])
    rows = []
    for pos in range(20001, 20401, 40):
        ref = seq[pos - 1]
        alt = "A" if ref != "A" else "G"
        rows.append(f"chr1\t{pos}\tv{pos}\t{ref}\t{alt}\t.\t.\t.")
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=30000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(header + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("point", ["score-vcf:index-removed", "score-vcf:data-replaced"])
def test_score_vcf_killed_never_pairs_data_with_a_stale_index(tiny_model, tmp_path, point):
    import pysam

    fasta = tmp_path / "g.fa"
    shutil.copyfile(FASTA, fasta)
    vcf = _vcf(tmp_path / "v.vcf")
    out = tmp_path / "scores.vcf.gz"
    index = Path(f"{out}.tbi")
    args = ["score-vcf", "--model", tiny_model, "--vcf", vcf, "--fasta", fasta, "--out", out]
    first = cli(*args, "--name", "first")
    assert first.exit_code == 0, first.output[-2000:]
    old_data, old_index = out.read_bytes(), index.read_bytes()
    assert len(list(pysam.TabixFile(str(out)).fetch("chr1"))) == 10
    killed = genocl(*args, "--name", "second", "--force", kill_at=point)
    assert killed.returncode == 137, killed.stderr[-2000:]
    data = gzip.decompress(out.read_bytes())
    assert data.endswith(b"\n") and data.count(b"\nchr1\t") == 10  # complete, whichever it is
    if point == "score-vcf:index-removed":  # before the data moved: the old data, its index gone
        assert out.read_bytes() == old_data and not index.exists()
    else:  # the new data is in place, its index not yet: no index rather than the old one
        assert b"second" in data and b"first" not in data and not index.exists()
    assert old_index
    again = cli(*args, "--name", "third", "--force")
    assert again.exit_code == 0, again.output[-2000:]
    assert b"third" in gzip.decompress(out.read_bytes()) and index.exists()
    assert len(list(pysam.TabixFile(str(out)).fetch("chr1"))) == 10
    assert [p for p in leftovers(tmp_path) if not p.startswith(".g.fa")] == []


def test_publish_sigkilled_while_writing_keeps_the_entry(published, tiny_model, tmp_path):
    """A real SIGKILL (no hook): killed as soon as the new entry's temporary directory appears."""
    import signal
    import time

    zoo_src, _ = published
    zoo = tmp_path / "model_zoo"
    shutil.copytree(zoo_src, zoo)
    entry = zoo / "tiny" / "base-v1"
    before = tree(entry)
    proc = subprocess.Popen([sys.executable, "-m", "genocl_cli", "publish", str(tiny_model), "--zoo", str(zoo),
                             "--name", "tiny/base-v1", "--force", "--no-check"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not any(p.name.endswith(".tmp") for p in (zoo / "tiny").iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "publish ended before it was killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert tree(entry) == before
    again = cli("publish", tiny_model, "--zoo", zoo, "--name", "tiny/base-v1", "--force", "--no-check")
    assert again.exit_code == 0, again.output[-2000:]
    assert leftovers(zoo / "tiny") == []
