from sb3_ofexi.polyprune.policies import MlpPolicy, PolyPruneSACPolicy
from sb3_ofexi.polyprune.polyprune_sac import PolyPruneSAC

__all__ = ["MlpPolicy", "PolyPruneSAC", "PolyPruneSACPolicy"]
