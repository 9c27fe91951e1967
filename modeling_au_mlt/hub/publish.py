"""Upload a trained AU-MLT folder to the Hugging Face Hub with `huggingface_hub` (create_repo + create_commit).

Only the Hub-ready top-level files are sent (config, code files, weights, image processor, model card,
evaluation results, endpoint handler, logs in JSON) and the card's example pictures (`examples/*.jpg|png`): never
checkpoints, TensorBoard runs, hidden or temporary files, or pickles such as `training_args.bin`. A card rendered
without a repository id names `card.PLACEHOLDER_REPO` (in its code samples and widget addresses); the copy sent
names `repo_id` instead. Offline, unauthenticated or network failures raise `PublishError` saying so; the local
folder is never modified.
"""

import os
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import LocalTokenNotFoundError, OfflineModeIsEnabled

from .card import EXAMPLES_DIR, PLACEHOLDER_REPO

REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md")
UPLOADED_SUFFIXES = (".json", ".py", ".safetensors", ".md", ".txt")
EXAMPLE_SUFFIXES = (".jpg", ".png")


class PublishError(RuntimeError):
    """The upload to the Hub failed; the local folder is unchanged."""


def files_to_upload(model_dir: str | os.PathLike) -> list[str]:
    """Paths (relative to `model_dir`) of its Hub-ready files; `FileNotFoundError` naming what a loadable model
    lacks."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model folder")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir}: not a finished AU-MLT folder, missing {missing}")
    top_level = [path for path in model_dir.iterdir() if path.suffix in UPLOADED_SUFFIXES]
    examples = [path for path in (model_dir / EXAMPLES_DIR).glob("*") if path.suffix in EXAMPLE_SUFFIXES]
    return sorted(
        path.relative_to(model_dir).as_posix()
        for path in top_level + examples
        if path.is_file() and not path.name.startswith(".")
    )


def upload_content(path: Path, repo_id: str) -> str | bytes:
    """What is sent for `path`: the file itself, or for the model card its text naming `repo_id` where it was
    rendered without one."""
    if path.name != "README.md" or PLACEHOLDER_REPO not in (text := path.read_text(encoding="utf-8")):
        return str(path)
    return text.replace(PLACEHOLDER_REPO, repo_id).encode("utf-8")


def push_model_folder(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload AU-MLT model",
) -> str:
    """Create `repo_id` (if needed) and commit the Hub-ready files of `model_dir`; returns the commit URL."""
    names = files_to_upload(model_dir)
    api = HfApi(token=token)
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=upload_content(Path(model_dir) / name, repo_id))
        for name in names
    ]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    except OfflineModeIsEnabled as error:
        raise PublishError(
            f"cannot push {model_dir} to {repo_id}: offline mode is on (HF_HUB_OFFLINE=1). The local folder is "
            f"unchanged; push it later with: python scripts/push_to_hub.py --model_dir {model_dir} --repo_id {repo_id}"
        ) from error
    except LocalTokenNotFoundError as error:
        raise PublishError(
            f"cannot push {model_dir} to {repo_id}: not logged in (run `hf auth login` or set HF_TOKEN). "
            "The local folder is unchanged."
        ) from error
    except Exception as error:  # HTTP, network and permission errors all leave the user in the same place
        raise PublishError(
            f"pushing {model_dir} to {repo_id} failed ({type(error).__name__}: {error}). "
            "The local folder is unchanged; retry with: "
            f"python scripts/push_to_hub.py --model_dir {model_dir} --repo_id {repo_id}"
        ) from error
    return str(commit.commit_url)
