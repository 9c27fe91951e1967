"""Train AU-MLT and write a Hub-ready model folder.

    python scripts/train.py                                   # the embedded synthetic job (docs/benchmarks.md)
    python scripts/train.py --dataset_dir data/abaw --output_dir runs/au-mlt --vision_preset small
    python scripts/train.py args.yaml                         # every argument from one JSON or YAML file
    accelerate launch scripts/train.py --dataset_dir data/abaw ...   # several processes (docs/training.md)

`--help` lists every argument: the model's, the data's and `transformers.TrainingArguments`.
"""

from transformers.utils import logging

from modeling_au_mlt.console_logging import configure_logging
from modeling_au_mlt.hub.publish import push_model_folder
from modeling_au_mlt.training.arguments import parse_arguments
from modeling_au_mlt.training.run import run


def main() -> None:
    model_args, data_args, training_args = parse_arguments()
    if training_args.should_log:
        logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()  # the main process informs, the other ranks only warn
    logging.set_verbosity(log_level)
    configure_logging(log_level)
    push_to = training_args.hub_model_id if training_args.push_to_hub else None
    results = run(model_args, data_args, training_args)
    if "output_dir" not in results:  # not the main process: it writes nothing
        return
    print(results["results_table"])
    print(f"wrote the Hub-ready model folder {results['output_dir']}")
    if push_to:
        private = bool(training_args.hub_private_repo)
        print(f"pushed to {push_model_folder(results['output_dir'], push_to, private=private)}")


if __name__ == "__main__":
    main()
