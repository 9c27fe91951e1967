"""The temporal AU-MLT: clips in, one logit row per frame; masks, causality, the frame-model start, windows."""

import itertools

import pytest
import torch
from conftest import run_without_package, tiny_config
from safetensors.torch import save_file

from modeling_au_mlt import AUMLTModel
from modeling_au_mlt.hub.folder import save_for_hub
from modeling_au_mlt.modeling_au_mlt import sliding_windows

SCOPES = ("per_label", "all_labels")


def random_clips(batch_size: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Normal random clips (batch_size, frames, 3, 32, 32) for the tiny encoder."""
    return torch.randn(batch_size, frames, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def frame_model(**overrides) -> AUMLTModel:
    torch.manual_seed(0)
    return AUMLTModel(tiny_config(**overrides)).eval()


def trained_temporal_model(scope: str = "per_label", causal: bool = False, **overrides) -> AUMLTModel:
    """A temporal model whose temporal layers are random (as after training), not the identity they start as."""
    model = AUMLTModel.from_frame_model(
        frame_model(**overrides),
        temporal_layers=2,
        temporal_window=6,
        temporal_attention_scope=scope,
        temporal_causal=causal,
    )
    with torch.no_grad():
        for parameter in model.temporal_layers.parameters():
            parameter.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(parameter.numel()))
    return model.eval()


@pytest.mark.parametrize("scope", SCOPES)
def test_from_frame_model_scores_every_frame_exactly_as_the_frame_model(scope):
    frames = frame_model()
    temporal = AUMLTModel.from_frame_model(
        frames, temporal_layers=2, temporal_window=5, temporal_attention_scope=scope
    )
    clips = random_clips(2, 5)
    mask = torch.tensor([[True, False, True, True, True], [True] * 5])
    with torch.no_grad():
        expected = frames(clips.flatten(0, 1)).logits.unflatten(0, (2, 5))
        logits = temporal.eval()(clips, frame_mask=mask).logits
    assert logits.shape == (2, 5, 12)
    assert torch.equal(logits[mask], expected[mask])
    assert torch.equal(temporal.video_logits(temporal.frame_states(clips[1])), expected[1])


def test_from_frame_model_loads_a_saved_folder_and_keeps_its_settings(tmp_path):
    frames = frame_model(thresholds=[0.3] * 12, decoder_hidden_size=24)
    folder = save_for_hub(frames, tmp_path / "frame")
    temporal = AUMLTModel.from_frame_model(str(folder), temporal_layers=1, temporal_causal=True)
    assert temporal.config.temporal_layers == 1 and temporal.config.temporal_causal
    assert temporal.config.thresholds == [0.3] * 12 and temporal.config.decoder_hidden_size == 24
    pixels = random_clips(1, 3)[0]
    with torch.no_grad():
        assert torch.equal(temporal.eval()(pixels[None]).logits[0], frames(pixels).logits)


def test_from_frame_model_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="temporal_layers >= 1"):
        AUMLTModel.from_frame_model(frame_model(), temporal_window=4)
    with pytest.raises(ValueError, match=r"only temporal_\* fields.*decoder_layers"):
        AUMLTModel.from_frame_model(frame_model(), temporal_layers=1, decoder_layers=3)
    with pytest.raises(ValueError, match="already has 2 temporal layers"):
        AUMLTModel.from_frame_model(trained_temporal_model(), temporal_layers=1)


@pytest.mark.parametrize("scope", SCOPES)
def test_a_padded_frame_changes_no_other_frame(scope):
    # Training mode with the conv stem: a padded frame must not even reach the BatchNorm batch statistics.
    model = trained_temporal_model(scope, encoder_stem="conv", decoder_dropout=0.0).train()
    clips = random_clips(2, 6)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 2] = mask[1, 5] = False
    changed = clips.clone()
    changed[0, 2] = 9.0
    changed[1, 5] = -9.0
    with torch.no_grad():
        logits = model(clips, frame_mask=mask).logits
        logits_changed = model(changed, frame_mask=mask).logits
        unmasked = model(changed).logits
    torch.testing.assert_close(logits[mask], logits_changed[mask], rtol=0, atol=0)
    assert not torch.allclose(logits[mask], unmasked[mask])  # the same frames, seen, do change the others


@pytest.mark.parametrize("scope", SCOPES)
def test_causal_model_ignores_later_frames(scope):
    causal, both_sides = trained_temporal_model(scope, causal=True), trained_temporal_model(scope)
    clips = random_clips(1, 6)
    later_changed = clips.clone()
    later_changed[0, 4:] += 2.0
    with torch.no_grad():
        for model, earlier_unchanged in ((causal, True), (both_sides, False)):
            logits, logits_changed = model(clips).logits, model(later_changed).logits
            assert torch.allclose(logits[0, :4], logits_changed[0, :4], atol=1e-6) == earlier_unchanged
        # The forward argument overrides the configuration.
        torch.testing.assert_close(
            both_sides(clips, causal=True).logits[0, :4], both_sides(later_changed, causal=True).logits[0, :4]
        )


def test_loss_averages_annotated_entries_of_present_frames():
    model = trained_temporal_model()
    clips = random_clips(2, 3)
    labels = torch.randint(0, 2, (2, 3, 12), generator=torch.Generator().manual_seed(2)).float()
    labels[0, 0, :5] = -1
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        output = model(clips, labels=labels, frame_mask=mask)
    logits, counted = output.logits, (labels != -1) & mask[..., None]
    by_hand = torch.nn.functional.binary_cross_entropy_with_logits(logits[counted], labels[counted])
    assert output.loss.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_shapes_images_and_clips():
    model = trained_temporal_model()
    with torch.no_grad():
        assert model(random_clips(3, 4)).logits.shape == (3, 4, 12)
        images = model(random_clips(3, 1)[:, 0], labels=torch.zeros(3, 12))
        assert images.logits.shape == (3, 12) and images.label_hidden_states.shape == (3, 12, 32)
        # A 4-D batch is a batch of one-frame clips.
        torch.testing.assert_close(images.logits, model(random_clips(3, 1)).logits[:, 0])
    with pytest.raises(ValueError, match="exceed temporal_window=6"):
        model(random_clips(1, 7))
    with pytest.raises(ValueError, match="frame_mask: expected shape"):
        model(random_clips(1, 3), frame_mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="5-D clip"):
        frame_model()(random_clips(1, 2))


@pytest.mark.parametrize(("scope", "shape"), [("per_label", (2, 12, 4, 4, 4)), ("all_labels", (2, 4, 48, 48))])
def test_temporal_attention_weights_on_request(scope, shape):
    model = trained_temporal_model(scope)  # 4 heads: the decoder's
    model.set_attn_implementation("eager")
    with torch.no_grad():
        output = model(random_clips(2, 4), output_attentions=True)
    assert len(output.temporal_attentions) == 2
    for weights in output.temporal_attentions:
        assert weights.shape == shape
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


@pytest.mark.parametrize(("num_frames", "window", "causal"), itertools.product(range(1, 23), (1, 2, 5, 8), (0, 1)))
def test_sliding_windows_score_each_frame_once_inside_its_window(num_frames, window, causal):
    windows = sliding_windows(num_frames, window, bool(causal))
    scored = [frame for _, _, first, last in windows for frame in range(first, last)]
    assert scored == list(range(num_frames))
    length = window if causal else min(window, num_frames)
    for start, stop, first, last in windows:
        assert 0 <= start <= first < last <= stop <= num_frames
        assert stop - start == length or (causal and stop == num_frames)
    if causal:  # each frame has at least half a window of past frames once there are that many
        assert all(frame - start >= min(frame, length // 2) for start, _, a, b in windows for frame in range(a, b))
        # A frame's window never depends on later frames: the same start in every longer sequence.
        longer = sliding_windows(num_frames + 7, window, True)
        starts = {frame: start for start, _, a, b in windows for frame in range(a, b)}
        assert all(starts[frame] == start for start, _, a, b in longer for frame in range(a, min(b, num_frames)))


def test_sliding_windows_by_hand():
    assert sliding_windows(10, 4, causal=False) == [(0, 4, 0, 3), (2, 6, 3, 5), (4, 8, 5, 7), (6, 10, 7, 10)]
    assert sliding_windows(10, 4, causal=True) == [(0, 4, 0, 4), (2, 6, 4, 6), (4, 8, 6, 8), (6, 10, 8, 10)]
    assert sliding_windows(3, 16, causal=False) == [(0, 3, 0, 3)]
    assert sliding_windows(7, 4, causal=False) == [(0, 4, 0, 3), (2, 6, 3, 5), (3, 7, 5, 7)]
    assert sliding_windows(7, 4, causal=True) == [(0, 4, 0, 4), (2, 6, 4, 6), (4, 7, 6, 7)]


@pytest.mark.parametrize("causal", [False, True])
def test_video_logits_equal_a_forward_pass_per_window(causal):
    model = trained_temporal_model()
    frames = random_clips(1, 17)[0]
    mask = torch.ones(17, dtype=torch.bool)
    mask[9] = False
    with torch.no_grad():
        logits = model.video_logits(model.frame_states(frames), mask, causal=causal)
        for start, stop, first, last in sliding_windows(17, 6, causal):
            clip = model(frames[None, start:stop], frame_mask=mask[None, start:stop], causal=causal).logits[0]
            present = mask[first:last]  # a missing frame's own logits are meaningless
            torch.testing.assert_close(logits[first:last][present], clip[first - start : last - start][present])


def test_every_parameter_receives_a_gradient_after_the_first_step():
    # The zero output maps block the gradient of the layers' other weights until they have moved once.
    model = AUMLTModel(tiny_config(temporal_layers=2, temporal_window=4, decoder_dropout=0.0)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    labels = torch.randint(0, 2, (2, 4, 12), generator=torch.Generator().manual_seed(0)).float()
    for _ in range(2):
        optimizer.zero_grad()
        model(random_clips(2, 4), labels=labels).loss.backward()
        optimizer.step()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradient_checkpointing_covers_the_temporal_layers():
    labels = torch.randint(0, 2, (2, 4, 12), generator=torch.Generator().manual_seed(1)).float()
    grads = []
    for checkpointing in (False, True):
        model = trained_temporal_model(decoder_dropout=0.0)
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train()(random_clips(2, 4), labels=labels).loss.backward()
        grads.append(model.label_embeddings.grad.clone())
    assert all(layer.gradient_checkpointing for layer in model.temporal_layers)
    torch.testing.assert_close(grads[0], grads[1])


REMOTE_CLIPS = """
import json, sys
sys.modules["modeling_au_mlt"] = None  # as on a machine without this package
import torch
from safetensors.torch import load_file
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
inputs = load_file(sys.argv[2])
with torch.no_grad():
    clips = model(inputs["clips"], frame_mask=inputs["mask"].bool()).logits
    video = model.video_logits(model.frame_states(inputs["video"]))
print(json.dumps({"clips": clips.tolist(), "video": video.tolist(), "module": type(model).__module__}))
"""


def test_saved_temporal_model_loads_as_remote_code_without_the_package(tmp_path):
    model = trained_temporal_model("all_labels", causal=True)
    folder = save_for_hub(model, tmp_path / "temporal")
    clips, video = random_clips(2, 5), random_clips(1, 13, seed=3)[0]
    mask = torch.tensor([[True, True, False, True, True], [True] * 5])
    save_file({"clips": clips, "mask": mask.to(torch.uint8), "video": video}, tmp_path / "inputs.safetensors")
    rows = run_without_package(REMOTE_CLIPS, folder, tmp_path / "inputs.safetensors", tmp_path=tmp_path)
    assert rows["module"].startswith("transformers_modules")
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(rows["clips"])[mask], model(clips, frame_mask=mask).logits[mask])
        torch.testing.assert_close(torch.tensor(rows["video"]), model.video_logits(model.frame_states(video)))
