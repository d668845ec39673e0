"""benchmarks/fullsize.py: one configuration in-process, and the table it prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("fullsize_benchmark",
                                              Path(__file__).parents[1] / "benchmarks" / "fullsize.py")
fullsize = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(fullsize)


def test_single_step_of_full_width_procapnet_reports_its_time_and_memory():
    result = fullsize.child("procapnet", "fp32", "genocl", steps=0)
    assert result["measured_steps"] == 0 and result["step_s"] == result["first_step_s"] > 0
    assert 6.0 < result["params_m"] < 7.0 and result["seq_len"] == 2114  # 512 filters, 8 layers
    assert result["peak_rss_gb"] > 0.1


def test_table_shows_ratios_and_out_of_memory_runs():
    results = [
        {"arch": "enformer", "setting": "fp32", "runner": "grelu", "step_s": 100.0, "peak_rss_gb": 19.0},
        {"arch": "enformer", "setting": "fp32", "runner": "genocl", "error": "killed by signal 9"},
        {"arch": "borzoi", "setting": "checkpointing", "runner": "grelu", "step_s": 400.0, "peak_rss_gb": 8.0},
        {"arch": "borzoi", "setting": "checkpointing", "runner": "genocl", "step_s": 600.0, "peak_rss_gb": 12.0},
    ]
    rows = fullsize.table(results).splitlines()
    assert len(rows) == 4  # header, rule, one row per (arch, setting) measured
    enformer = next(r for r in rows if r.startswith("| enformer | fp32"))
    assert "error: killed by signal 9" in enformer and "| 100.00 |" in enformer and "| - |" in enformer
    borzoi = next(r for r in rows if r.startswith("| borzoi | checkpointing"))
    assert "| 1.50 |" in borzoi  # both ratios: 600 / 400 s and 12 / 8 GB
    assert borzoi.count("1.50") == 2
