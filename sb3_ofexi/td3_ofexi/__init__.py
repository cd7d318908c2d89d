from sb3_ofexi.td3_ofexi.policies import MlpPolicy, MultiInputPolicy, TD3OFEXiPolicy
from sb3_ofexi.td3_ofexi.td3_ofexi import TD3_OFEXi

__all__ = ["MlpPolicy", "MultiInputPolicy", "TD3OFEXiPolicy", "TD3_OFEXi"]
