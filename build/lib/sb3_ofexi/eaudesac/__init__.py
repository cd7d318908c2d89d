from sb3_ofexi.eaudesac.eaudesac import EauDeSAC
from sb3_ofexi.eaudesac.policies import CriticPopulation, EauDeSACPolicy, MlpPolicy

__all__ = ["CriticPopulation", "EauDeSAC", "EauDeSACPolicy", "MlpPolicy"]
