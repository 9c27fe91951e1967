"""Hub-ready model folders: weights, remote code, image processor and endpoint handler in one place.

A folder written by `save_for_hub` loads with `AutoModel.from_pretrained(folder, trust_remote_code=True)`
and `pipeline("image-classification", model=folder, trust_remote_code=True)` on a machine without this
package, and is what `push_to_hub.py` uploads.
"""

import shutil
import tempfile
from pathlib import Path

import transformers

from ..atomic_io import replace_dir
from ..configuration_au_mlt import AUMLTConfig

# The PIL processor needs no torchvision; the default class would fall back to it with a warning anyway. Releases
# before the split have only `ViTImageProcessor` (PIL-based); the fallback is looked up only then, as merely
# naming it warns where torchvision is missing.
ImageProcessor = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
VIT_MEAN = VIT_STD = [0.5, 0.5, 0.5]
HANDLER_FILE = Path(__file__).with_name("handler.py")


def image_processor_for(config: AUMLTConfig) -> transformers.BaseImageProcessor:
    """The ViT image processor (resize to the encoder's input size, ViT normalisation) for `config`."""
    size = config.vision_config.image_size
    height, width = (size, size) if isinstance(size, int) else size
    return ImageProcessor(
        do_resize=True, size={"height": height, "width": width}, image_mean=VIT_MEAN, image_std=VIT_STD
    )


def save_for_hub(model: transformers.PreTrainedModel, output_dir: str | Path, image_processor=None) -> Path:
    """Write `model` as a Hub-ready folder, atomically: nothing appears at `output_dir` until it is complete.

    Contents: `config.json` (with `auto_map`), both code files, `model.safetensors`,
    `preprocessor_config.json` and `handler.py` for Inference Endpoints. An existing `output_dir` is
    replaced as a whole, except for files this function does not write (e.g. `trainer_state.json`),
    which are kept.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        # transformers' default weight names, which every 5.x release loads (5.0 reads no other); the model's own
        # default, `state_dict()` names for Trainer checkpoints (see `AUMLTModel.save_pretrained`), only newer ones.
        model.save_pretrained(staging, save_original_format=True)
        (image_processor or image_processor_for(model.config)).save_pretrained(staging)
        shutil.copyfile(HANDLER_FILE, staging / "handler.py")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, output_dir, keep_other_entries=True)
    return output_dir


__all__ = ["image_processor_for", "save_for_hub"]
