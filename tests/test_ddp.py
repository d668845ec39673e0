"""A 2-process DDP update on CPU (gloo): identical weights on both ranks, sharded data and replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch

WORKER = textwrap.dedent('''
    import json, sys
    import pytorch_lightning as pl
    import torch
    torch.set_num_threads(1)
    from genocl_plugin import objectives
    from genocl_plugin.data import reference
    from genocl_plugin.models import build_model
    from genocl_plugin.strategies.replay import ReplayCallback
    from genocl_plugin.training.update import UpdateConfig, prepare_screen, train_on_screen

    out = sys.argv[1]
    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=800, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    init = {k: v.clone() for k, v in model.model.state_dict().items()}
    config = UpdateConfig(data=str(reference.BUNDLED / "mpra_promoters.h5ad"), max_train=32, max_eval=16,
                          batch_size=8, lr=1e-2, epochs=1)
    _, train, _ = prepare_screen(config, model)
    dataset = objectives.screen_dataset(train, model)
    replay = ReplayCallback(ratio=0.5, budget_mb=0.5)

    class Record(pl.Callback):
        def on_fit_end(self, trainer, pl_module):
            rank = trainer.global_rank
            torch.save({"init": init, "final": pl_module.model.state_dict()}, f"{out}/weights_{rank}.pt")
            sampler = trainer.train_dataloader.sampler
            record = {"world": trainer.world_size, "sampler": type(sampler).__name__,
                      "indices": [int(i) for i in sampler], "n_screen": len(dataset),
                      "replay_shard": [int(i) for i in replay.shard], "replay_buffer": len(replay.codes)}
            with open(f"{out}/rank_{rank}.json", "w") as fh:
                json.dump(record, fh)

    train_on_screen(model, dataset, config, [replay, Record()],
                    {"accelerator": "cpu", "devices": 2, "strategy": "ddp"})
    open(f"{out}/rank0_done", "w").write("ok")  # ranks > 0 end inside train_on_screen
''')


def test_ddp_two_processes_identical_weights_and_sharding(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, check=True, timeout=120,
                   cwd=tmp_path, capture_output=True)
    assert (tmp_path / "rank0_done").exists()
    w0, w1 = torch.load(tmp_path / "weights_0.pt"), torch.load(tmp_path / "weights_1.pt")
    for key, value in w0["final"].items():
        assert torch.equal(value, w1["final"][key]), key  # ranks end with the same weights
    assert any(not torch.equal(v, w0["init"][k]) for k, v in w0["final"].items())  # and they trained
    r0, r1 = (json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["sampler"] == "DistributedSampler"
    # the screen is sharded: each rank sees half, together all of it
    assert not set(r0["indices"]) & set(r1["indices"])
    assert set(r0["indices"]) | set(r1["indices"]) == set(range(r0["n_screen"]))
    # so is the replay buffer: disjoint shards covering it, not one copy per rank
    assert not set(r0["replay_shard"]) & set(r1["replay_shard"])
    assert set(r0["replay_shard"]) | set(r1["replay_shard"]) == set(range(r0["replay_buffer"]))
