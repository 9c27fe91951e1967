import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import REPO_ROOT, random_pixels, run_without_package, tiny_config
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, pipeline

from modeling_au_mlt import AUMLTConfig, AUMLTForImageClassification, AUMLTModel
from modeling_au_mlt.hub.folder import image_processor_for, save_for_hub

REMOTE_LOAD = """
import json, sys
# As on a machine without this package (CI installs it editable): every import of it fails.
sys.modules["modeling_au_mlt"] = None
import torch
from safetensors.torch import load_file
from PIL import Image
import transformers
from transformers import AutoModel, AutoModelForImageClassification, pipeline
folder = sys.argv[1]
pixels = load_file(sys.argv[2])["pixels"]
classifier = pipeline("image-classification", model=folder, trust_remote_code=True)
assert type(classifier.model).__name__ == "AUMLTForImageClassification", type(classifier.model)
rows = {"pipeline": {row["label"]: row["score"] for row in classifier(Image.open(sys.argv[3]), top_k=12)}}
for auto, name in ((AutoModel, "AUMLTModel"), (AutoModelForImageClassification, "AUMLTForImageClassification")):
    model, info = auto.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(model).__name__ == name and not info["missing_keys"] and not info["unexpected_keys"], info
    model.eval()
    with torch.no_grad():
        rows[auto.__name__] = model(pixels).logits.tolist()
rows["transformers"] = transformers.__version__
print(json.dumps(rows))
"""


@pytest.fixture(scope="module", params=["patch", "conv"])
def saved_folder(request, tmp_path_factory):
    """A saved model with each encoder stem; the conv stem's BatchNorm statistics moved off their defaults."""
    torch.manual_seed(0)
    model = AUMLTModel(tiny_config(thresholds=[0.4] * 12, encoder_stem=request.param))
    with torch.no_grad():
        model.train()(random_pixels(4, seed=5))
    model.eval()
    folder = save_for_hub(model, tmp_path_factory.mktemp("hub") / "au-mlt")
    return model, folder


def test_folder_has_code_weights_processor_and_auto_map(saved_folder):
    _, folder = saved_folder
    names = {path.name for path in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "configuration_au_mlt.py",
        "modeling_au_mlt.py",
    } <= names
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_au_mlt.AUMLTConfig",
        "AutoModel": "modeling_au_mlt.AUMLTModel",
        "AutoModelForImageClassification": "modeling_au_mlt.AUMLTForImageClassification",
    }
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 32, "width": 32} and processor["image_mean"] == [0.5] * 3


@pytest.mark.parametrize("model_class", [AUMLTModel, AUMLTForImageClassification])
def test_checkpoint_keys_equal_state_dict_keys(saved_folder, model_class, tmp_path):
    # Trainer's checkpoints come from `save_pretrained` and are resumed with a plain `load_state_dict`.
    model, _ = saved_folder
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    fresh = model_class(model.config)
    result = fresh.load_state_dict(weights, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], tensor, rtol=0, atol=0)


def test_round_trip_through_from_pretrained_and_auto_classes(saved_folder):
    model, folder = saved_folder
    pixels = random_pixels(2)
    expected = model(pixels).logits
    for loader, model_class in (
        (AUMLTModel, AUMLTModel),
        (AutoModel, AUMLTModel),
        (AutoModelForImageClassification, AUMLTForImageClassification),
    ):
        loaded = loader.from_pretrained(folder).eval()
        assert type(loaded) is model_class
        torch.testing.assert_close(loaded(pixels).logits, expected, rtol=0, atol=0)
    config = AutoConfig.from_pretrained(folder)
    assert isinstance(config, AUMLTConfig) and config.thresholds == [0.4] * 12


# What transformers 5.0.0 requires (its METADATA) and this environment's newer packages do not satisfy.
OLDEST_PINS = {"5.0": ("huggingface_hub>=1.3.0,<2.0", "tokenizers>=0.22.0,<=0.23.0")}


