"""C export (sb3_ofexi.common.c_export): the generated C99, compiled with the strictest warnings and
called through ctypes, against model.predict(obs, deterministic=True)."""

from __future__ import annotations

import os
import pathlib

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn

from sb3_ofexi import EauDeSAC, PolyPruneSAC, SAC_OFEXi, TD3_OFEXi, TQC_OFEXi
from sb3_ofexi.common import c_export
from sb3_ofexi.common.c_build import CFLAGS, CPolicy, compile_shared, find_compiler
from sb3_ofexi.common.c_export import (
    Activation,
    Linear,
    PolicyIR,
    c_files,
    export_c,
    generate_c,
    policy_ir,
    quantize_int8,
    run_ir,
)
from sb3_ofexi.common.export import deployed_policy, export_policy, run_exported
from sb3_ofexi.harness.cli import main as cli_main

from .conftest import SMALL, make_model

try:
    from sb3_contrib import TQC, CrossQ
except ImportError:  # an optional dependency of the package's comparisons
    TQC = CrossQ = None

needs_cc = pytest.mark.skipif(
    find_compiler() is None, reason="no C compiler ($CC, cc, gcc or clang): the C export is not compiled here"
)
#: what the issue asks the generated code to pass
STRICT = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


def _small(net_arch=(16, 16), **policy_kwargs) -> dict:
    """Settings of a small SB3-family model (a fresh dict: SB3 writes into policy_kwargs)."""
    kwargs = dict(net_arch=list(net_arch), **policy_kwargs)
    return dict(policy_kwargs=kwargs, learning_starts=64, batch_size=32, seed=0, device="cpu")


def _observations(model, n: int = 1000, seed: int = 1) -> np.ndarray:
    """Pendulum's observation space, and some way outside it."""
    space = model.observation_space
    rng = np.random.default_rng(seed)
    return rng.uniform(1.5 * space.low, 1.5 * space.high, (n, space.shape[0])).astype(np.float32)


def _compile(tmp_path: pathlib.Path, name: str) -> CPolicy:
    return CPolicy(tmp_path / f"{name}.c", name, flags=STRICT)


def _max_error(policy: CPolicy, model, obs: np.ndarray, vec_normalize=None) -> float:
    expected, _ = model.predict(vec_normalize.normalize_obs(obs) if vec_normalize else obs, deterministic=True)
    return float(np.abs(policy(obs) - expected).max())


def _bound(model) -> float:
    return float(np.abs(np.concatenate([model.action_space.low, model.action_space.high])).max())


def _randomise_statistics(model, prune: bool) -> None:
    """BN statistics, V and (for prune-b) thetas far from their initial values, then the surgery."""
    generator = th.Generator().manual_seed(0)
    with th.no_grad():
        for name, tensor in model.policy.state_dict().items():
            if name.endswith("running_mean") or name.endswith(".v"):
                tensor.copy_(th.randn(tensor.shape, generator=generator) * 0.5)
            elif name.endswith("running_var"):
                tensor.copy_(th.rand(tensor.shape, generator=generator) * 1.5 + 0.5)
            elif name.endswith("bn.weight") or name.endswith("bn.bias"):
                tensor.copy_(th.randn(tensor.shape, generator=generator))
        if prune:
            for gate in model.policy.xi_layers().values():
                theta = th.rand(gate.n_units, generator=generator) * 0.8 + 0.2
                theta[th.rand(gate.n_units, generator=generator) < 0.4] = 0.0
                theta[0] = 0.5  # every layer keeps a unit
                gate.theta.copy_(theta)
    if prune:
        assert model.prune()


