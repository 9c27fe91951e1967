"""Section 1: inference speed of AU-MLT against the bare ViT encoder and a ViT multi-label classifier.

For each encoder size and batch size, `AUMLTModel` in both cross-attention forms (`decoder_cross_attention`
"projected" and "absorbed", same weights; `default_cross_attention` in the results says which one "auto", the
default, builds at that size), the `ViTModel` it wraps (same vision config, no pooler) and
`ViTForImageClassification` (12 labels, multi-label) run interleaved in one process, fp32 on CPU, with a plain
fp32 square matrix product in the same rounds as the machine's practical arithmetic limit. Reported: images/s,
wall and CPU time ratios to the bare encoder (the decoder's overhead), and the achieved GFLOP/s (FLOPs counted by
`torch.utils.flop_counter.FlopCounterMode`) as a share of the matrix product's.

The decoder's overhead is also timed directly: each AU-MLT form runs its own `forward` with the encoder's output
computed once beforehand (`decoder_only`), interleaved with the bare encoder. The difference of two whole-model
timings carries the encoder's round-to-round noise (a few percent), larger than the effect measured; the
decoder's own time does not.

    PYTHONPATH=. python benchmarks/bench_inference.py --output docs/results/inference.json
"""

import argparse
import copy

import torch
from torch import nn
from torch.utils import flop_counter
from transformers import ViTConfig, ViTForImageClassification, ViTModel

from benchmarks.common import VISION_PRESETS, interleaved_times, markdown_table, median, report, set_threads, spread
from modeling_au_mlt import ABAW_AUS, AUMLTConfig, AUMLTModel

# "au_mlt" is the default model ("auto" cross-attention); the other two force one form each.
AU_MLT_FORMS = {"au_mlt": "auto", "au_mlt_projected": "projected", "au_mlt_absorbed": "absorbed"}
MODEL_NAMES = ("vit_encoder", "au_mlt_projected", "au_mlt_absorbed", "vit_classifier")
# FlopCounterMode has no formula for the CPU flash-attention kernel that SDPA dispatches to; it is
# the same computation as the counted flash kernel, so it gets the same count.
CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of softmax(Q K^T) V for the given (batch, heads, length, head_dim) shapes."""
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def au_mlt_config(preset: str, cross_attention: str = "auto") -> AUMLTConfig:
    """AU-MLT with the paper's decoder (2 layers, 8 heads, shared head) on a preset encoder."""
    vision = VISION_PRESETS[preset]
    heads = 8 if vision["hidden_size"] % 8 == 0 else 4
    return AUMLTConfig(vision_config=vision, decoder_attention_heads=heads, decoder_cross_attention=cross_attention)


def build_models(preset: str, names: tuple[str, ...] = MODEL_NAMES) -> dict[str, torch.nn.Module]:
    """The named models in eval mode, all on one vision config: AU-MLT (`AU_MLT_FORMS`: the default, or one
    cross-attention form), the bare encoder (`vit_encoder`) and a ViT multi-label classifier (`vit_classifier`)."""
    vision = VISION_PRESETS[preset]
    labels = dict(enumerate(ABAW_AUS))
    factories = {
        **{name: (lambda form=form: AUMLTModel(au_mlt_config(preset, form))) for name, form in AU_MLT_FORMS.items()},
        "vit_encoder": lambda: ViTModel(ViTConfig(**vision), add_pooling_layer=False),
        "vit_classifier": lambda: ViTForImageClassification(
            ViTConfig(
                **vision,
                id2label=labels,
                label2id={v: k for k, v in labels.items()},
                problem_type="multi_label_classification",
            )
        ),
    }
    return {name: factories[name]().eval() for name in names}


