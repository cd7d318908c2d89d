# python tests/data/make_pre_redesign.py (from the repository root) wrote the files it names, at commit 067ddbb + the golden test.
"""Write tests/data/sac_ofexi_pre_redesign.{zip,json} and _buffer.pkl: a prune-b model saved while its
thetas learn (diagnostics and xi_record included), by the code before the redesign (issue 26)."""

import json
import pathlib

import numpy as np
import torch as th

from sb3_ofexi import SAC_OFEXi

th.manual_seed(0)
np.random.seed(0)
th.set_num_threads(1)
data = pathlib.Path("tests/data")
model = SAC_OFEXi(
    "MlpPolicy",
    "Pendulum-v1",
    preset="prune-b",
    ofe_layers=2,
    ofe_units=8,
    policy_kwargs={"net_arch": [16, 16]},
    learning_starts=64,
    batch_size=32,
    buffer_size=1000,
    nu_ofe=1e-3,
    nu_actor=1e-3,
    nu_critic=5e-3,
    theta_lr=0.01,
    xi_start=150,
    xi_round=600,
    prune_freq=50,
    theta_diagnostics_freq=50,
    compile_step=False,
    seed=0,
    device="cpu",
)
model.learn(300)
assert model.xi_phase == "learning" and model.theta_history
model.save(data / "sac_ofexi_pre_redesign.zip")
model.save_replay_buffer(data / "sac_ofexi_pre_redesign_buffer.pkl")
obs = np.random.default_rng(2).uniform(-1, 1, (4, 3)).astype(np.float32)
actions, _ = model.predict(obs, deterministic=True)
(data / "sac_ofexi_pre_redesign.json").write_text(
    json.dumps(
        {
            "obs": obs.tolist(),
            "actions": actions.tolist(),
            "param_counts": model.param_counts(),
            "unit_counts": model.unit_counts(),
            "num_timesteps": model.num_timesteps,
            "xi_phase": model.xi_phase,
            "theta_history_rows": len(model.theta_history),
            "xi_record": model.xi_record,
        },
        indent=1,
    )
)
print(model.unit_counts(), model.param_counts())
