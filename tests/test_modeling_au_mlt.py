import dataclasses
import math

import pytest
import torch
from conftest import NUM_TOKENS, TINY_VISION, random_pixels, tiny_config
from transformers import AttentionInterface, ViTConfig, ViTModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from modeling_au_mlt import AUMLTConfig, AUMLTForImageClassification, AUMLTModel, AUMLTOutput
from modeling_au_mlt.modeling_au_mlt import AUMLTAbsorbedCrossAttention, AUMLTAttention, expand_mask


def eval_model(attn_implementation: str = "sdpa", **overrides) -> AUMLTModel:
    """A seeded tiny model in eval mode; attention weights come back only with `attn_implementation="eager"`."""
    torch.manual_seed(0)
    model = AUMLTModel(tiny_config(**overrides)).eval()
    model.set_attn_implementation(attn_implementation)
    return model


@pytest.mark.parametrize(
    "labels",
    [
        ["AU1"],
        ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"],
        [f"AU{i}" for i in range(1, 28)],
    ],
)
@pytest.mark.parametrize("decoder_hidden_size", [None, 24])
def test_output_shapes_for_label_sets(labels, decoder_hidden_size):
    model = eval_model("eager", id2label=dict(enumerate(labels)), decoder_hidden_size=decoder_hidden_size)
    out = model(random_pixels(3), output_attentions=True, output_hidden_states=True)
    width = decoder_hidden_size or 32
    assert isinstance(out, AUMLTOutput)
    assert out.logits.shape == (3, len(labels))
    assert out.label_hidden_states.shape == (3, len(labels), width)
    assert out.encoder_last_hidden_state.shape == (3, NUM_TOKENS, 32)
    assert len(out.cross_attentions) == 2 and out.cross_attentions[-1].shape == (3, 4, len(labels), NUM_TOKENS)
    assert len(out.decoder_attentions) == 2 and out.decoder_attentions[0].shape == (3, 4, len(labels), len(labels))
    assert len(out.decoder_hidden_states) == 3 and len(out.hidden_states) == 3
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 2, NUM_TOKENS, NUM_TOKENS)  # the ViT's
    assert out.loss is None


def test_attention_outputs_absent_unless_requested():
    out = eval_model("eager")(random_pixels(2))
    assert out.cross_attentions is None and out.decoder_attentions is None and out.decoder_hidden_states is None
    assert out.attentions is None and out.hidden_states is None


def test_sdpa_returns_no_attention_weights_as_transformers_models_do():
    out = eval_model()(random_pixels(2), output_attentions=True, output_hidden_states=True)
    assert out.cross_attentions is None and out.decoder_attentions is None and out.attentions is None
    assert len(out.hidden_states) == 3 and len(out.decoder_hidden_states) == 3


