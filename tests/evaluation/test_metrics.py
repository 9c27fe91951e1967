"""The AU F1 evaluate module, scoring at thresholds and batch-wise accumulation, against scikit-learn."""

import evaluate
import numpy as np
import pytest
import torch
from reference_scores import random_split, sklearn_scores
from transformers import EvalPrediction

from modeling_au_mlt.configuration_au_mlt import NOT_ANNOTATED
from modeling_au_mlt.evaluation.au_f1 import au_f1
from modeling_au_mlt.evaluation.metrics import AUComputeMetrics, au_f1_metric_path, au_scores

NAMES = ["AU1", "AU2", "AU4", "AU6"]


def assert_scores_equal(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-12), key


def test_evaluate_module_loads_by_path_and_matches_sklearn():
    rng = np.random.default_rng(0)
    predictions = rng.integers(0, 2, (500, 4))
    predictions[:, 3] = 0  # AU6 never predicted: 0/0 precision, scored 0 like scikit-learn
    references = rng.integers(-1, 2, (500, 4))
    references[:, 3] = np.where(references[:, 3] == 1, 0, references[:, 3])
    metric = evaluate.load(au_f1_metric_path())
    scores = metric.compute(predictions=predictions, references=references, label_names=NAMES)
    assert_scores_equal(scores, sklearn_scores(predictions, references, NAMES))


def test_evaluate_module_pools_batches_like_one_call():
    rng = np.random.default_rng(1)
    predictions, references = rng.integers(0, 2, (300, 4)), rng.integers(-1, 2, (300, 4))
    metric = evaluate.load(au_f1_metric_path())
    for start in range(0, 300, 64):
        metric.add_batch(predictions=predictions[start : start + 64], references=references[start : start + 64])
    assert_scores_equal(metric.compute(label_names=NAMES), sklearn_scores(predictions, references, NAMES))


def test_evaluate_module_ignores_the_configurations_not_annotated_value():
    assert au_f1.NOT_ANNOTATED == NOT_ANNOTATED  # the standalone module's copy of the one definition


def test_evaluate_module_rejects_probabilities_and_bad_shapes():
    metric = evaluate.load(au_f1_metric_path())
    with pytest.raises(ValueError, match="predictions: every entry must be 0 or 1"):
        metric.compute(predictions=[[0.7, 0.2]], references=[[1, 0]])
    with pytest.raises(ValueError, match="label_names: expected 2 names"):
        metric.compute(predictions=[[1, 0]], references=[[1, 0]], label_names=["AU1"])


def test_au_scores_match_sklearn_at_given_thresholds():
    probs, labels = random_split(np.random.default_rng(2))
    thresholds = [0.3, 0.5, 0.62, 0.9]
    expected = sklearn_scores((probs >= thresholds).astype(int), labels, NAMES)
    assert_scores_equal(au_scores(probs, labels, thresholds, NAMES), expected)
    assert_scores_equal(
        au_scores(probs, labels, None, NAMES), sklearn_scores((probs >= 0.5).astype(int), labels, NAMES)
    )


def test_batched_compute_metrics_equals_one_shot_and_resets():
    rng = np.random.default_rng(3)
    probs, labels = random_split(rng, 250)
    logits = torch.logit(torch.tensor(probs, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)).float()
    compute_metrics = AUComputeMetrics(NAMES)
    one_shot = compute_metrics(EvalPrediction(predictions=logits.numpy(), label_ids=labels))
    for _ in range(2):  # a second evaluation must not carry counts over from the first
        starts = range(0, 250, 32)
        for start in starts:
            batch = EvalPrediction(
                predictions=(logits[start : start + 32], torch.zeros(1)),  # extra outputs come as a tuple
                label_ids=torch.tensor(labels[start : start + 32]),
            )
            batched = compute_metrics(batch, compute_result=start == starts[-1])
            assert batched == {} or start == starts[-1]
        assert batched == pytest.approx(one_shot)
    expected = sklearn_scores((torch.sigmoid(logits).numpy() >= 0.5).astype(int), labels, NAMES)
    assert set(one_shot) == {"mean_f1"} | {f"f1_{name}" for name in NAMES}
    assert one_shot == pytest.approx({key: expected[key] for key in one_shot}, abs=1e-12)


def test_trainer_with_batch_eval_metrics_logs_au_f1(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments
    from transformers.modeling_outputs import SequenceClassifierOutput

    class FixedLogits(torch.nn.Module):
        """Returns the logits stored in the batch, so the expected scores are known."""

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(1, 1)

        def forward(self, fixed_logits, labels=None):
            return SequenceClassifierOutput(loss=fixed_logits.sum() * 0, logits=fixed_logits)

    rng = np.random.default_rng(5)
    probs, labels = random_split(rng, 90)
    logits = np.log(probs + 1e-6) - np.log1p(-probs + 1e-6)
    dataset = Dataset.from_dict({"fixed_logits": logits.tolist(), "labels": labels.tolist()}).with_format("torch")
    arguments = TrainingArguments(
        tmp_path, per_device_eval_batch_size=16, batch_eval_metrics=True, report_to=[], use_cpu=True
    )
    trainer = Trainer(FixedLogits(), arguments, eval_dataset=dataset, compute_metrics=AUComputeMetrics(NAMES))
    metrics = trainer.evaluate()
    expected = sklearn_scores((probs >= 0.5).astype(int), labels, NAMES)
    assert metrics["eval_mean_f1"] == pytest.approx(expected["mean_f1"], abs=1e-9)
    for name in NAMES:
        assert metrics[f"eval_f1_{name}"] == pytest.approx(expected[f"f1_{name}"], abs=1e-9)


def test_soft_labels_are_rejected_not_truncated():
    soft = np.array([[0.9], [0.1]])  # e.g. label smoothing leaking into evaluation
    with pytest.raises(ValueError, match="references: every entry must be 1, 0 or -1"):
        AUComputeMetrics(["AU1"])(EvalPrediction(predictions=np.array([[0.9], [0.2]]), label_ids=soft))