@pytest.fixture(scope="module")
def models():
    th.manual_seed(0)
    th.set_num_threads(1)  # conftest's autouse fixture runs per test, after this module-scoped one
    learned = make_model(xi_start=0.1, xi_round=0.8, theta_lr=0.05, nu_actor=3e-3, nu_ofe=3e-3, prune_freq=50)
    learned.learn(300)  # rounded at 240 steps, pruned by the surgery
    assert learned.xi_phase == "rounded" and learned.param_counts()["deploy"] < make_model().param_counts()["deploy"]
    thetas = make_model()  # thetas in (0.2, 1): the evaluation mode scales by them
    _randomise_statistics(thetas, prune=True)
    gsde = make_model(use_sde=True)  # the mean clipped to clip_mean before tanh
    _randomise_statistics(gsde, prune=True)
    empty = {}  # an actor layer pruned to nothing: the next one outputs act(bias)
    for layer in (0, 1):  # 1: the policy is a constant (nothing before it reaches the action)
        empty[layer] = make_model()
        _randomise_statistics(empty[layer], prune=False)
        with th.no_grad():
            empty[layer].policy.xi_layers()[f"actor[{layer}]"].theta.zero_()
        assert empty[layer].prune() and empty[layer].unit_counts()["actor"][layer] == 0
    ofe = make_model(preset="ofe")
    _randomise_statistics(ofe, prune=False)
    ofexi = {}  # TD3_OFEXi and TQC_OFEXi: ~40% of the units removed by the surgery, then learned a little
    generator = th.Generator().manual_seed(0)
    for cls, extra in ((TD3_OFEXi, {}), (TQC_OFEXi, {"n_quantiles": 5})):
        ofexi[cls] = cls("MlpPolicy", "Pendulum-v1", preset="prune-b", ofe_layers=2, ofe_units=8, **_small(**extra))
        with th.no_grad():
            for gate in ofexi[cls].policy.xi_layers().values():
                gate.theta[th.rand(gate.n_units, generator=generator) < 0.4] = 0.0
                gate.theta[0] = 1.0  # every layer keeps a unit
        assert ofexi[cls].prune()
        ofexi[cls].learn(300)
        assert ofexi[cls].unit_counts()["actor"] != [16, 16]
    crossq = None
    if CrossQ is not None:  # BatchRenorm in front of each Linear, running statistics moved by training
        crossq = CrossQ("MlpPolicy", "Pendulum-v1", **_small((32, 32))).learn(300)
        assert not th.allclose(crossq.actor.latent_pi[0].ra_var, th.ones(3))
    polyprune = PolyPruneSAC("MlpPolicy", "Pendulum-v1", **_small((64, 64)))
    polyprune.policy.weight_masks.update_("actor", 0.9)
    return {
        "prune-b": learned,
        "prune-b-thetas": thetas,
        "prune-b-gsde": gsde,
        "prune-b-empty-layer": empty[0],
        "prune-b-constant": empty[1],
        "ofe": ofe,
        "sac": SAC("MlpPolicy", "Pendulum-v1", **_small()),
        "sac-gsde": SAC("MlpPolicy", "Pendulum-v1", use_sde=True, **_small()),  # mu ends in Hardtanh
        "td3": TD3("MlpPolicy", "Pendulum-v1", **_small()),  # mu ends in Tanh; no latent_pi
        "polyprune": polyprune,
        "tqc": TQC("MlpPolicy", "Pendulum-v1", **_small()) if TQC is not None else None,
        "td3-ofexi": ofexi[TD3_OFEXi],
        "tqc-ofexi": ofexi[TQC_OFEXi],
        "crossq": crossq,
        "eaudesac": EauDeSAC("MlpPolicy", "Pendulum-v1", population_size=2, tournament_size=2, **_small()),
    }


