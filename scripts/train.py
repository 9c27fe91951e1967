"""Train AU-MLT and write a Hub-ready model folder.

    python scripts/train.py                                   # the embedded synthetic job (about 15 min, 2 CPUs)
    python scripts/train.py --dataset_dir data/abaw --output_dir runs/au-mlt --vision_preset small
    python scripts/train.py args.yaml                         # every argument from one JSON or YAML file
    accelerate launch scripts/train.py --dataset_dir data/abaw ...   # several processes (docs/training.md)

`--help` lists every argument: the model's, the data's and `transformers.TrainingArguments`.
"""

import sys
from pathlib import Path

# scripts/evaluate.py shares its name with the `evaluate` library: drop this folder from the import path so
# that `import evaluate` (in modeling_au_mlt.evaluation) finds the library.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from transformers.utils import logging  # noqa: E402

from modeling_au_mlt.training import run  # noqa: E402
from modeling_au_mlt.training_args import parse_arguments  # noqa: E402


def main() -> None:
    model_args, data_args, training_args = parse_arguments()
    if training_args.should_log:
        logging.set_verbosity_info()
    run(model_args, data_args, training_args)


if __name__ == "__main__":
    main()
