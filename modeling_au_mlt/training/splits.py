"""The splits a training run reads: a converted folder, a Hub dataset, or with no dataset argument the embedded
synthetic ABAW job, generated and converted once into a cache; subsampled and capped as asked, with the held-out
test split when the dataset has a labelled one, and the AU names of the data.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from datasets import DatasetDict, load_dataset, load_from_disk

from ..configuration_au_mlt import ABAW_AUS, NOT_ANNOTATED
from ..data.conversion import label_names_of
from ..data.transforms import KEY_COLUMN
from .arguments import DataArguments
from .trainer import training_labels

logger = logging.getLogger(__name__)

SYNTHETIC_SOURCES = (
    "synthetic/*.py",
    "data/abaw.py",
    "data/conversion.py",
    "data/arrow_shards.py",
)  # code whose change invalidates the cache


def synthetic_cache_key(data_args: DataArguments) -> str:
    """Key of the synthetic data: the generator parameters and the generator and converter source code."""
    parameters = {
        "train_videos": data_args.synthetic_train_videos,
        "val_videos": data_args.synthetic_val_videos,
        "test_videos": data_args.synthetic_test_videos,
        "frames_per_video": data_args.synthetic_frames_per_video,
        "image_size": data_args.synthetic_image_size,
        "seed": data_args.synthetic_seed,
    }
    if data_args.synthetic_nuisances:  # only when on: data without nuisances keeps the key it had before them
        parameters["nuisances"] = True
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode())
    for pattern in SYNTHETIC_SOURCES:
        for source in sorted(Path(__file__).parents[1].glob(pattern)):
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def synthetic_dataset_dir(data_args: DataArguments) -> Path:
    """The converted synthetic ABAW DatasetDict, generated and converted on first use and cached by key; with
    `synthetic_nuisances` the tree's nuisances.json is kept beside it (`synthetic_nuisance_file`)."""
    from ..data.abaw import prepare_abaw
    from ..synthetic.tree import make_synthetic_abaw

    cache = Path(data_args.cache_dir or Path.home() / ".cache" / "au_mlt").expanduser()
    final = cache / f"synthetic-abaw-{synthetic_cache_key(data_args)}"
    if (final / "dataset").is_dir():
        logger.info("synthetic ABAW data from the cache %s", final)
        return final / "dataset"
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=cache))
    try:
        make_synthetic_abaw(
            staging / "tree",
            train_videos=data_args.synthetic_train_videos,
            val_videos=data_args.synthetic_val_videos,
            test_videos=data_args.synthetic_test_videos,
            frames_per_video=data_args.synthetic_frames_per_video,
            seed=data_args.synthetic_seed,
            image_size=data_args.synthetic_image_size,
            num_proc=min(4, os.cpu_count() or 1),
            nuisances=data_args.synthetic_nuisances,
        )
        prepare_abaw(
            staging / "tree" / "cropped_aligned", staging / "tree" / "AU_Detection_Challenge", staging / "dataset"
        )
        if data_args.synthetic_nuisances:
            shutil.copy2(staging / "tree" / "nuisances.json", staging / "nuisances.json")
        shutil.rmtree(staging / "tree")  # the images now live in the dataset's Arrow files
        if not final.exists():  # another process may have finished the same data meanwhile
            os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final / "dataset"


def synthetic_nuisance_file(data_args: DataArguments) -> Path | None:
    """The synthetic data's nuisances.json (generated with the data if not cached yet), or None without
    `synthetic_nuisances`. Its videos and 1-based frames match the converted splits' `video_id` and `frame`."""
    if not data_args.synthetic_nuisances:
        return None
    return synthetic_dataset_dir(data_args).parent / "nuisances.json"


def load_splits(data_args: DataArguments, training_args) -> DatasetDict:
    """The train and evaluation splits named by `data_args` (`train`, `eval`), subsampled and capped as asked,
    and the test split (`test`) when `held_out_split` finds one, capped like the evaluation split."""
    if data_args.dataset_dir:
        splits = load_from_disk(data_args.dataset_dir)
        source = data_args.dataset_dir
    elif data_args.dataset_name:
        splits = load_dataset(data_args.dataset_name, data_args.dataset_config_name)
        source = data_args.dataset_name
    else:
        with training_args.main_process_first(desc="synthetic ABAW data"):
            source = str(synthetic_dataset_dir(data_args))
        splits = load_from_disk(source)
    if not isinstance(splits, DatasetDict):
        raise ValueError(f"{source}: expected a DatasetDict with splits, found a single {type(splits).__name__}")
    for split in (data_args.train_split, data_args.eval_split):
        if split not in splits:
            raise ValueError(f"{source}: no split {split!r}; it has {sorted(splits)} (see --train_split/--eval_split)")
        missing = {"image", "labels"} - set(splits[split].column_names)
        if missing:
            raise ValueError(
                f"{source} split {split!r}: missing columns {sorted(missing)}; it has {splits[split].column_names}"
            )
    train, evaluation = splits[data_args.train_split], splits[data_args.eval_split]
    train = train.select(range(0, len(train), data_args.subsample))
    if data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if data_args.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(data_args.max_eval_samples, len(evaluation))))
    test = held_out_split(splits, data_args, source)
    if test is not None and data_args.max_eval_samples is not None:
        test = test.select(range(min(data_args.max_eval_samples, len(test))))
    if not ({"video_id", "frame"} <= set(train.column_names) or KEY_COLUMN in train.column_names):
        # Augmentation draws are keyed per sample; rows without video/frame get their index as key.
        train = train.add_column(KEY_COLUMN, np.arange(len(train), dtype=np.int64))
    logger.info(
        "data from %s: %d training rows, %d evaluation rows, %d test rows",
        source,
        len(train),
        len(evaluation),
        0 if test is None else len(test),
    )
    return DatasetDict({"train": train, "eval": evaluation} | ({} if test is None else {"test": test}))


def held_out_split(splits: DatasetDict, data_args: DataArguments, source: str):
    """The split `--test_split` names, or None (logged) when it is empty, is the train or evaluation split,
    is missing, or holds no annotated label (such as ABAW's unlabelled test list)."""
    name = data_args.test_split
    if not name:
        return None
    if name in (data_args.train_split, data_args.eval_split):
        logger.warning("--test_split %r is also the train or evaluation split: no separate test scores", name)
        return None
    if name not in splits:
        logger.info("%s has no split %r: no test scores", source, name)
        return None
    if "labels" not in splits[name].column_names or not (training_labels(splits[name]) != NOT_ANNOTATED).any():
        logger.warning("%s split %r has no annotated label: not scored", source, name)
        return None
    return splits[name]


def dataset_label_names(train, data_args: DataArguments) -> list[str]:
    """AU names of the dataset: `--au_names`, the converter's metadata, or the 12 ABAW AUs."""
    width = len(train[0]["labels"]) if len(train) else 0
    if data_args.au_names:
        names = list(data_args.au_names)
    else:
        try:
            names = label_names_of(train)
        except ValueError:
            if width != len(ABAW_AUS):
                raise ValueError(
                    f"the dataset carries no AU names and its labels hold {width} values; pass --au_names"
                ) from None
            names = list(ABAW_AUS)
    if width and len(names) != width:
        raise ValueError(f"--au_names gives {len(names)} names but the dataset's labels hold {width} values")
    return names