def test_cross_attention_rows_are_distributions():
    out = eval_model("eager")(random_pixels(2), output_attentions=True)
    for weights in out.cross_attentions + out.decoder_attentions:
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_batched_equals_one_by_one():
    model = eval_model()
    pixels = random_pixels(4)
    batched = model(pixels).logits
    single = torch.cat([model(pixels[i : i + 1]).logits for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_loss_ignores_unannotated_entries_like_a_hand_computation():
    model = eval_model(id2label={0: "AU1", 1: "AU2", 2: "AU4"})
    labels = torch.tensor([[1.0, -1.0, 0.0], [-1.0, -1.0, 1.0]])
    out = model(random_pixels(2), labels=labels)
    terms = []
    for row, label_row in zip(out.logits.tolist(), labels.tolist()):
        for logit, label in zip(row, label_row):
            if label != -1:
                p = 1 / (1 + math.exp(-logit))
                terms.append(-(label * math.log(p) + (1 - label) * math.log(1 - p)))
    assert out.loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    # Changing an ignored entry's logit target changes nothing.
    other = model(random_pixels(2), labels=labels.where(labels != -1, torch.zeros_like(labels)))
    assert other.loss.item() != pytest.approx(out.loss.item())


def test_every_parameter_receives_a_finite_gradient():
    torch.manual_seed(0)
    model = AUMLTModel(tiny_config(decoder_hidden_size=24)).train()
    labels = torch.randint(0, 2, (3, 12)).float()
    model(random_pixels(3), labels=labels).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_the_same_gradients():
    labels = torch.randint(0, 2, (2, 12), generator=torch.Generator().manual_seed(1)).float()
    grads = []
    for checkpointing in (False, True):
        model = eval_model()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        model(random_pixels(2), labels=labels).loss.backward()
        grads.append(model.label_embeddings.grad.clone())
    assert all(layer.gradient_checkpointing for layer in model.layers)
    torch.testing.assert_close(grads[0], grads[1])


def test_head_parameter_counts_shared_vs_per_label():
    shared, per_label = eval_model(), eval_model(head_type="per_label")
    head_size = 32 + 1
    assert sum(p.numel() for p in shared.head.parameters()) == head_size
    assert sum(p.numel() for p in per_label.head.parameters()) == 12 * head_size
    total = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert total(per_label) - total(shared) == 11 * head_size


def test_shared_head_is_one_map_for_all_tokens():
    model = eval_model()
    out = model(random_pixels(2))
    by_hand = out.label_hidden_states @ model.head.weight[0] + model.head.bias[0]
    torch.testing.assert_close(out.logits, by_hand)


def test_self_attention_switch_builds_no_self_attention():
    without = eval_model(label_self_attention=False)
    assert all(layer.self_attn is None for layer in without.layers)
    assert not any("self_attn" in name for name, _ in without.named_parameters())
    without.set_attn_implementation("eager")
    out = without(random_pixels(2), output_attentions=True)
    assert out.decoder_attentions is None and len(out.cross_attentions) == 2
    with_sa = eval_model()
    per_layer = 4 * (32 * 32 + 32) + 2 * 32  # q, k, v, o projections and the LayerNorm
    total = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert total(with_sa) - total(without) == 2 * per_layer


def test_without_self_attention_labels_do_not_interact():
    model = eval_model(label_self_attention=False)
    pixels = random_pixels(2)
    reference = model(pixels).logits
    with torch.no_grad():
        model.label_embeddings[0] += 1.0
    changed = model(pixels).logits
    assert not torch.allclose(changed[:, 0], reference[:, 0])
    torch.testing.assert_close(changed[:, 1:], reference[:, 1:])


def test_sdpa_and_eager_give_the_same_logits():
    model = eval_model()
    pixels = random_pixels(3)
    assert model.config._attn_implementation == "sdpa"
    sdpa_logits = model(pixels).logits
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == model.config.vision_config._attn_implementation == "eager"
    torch.testing.assert_close(model(pixels).logits, sdpa_logits, atol=1e-5, rtol=1e-5)


def test_a_registered_attention_implementation_serves_every_attention():
    calls = []

    def counting_sdpa(module, *args, **kwargs):
        calls.append(type(module).__name__)
        return ALL_ATTENTION_FUNCTIONS["sdpa"](module, *args, **kwargs)

    AttentionInterface.register("au_mlt_test_counting_sdpa", counting_sdpa)
    model = eval_model()
    pixels = random_pixels(2)
    expected = model(pixels).logits
    model.set_attn_implementation("au_mlt_test_counting_sdpa")
    torch.testing.assert_close(model(pixels).logits, expected)
    # 2 decoder layers x (self + cross) and the 2 ViT layers
    assert sorted(calls) == ["AUMLTAttention"] * 4 + ["ViTAttention"] * 2


def test_expand_mask_shares_one_boolean_mask_across_heads():
    mask = torch.rand(2, 4, 5) > 0.5
    per_head = torch.rand(2, 3, 4, 5) > 0.5
    assert expand_mask(None) is None
    assert torch.equal(expand_mask(mask[0].int()), mask[0][None, None])  # (queries, keys)
    assert torch.equal(expand_mask(mask.int()), mask[:, None])  # (batch, queries, keys)
    assert torch.equal(expand_mask(per_head), per_head)


def test_masks_block_attention_in_both_paths():
    model = eval_model("eager")
    pixels = random_pixels(2)
    cross_mask = torch.ones(12, NUM_TOKENS, dtype=torch.bool)
    cross_mask[:, 5:] = False  # only CLS and the first 4 patches are visible
    self_mask = torch.eye(12, dtype=torch.bool)  # each label sees only itself
    out = model(
        pixels, cross_attention_mask=cross_mask[None], self_attention_mask=self_mask[None], output_attentions=True
    )
    assert torch.all(out.cross_attentions[0][..., 5:] == 0)
    assert torch.all(out.decoder_attentions[0] * (~self_mask) == 0)
    model.set_attn_implementation("sdpa")
    sdpa = model(pixels, cross_attention_mask=cross_mask[None], self_attention_mask=self_mask[None]).logits
    torch.testing.assert_close(sdpa, out.logits, atol=1e-5, rtol=1e-5)
    # Hidden patches cannot matter: perturbing the image where no label may look changes nothing.
    assert not torch.allclose(sdpa, model(pixels).logits)


def test_tuple_output_when_return_dict_is_false():
    model = eval_model()
    as_tuple = model(random_pixels(1), return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], model(random_pixels(1)).logits)


def test_trainer_gathers_only_the_logits():
    # Trainer's evaluation gathers every output field besides the loss that the config does not list.
    fields = {field.name for field in dataclasses.fields(AUMLTOutput)}
    assert set(AUMLTConfig.keys_to_ignore_at_inference) == fields - {"loss", "logits"}


def test_from_encoder_pretrained_copies_every_encoder_weight(tmp_path):
    torch.manual_seed(3)
    encoder = ViTModel(ViTConfig(**TINY_VISION), add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "vit")
    model = AUMLTModel.from_encoder_pretrained(str(tmp_path / "vit"), decoder_attention_heads=4, id2label={0: "AU12"})
    source = encoder.state_dict()
    target = model.encoder.state_dict()
    assert source.keys() == target.keys()
    for name, tensor in source.items():
        torch.testing.assert_close(target[name], tensor, rtol=0, atol=0, msg=name)
    assert model.config.vision_config.hidden_size == 32 and model.config.label_names == ["AU12"]


def test_conv_stem_gives_the_patch_stem_token_grid():
    patch, conv = eval_model(), eval_model("eager", encoder_stem="conv")
    pixels = random_pixels(2)
    patch_tokens = patch.encoder.embeddings.patch_embeddings(pixels)
    conv_tokens = conv.encoder.embeddings.patch_embeddings(pixels)
    assert conv_tokens.shape == patch_tokens.shape == (2, NUM_TOKENS - 1, 32)
    out = conv(pixels, output_attentions=True)
    assert out.encoder_last_hidden_state.shape == (2, NUM_TOKENS, 32)
    assert out.cross_attentions[-1].shape == (2, 4, 12, NUM_TOKENS)
    # 32 px at stride 8: three stride-2 stages of the default channels, then the 1x1 projection to the width.
    stem = conv.encoder.embeddings.patch_embeddings
    convs = [layer for layer in stem.stages if isinstance(layer, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (3, 32, (2, 2)),
        (32, 64, (2, 2)),
        (64, 128, (2, 2)),
    ]
    assert (stem.projection.in_channels, stem.projection.out_channels, stem.projection.kernel_size) == (
        128,
        32,
        (1, 1),
    )


def test_conv_stem_token_follows_its_receptive_field():
    model = eval_model(encoder_stem="conv", encoder_stem_channels=[4, 8, 8])
    stem = model.encoder.embeddings.patch_embeddings
    pixels = random_pixels(1)
    changed = pixels.clone()
    changed[..., 24:, 24:] += 1.0  # the bottom-right 8x8 cell only
    delta = (stem(changed) - stem(pixels)).abs().sum(-1)[0].view(4, 4)  # (grid rows, grid columns)
    # 3x3 convolutions with padding see one pixel across a cell border per stage: the top-left cells stay put.
    assert delta[3, 3] > 0 and torch.all(delta[:2, :2] == 0)


def test_conv_stem_initialisation():
    model = eval_model(encoder_stem="conv")
    stem = model.encoder.embeddings.patch_embeddings
    first = stem.stages[0]
    # He initialisation, fan-out mode: std sqrt(2 / (out_channels * 3 * 3)).
    assert first.weight.std().item() == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.15)
    for norm in (layer for layer in stem.stages if isinstance(layer, torch.nn.BatchNorm2d)):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
        assert torch.all(norm.running_mean == 0) and torch.all(norm.running_var == 1)
    assert stem.projection.weight.std().item() == pytest.approx(0.02, rel=0.2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"encoder_stem": "conv"},
        {"decoder_norm_first": True},
        {"encoder_stem": "conv", "decoder_norm_first": True, "label_self_attention": False},
    ],
)
def test_every_parameter_of_each_variant_receives_a_gradient(overrides):
    torch.manual_seed(0)
    model = AUMLTModel(tiny_config(**overrides)).train()
    labels = torch.randint(0, 2, (3, 12)).float()
    model(random_pixels(3), labels=labels).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_conv_stem_batch_norm_uses_running_statistics_in_eval_mode():
    model = eval_model(encoder_stem="conv")
    model.train()
    model(random_pixels(8, seed=1))  # one training step's forward updates the running statistics
    norm = model.encoder.embeddings.patch_embeddings.stages[1]
    assert norm.num_batches_tracked.item() == 1 and not torch.all(norm.running_mean == 0)
    model.eval()
    pixels = random_pixels(4)
    torch.testing.assert_close(model(pixels).logits[:1], model(pixels[:1]).logits, atol=1e-5, rtol=1e-5)