@needs_cc
@pytest.mark.parametrize(
    "which",
    [
        "prune-b",
        "prune-b-thetas",
        "prune-b-gsde",
        "prune-b-empty-layer",
        "prune-b-constant",
        "ofe",
        "sac",
        "sac-gsde",
        "polyprune",
        "eaudesac",
        "td3",
        "tqc",
        "td3-ofexi",
        "tqc-ofexi",
        "crossq",
    ],
)
def test_c_policy_reproduces_deterministic_predict(tmp_path, models, which):
    model = models[which]
    if model is None:
        pytest.skip("TQC and CrossQ need sb3_contrib")
    result = export_c(model, tmp_path / "policy.c")
    assert result.check_error is not None and result.check_error <= 1e-5 * _bound(model)
    source = (tmp_path / "policy.c").read_text()
    # dependency-free: math.h and its own header only, no dynamic memory
    includes = [line for line in source.splitlines() if line.startswith("#include")]
    assert includes == ["#include <math.h>", '#include "policy.h"']
    assert "malloc" not in source and "static const float" in source
    assert ("clamp to" in source) == which.endswith("gsde")
    header = (tmp_path / "policy.h").read_text()
    assert f"#define policy_OBS_DIM {model.observation_space.shape[0]}" in header
    assert f"#define policy_ACT_DIM {model.action_space.shape[0]}" in header
    assert type(model).__name__ in header and "sb3_ofexi" in header  # provenance
    policy = _compile(tmp_path, "policy")
    obs = _observations(model)
    assert _max_error(policy, model, obs) <= 1e-5 * _bound(model)
    # the C is what the in-memory folded module and the numpy reference of its ops compute
    with th.no_grad():
        folded = deployed_policy(model)(th.as_tensor(obs)).numpy()
    np.testing.assert_allclose(policy(obs), folded, atol=1e-5 * _bound(model), rtol=0)
    np.testing.assert_allclose(run_ir(result.ir, obs), folded, atol=1e-5 * _bound(model), rtol=0)
    if which == "polyprune":  # ERK leaves the 64x64 layer ~95% zeros: stored sparse, the heads dense
        assert any(layer.sparse for layer in result.layers) and not all(layer.sparse for layer in result.layers)
        for layer in result.layers:
            assert layer.sparse == (layer.sparsity > 0.5), layer
        assert result.weight_bytes_stored < 0.5 * result.weight_bytes_dense
        assert "compressed sparse rows" in source
    else:
        assert not any(layer.sparse for layer in result.layers)


def test_folded_widths_are_the_pruned_ones(models):
    model = models["prune-b"]
    widths = model.policy.architecture_kwargs()
    ir = policy_ir(deployed_policy(model), model.observation_space.shape[0])
    linears = [op for op in ir.ops if hasattr(op, "weight")]
    assert [op.weight.shape[0] for op in linears] == [
        *widths["ofe_units"]["phi_o"],
        *widths["net_arch"]["pi"],
        model.action_space.shape[0],
    ]
    assert [op.concat for op in linears].count(True) == len(widths["ofe_units"]["phi_o"])


@needs_cc
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_sparse_form_gives_the_same_bits_as_the_dense_one(tmp_path, models, dtype):
    model = models["polyprune"]
    for sparse in ("never", "always"):
        export_c(model, tmp_path / sparse / "policy.c", dtype=dtype, sparse=sparse, int8_max_error=1.0)
    never, always = (CPolicy(tmp_path / s / "policy.c", flags=STRICT) for s in ("never", "always"))
    obs = _observations(model)
    # each output sums its nonzero products in the same order in both forms
    np.testing.assert_array_equal(never(obs), always(obs))
    assert "compressed sparse rows" not in (tmp_path / "never" / "policy.c").read_text()


@needs_cc
def test_int8_error_is_reported_and_bounded(tmp_path, models):
    model = models["prune-b-thetas"]
    result = export_c(model, tmp_path / "policy.c", dtype="int8")
    assert result.int8_bound == pytest.approx(0.05 * _bound(model))
    assert result.int8_error is not None and 0 < result.int8_error <= result.int8_bound
    assert result.weight_bytes_stored < 0.5 * result.weight_bytes_dense
    obs = _observations(model, seed=0)
    policy = _compile(tmp_path, "policy")
    assert _max_error(policy, model, obs) <= result.int8_bound
    # the C computes what the numpy reference of the int8 ops computes
    np.testing.assert_allclose(policy(obs), run_ir(result.ir, obs, "int8"), atol=1e-5 * _bound(model), rtol=0)
    assert "signed char" in (tmp_path / "policy.c").read_text()


def test_int8_beyond_its_bound_is_refused_and_writes_nothing(tmp_path, models):
    with pytest.raises(ValueError, match=r"int8 weights move the actions by up to .* \(> int8_max_error 2e-06\)"):
        export_c(models["prune-b-thetas"], tmp_path / "policy.c", dtype="int8", int8_max_error=1e-6, check=False)
    assert list(tmp_path.iterdir()) == []


def test_quantize_int8_is_per_row_symmetric():
    weight = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [2.0, 1.0, -0.01]], np.float32)
    q, scale = quantize_int8(weight)
    np.testing.assert_allclose(scale, [1.0 / 127, 0.0, 2.0 / 127], rtol=1e-6)
    assert q[0, 1] == -127 and q[2, 0] == 127 and not q[1].any()
    assert np.abs(q * scale[:, None] - weight).max() <= scale.max() / 2 + 1e-7


