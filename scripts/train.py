"""Train AU-MLT and write a Hub-ready model folder.

    python scripts/train.py                                   # the embedded synthetic job (about 15 min, 2 CPUs)
    python scripts/train.py --dataset_dir data/abaw --output_dir runs/au-mlt --vision_preset small
    python scripts/train.py args.yaml                         # every argument from one JSON or YAML file
    accelerate launch scripts/train.py --dataset_dir data/abaw ...   # several processes (docs/training.md)

`--help` lists every argument: the model's, the data's and `transformers.TrainingArguments`.
"""

from transformers.utils import logging

from modeling_au_mlt.training.arguments import parse_arguments
from modeling_au_mlt.training.run import run


def main() -> None:
    model_args, data_args, training_args = parse_arguments()
    if training_args.should_log:
        logging.set_verbosity_info()
    run(model_args, data_args, training_args)


if __name__ == "__main__":
    main()
