from sb3_ofexi.sac_ofexi.policies import MlpPolicy, MultiInputPolicy, SACOFEXiPolicy
from sb3_ofexi.sac_ofexi.presets import PRESETS
from sb3_ofexi.sac_ofexi.sac_ofexi import SAC_OFEXi

__all__ = ["PRESETS", "MlpPolicy", "MultiInputPolicy", "SACOFEXiPolicy", "SAC_OFEXi"]