@needs_cc
def test_vec_normalize_is_applied_with_its_clipping(tmp_path):
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=1.5)
    venv.seed(0)
    venv.reset()
    for _ in range(200):  # statistics far from (0, 1)
        venv.step(np.array([venv.action_space.sample()]))
    model = SAC("MlpPolicy", venv, **_small())
    result = export_c(model, tmp_path / "policy.c", vec_normalize=venv)
    assert result.check_error is not None and result.check_error <= 1e-5 * _bound(model)
    policy = _compile(tmp_path, "policy")
    obs = _observations(model)  # raw observations, many beyond clip_obs standard deviations
    assert (np.abs(venv.normalize_obs(obs)) == 1.5).any()
    assert _max_error(policy, model, obs, venv) <= 1e-5 * _bound(model)
    # without the normalisation the actions are another function of the raw observation
    assert _max_error(policy, model, obs) > 1e-3
    # the command line reads VecNormalize.save's file
    model.save(tmp_path / "m")
    venv.save(str(tmp_path / "vecnormalize.pkl"))
    argv = ["export", str(tmp_path / "m.zip"), "--algo", "sac", "--out", str(tmp_path / "cli")]
    assert cli_main([*argv, "--vec-normalize", str(tmp_path / "vecnormalize.pkl")]) == 0
    assert _max_error(_compile(tmp_path / "cli", "policy"), model, obs, venv) <= 1e-5 * _bound(model)


class _DictObsEnv(gym.Env):
    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        return {"a": np.zeros(2, np.float32)}, {}

    def step(self, action):
        return {"a": np.zeros(2, np.float32)}, 0.0, False, False, {}


def test_bad_inputs_are_refused_and_leave_no_file(tmp_path, models, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    model = models["sac"]
    with pytest.raises(ValueError, match=r"observation space Dict.*accepted: a 1-D Box"):
        export_c(SAC_OFEXi("MultiInputPolicy", _DictObsEnv(), **SMALL), out / "policy.c")
    with pytest.raises(ValueError, match=r"name '2fast' is not accepted: accepted: a C identifier"):
        export_c(model, out, name="2fast")
    with pytest.raises(ValueError, match=r"name 'int' is not accepted: accepted: a C identifier"):
        export_c(model, out / "int.c")
    with pytest.raises(ValueError, match=r"dtype='float16': accepted: float32, int8"):
        export_c(model, out / "policy.c", dtype="float16")
    with pytest.raises(ValueError, match=r"sparse='yes': accepted: auto, never, always"):
        export_c(model, out / "policy.c", sparse="yes")
    gelu = SAC("MlpPolicy", "Pendulum-v1", **_small((8,), activation_fn=nn.GELU))
    with pytest.raises(ValueError, match=r"module GELU is not supported: accepted: Linear, ReLU, SiLU, Tanh, ELU"):
        export_c(gelu, out / "policy.c", check=False)
    gelu_ofexi = make_model(policy_kwargs=dict(net_arch=[8], activation_fn=nn.GELU))
    with pytest.raises(ValueError, match=r"activation GELU is not supported: accepted: Identity, ReLU, SiLU, Tanh"):
        export_c(gelu_ofexi, out / "policy.c", check=False)
    with pytest.raises(ValueError, match=r"format='c' to .*policy.onnx.*accepted: a .c or .h path, or a folder"):
        export_policy(model, out / "policy.onnx", format="c")
    with pytest.raises(ValueError, match=r"dtype: accepted with format='c' only"):
        export_policy(model, out / "policy.onnx", dtype="int8")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"cannot write policy.h, policy.c in .*a_file.*accepted: a writable folder"):
        export_c(model, blocker / "policy.c", check=False)
    monkeypatch.setattr(model, "action_space", gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match=r"action space Discrete\(3\): accepted: a 1-D Box"):
        export_c(model, out / "policy.c", check=False)
    assert list(out.iterdir()) == [] and blocker.read_text() == "not a folder"


