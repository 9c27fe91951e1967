"""AU-MLT demo: facial Action Units of a photo or a video, in a Gradio app (runs as a Hugging Face Space).

    python demo/app.py [--model DIR_OR_HUB_ID] [--port P] [--host H]

The model is `--model`, else the `AU_MLT_MODEL` environment variable (how a Space names it), else the main
job's output folder `au-mlt-synthetic/` (made by `python scripts/train.py`). This file is layout only: what
is computed and shown comes from `modeling_au_mlt.inference.photo`.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

import gradio as gr

from modeling_au_mlt.inference.photo import TABLE_HEADERS, PhotoAnalyser, example_images, video_outputs
from modeling_au_mlt.inference.predictor import AUPredictor, csv_header

MAIN_JOB_OUTPUT = "au-mlt-synthetic"
# Photo and video requests share one queue: one model, and `Prediction` sets the process's thread count.
MODEL_QUEUE = "model"
INTRO = """# AU-MLT: facial Action Units
Each AU (a FACS muscle movement) has a learned label token that looks at the face through a ViT encoder.
Upload a photo or take a webcam snapshot: faces are boxed and numbered (0 = largest); for the chosen face you
get each AU's probability against its decision threshold and where its token looked (attention overlays).
"""


def default_model() -> str | None:
    """`AU_MLT_MODEL`, else the main job's output folder (here or beside `demo/`) when it exists."""
    if os.environ.get("AU_MLT_MODEL"):
        return os.environ["AU_MLT_MODEL"]
    for folder in (Path.cwd() / MAIN_JOB_OUTPUT, Path(__file__).resolve().parents[1] / MAIN_JOB_OUTPUT):
        if folder.is_dir():
            return str(folder)
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model(), help="saved AU-MLT folder or Hub id")
    parser.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT or 7860")
    parser.add_argument("--host", default=None, help="default: $GRADIO_SERVER_NAME or 127.0.0.1")
    args = parser.parse_args()
    if args.model is None:
        parser.error(
            f"no model: pass --model DIR_OR_HUB_ID, set AU_MLT_MODEL, or make the main job's {MAIN_JOB_OUTPUT}/ "
            "with `python scripts/train.py` (offline, on CPU)"
        )
    return args


def photo_tab(analyser: PhotoAnalyser) -> None:
    """Photo in, faces boxed, the chosen face's AUs, table and attention overlays out."""
    labels = len(analyser.predictor.label_names)
    with gr.Row():
        with gr.Column():
            photo = gr.Image(type="numpy", image_mode="RGB", sources=["upload", "webcam"], label="Photo", height=360)
            face = gr.Number(value=0, precision=0, minimum=0, label="Face number (0 = largest)")
            run = gr.Button("Detect AUs", variant="primary")
            examples = example_images()
            with gr.Column(elem_id="examples"):
                gr.Examples(
                    [[str(path), 0] for path in examples.values()],
                    inputs=[photo, face],
                    label="Examples: real photos, a synthetic face, a picture without a face",
                )
        with gr.Column():
            message = gr.Markdown(elem_id="message")
            confidences = gr.Label(
                num_top_classes=labels, show_heading=False, label="AU probabilities", elem_id="au-label"
            )
            boxed = gr.Image(type="numpy", label="Faces found", interactive=False, height=360)
    table = gr.Dataframe(headers=TABLE_HEADERS, label="AUs against their decision thresholds", interactive=False)
    overlays = gr.Gallery(label="Where each AU looks (attention over the face)", columns=4, height="auto")
    gr.on(
        [photo.change, face.submit, run.click],
        lambda image, number: analyser.outputs(image, number).as_tuple(),
        inputs=[photo, face],
        outputs=[confidences, boxed, table, overlays, message],
        api_name="predict_image",
        concurrency_id=MODEL_QUEUE,
    )


def video_tab(predictor: AUPredictor) -> None:
    """Video in, the per-frame CSV and the AU timeline out."""
    gr.Markdown(
        "Every frame's faces are scored (videos are smoothed per face as `scripts/predict.py` does); the CSV has "
        f"its columns: `{', '.join(csv_header(predictor.label_names)[:10])}, ...`"
    )
    with gr.Row():
        with gr.Column():
            video = gr.Video(sources=["upload"], label="Video")
            run = gr.Button("Detect AUs in every frame", variant="primary")
        with gr.Column():
            message = gr.Markdown()
            table = gr.File(label="Per-frame CSV")
    timeline = gr.Image(type="filepath", label="AU probabilities over time", interactive=False)
    run.click(
        partial(video_outputs, predictor),
        inputs=video,
        outputs=[table, timeline, message],
        api_name="predict_video",
        concurrency_id=MODEL_QUEUE,
    )


def build_app(model: str) -> gr.Blocks:
    """The demo's page for `model`."""
    predictor = AUPredictor(model)
    with gr.Blocks(title="AU-MLT: facial Action Units", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Tab("Photo"):
            photo_tab(PhotoAnalyser(predictor))
        with gr.Tab("Video"):
            video_tab(predictor)
    return app


if __name__ == "__main__":
    arguments = parse_args()
    build_app(arguments.model).queue(default_concurrency_limit=1).launch(
        server_name=arguments.host, server_port=arguments.port, share=False
    )