def test_conv_stem_with_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    labels = torch.randint(0, 2, (2, 12), generator=torch.Generator().manual_seed(1)).float()
    for checkpointing in (False, True):
        model = eval_model(encoder_stem="conv", decoder_dropout=0.0)
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        model(random_pixels(2), labels=labels).loss.backward()
        grads.append(model.encoder.embeddings.patch_embeddings.stages[0].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_norm_first_layer_by_hand():
    model = eval_model(decoder_norm_first=True, decoder_layers=1, label_self_attention=False)
    layer = model.layers[0]
    pixels = random_pixels(2)
    out = model(pixels, output_hidden_states=True)
    tokens = model.label_embeddings.expand(2, -1, -1)
    image = out.encoder_last_hidden_state
    after_cross = tokens + layer.cross_attn(layer.cross_attn_layer_norm(tokens), image)[0]
    after_mlp = after_cross + layer.mlp(layer.final_layer_norm(after_cross))
    torch.testing.assert_close(out.decoder_hidden_states[-1], after_mlp)
    torch.testing.assert_close(out.logits, model.head(model.final_layer_norm(after_mlp)))


def test_from_encoder_pretrained_with_conv_stem_keeps_the_blocks_and_reports_the_stem(tmp_path, caplog):
    torch.manual_seed(3)
    encoder = ViTModel(ViTConfig(**TINY_VISION), add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "vit")
    with caplog.at_level("WARNING"):
        model = AUMLTModel.from_encoder_pretrained(
            str(tmp_path / "vit"), encoder_stem="conv", decoder_attention_heads=4
        )
    source, target = encoder.state_dict(), model.encoder.state_dict()
    stem_prefix = "embeddings.patch_embeddings."
    assert {name for name in source if not name.startswith(stem_prefix)} == {
        name for name in target if not name.startswith(stem_prefix)
    }
    for name, tensor in source.items():
        if not name.startswith(stem_prefix):
            torch.testing.assert_close(target[name], tensor, rtol=0, atol=0, msg=name)
    assert "embeddings.patch_embeddings.stages.0.weight" in caplog.text and "newly initialised" in caplog.text
    assert model.config.encoder_stem == "conv"


@pytest.mark.parametrize("head_type", ["shared", "per_label"])
def test_glorot_initializer_draws_each_matrix_within_its_fan_bound(head_type):
    torch.manual_seed(0)
    model = AUMLTModel(tiny_config(decoder_initializer="glorot", decoder_hidden_size=24, head_type=head_type))
    # Glorot-uniform(fan_in, fan_out): U(-b, b), b = sqrt(6 / (fan_in + fan_out)), std b / sqrt(3).
    matrices = {
        "label_embeddings (12 -> 24)": (model.label_embeddings, 12, 24),
        "head (24 -> 1 per map)": (model.head.weight, 24, 1),
        "input projection (32 -> 24)": (model.input_projection.weight, 32, 24),
        "cross-attention value (24 -> 24)": (model.layers[0].cross_attn.v_proj.weight, 24, 24),
        "MLP fc1 (24 -> 96)": (model.layers[1].mlp.fc1.weight, 24, 96),
    }
    for name, (weight, fan_in, fan_out) in matrices.items():
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert weight.abs().max().item() <= bound, name
        if weight.numel() >= 200:
            assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15), name
    assert torch.all(model.layers[0].cross_attn.v_proj.bias == 0)


