"""AU-MLT: a multi-label transformer for facial Action Unit detection, as a transformers package.

Importing the package registers `AUMLTConfig` with `AutoConfig`, `AUMLTModel` with `AutoModel` and
`AUMLTForImageClassification` with `AutoModelForImageClassification` (the image-classification pipeline), and
marks them so `save_pretrained` ships the two code files; the config's `auto_map` names all three, so a saved
folder loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .configuration_au_mlt import ABAW_AUS, AUMLTConfig
from .modeling_au_mlt import AUMLTForImageClassification, AUMLTModel, AUMLTOutput, AUMLTPreTrainedModel

AutoConfig.register(AUMLTConfig.model_type, AUMLTConfig, exist_ok=True)
AutoModel.register(AUMLTConfig, AUMLTModel, exist_ok=True)
AutoModelForImageClassification.register(AUMLTConfig, AUMLTForImageClassification, exist_ok=True)
AUMLTConfig.register_for_auto_class()
AUMLTModel.register_for_auto_class("AutoModel")
AUMLTForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "ABAW_AUS",
    "AUMLTConfig",
    "AUMLTForImageClassification",
    "AUMLTModel",
    "AUMLTOutput",
    "AUMLTPreTrainedModel",
]
