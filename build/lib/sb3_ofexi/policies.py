"""Where ``SACOFEXiPolicy`` lived in 0.1.0: models saved then name their policy class by this
path (SB3 cloudpickles ``policy_class``), so it stays importable. New code: ``sb3_ofexi.sac_ofexi``."""

from sb3_ofexi.sac_ofexi.policies import MlpPolicy, SACOFEXiPolicy

__all__ = ["MlpPolicy", "SACOFEXiPolicy"]
