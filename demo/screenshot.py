"""Screenshot of the demo for the docs: start it with a model, run an example photo in headless Chromium, save
the whole page.

    python demo/screenshot.py --model au-mlt-synthetic --output docs/demo_screenshot.png [--photo synthetic_face]
"""

from __future__ import annotations

import argparse

from browser import chromium, click_example, full_page_screenshot, open_app, running_app, shown_probabilities

from modeling_au_mlt.configuration_au_mlt import AUMLTConfig
from modeling_au_mlt.inference.photo import example_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved AU-MLT folder or Hub id")
    parser.add_argument("--output", required=True, help="PNG to write")
    examples = example_images()
    parser.add_argument("--photo", default="synthetic_face", choices=sorted(examples), help="example photo to run")
    args = parser.parse_args()
    labels = AUMLTConfig.from_pretrained(args.model).num_labels  # the app loads the model itself
    with running_app(args.model) as url, chromium(width=1280) as driver:
        open_app(driver, url)
        click_example(driver, list(examples).index(args.photo))
        shown_probabilities(driver, labels)
        print(full_page_screenshot(driver, args.output))


if __name__ == "__main__":
    main()