def test_normal_initializer_uses_initializer_range():
    torch.manual_seed(0)
    model = AUMLTModel(tiny_config(decoder_initializer="normal", initializer_range=0.05))
    assert model.layers[0].mlp.fc1.weight.std().item() == pytest.approx(0.05, rel=0.1)
    assert model.label_embeddings.std().item() == pytest.approx(0.05, rel=0.15)


def projected_and_absorbed(**overrides) -> tuple[AUMLTModel, AUMLTModel]:
    """One set of weights in both cross-attention forms, with non-zero key and value biases."""
    torch.manual_seed(0)
    projected = AUMLTModel(tiny_config(decoder_cross_attention="projected", decoder_dropout=0.0, **overrides))
    with torch.no_grad():  # dropping the key bias and moving the value bias must both be exact
        for layer in projected.layers:
            layer.cross_attn.k_proj.bias.normal_()
            layer.cross_attn.v_proj.bias.normal_()
    absorbed = AUMLTModel(tiny_config(decoder_cross_attention="absorbed", decoder_dropout=0.0, **overrides))
    absorbed.load_state_dict(projected.state_dict())  # strict: the same parameter names
    assert type(absorbed.layers[0].cross_attn) is AUMLTAbsorbedCrossAttention
    assert type(projected.layers[0].cross_attn) is AUMLTAttention
    return projected, absorbed


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("mask_shape", [None, (12, NUM_TOKENS), (3, 12, NUM_TOKENS)])
def test_absorbed_cross_attention_gives_the_same_outputs_and_maps(attn_implementation, mask_shape):
    pixels = random_pixels(3)
    mask = None
    if mask_shape is not None:
        mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(2)) > 0.3
        mask[..., 0] = True  # every label keeps at least one token
    outputs = []
    for model in projected_and_absorbed(decoder_hidden_size=24):
        model.eval().set_attn_implementation(attn_implementation)
        outputs.append(model(pixels, cross_attention_mask=mask, output_attentions=attn_implementation == "eager"))
    expected, got = outputs
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)
    if attn_implementation == "eager":
        for got_weights, expected_weights in zip(got.cross_attentions, expected.cross_attentions, strict=True):
            torch.testing.assert_close(got_weights, expected_weights, rtol=1e-5, atol=1e-6)


