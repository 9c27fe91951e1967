"""transformers' own common model tests (`ModelTesterMixin`) run against AU-MLT.

The suite is not in the transformers wheel. The PyPI sdist of the installed version ships
`tests/test_modeling_common.py`, which is fetched once with pip, extracted atomically into
`~/.cache/au_mlt/transformers-tests/<version>/` and imported from there. Its two relative imports name modules
the sdist does not ship: `ExportTesterMixin` (torch.export / ONNX export tests, a base class of
`ModelTesterMixin`) and `GenerationTesterMixin` (only used to check that a model that cannot generate does not
inherit it); both are empty stand-ins here, so the export tests are not run. Without the suite the module fails
to import and the run reports the error; it never skips silently.

AU-MLT is an encoder with a label decoder on top, not an encoder-decoder (`is_encoder_decoder=False`), so the
mixin checks the encoder's `hidden_states` and `attentions` and the tester below describes the ViT encoder.
"""

import os
import subprocess
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path

import pytest
import torch
import transformers
from conftest import NUM_TOKENS, TINY_VISION, tiny_config

from modeling_au_mlt import AUMLTForImageClassification, AUMLTModel

SUITE_DIR = Path.home() / ".cache" / "au_mlt" / "transformers-tests" / transformers.__version__
STAND_INS = {
    "exporters/test_export.py": "ExportTesterMixin",
    "generation/test_utils.py": "GenerationTesterMixin",
}


def fetch_suite(target: Path) -> None:
    """Download the transformers sdist of the installed version and lay out its common tests as a package."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as work:
        work = Path(work)
        command = [sys.executable, "-m", "pip", "download", f"transformers=={transformers.__version__}"]
        command += ["--no-binary", ":all:", "--no-deps", "--quiet", "--dest", str(work)]
        completed = subprocess.run(command, capture_output=True, text=True)
        archives = list(work.glob("transformers-*.tar.gz"))
        if completed.returncode != 0 or len(archives) != 1:
            raise RuntimeError(
                f"cannot fetch transformers' common model tests: `{' '.join(command)}` exited "
                f"{completed.returncode} with {[a.name for a in archives]}:\n{completed.stderr[-2000:]}"
            )
        package = work / "suite" / "transformers_tests"
        for folder in ("", "exporters", "generation"):
            (package / folder).mkdir(parents=True, exist_ok=True)
            (package / folder / "__init__.py").write_text("")
        with tarfile.open(archives[0]) as archive:
            member = f"{archives[0].name.removesuffix('.tar.gz')}/tests/test_modeling_common.py"
            (package / "test_modeling_common.py").write_bytes(archive.extractfile(member).read())
        for path, name in STAND_INS.items():
            (package / path).write_text(f'class {name}:\n    """Stand-in: the sdist does not ship {path}."""\n')
        try:
            os.rename(work / "suite", target)
        except OSError:
            if not target.is_dir():  # another process may have put the same suite in place first
                raise


if not (SUITE_DIR / "transformers_tests" / "test_modeling_common.py").is_file():
    fetch_suite(SUITE_DIR)
sys.path.insert(0, str(SUITE_DIR))
from transformers_tests.test_modeling_common import ModelTesterMixin, floats_tensor  # noqa: E402

sys.path.remove(str(SUITE_DIR))


class AUMLTModelTester:
    """Tiny AU-MLT configurations and inputs; sizes describe the ViT encoder, which the mixin checks."""

    def __init__(self, parent, batch_size: int = 3, **config_overrides):
        self.parent = parent
        self.batch_size = batch_size
        self.config_overrides = config_overrides
        self.num_channels, self.image_size = 3, TINY_VISION["image_size"]
        self.hidden_size = TINY_VISION["hidden_size"]
        self.num_hidden_layers = TINY_VISION["num_hidden_layers"]
        self.num_attention_heads = TINY_VISION["num_attention_heads"]
        self.seq_length = NUM_TOKENS
        self.num_labels = 12
        self.is_training = True
        # With output_hidden_states, both the encoder's and the decoder's hidden states are added to the output.
        self.num_hidden_states_types = 2

    def get_config(self):
        return tiny_config(**self.config_overrides)

    def prepare_config_and_inputs_for_common(self):
        pixels = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        return self.get_config(), {"pixel_values": pixels}


class AUMLTCommonTests(ModelTesterMixin):
    all_model_classes = (AUMLTModel, AUMLTForImageClassification)
    config_overrides: dict = {}
    test_resize_embeddings = False  # no token embeddings
    # The mixin dates models by a copyright line, which ours lack; `_init_weights` must cover every weight anyway.
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = AUMLTModelTester(self, **self.config_overrides)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels:
            # The mixin adds labels only for the classes in transformers' own task mappings.
            generator = torch.Generator().manual_seed(0)
            shape = (self.model_tester.batch_size, self.model_tester.num_labels)
            inputs_dict["labels"] = torch.randint(0, 2, shape, generator=generator).float()
        return inputs_dict

    def test_model_get_set_embeddings(self):
        # As ViT's tests do: the input embeddings of an image model are its patch stem, not an nn.Embedding.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), torch.nn.Module)
            self.assertIsNone(model.get_output_embeddings())

    def test_reverse_loading_mapping(self):
        # AU-MLT saves the names of `state_dict()` on purpose (`AUMLTPreTrainedModel.save_pretrained`), so the
        # ViT encoder's legacy renaming is not applied on save; the rest of the check (reload both ways) stands.
        super().test_reverse_loading_mapping(check_keys_were_modified=False)


class AUMLTPatchStemTest(AUMLTCommonTests, unittest.TestCase):
    """The ViT's patch stem; at the tiny size the rule of `decoder_cross_attention="auto"` picks "projected"."""


class AUMLTConvStemAbsorbedTest(AUMLTCommonTests, unittest.TestCase):
    """The conv stem, with the absorbed cross-attention; the subclass is covered above."""

    all_model_classes = (AUMLTModel,)
    config_overrides = {"encoder_stem": "conv", "decoder_cross_attention": "absorbed"}
    # The absorbed form does not use the cross-attention key bias (softmax is invariant to it): no gradient.
    test_all_params_have_gradient = False


def test_a_suite_that_cannot_be_fetched_is_an_error(tmp_path, monkeypatch):
    failed = subprocess.CompletedProcess([], returncode=1, stdout="", stderr="no index reachable")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: failed)
    with pytest.raises(RuntimeError, match="no index reachable"):
        fetch_suite(tmp_path / "suite")
    assert list(tmp_path.iterdir()) == []  # nothing half-extracted left behind
