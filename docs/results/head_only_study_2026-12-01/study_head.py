"""Scenario (a) of the study with a fourth strategy, head-only updates (--strategy freeze --freeze trunk),
written to a scratch results folder (so the shipped report and auto's pick are untouched)."""
import importlib
import sys

sys.path.insert(0, "benchmarks")  # run from the repository root
fg = importlib.import_module("forgetting")

fg.SINGLE["head"] = "freeze"
fg.SETTINGS["full"]["only"] = ["finetune", "replay", "l2sp", "head"]
fg.SETTINGS["full"]["chain"] = None
_params_for = fg.params_for
fg.params_for = lambda spec, chosen: {"freeze": "trunk"} if spec == "freeze" else _params_for(spec, chosen)
sys.argv = ["benchmarks/forgetting.py", "--threads", "2", "--workdir", "/tmp/genocl_head_study",
            "--results", "/tmp/genocl_head_results"]
fg.main()