def oldest_transformers() -> str:
    """The lower bound of transformers in setup.cfg's `install_requires`."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    (requirement,) = [
        line for line in config["options"]["install_requires"].split() if line.startswith("transformers")
    ]
    return re.search(r">=([\d.]+)", requirement).group(1)


@pytest.fixture(scope="session")
def oldest_transformers_path() -> Path:
    """A folder holding the oldest supported transformers (and the pins it needs), installed once and cached."""
    version = oldest_transformers()
    target = Path.home() / ".cache" / "au_mlt" / f"transformers-{version}"
    if not target.exists():
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "-q", "--target", str(partial)]
        # transformers alone (its other requirements are met here), then the pins with what they need
        subprocess.run([*command, "--no-deps", f"transformers=={version}"], check=True, capture_output=True)
        subprocess.run([*command, *OLDEST_PINS[version]], check=True, capture_output=True)
        partial.rename(target)
    return target


@pytest.mark.parametrize("transformers_version", ["installed", "oldest"])
def test_remote_code_loads_without_the_package(saved_folder, transformers_version, request, tmp_path):
    # Hub folders are read by whatever transformers 5.x their users have, down to setup.cfg's lower bound.
    model, folder = saved_folder
    pixels = random_pixels(2)
    save_file({"pixels": pixels}, tmp_path / "pixels.safetensors")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    image.save(image_path := tmp_path / "face.png")
    oldest = str(request.getfixturevalue("oldest_transformers_path")) if transformers_version == "oldest" else None
    pixels_file = tmp_path / "pixels.safetensors"
    rows = run_without_package(REMOTE_LOAD, folder, pixels_file, image_path, tmp_path=tmp_path, pythonpath=oldest)
    expected_version = oldest_transformers() if transformers_version == "oldest" else transformers.__version__
    assert rows["transformers"].startswith(expected_version)
    expected = model(pixels).logits
    for auto_name in ("AutoModel", "AutoModelForImageClassification"):
        torch.testing.assert_close(torch.tensor(rows[auto_name]), expected, rtol=0, atol=0)
    # The image-classification pipeline, as remote code: every AU scored with the model's sigmoid.
    image_pixels = image_processor_for(model.config)(image, return_tensors="pt").pixel_values
    probabilities = torch.sigmoid(model(image_pixels).logits)[0].tolist()
    assert rows["pipeline"] == pytest.approx(dict(zip(model.config.label_names, probabilities)), abs=1e-5)


def test_image_classification_pipeline_scores_every_au(saved_folder):
    model, folder = saved_folder
    classifier = pipeline("image-classification", model=str(folder), trust_remote_code=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    results = classifier(image, top_k=model.config.num_labels)
    assert sorted(row["label"] for row in results) == sorted(model.config.label_names)
    pixels = image_processor_for(model.config)(image, return_tensors="pt").pixel_values
    expected = dict(zip(model.config.label_names, torch.sigmoid(model(pixels).logits)[0].tolist()))
    for row in results:
        assert row["score"] == pytest.approx(expected[row["label"]], abs=1e-5)


def test_save_for_hub_replaces_outputs_but_keeps_other_files(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "trainer_state.json").write_text("{}")
    (target / "model.safetensors").write_text("stale")
    save_for_hub(AUMLTModel(tiny_config()), target)
    assert (target / "trainer_state.json").read_text() == "{}"
    assert load_file(target / "model.safetensors")
    assert [path.name for path in tmp_path.iterdir()] == ["run"]


def test_failed_save_leaves_no_folder(tmp_path, monkeypatch):
    model = AUMLTModel(tiny_config())
    monkeypatch.setattr(
        AUMLTModel, "save_pretrained", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("disk full"))
    )
    with pytest.raises(OSError, match="disk full"):
        save_for_hub(model, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_device_map_loading_places_every_weight(saved_folder):
    model, folder = saved_folder
    loaded = AUMLTModel.from_pretrained(folder, device_map="auto").eval()
    assert set(loaded._no_split_modules) == {"ViTEmbeddings", "ViTLayer", "AUMLTDecoderLayer", "AUMLTTemporalLayer"}
    assert {parameter.device.type for parameter in loaded.parameters()} == {"cpu"}
    pixels = random_pixels(1)
    torch.testing.assert_close(loaded(pixels).logits, model(pixels).logits, rtol=0, atol=0)


def test_the_image_processor_class_is_chosen_without_a_fallback_warning(tmp_path):
    # Naming `transformers.ViTImageProcessor` without torchvision installed warns that it falls back to the PIL class.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", "import modeling_au_mlt.hub.folder"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0 and "falling back" not in completed.stderr, completed.stderr