class PrecomputedEncoder(nn.Module):
    """Stands in for an AU-MLT model's encoder: returns outputs computed once, so only the decoder runs."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, *args, **kwargs):
        return self.outputs


def decoder_only(model: AUMLTModel, pixel_values: torch.Tensor) -> AUMLTModel:
    """A copy of `model` whose forward on `pixel_values` runs the decoder alone (the encoder's output is cached)."""
    copied = copy.deepcopy(model)
    with torch.inference_mode():
        outputs = model.encoder(pixel_values, return_dict=True)
    copied.encoder = PrecomputedEncoder(outputs)
    return copied


def forward_flops(model: torch.nn.Module, pixel_values: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add) of one forward pass."""
    with (
        torch.inference_mode(),
        flop_counter.FlopCounterMode(display=False, custom_mapping={CPU_SDPA: sdpa_flops}) as counter,
    ):
        model(pixel_values)
    return counter.get_total_flops()


def measure(preset: str, batch_size: int, repeats: int, matmul_size: int, names: tuple[str, ...]) -> dict:
    """Median seconds per forward of every named model and of the reference matrix product, interleaved."""
    models = build_models(preset, names)
    size = VISION_PRESETS[preset]["image_size"]
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(batch_size, 3, size, size, generator=generator)
    left = torch.randn(matmul_size, matmul_size, generator=generator)
    right = torch.randn(matmul_size, matmul_size, generator=generator)
    candidates = {name: (lambda model=model: model(pixel_values)) for name, model in models.items()}
    decoders = {
        f"{name}_decoder": decoder_only(model, pixel_values) for name, model in models.items() if name in AU_MLT_FORMS
    }
    candidates.update({name: (lambda model=model: model(pixel_values)) for name, model in decoders.items()})
    candidates["matmul"] = lambda: left @ right
    with torch.inference_mode():
        times, cpu_times = interleaved_times(candidates, repeats=repeats, warmup=1)
    medians = {name: median(values) for name, values in times.items()}
    cpu_medians = {name: median(values) for name, values in cpu_times.items()}
    matmul_gflops = 2 * matmul_size**3 / medians["matmul"] / 1e9
    flops = {name: forward_flops(model, pixel_values) for name, model in models.items()}
    model_gflops = {name: flops[name] / medians[name] / 1e9 for name in models}
    # The same ratio from CPU seconds: robust to other jobs when the run is single-threaded.
    cpu_share = {
        name: flops[name] / cpu_medians[name] / (2 * matmul_size**3 / cpu_medians["matmul"]) for name in models
    }
    return {
        "preset": preset,
        "batch_size": batch_size,
        "repeats": repeats,
        "default_cross_attention": au_mlt_config(preset).cross_attention_form,
        "median_seconds": medians,
        "noise": {name: spread(values) for name, values in times.items()},
        "images_per_second": {name: batch_size / medians[name] for name in models},
        "time_ratio_to_encoder": {name: medians[name] / medians["vit_encoder"] for name in models},
        "median_cpu_seconds": cpu_medians,
        "cpu_time_ratio_to_encoder": {name: cpu_medians[name] / cpu_medians["vit_encoder"] for name in models},
        # The decoder's own time over the encoder's: the overhead without the encoder's noise in the difference.
        "decoder_cpu_overhead": {
            name.removesuffix("_decoder"): cpu_medians[name] / cpu_medians["vit_encoder"] for name in decoders
        },
        "decoder_noise": {name.removesuffix("_decoder"): spread(cpu_times[name]) for name in decoders},
        "gflop_per_second": model_gflops,
        "matmul_gflop_per_second": matmul_gflops,
        "share_of_matmul": {name: value / matmul_gflops for name, value in model_gflops.items()},
        "share_of_matmul_cpu_time": cpu_share,
        "flops": flops,
    }


def summary(results: list[dict]) -> str:
    """Markdown table of the measurements, one row per encoder size, batch size and model."""
    rows = [
        [
            result["preset"],
            result["batch_size"],
            f"{name} (default)" if name == f"au_mlt_{result['default_cross_attention']}" else name,
            result["images_per_second"][name],
            f"{100 * (result['time_ratio_to_encoder'][name] - 1):+.1f}%",
            f"{100 * (result['cpu_time_ratio_to_encoder'][name] - 1):+.1f}%",
            f"{100 * result['noise'][name]:.1f}%",
            result["gflop_per_second"][name],
            f"{100 * result['share_of_matmul'][name]:.0f}%",
            f"{100 * result['share_of_matmul_cpu_time'][name]:.0f}%",
        ]
        for result in results
        for name in result["images_per_second"]
    ]
    headers = [
        "encoder",
        "batch",
        "model",
        "img/s",
        "time vs encoder",
        "CPU time vs encoder",
        "noise (IQR/2)",
        "GFLOP/s",
        "of matmul GFLOP/s",
        "same, CPU time",
    ]
    matmul = ", ".join(f"{result['matmul_gflop_per_second']:.0f}" for result in results)
    decoder_rows = [
        [
            result["preset"],
            result["batch_size"],
            name,
            f"{100 * overhead:+.2f}%",
            f"{100 * result['decoder_noise'][name]:.1f}%",
        ]
        for result in results
        for name, overhead in result["decoder_cpu_overhead"].items()
    ]
    decoder_headers = ["encoder", "batch", "model", "decoder CPU time / encoder CPU time", "decoder noise (IQR/2)"]
    return (
        markdown_table(headers, rows)
        + f"\n\nfp32 matmul GFLOP/s in the same rounds: {matmul}\n\n"
        + markdown_table(decoder_headers, decoder_rows)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["vit-s16-112", "vit-b16-224"], choices=sorted(VISION_PRESETS))
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument(
        "--models", nargs="+", default=list(MODEL_NAMES), choices=[*MODEL_NAMES, "au_mlt"], help="models to time"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds after one warm-up round")
    parser.add_argument("--matmul_size", type=int, default=2048, help="side of the reference square fp32 matmul")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if "vit_encoder" not in args.models:
        parser.error("--models: vit_encoder is needed, every ratio is to it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    results = [
        measure(preset, batch_size, args.repeats, args.matmul_size, tuple(args.models))
        for preset in args.presets
        for batch_size in args.batch_sizes
    ]
    report(
        {"section": "inference", "threads": torch.get_num_threads(), "results": results}, args.output, summary(results)
    )


if __name__ == "__main__":
    main()
