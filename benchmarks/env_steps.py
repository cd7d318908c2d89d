"""env-steps/s of SAC_OFEXi at OFE-Big size / stock SB3 SAC-Big (1024x2), training every step.

Reported as the ratio of steps/s (> 1: SAC_OFEXi is faster), measured interleaved.
"""

from __future__ import annotations

from stable_baselines3 import SAC

from benchmarks.common import ENV, interleaved_ratio, report, script_main
from sb3_ofexi import SAC_OFEXi


def measure(quick: bool = True, device: str = "cpu") -> dict[str, float]:
    steps, reps = (60, 3) if quick else (1000, 5)
    start = 300
    ofe = SAC_OFEXi(
        "MlpPolicy", ENV, preset="ofe-big", learning_starts=start, ofe_pretrain_steps=0, seed=0, device=device
    )
    sac = SAC("MlpPolicy", ENV, policy_kwargs=dict(net_arch=[1024, 1024]), learning_starts=start, seed=0, device=device)
    for model in (ofe, sac):
        model.learn(start + 5)  # fill the buffer, warm up
    # time(sac) / time(ofe) for the same number of steps == steps/s(ofe) / steps/s(sac)
    ratio, t_sac, t_ofe = interleaved_ratio(
        lambda: sac.learn(steps, reset_num_timesteps=False),
        lambda: ofe.learn(steps, reset_num_timesteps=False),
        reps,
        device,
    )
    report(
        "steps_per_s_ofe_big_over_sac_big",
        ratio,
        None,
        f"OFE-Big {steps / t_ofe:.1f} env-steps/s vs SAC-Big {steps / t_sac:.1f} env-steps/s on {ENV}",
    )
    return {"steps_per_s_ofe_big_over_sac_big": ratio}


def main() -> None:
    script_main(measure, __doc__)


if __name__ == "__main__":
    main()
