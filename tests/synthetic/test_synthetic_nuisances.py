"""Per-frame nuisances: each type covers about its documented share of frames and visibly changes a frame, the
labels and the frames without a nuisance stay as without nuisances, head turns keep the affines exact, and
nuisances off write the same tree; the training cache keys and keeps nuisances.json only when asked."""

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT

from modeling_au_mlt.synthetic.faces import FaceRenderer
from modeling_au_mlt.synthetic.geometry import (
    FrameConditions,
    au_regions,
    polygon_mask,
    pose_matrix,
    sample_identity,
    transform_polygons,
)
from modeling_au_mlt.synthetic.nuisances import (
    EVENT_LENGTHS,
    NUISANCE_TYPES,
    HeadTurn,
    NuisanceEvent,
    NuisanceRates,
    nuisance_conditions,
    nuisance_image,
    sample_events,
)
from modeling_au_mlt.synthetic.tree import make_synthetic_abaw
from modeling_au_mlt.training.arguments import DataArguments
from modeling_au_mlt.training.splits import SYNTHETIC_SOURCES, synthetic_cache_key, synthetic_nuisance_file

RATES = NuisanceRates().as_dict()
SIZES = dict(synthetic_train_videos=2, synthetic_val_videos=1, synthetic_frames_per_video=3, synthetic_image_size=32)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Two 400-frame videos at 32 px, with and without nuisances."""
    root = tmp_path_factory.mktemp("nuisances")
    args = dict(train_videos=1, val_videos=1, frames_per_video=400, seed=11, image_size=32)
    summary = make_synthetic_abaw(root / "on", nuisances=True, **args)
    make_synthetic_abaw(root / "off", **args)
    return root / "on", root / "off", summary


def _files(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "synthetic_summary.json"
    }  # the summary records timings and the output path


def _rotation(affine) -> float:
    """Degrees of a pose affine's rotation (OpenCV's sign: counter-clockwise on screen)."""
    return math.degrees(math.atan2(affine[0][1], affine[0][0]))


def test_share_of_frames_per_type_is_near_its_rate_in_the_tree(trees):
    on, _, summary = trees
    document = json.loads((on / "nuisances.json").read_text())
    assert document["format"] == "au-nuisances/1" and document["types"] == list(NUISANCE_TYPES)
    assert document["rates"] == RATES
    images = {(p.parent.name, p.stem.lstrip("0")) for p in (on / "cropped_aligned").glob("*/*.jpg")}
    listed = [(video, frame) for video, frames in document["videos"].items() for frame in frames]
    assert set(listed) <= images and len(document["videos"]) == 2
    types = [kinds for frames in document["videos"].values() for kinds in frames.values()]
    # 6-16 events per type in 800 frames spread a type's share by 30-40 % (one standard deviation): loose bands
    # here, the exact rates over many frames in the next test.
    for kind in NUISANCE_TYPES:
        assert 0.3 * RATES[kind] < sum(kind in kinds for kinds in types) / len(images) < 2.0 * RATES[kind], kind
    assert 0.10 < len(types) / len(images) < 0.26  # about 17 % documented, one standard deviation 3 %
    assert sum(split["nuisance_frames"]["any"] for split in summary["splits"].values()) == len(types)


def test_share_of_frames_per_type_matches_its_rate_over_many_frames():
    identity = sample_identity(np.random.default_rng(0))
    covered = {kind: 0 for kind in NUISANCE_TYPES}
    for video in range(100):
        events = sample_events(np.random.default_rng([5, video]), 1000, identity)
        for kind in NUISANCE_TYPES:
            frames = np.zeros(1000, int)
            for event in (e for e in events if e.kind == kind):
                low, high = EVENT_LENGTHS[kind]
                assert event.length <= high and (low <= event.length or event.start + event.length == 1000)
                frames[event.start : event.start + event.length] += 1
            assert frames.max() <= 1  # events of one type never overlap
            covered[kind] += frames.sum()
    for kind in NUISANCE_TYPES:
        assert covered[kind] / 100_000 == pytest.approx(RATES[kind], rel=0.15), kind


def test_rates_can_be_changed_and_are_checked():
    identity = sample_identity(np.random.default_rng(0))
    only_blur = NuisanceRates(occlusion=0, motion_blur=0.5, lighting_flicker=0, head_turn=0, heavy_jpeg=0)
    events = sample_events(np.random.default_rng(1), 200, identity, only_blur)
    assert events and {event.kind for event in events} == {"motion_blur"}
    with pytest.raises(ValueError, match="rates"):
        NuisanceRates(occlusion=1.0)


def test_summary_counts_nuisance_frames_only_when_on(trees):
    on, off, summary = trees
    document = json.loads((on / "nuisances.json").read_text())
    regions = json.loads((on / "regions.json").read_text())["videos"]
    for split, counts in summary["splits"].items():
        frames = [
            kinds
            for video, entry in regions.items()
            if entry["split"] == split
            for kinds in document["videos"][video].values()
        ]
        assert counts["nuisance_frames"]["any"] == len(frames)
        assert all(counts["nuisance_frames"][kind] == sum(kind in k for k in frames) for kind in NUISANCE_TYPES)
    off_summary = json.loads((off / "synthetic_summary.json").read_text())
    assert all("nuisance_frames" not in split for split in off_summary["splits"].values())
    assert not (off / "nuisances.json").exists()


def test_labels_and_frames_without_a_nuisance_are_unchanged(trees):
    on, off, _ = trees
    document = json.loads((on / "nuisances.json").read_text())
    with_, without = _files(on), _files(off)
    labels = [name for name in without if name.startswith("AU_Detection_Challenge")]
    assert labels and all(with_[name] == without[name] for name in labels)  # labels stay the true AU state
    images = [name for name in without if name.startswith("cropped_aligned")]
    assert sorted(images) == sorted(name for name in with_ if name.startswith("cropped_aligned"))
    for name in images:
        video, frame = Path(name).parent.name, Path(name).stem.lstrip("0")
        assert (with_[name] != without[name]) == (frame in document["videos"][video]), name


def test_head_turn_frames_carry_their_turned_affine(trees):
    on, off, _ = trees
    document = json.loads((on / "nuisances.json").read_text())
    turned, plain = (json.loads((tree / "regions.json").read_text())["videos"] for tree in (on, off))
    turns = 0
    for video, entry in plain.items():
        for frame, affine in entry["affines"].items():
            other = turned[video]["affines"][frame]
            if "head_turn" in document["videos"][video].get(frame, []):
                turns += 1
                assert 7.4 < abs(_rotation(other) - _rotation(affine)) < 30.1
                assert np.hypot(*other[0][:2]) == pytest.approx(np.hypot(*affine[0][:2]), abs=1e-3)  # same scale
            else:
                assert other == affine
    assert turns > 10


def test_head_turn_moves_an_au_where_the_affine_says():
    renderer = FaceRenderer(sample_identity(np.random.default_rng(4)), 112)
    event = NuisanceEvent("head_turn", 0, 1, HeadTurn(peak_angle=25.0))
    plain = FrameConditions(angle=2.0, gain=1.05)
    turned = nuisance_conditions([event], 0, plain, renderer.identity, 112)
    assert turned.angle == pytest.approx(27.0)
    smile = np.zeros(12)
    smile[6] = 1.0  # AU12
    changed = np.abs(
        renderer.render(smile, turned).astype(int) - renderer.render(np.zeros(12), turned).astype(int)
    ).max(-1)
    changed = changed > 0
    polygons = au_regions(renderer.identity, 112)["AU12"]
    inside = polygon_mask(transform_polygons(polygons, pose_matrix(renderer.identity, turned, 112)), 112)
    before = polygon_mask(transform_polygons(polygons, pose_matrix(renderer.identity, plain, 112)), 112)
    assert changed.sum() > 50 and not (changed & ~inside).any()
    assert (changed & ~before).sum() > 0.1 * changed.sum()  # it did move out of where it was


def _one_event(kind: str, identity, seed: int) -> NuisanceEvent:
    """The first event of `kind` a video draws when that type alone is on, half of the frames."""
    rates = NuisanceRates(**{name: 0.5 if name == kind else 0.0 for name in NUISANCE_TYPES})
    return sample_events(np.random.default_rng([seed, 3]), 100, identity, rates)[0]


def _saved(renderer: FaceRenderer, events: list[NuisanceEvent], frame: int, conditions) -> np.ndarray:
    """The frame as the tree saves it (RGB after a JPEG round trip), with `events` applied."""
    conditions = nuisance_conditions(events, frame, conditions, renderer.identity, renderer.size)
    image = nuisance_image(events, frame, renderer.render(np.zeros(12), conditions))
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, conditions.quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].astype(int)


@pytest.mark.parametrize("kind", NUISANCE_TYPES)
@pytest.mark.parametrize("seed", range(3))
def test_each_type_visibly_changes_the_frame(kind, seed):
    renderer = FaceRenderer(sample_identity(np.random.default_rng(seed)), 48)
    conditions = FrameConditions(angle=1.0, gain=1.0, quality=90)
    event = _one_event(kind, renderer.identity, seed)
    difference = np.abs(_saved(renderer, [event], event.start, conditions) - _saved(renderer, [], 0, conditions))
    visible = (difference.max(-1) > 20).mean()  # more than 20 grey levels: plainly visible
    assert visible > 0.01, (kind, visible)
    assert (
        _saved(renderer, [event], event.start + event.length, conditions) == _saved(renderer, [], 0, conditions)
    ).all()


@pytest.mark.parametrize("seed", range(8))
def test_occlusion_hides_much_of_an_au_region(seed):
    renderer = FaceRenderer(sample_identity(np.random.default_rng(seed)), 64)
    conditions = FrameConditions(angle=4.0)
    event = _one_event("occlusion", renderer.identity, seed)
    occluded = nuisance_conditions([event], event.start, conditions, renderer.identity, 64)
    hidden = (renderer.render(np.zeros(12), occluded) != renderer.render(np.zeros(12), conditions)).any(-1)
    matrix = pose_matrix(renderer.identity, conditions, 64)
    boxes = [box for polygons in au_regions(renderer.identity, 64).values() for box in polygons]
    covered = [(hidden & polygon_mask(transform_polygons([box], matrix), 64)).mean() for box in boxes]
    areas = [polygon_mask(transform_polygons([box], matrix), 64).mean() for box in boxes]
    assert max(c / a for c, a in zip(covered, areas)) > 0.4  # border occluders stop at 35 % of a region


def test_nuisances_off_writes_the_same_tree_as_without_the_argument(tmp_path):
    args = dict(train_videos=2, val_videos=1, test_videos=1, frames_per_video=8, seed=2, image_size=32)
    plain = make_synthetic_abaw(tmp_path / "plain", **args)
    off = make_synthetic_abaw(tmp_path / "off", nuisances=False, **args)
    assert _files(tmp_path / "plain") == _files(tmp_path / "off")
    assert plain["splits"] == off["splits"]


def test_cli_passes_nuisances(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_abaw", REPO_ROOT / "scripts" / "make_synthetic_abaw.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    common = [
        "--train_videos",
        "1",
        "--val_videos",
        "1",
        "--frames_per_video",
        "60",
        "--seed",
        "1",
        "--image_size",
        "32",
    ]
    script.main(["--output_dir", str(tmp_path / "on"), "--nuisances", *common])
    summary = json.loads(capsys.readouterr().out)
    assert (tmp_path / "on" / "nuisances.json").exists() and "nuisance_frames" in summary["splits"]["Train_Set"]
    script.main(["--output_dir", str(tmp_path / "off"), *common])
    assert not (tmp_path / "off" / "nuisances.json").exists()


def test_cache_key_is_unchanged_without_nuisances_and_differs_with_them():
    data_args = DataArguments(**SIZES)
    parameters = {
        "train_videos": 2,
        "val_videos": 1,
        "test_videos": data_args.synthetic_test_videos,
        "frames_per_video": 3,
        "image_size": 32,
        "seed": data_args.synthetic_seed,
    }  # the parameters hashed before nuisances existed
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode())
    package = REPO_ROOT / "modeling_au_mlt"
    for pattern in SYNTHETIC_SOURCES:
        for source in sorted(package.glob(pattern)):
            digest.update(source.read_bytes())
    assert synthetic_cache_key(data_args) == digest.hexdigest()[:16]
    assert synthetic_cache_key(DataArguments(synthetic_nuisances=True, **SIZES)) != synthetic_cache_key(data_args)


def test_nuisance_file_sits_beside_the_cached_dataset_and_joins_its_frames(tmp_path):
    from datasets import load_from_disk

    assert synthetic_nuisance_file(DataArguments(cache_dir=str(tmp_path), **SIZES)) is None
    assert not any(tmp_path.iterdir())  # off: nothing generated
    sizes = SIZES | dict(synthetic_frames_per_video=60, synthetic_test_videos=1)
    data_args = DataArguments(cache_dir=str(tmp_path), synthetic_nuisances=True, **sizes)
    path = synthetic_nuisance_file(data_args)
    assert (
        path.parent.name == f"synthetic-abaw-{synthetic_cache_key(data_args)}" and (path.parent / "dataset").is_dir()
    )
    document = json.loads(path.read_text())
    test = load_from_disk(str(path.parent / "dataset"))["test"]
    rows = set(zip(test["video_id"], test["frame"]))
    listed = {(video, int(frame)) for video in {v for v, _ in rows} for frame in document["videos"][video]}
    assert listed & rows  # the benchmark joins on (video_id, frame)
    assert all(frame <= 63 for _, frame in listed)  # 1-based, up to the extra images past the last label line
