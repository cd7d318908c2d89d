"""The compiled gradient step (compile_step=): same numbers as eager, rebuilt only on shape changes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch as th

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common import step as step_module
from sb3_ofexi.common.step import AUTO_MAX_PARAMS, AUTO_MIN_STEPS, compiler_available, use_compiled_step
from sb3_ofexi.common.xi import xi_gates
from tests.conftest import make_model

needs_compiler = pytest.mark.skipif(
    not compiler_available("cpu")[0], reason=f"torch.compile unavailable: {compiler_available('cpu')[1]}"
)
# a prune-b model with the short-run theta settings, every theta phase inside 600 env steps
PHASED = dict(preset="prune-b", theta_lr=0.05, xi_start=0.3, xi_round=0.6, prune_freq=0, learning_starts=100)


def _pair(**kwargs) -> tuple[SAC_OFEXi, SAC_OFEXi]:
    """Two identical models (same seed, same replay data), one eager, one compiled."""
    models = []
    for compiled in (False, True):
        model = make_model(compile_step=compiled, **{**PHASED, **kwargs})
        model.learn(100)  # collection only: learning_starts == budget
        model._ofe_pretrained = True
        model._total_timesteps = 1000  # the schedule's budget for direct train() calls
        models.append(model)
    eager, compiled_model = models
    for a, b in zip(eager.policy.state_dict().values(), compiled_model.policy.state_dict().values()):
        assert th.equal(a, b)
    return eager, compiled_model


# SGD: Adam turns a gradient that is float noise (a bias right before BatchNorm has a zero
# gradient in exact arithmetic; a dead unit's weights) into an lr-sized step of random sign,
# so after a few Adam steps two float-equal computations differ by ~lr in such entries.
# With SGD the parameters carry the gradients' agreement; the Adam run compares the losses.
SGD = dict(policy_kwargs=dict(net_arch=[16, 16], optimizer_class=th.optim.SGD))


def _train_both(models: tuple[SAC_OFEXi, SAC_OFEXi], progress: float, steps: int, seed: int) -> None:
    """Put both at ``progress`` of the budget and train them on the same draws (replay and torch)."""
    for model in models:
        model.num_timesteps = int(progress * model._total_timesteps)
        model._current_progress_remaining = 1.0 - progress
        np.random.seed(seed)  # SB3's replay sampling
        th.manual_seed(seed)  # gates, actor noise (fallback_random: the same draws compiled)
        model.train(steps, model.batch_size)


def _optimizers(model: SAC_OFEXi) -> list[th.optim.Optimizer]:
    return [model.policy.ofe_optimizer, model.actor.optimizer, model.critic.optimizer]


def _assert_close(eager: SAC_OFEXi, compiled: SAC_OFEXi) -> None:
    assert eager.xi_phase == compiled.xi_phase
    assert eager.param_counts() == compiled.param_counts()
    for (name, a), b in zip(eager.policy.state_dict().items(), compiled.policy.state_dict().values()):
        assert a.shape == b.shape, name
        th.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def _through_every_phase(eager: SAC_OFEXi, fast: SAC_OFEXi, steps: int, check: Callable[[], None]) -> None:
    """Train both through the theta phases frozen, learning, rounded; after each, ``check()``
    and the parameters compared."""
    for progress, phase in ((0.15, "frozen"), (0.45, "learning"), (0.7, "rounded")):
        if phase == "rounded":  # some units below 0.5: rounding zeroes them and the prune removes them
            for model in (eager, fast):
                with th.no_grad():
                    for gate in (model.policy.ofe.phi_o.gates[0], model.actor.net.gates[1]):
                        gate.theta[:3] = 0.2
        _train_both((eager, fast), progress, steps=steps, seed=int(progress * 100))
        assert fast.xi_phase == phase
        check()
        _assert_close(eager, fast)


@needs_compiler
def test_compiled_step_computes_what_the_eager_step_computes_in_every_phase():
    eager, compiled = _pair(**SGD)

    def check() -> None:
        assert compiled.step_runner.compiled
        assert eager.step_runner.signature is not None and not eager.step_runner.compiled

    _through_every_phase(eager, compiled, steps=4, check=check)
    # rounded: thetas 0/1, zeros pruned, so the shapes changed between the phases
    assert compiled.param_counts()["train"] < make_model(**PHASED).param_counts()["train"]
    assert compiled.step_runner.builds == 3  # one build per phase, and no more
    assert eager.step_runner.builds == 0


@needs_compiler
def test_compiled_step_gives_the_eager_losses_with_adam():
    eager, compiled = _pair()
    _train_both((eager, compiled), 0.45, steps=5, seed=3)  # thetas learning
    names = ("aux_loss", "critic_loss", "actor_loss", "ent_coef_loss", "complexity_ofe", "theta_mean_actor")
    for name in names:
        a, b = (m.logger.name_to_value[f"train/{name}"] for m in (eager, compiled))
        assert b == pytest.approx(a, rel=1e-3, abs=1e-5), name


@needs_compiler
def test_step_is_rebuilt_only_when_a_prune_changes_a_shape():
    model = make_model(compile_step=True, **PHASED)
    model.learn(100)
    model._ofe_pretrained = True
    model._total_timesteps = 1000
    model.num_timesteps, model._current_progress_remaining = 450, 0.55  # thetas learning
    model.train(2, model.batch_size)
    assert model.step_runner.builds == 1
    assert not model.prune()  # nothing below theta_tol: no shape change
    model.train(2, model.batch_size)
    assert model.step_runner.builds == 1
    with th.no_grad():
        gate = next(g for g in xi_gates(model.actor))
        gate.theta[:3] = 0.0
    assert model.prune()
    model.train(2, model.batch_size)
    assert model.step_runner.builds == 2
    model.train(2, model.batch_size)
    assert model.step_runner.builds == 2
    assert model.logger.name_to_value["time/step_rebuilds"] == 1
    assert model.logger.name_to_value["time/step_compiled"] == 1.0


@needs_compiler
def test_auto_compiles_a_long_fixed_shape_stretch_and_the_model_saves_loads_and_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(step_module, "AUTO_MIN_STEPS", 100)  # "long" for this test
    model = make_model(preset="ofe", ofe_units=8, learning_starts=100)
    assert model.config.compile_step == "auto"
    model.learn(250)  # 150 steps left at the first train(): compiled
    assert model.step_runner.compiled and model.step_runner.builds == 1
    model.save(tmp_path / "m.zip")
    loaded = SAC_OFEXi.load(tmp_path / "m.zip", env=model.get_env(), device="cpu")  # not "auto" on a GPU machine
    assert loaded.config.compile_step == "auto" and loaded.step_runner.signature is None
    obs = model.get_env().reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(50, reset_num_timesteps=False)  # 50 steps left: below the threshold, eager
    assert loaded.step_runner.signature is not None and not loaded.step_runner.compiled
    assert loaded.num_timesteps == 300


def test_auto_compiles_on_cpu_only_for_long_stretches_with_fixed_shapes_and_always_graphs_on_cuda(monkeypatch):
    monkeypatch.setattr(step_module, "compiler_available", lambda device_type: (True, ""))
    cpu, cuda = th.device("cpu"), th.device("cuda")
    ok = dict(shapes_may_change=False, steps_left=AUTO_MIN_STEPS, train_params=AUTO_MAX_PARAMS)
    assert use_compiled_step("auto", cpu, **ok)
    assert not use_compiled_step("auto", cpu, **{**ok, "steps_left": AUTO_MIN_STEPS - 1})
    assert not use_compiled_step("auto", cpu, **{**ok, "shapes_may_change": True})
    assert not use_compiled_step("auto", cpu, **{**ok, "train_params": AUTO_MAX_PARAMS + 1})
    assert use_compiled_step("auto", cuda, **{**ok, "shapes_may_change": True, "steps_left": 1})  # a CUDA graph
    assert use_compiled_step(True, cpu, shapes_may_change=True, steps_left=0, train_params=10**9)
    assert not use_compiled_step(False, cpu, **ok)
    monkeypatch.setattr(step_module, "compiler_available", lambda device_type: (False, "no C++ compiler"))
    assert not use_compiled_step("auto", cpu, **ok)
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        use_compiled_step(True, cpu, **ok)


def test_short_runs_stay_eager_under_auto():
    model = make_model(**PHASED)
    assert model.config.compile_step == "auto"
    model.learn(300)
    assert model.step_runner.signature is not None and not model.step_runner.compiled
    assert model.step_runner.builds == 0


@pytest.mark.parametrize("value", ["yes", 1, None, "AUTO"])
def test_bad_compile_step_raises(value):
    with pytest.raises(ValueError, match="compile_step"):
        make_model(compile_step=value)