def test_absorbed_cross_attention_gives_the_same_gradients():
    labels = torch.randint(0, 2, (3, 12), generator=torch.Generator().manual_seed(1)).float()
    mask = torch.rand(3, 12, NUM_TOKENS, generator=torch.Generator().manual_seed(2)) > 0.3
    mask[..., 0] = True
    models = projected_and_absorbed()
    for model in models:
        model.train()(random_pixels(3), labels=labels, cross_attention_mask=mask).loss.backward()
    projected, absorbed = (dict(model.named_parameters()) for model in models)
    for name, parameter in projected.items():
        if name.endswith("cross_attn.k_proj.bias"):
            # Softmax is invariant to the key bias: zero gradient in one form, none in the other.
            assert absorbed[name].grad is None and parameter.grad.abs().max() < 1e-6, name
            continue
        torch.testing.assert_close(absorbed[name].grad, parameter.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_one_checkpoint_loads_into_either_form_and_either_class(tmp_path):
    projected, _ = projected_and_absorbed()
    projected.eval().save_pretrained(tmp_path)
    pixels = random_pixels(2)
    expected = projected(pixels).logits
    for model_class in (AUMLTModel, AUMLTForImageClassification):
        for form in ("projected", "absorbed"):
            loaded, info = model_class.from_pretrained(
                tmp_path, decoder_cross_attention=form, output_loading_info=True
            )
            assert not info["missing_keys"] and not info["unexpected_keys"], (model_class, form, info)
            torch.testing.assert_close(loaded.eval()(pixels).logits, expected, rtol=1e-5, atol=1e-5)