def test_missing_compiler(tmp_path, models, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert find_compiler() is None
    with pytest.raises(FileNotFoundError, match=r"No C compiler found.*check=False"):
        export_c(models["sac"], tmp_path / "policy.c", check=True)
    assert not (tmp_path / "policy.c").exists()
    with pytest.warns(UserWarning, match="written unchecked"):
        result = export_c(models["sac"], tmp_path / "policy.c")
    assert result.check_error is None and (tmp_path / "policy.c").exists() and (tmp_path / "policy.h").exists()
    assert "Check: not compiled" in (tmp_path / "policy.c").read_text()


@needs_cc
@pytest.mark.parametrize("activation", [nn.ELU, nn.LeakyReLU, nn.Tanh, nn.SiLU])
def test_other_activations_compile_and_match(tmp_path, activation):
    model = SAC("MlpPolicy", "Pendulum-v1", **_small((8,), activation_fn=activation))
    export_c(model, tmp_path / "policy.c")
    assert _max_error(_compile(tmp_path, "policy"), model, _observations(model)) <= 1e-5 * _bound(model)


@needs_cc
def test_export_policy_api_and_cli(tmp_path, models, capsys):
    model = models["prune-b"]
    folded = export_policy(model, tmp_path / "api", format="c", name="pendulum")  # a folder
    assert isinstance(folded, nn.Module)
    assert (tmp_path / "api" / "pendulum.h").exists() and (tmp_path / "api" / "pendulum.c").exists()
    obs = _observations(model, 20)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(run_exported(tmp_path / "api" / "pendulum.c", obs), expected, atol=2e-5, rtol=0)
    model.export_policy(tmp_path / "method" / "policy.c")  # the algorithm's method: format from the suffix
    assert (tmp_path / "method" / "policy.h").exists()
    model.export_policy(tmp_path / "method", format="c", name="pend8", dtype="int8")  # it passes every option on
    assert "signed char" in (tmp_path / "method" / "pend8.c").read_text()

    model.save(tmp_path / "m")
    argv = ["export", str(tmp_path / "m.zip"), "--format", "c", "--out", str(tmp_path / "cli"), "--name", "pend"]
    assert cli_main([*argv, "--dtype", "int8", "--sparse", "always"]) == 0
    printed = capsys.readouterr().out
    assert "checked: max |C - predict|" in printed and "int8: max action error" in printed and "CSR" in printed
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["pend.c", "pend.h"]
    assert cli_main(["export", str(tmp_path / "m.zip"), str(tmp_path / "x.onnx"), "--dtype", "int8"]) == 2
    assert "--dtype: accepted with --format c only" in capsys.readouterr().err
    assert cli_main(["export", str(tmp_path / "m.zip"), "--out", str(tmp_path / "x.c"), "--name", "1x"]) == 2
    assert not (tmp_path / "x.c").exists()


class _FiveObservationsEnv(gym.Env):
    """Five observations far from (0, 1): at least UNROLL inputs, so a dense layer reading the
    normalised observation runs its unrolled loop."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.normal(3.0, 2.0, 5).astype(np.float32), {}

    def step(self, action):
        return self.np_random.normal(3.0, 2.0, 5).astype(np.float32), 0.0, False, False, {}


def _vec_normalize(env, clip_obs: float) -> VecNormalize:
    venv = VecNormalize(DummyVecEnv([env]), clip_obs=clip_obs)
    venv.seed(0)
    venv.reset()
    for _ in range(200):  # statistics far from (0, 1)
        venv.step(np.array([venv.action_space.sample()]))
    return venv


def _raw_observations(venv: VecNormalize, n: int = 1000) -> np.ndarray:
    """Raw observations within 6 standard deviations of VecNormalize's mean."""
    z = np.random.default_rng(1).uniform(-6, 6, (n, len(venv.obs_rms.mean)))
    return (venv.obs_rms.mean + z * np.sqrt(venv.obs_rms.var)).astype(np.float32)


@needs_cc
@pytest.mark.parametrize("algorithm", [SAC, TD3, PolyPruneSAC])
@pytest.mark.parametrize("sparse", ["never", "always"])
def test_vec_normalize_feeds_dense_and_sparse_layers(tmp_path, algorithm, sparse):
    """The normalised observation (array x0) feeds a plain Linear: the unrolled loop's inputs must
    not shadow it (gcc: 'subscripted value is neither array nor pointer')."""
    venv = _vec_normalize(_FiveObservationsEnv, clip_obs=5.0)
    model = algorithm("MlpPolicy", venv, **_small())
    result = export_c(model, tmp_path / "policy.c", vec_normalize=venv, sparse=sparse)
    assert result.check_error is not None and result.check_error <= 1e-5 * _bound(model)
    source = (tmp_path / "policy.c").read_text()
    assert ("in0 = x0[j]" in source) == (sparse == "never") and ("x0[l1_cols[k]]" in source) == (sparse == "always")
    obs = _raw_observations(venv)
    assert (np.abs(venv.normalize_obs(obs)) == 5.0).any()
    assert _max_error(_compile(tmp_path, "policy"), model, obs, venv) <= 1e-5 * _bound(model)


@needs_cc
def test_vec_normalize_without_clipping(tmp_path):
    """clip_obs=inf: no clamp is emitted (an infinite literal would not be C)."""
    venv = _vec_normalize(_FiveObservationsEnv, clip_obs=np.inf)
    model = SAC("MlpPolicy", venv, **_small())
    export_c(model, tmp_path / "policy.c", vec_normalize=venv)
    source = (tmp_path / "policy.c").read_text()
    body = source.split("void policy_act")[1]
    assert "no clip (clip_obs is inf)" in body and "double v" not in body and "(double)obs[i]" in body
    assert source.split("*/")[0].count("no clip (clip_obs is inf)") == 1  # the provenance's list of ops
    obs = _raw_observations(venv)
    assert _max_error(_compile(tmp_path, "policy"), model, obs, venv) <= 1e-5 * _bound(model)


@needs_cc
@pytest.mark.parametrize("which", ["sac", "td3", "prune-b"])
def test_nan_observation_gives_nan_as_predict_does(tmp_path, models, which):
    """ReLU lets NaN through, as torch's does (SAC's predict refuses NaN: its Gaussian validates
    the mean; the folded module is the torch reference)."""
    model = models[which]
    export_c(model, tmp_path / "policy.c")
    obs = _observations(model, 10)
    obs[:, 1] = np.nan
    with th.no_grad():
        assert th.isnan(deployed_policy(model)(th.as_tensor(obs))).all()
    assert np.isnan(_compile(tmp_path, "policy")(obs)).all()


@needs_cc
def test_nan_never_passes_the_check(tmp_path, models, monkeypatch):
    model = models["sac"]
    real = CPolicy.__call__

    def one_nan(self, obs):
        actions = real(self, obs)
        actions[3, 0] = np.nan
        return actions

    monkeypatch.setattr(CPolicy, "__call__", one_nan)
    with pytest.raises(RuntimeError, match=r"the compiled C policy returns NaN or inf for finite observations"):
        export_c(model, tmp_path / "policy.c")
    with pytest.raises(RuntimeError, match=r"the compiled int8 policy returns NaN or inf .*a bug of the exporter"):
        export_c(model, tmp_path / "policy.c", dtype="int8")
    obs = _observations(models["td3"], 10)
    obs[0, 0] = np.nan  # NaN in, NaN out (TD3's predict takes NaN): still not within any tolerance
    with pytest.raises(RuntimeError, match=r"differs from model.predict by nan"):
        export_c(models["td3"], tmp_path / "policy.c", obs=obs)
    monkeypatch.undo()
    nan = np.full((c_export.CHECK_OBSERVATIONS, 1), np.nan, np.float32)  # numpy's int8 reference, unchecked
    monkeypatch.setattr(c_export, "run_ir", lambda ir, obs, dtype="float32": nan[: len(obs)])
    with pytest.raises(ValueError, match=r"int8 weights move the actions by up to nan"):
        export_c(model, tmp_path / "policy.c", dtype="int8", check=False)
    assert list(tmp_path.iterdir()) == []


def test_builds_do_not_contract_into_fma(tmp_path, models):
    assert "-ffp-contract=off" in CFLAGS
    export_c(models["sac"], tmp_path / "policy.c", check=False)
    assert f"Build: cc {' '.join(CFLAGS)} -c policy.c" in (tmp_path / "policy.c").read_text()
    example = pathlib.Path(__file__).resolve().parents[1] / "examples" / "c_policy" / "README.md"
    assert "-ffp-contract=off" in example.read_text()


def _listing(folder: pathlib.Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_a_failed_write_keeps_the_earlier_export(tmp_path, models, monkeypatch, error, fail_at):
    """The header and the source replace an earlier export's; whichever rename fails (or an
    interrupt), the earlier files stay as they were and no temporary file is left."""
    model, out = models["sac"], tmp_path / "out"
    export_c(model, out / "policy.c", check=False)
    before = _listing(out)
    real, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == fail_at:
            raise error(28, "No space left on device") if error is OSError else error()
        return real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ValueError if error is OSError else KeyboardInterrupt):
        export_c(model, out / "policy.c", sparse="always", check=False)  # other contents
    monkeypatch.undo()
    assert _listing(out) == before


def test_a_failed_write_removes_the_folders_it_created(tmp_path, models, monkeypatch):
    def replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ValueError, match=r"cannot write policy.h, policy.c in .*No space left on device"):
        export_c(models["sac"], tmp_path / "new" / "deeper" / "policy.c", check=False)
    assert list(tmp_path.iterdir()) == []


