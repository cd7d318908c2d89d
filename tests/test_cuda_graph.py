"""The step as one CUDA graph (compile_step on CUDA): the eager step's numbers, saved files as
eager ones, recaptured only when a prune, the phase or the minibatch changes what it was built for.

The CUDA tests run on a CUDA machine (skipped elsewhere); the helpers' tests run everywhere.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.step import graph_unsupported, make_capturable, saveable_optimizer_state
from tests.conftest import make_model
from tests.test_compiled_step import PHASED, SGD, _pair, _through_every_phase, _train_both


class _HostStateSGD(th.optim.Optimizer):
    """Plain SGD written as a user might: no 'capturable' option, so no CUDA graph may hold it."""

    def __init__(self, params, lr: float = 1e-3) -> None:
        super().__init__(params, dict(lr=lr))

    @th.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.add_(param.grad, alpha=-group["lr"])


needs_cuda = pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
OBS = np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32)


def test_graph_unsupported_names_the_optimizer_and_what_is_accepted():
    params = [th.nn.Parameter(th.zeros(3))]
    assert graph_unsupported([th.optim.Adam(params), th.optim.AdamW(params), th.optim.SGD(params, lr=0.1)]) == ""
    why = graph_unsupported([th.optim.Adam(params), _HostStateSGD(params)])
    assert "_HostStateSGD" in why and "capturable" in why and "SGD" in why


def test_saved_optimizer_state_is_the_eager_one_and_the_live_one_is_untouched():
    param = th.nn.Parameter(th.ones(3))
    optimizer = th.optim.Adam([param], lr=3e-4)
    param.sum().backward()
    optimizer.step()
    eager_state = optimizer.state_dict()
    make_capturable(optimizer, th.device("cpu"))  # what a capture does (on the CPU: no device move)
    assert optimizer.param_groups[0]["capturable"] and isinstance(optimizer.param_groups[0]["lr"], th.Tensor)
    saved = saveable_optimizer_state(optimizer.state_dict())
    assert saved["param_groups"][0]["capturable"] is False
    assert saved["param_groups"][0]["lr"] == pytest.approx(3e-4) and isinstance(saved["param_groups"][0]["lr"], float)
    for group, eager_group in zip(saved["param_groups"], eager_state["param_groups"]):  # lr: float32 round trip
        assert {**group, "lr": pytest.approx(eager_group["lr"], rel=1e-6)} == eager_group
    assert th.equal(saved["state"][0]["exp_avg"], eager_state["state"][0]["exp_avg"])
    assert saved["state"][0]["step"].device.type == "cpu" and float(saved["state"][0]["step"]) == 1.0
    assert optimizer.param_groups[0]["capturable"]  # the live optimizer keeps graph-safe stepping
    assert saveable_optimizer_state(eager_state) is eager_state  # nothing to change: the same dict


def test_tensor_learning_rates_follow_the_schedule_in_place():
    """A captured Adam reads its lr from a tensor: the schedule must fill it, not replace it."""
    model = make_model(learning_rate=lambda progress: 1e-3 * progress)
    model.learn(10)  # sets up the logger
    lrs = {}
    for optimizer in model._optimizers():
        for group in optimizer.param_groups:
            group["lr"] = lrs[id(group)] = th.tensor(1.0)
    model._current_progress_remaining = 0.25
    model._update_learning_rate(model._optimizers())
    for optimizer in model._optimizers():
        for group in optimizer.param_groups:
            assert group["lr"] is lrs[id(group)]
            assert float(group["lr"]) == pytest.approx(2.5e-4)


def test_cpu_models_never_graph():
    model = make_model(compile_step=False, **PHASED)
    model.learn(150)
    assert not model.step_runner.graphed and model.step_runner.graph is None
    assert model.logger.name_to_value["time/step_graphed"] == 0.0


@needs_cuda
def test_graphed_step_computes_what_the_eager_step_computes_in_every_phase():
    eager, graphed = _pair(device="cuda", **SGD)

    def check() -> None:
        assert (
            graphed.step_runner.graphed
            and graphed.step_runner.graph is not None
            and graphed.step_runner.graph.graph is not None
        )
        assert not eager.step_runner.graphed and eager.step_runner.graph is None

    _through_every_phase(eager, graphed, steps=8, check=check)  # 3 warm-up steps, a capture, 5 replays
    assert graphed.step_runner.builds == 3  # one capture per phase (the rounding's prune changed shapes)
    assert graphed.logger.name_to_value["time/step_graphed"] == 1.0


@needs_cuda
def test_graphed_step_gives_the_eager_losses_with_adam_and_a_learning_rate_schedule():
    eager, graphed = _pair(device="cuda", learning_rate=lambda progress: 1e-3 * progress)
    for progress in (0.4, 0.45):  # thetas learning; the schedule moves the lr between the calls
        _train_both((eager, graphed), progress, steps=8, seed=3)
        names = ("aux_loss", "critic_loss", "actor_loss", "ent_coef_loss", "complexity_ofe", "theta_mean_actor")
        for name in names:
            a, b = (m.logger.name_to_value[f"train/{name}"] for m in (eager, graphed))
            assert b == pytest.approx(a, rel=1e-3, abs=1e-5), (progress, name)
    assert graphed.step_runner.builds == 1  # the lr lives in a tensor: no recapture for the schedule
    lr = graphed.actor.optimizer.param_groups[0]["lr"]
    assert isinstance(lr, th.Tensor) and float(lr) == pytest.approx(1e-3 * 0.55)


@needs_cuda
@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(target_update_interval=2, ent_coef=0.1), dict(use_sde=True)],
    ids=["default", "target-every-2-fixed-ent-coef", "gsde-stays-eager"],
)
def test_graphed_model_prunes_saves_loads_on_cpu_and_continues(tmp_path, kwargs):
    """Prune-B on CUDA under "auto": captured, recaptured after each shape-changing prune; the
    saved file is an eager one (float lrs, capturable off) that a CPU model loads and trains."""
    model = make_model(
        device="cuda", xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-2, prune_freq=50, **kwargs
    )
    initial = model.param_counts()["train"]
    model.learn(400)
    assert model.config.compile_step == "auto"
    assert model.step_runner.graphed is not kwargs.get("use_sde", False)
    assert model.param_counts()["train"] < initial  # pruned on the device
    if model.step_runner.graphed:
        assert model.logger.name_to_value["time/step_rebuilds"] >= 1  # recaptured after a prune
    model.save(tmp_path / "m.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        saved = th.load(io.BytesIO(archive.read("actor.optimizer.pth")), map_location="cpu", weights_only=False)
    assert all(isinstance(g["lr"], float) and not g.get("capturable") for g in saved["param_groups"])
    on_cpu = SAC_OFEXi.load(tmp_path / "m.zip", env=model.get_env(), device="cpu")
    np.testing.assert_allclose(
        on_cpu.predict(OBS, deterministic=True)[0], model.predict(OBS, deterministic=True)[0], atol=1e-5
    )
    on_cpu.learn(100, reset_num_timesteps=False)
    again = SAC_OFEXi.load(tmp_path / "m.zip", env=model.get_env(), device="cuda")
    again.learn(100, reset_num_timesteps=False)  # back on CUDA: captured again from the eager file
    assert again.step_runner.graphed is not kwargs.get("use_sde", False)


@needs_cuda
def test_compile_step_true_with_an_optimizer_a_graph_cannot_hold_raises():
    model = make_model(device="cuda", compile_step=True)
    model.policy.ofe_optimizer = _HostStateSGD(model.policy.ofe.parameters())
    with pytest.raises(RuntimeError, match="_HostStateSGD"):
        model.learn(100)
    auto = make_model(device="cuda")
    auto.policy.ofe_optimizer = _HostStateSGD(auto.policy.ofe.parameters())
    auto.learn(100)  # "auto": eager, since no graph can hold it
    assert not auto.step_runner.graphed and auto.step_runner.graph is None
