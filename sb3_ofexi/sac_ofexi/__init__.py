from sb3_ofexi.sac_ofexi.policies import MlpPolicy, SACOFEXiPolicy
from sb3_ofexi.sac_ofexi.presets import PRESETS
from sb3_ofexi.sac_ofexi.sac_ofexi import SAC_OFEXi

__all__ = ["PRESETS", "MlpPolicy", "SACOFEXiPolicy", "SAC_OFEXi"]