def test_a_file_the_export_did_not_write_is_not_overwritten(tmp_path, models):
    """``controller.h`` asked for, and the user's own controller.c beside it."""
    own = tmp_path / "controller.c"
    own.write_text("int main(void) { return 0; }\n")
    with pytest.raises(
        ValueError, match=r"controller.c' exists and was not written by the C export.*name='controller_pol"
    ):
        export_c(models["sac"], tmp_path / "controller.h", check=False)
    assert _listing(tmp_path) == {"controller.c": b"int main(void) { return 0; }\n"}
    export_c(models["sac"], tmp_path / "controller_policy.h", check=False)  # a new name, then over itself
    export_c(models["td3"], tmp_path / "controller_policy.c", check=False)
    assert "TD3" in (tmp_path / "controller_policy.h").read_text()


@pytest.mark.parametrize("name", ["_policy", "_Policy", "math", "Math", "STDIO", "string", "stdint"])
def test_names_that_collide_are_refused(tmp_path, models, name):
    with pytest.raises(ValueError, match=rf"name '{name}'.*accepted"):
        export_c(models["sac"], tmp_path, name=name, check=False)
    assert list(tmp_path.iterdir()) == []


@needs_cc
def test_names_that_differ_in_case_have_their_own_guards(tmp_path, models):
    export_c(models["sac"], tmp_path / "a" / "pol.c", check=False)
    export_c(models["td3"], tmp_path / "b" / "Pol.c", check=False)
    assert "#ifndef pol_POLICY_H_" in (tmp_path / "a" / "pol.h").read_text()
    both = tmp_path / "both.c"
    both.write_text(
        '#include "a/pol.h"\n#include "b/Pol.h"\n\nvoid both(const float *obs, float *a, float *b);\n\n'
        "void both(const float *obs, float *a, float *b)\n{\n    pol_act(obs, a);\n    Pol_act(obs, b);\n}\n"
    )
    sources = [both, tmp_path / "a" / "pol.c", tmp_path / "b" / "Pol.c"]
    compile_shared(sources, tmp_path / "libboth.so", [*STRICT, f"-I{tmp_path}"])


@needs_cc
def test_a_densenet_after_a_block_pruned_to_nothing(tmp_path):
    """A DenseNet whose last block lost every unit, a plain layer, then another DenseNet block:
    the second DenseNet gets its own array."""
    rng = np.random.default_rng(0)

    def linear(rows: int, cols: int, kind: str = "identity", concat: bool = False) -> Linear:
        weight, bias = rng.normal(size=(rows, cols)).astype(np.float32), rng.normal(size=rows).astype(np.float32)
        return Linear(weight, bias, Activation(kind), concat)

    ir = PolicyIR(3, [linear(0, 3, "silu", True), linear(4, 3, "relu"), linear(2, 4, "silu", True), linear(5, 6)])
    header, source = c_files(generate_c(ir, "policy"), ["a hand-made IR"])
    (tmp_path / "policy.h").write_text(header)
    (tmp_path / "policy.c").write_text(source)
    obs = rng.normal(size=(100, 3)).astype(np.float32)
    np.testing.assert_allclose(_compile(tmp_path, "policy")(obs), run_ir(ir, obs), atol=1e-5, rtol=0)
