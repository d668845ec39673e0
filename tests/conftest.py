"""Shared fixtures. Tests never touch the user's HOME (kipoi writes ~/.kipoi on import)."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="genocl-test-home-")
os.environ["HOME"] = _HOME
os.environ["MPLCONFIGDIR"] = os.path.join(_HOME, ".mpl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)
DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def full_float32_precision_between_tests():
    """gReLU's LightningModel sets float32 matmul precision to "medium" for the whole process
    (genocl_plugin/workarounds.py); a test that trains through it must not change the numbers of
    the tests after it."""
    yield
    torch.set_float32_matmul_precision("highest")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: small real fixtures, each with its source named in tests/data/README.md."""
    return DATA


@pytest.fixture()
def tiny_enformer():
    """An untrained gReLU EnformerModel small enough for CPU tests (512-bp input, 32-bp bins)."""
    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    return build_model("enformer", seq_len=512, task_names=[f"t{i}" for i in range(74)])


@pytest.fixture()
def tiny_procapnet():
    """An untrained ProCapNet-layout BPNet (8 filters, 3 layers, 352 bp in -> 256 bp out)."""
    from genocl_plugin.models import build_model

    torch.manual_seed(0)
    return build_model("procapnet", seq_len=352, task_names=["plus", "minus"],
                       model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})


@pytest.fixture()
def tiny_procapnet_dir(tmp_path) -> Path:
    """A saved untrained ProCapNet-layout BPNet (8 filters, 3 layers, 800 bp in), strands plus/minus."""
    from genocl_plugin.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("procapnet", seq_len=800, task_names=["plus", "minus"],
                        model_params={"n_filters": 8, "n_layers": 3, "trimming": 48})
    return save_model(model, tmp_path / "base")


def _enformer_pytorch_dir(path: Path, **hparams) -> Path:
    """An enformer-pytorch directory (``save_pretrained`` layout) at Enformer's geometry: 196,608 bp
    in, 896 x 128-bp bins out, with the given reduced width."""
    from enformer_pytorch import Enformer

    torch.manual_seed(0)
    Enformer.from_hparams(depth=1, dim_divisible_by=16, target_length=896, attn_dim_key=8,
                          **hparams).save_pretrained(path, safe_serialization=False)
    return path


@pytest.fixture(scope="session")
def enformer_pytorch_dir(tmp_path_factory) -> Path:
    """The official layout (human 5,313 / mouse 1,643 heads) at dim 96; tests only read it."""
    return _enformer_pytorch_dir(tmp_path_factory.mktemp("ep") / "enformer", dim=96, heads=2)


@pytest.fixture(scope="session")
def enformer_geometry_dir(tmp_path_factory) -> Path:
    """A narrower enformer-pytorch at the same geometry with one 4-track human head; tests only read it."""
    return _enformer_pytorch_dir(tmp_path_factory.mktemp("ep4") / "enformer", dim=48, heads=1,
                                 output_heads={"human": 4})
