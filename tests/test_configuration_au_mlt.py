import pytest
from conftest import TINY_VISION, tiny_config
from transformers import ViTConfig

from modeling_au_mlt import ABAW_AUS, AUMLTConfig
from modeling_au_mlt.training.arguments import DEFAULT_JOB


def test_defaults_are_the_abaw_label_set_and_multi_label():
    config = AUMLTConfig()
    assert config.label_names == list(ABAW_AUS)
    assert config.label2id["AU26"] == 11
    assert config.problem_type == "multi_label_classification"
    assert isinstance(config.vision_config, ViTConfig)
    assert (config.decoder_layers, config.decoder_attention_heads) == (2, 8)
    assert config.label_self_attention and config.head_type == "shared"
    assert config.decision_thresholds() == [0.5] * 12


def test_vision_config_accepts_dict_instance_and_none():
    from_dict = AUMLTConfig(vision_config=TINY_VISION)
    from_instance = AUMLTConfig(vision_config=ViTConfig(**TINY_VISION))
    assert from_dict.vision_config.hidden_size == from_instance.vision_config.hidden_size == 32
    assert AUMLTConfig(vision_config=None).vision_config.hidden_size == ViTConfig().hidden_size


def test_decoder_width_and_ffn_derive_from_encoder_unless_given():
    assert tiny_config().hidden_size == 32 and tiny_config().ffn_dim == 128
    config = tiny_config(decoder_hidden_size=48, decoder_ffn_dim=96)
    assert (config.hidden_size, config.ffn_dim) == (48, 96)


def test_custom_label_set_round_trips(tmp_path):
    config = tiny_config(id2label={0: "AU1", 1: "AU9", 2: "AU17"}, thresholds=[0.3, 0.5, 0.7], smoothing_window=9)
    config.save_pretrained(tmp_path)
    loaded = AUMLTConfig.from_pretrained(tmp_path)
    assert loaded.label_names == ["AU1", "AU9", "AU17"]
    assert loaded.label2id == {"AU1": 0, "AU9": 1, "AU17": 2}
    assert loaded.thresholds == [0.3, 0.5, 0.7] and loaded.smoothing_window == 9
    assert loaded.vision_config.patch_size == 8


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"decoder_attention_heads": 5}, "decoder_attention_heads"),
        ({"decoder_hidden_size": 30, "decoder_attention_heads": 4}, "decoder_attention_heads"),
        ({"thresholds": [0.5] * 3}, "thresholds"),
        ({"thresholds": [1.5] * 12}, "thresholds"),
        ({"id2label": {}}, "id2label"),
        ({"head_type": "mlp"}, "head_type"),
        ({"decoder_layers": 0}, "decoder_layers"),
        ({"decoder_dropout": 1.0}, "decoder_dropout"),
        ({"smoothing_window": 0}, "smoothing_window"),
        ({"decoder_initializer": "xavier"}, "decoder_initializer"),
        ({"temporal_layers": -1}, "temporal_layers"),
        ({"temporal_window": 0}, "temporal_window"),
        ({"temporal_layers": 1, "temporal_attention_heads": 5}, "temporal_attention_heads"),
        ({"temporal_attention_scope": "frames"}, "temporal_attention_scope"),
    ],
)
def test_invalid_values_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"encoder_stem": "resnet"},
        {"encoder_stem": "conv", "vision_config": {**TINY_VISION, "patch_size": 12}},
        {"encoder_stem": "conv", "encoder_stem_channels": [16, 32]},
        {"encoder_stem": "conv", "encoder_stem_channels": [16, 0, 32]},
    ],
)
def test_invalid_stem_settings_raise_naming_the_field(overrides):
    with pytest.raises(ValueError, match="encoder_stem"):
        tiny_config(**overrides)


def test_stem_channels_default_doubles_per_stage_and_round_trips(tmp_path):
    assert tiny_config(encoder_stem="conv").stem_channels == [32, 64, 128]
    config = tiny_config(encoder_stem="conv", encoder_stem_channels=[8, 16, 24], decoder_norm_first=True)
    config.save_pretrained(tmp_path)
    loaded = type(config).from_pretrained(tmp_path)
    assert loaded.stem_channels == [8, 16, 24] and loaded.decoder_norm_first and loaded.encoder_stem == "conv"


@pytest.mark.parametrize(
    "overrides",
    [{"decoder_cross_attention": "fast"}, {"decoder_cross_attention": "absorbed", "decoder_attention_dropout": 0.1}],
)
def test_invalid_cross_attention_settings_raise_naming_the_field(overrides):
    with pytest.raises(ValueError, match="decoder_cross_attention"):
        tiny_config(**overrides)


MAIN_JOB = {key: DEFAULT_JOB[key] for key in ("vision_hidden_size", "image_size", "patch_size")}


@pytest.mark.parametrize(
    "vision, heads, form",
    [
        # N = 50 tokens, d = 384: absorbed 12 * 384 + 8 * 12 * 50 = 9408 < projected 50 * 384 + 12 * 50 = 19800
        ({"hidden_size": 384, "num_attention_heads": 6, "image_size": 112, "patch_size": 16}, 8, "absorbed"),
        # N = 197, d = 768: 28128 < 153660
        ({"hidden_size": 768, "num_attention_heads": 12, "image_size": 224, "patch_size": 16}, 8, "absorbed"),
        # The main job: N = 65, d = 128: 4656 < 9100
        (
            {
                "hidden_size": MAIN_JOB["vision_hidden_size"],
                "num_attention_heads": 2,
                "image_size": MAIN_JOB["image_size"],
                "patch_size": MAIN_JOB["patch_size"],
            },
            DEFAULT_JOB["decoder_attention_heads"],
            "absorbed",
        ),
        # The tests' tiny model: N = 17, d = 32: 1200 > 748
        (TINY_VISION, 4, "projected"),
    ],
)
def test_auto_cross_attention_takes_the_form_with_fewer_multiply_adds(vision, heads, form):
    config = AUMLTConfig(vision_config=vision, decoder_attention_heads=heads)
    assert config.decoder_cross_attention == "auto" and config.cross_attention_form == form
    # Attention dropout would make the absorbed form inexact: auto keeps the projected one.
    dropped = AUMLTConfig(vision_config=vision, decoder_attention_heads=heads, decoder_attention_dropout=0.1)
    assert dropped.cross_attention_form == "projected"
    assert AUMLTConfig(vision_config=vision, decoder_cross_attention="projected").cross_attention_form == "projected"


def test_auto_map_names_the_config_and_both_model_classes_unless_given():
    assert AUMLTConfig().auto_map == {
        "AutoConfig": "configuration_au_mlt.AUMLTConfig",
        "AutoModel": "modeling_au_mlt.AUMLTModel",
        "AutoModelForImageClassification": "modeling_au_mlt.AUMLTForImageClassification",
    }
    older = {"AutoModel": "modeling_au_mlt.AUMLTModel"}
    assert AUMLTConfig(auto_map=older).auto_map == older
