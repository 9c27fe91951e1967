"""AU-MLT: a multi-label transformer for facial Action Unit detection, as a transformers package."""

from .configuration_au_mlt import ABAW_AUS, AUMLTConfig

__all__ = ["ABAW_AUS", "AUMLTConfig"]
