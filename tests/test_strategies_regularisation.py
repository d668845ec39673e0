"""The regularisation strategies' math (EWC, SI, MAS, L2-SP) on hand-computable cases, and the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genocl_plugin.errors import GenoclInputError
from genocl_plugin.strategies import resolve_strategies
from genocl_plugin.strategies.base import normalized
from genocl_plugin.strategies.ewc import EWCCallback, diagonal_fisher
from genocl_plugin.strategies.l2sp import L2SPCallback
from genocl_plugin.strategies.mas import mas_importance
from genocl_plugin.strategies.si import SICallback


class Linear(nn.Module):
    """``pl_module`` stand-in: ``model`` holds the weights, output = w . x, MSE loss."""

    device = torch.device("cpu")

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.model = nn.Linear(len(w), 1, bias=False)
        with torch.no_grad():
            self.model.weight.copy_(torch.tensor([w]))
        self.loss = nn.MSELoss()

    def forward(self, x: torch.Tensor, logits: bool = True) -> torch.Tensor:
        return self.model(x)


def test_ewc_penalty_is_half_lambda_fisher_weighted_squared_distance():
    module = Linear([1.0, 2.0])
    cb = EWCCallback(lambda_=3.0)
    cb.anchor = {"weight": torch.tensor([[0.0, 1.0]])}
    cb.importance = {"weight": torch.tensor([[2.0, 5.0]])}
    # 3/2 * (2 * 1**2 + 5 * 1**2) = 10.5
    assert cb.loss_term(module, None).item() == pytest.approx(10.5)


def test_fisher_is_mean_of_squared_gradients():
    module = Linear([1.0, -1.0])
    xs = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]])]
    ys = [torch.tensor([[0.0]]), torch.tensor([[1.0]])]
    fisher = diagonal_fisher(module, list(zip(xs, ys, strict=True)))
    # loss (w.x - y)^2 -> grad 2 (w.x - y) x: sample 1 r=-1 -> (-2, -4); sample 2 r=2 -> (12, 0)
    expected = torch.tensor([[(4 + 144) / 2, (16 + 0) / 2]])
    torch.testing.assert_close(fisher["weight"], expected)


def test_mas_importance_is_mean_abs_grad_of_squared_output_norm():
    module = Linear([1.0, -1.0])
    xs = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]])]
    omega = mas_importance(module, xs)
    # ||w.x||^2 -> grad 2 (w.x) x: (-2, -4) and (18, 0)
    torch.testing.assert_close(omega["weight"], torch.tensor([[(2 + 18) / 2, (4 + 0) / 2]]))


def test_si_accumulates_path_integral_on_one_parameter_quadratic():
    module = Linear([0.0])
    module.loss = None
    cb = SICallback(c=1.0, xi=0.1, base_steps=0)
    opt = torch.optim.SGD(module.model.parameters(), lr=0.1)
    cb.on_train_start(None, module)
    for _ in range(3):
        opt.zero_grad()
        theta = module.model.weight[0, 0]
        (0.5 * (theta - 2.0) ** 2).backward()  # L = (theta - 2)^2 / 2, gradient theta - 2
        cb.on_before_optimizer_step(None, module, opt)
        opt.step()
        cb.on_train_batch_end(None, module, None, None, 0)
    # theta: 0 -> 0.2 -> 0.38 -> 0.542; omega = lr * sum g^2 = 0.1 * (4 + 3.24 + 2.6244)
    omega = 0.1 * (4 + 3.24 + 2.6244)
    assert cb.omega["weight"].item() == pytest.approx(omega, rel=1e-5)
    cb.on_train_end(None, module)
    assert cb.total["weight"].item() == pytest.approx(omega / (0.542**2 + 0.1), rel=1e-5)
    assert set(cb.state_dict_for_run()) == {"importance.weight"}


def test_l2sp_penalty_is_half_alpha_squared_distance_to_start():
    module = Linear([1.0, 2.0])
    cb = L2SPCallback(alpha=0.5)
    cb.on_fit_start(None, module)
    assert cb.loss_term(module, None).item() == 0.0
    with torch.no_grad():
        module.model.weight += torch.tensor([[1.0, -2.0]])
    assert cb.loss_term(module, None).item() == pytest.approx(0.25 * 5.0)
    # a carried-over anchor (the original base) wins over the parent's weights
    cb2 = L2SPCallback(alpha=2.0)
    cb2.load_state_from_run({"anchor.weight": torch.tensor([[1.0, 2.0]])})
    cb2.on_fit_start(None, module)
    assert cb2.loss_term(module, None).item() == pytest.approx(5.0)


def test_normalized_importance_has_mean_one():
    imp = normalized({"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([8.0])})
    assert float(torch.cat([imp["a"], imp["b"]]).mean()) == pytest.approx(1.0)


def test_registry_resolves_combinations_and_rejects_bad_input():
    names = [type(cb).__name__ for cb in resolve_strategies("replay,ewc", ewc_lambda=5.0, replay_ratio=0.5)]
    assert names == ["ReplayCallback", "EWCCallback"]
    assert resolve_strategies("ewc", ewc_lambda=5.0)[0].strength == 5.0
    assert resolve_strategies("finetune") == []
    for spec, params, match in [
        ("ewc,bogus", {}, "unknown strategy"),
        ("finetune,ewc", {}, "combines with nothing"),
        ("ewc,ewc", {}, "listed twice"),
        ("", {}, "empty"),
        ("replay", {"ewc_lambda": 1.0}, "only used by ewc"),
    ]:
        with pytest.raises(GenoclInputError, match=match):
            resolve_strategies(spec, **params)
