"""Hub upload: the exact files sent (upload intercepted), and the offline failure that leaves the folder alone."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from conftest import REPO_ROOT, TRAINED_FOLDER_FILES
from huggingface_hub import HfApi

from modeling_au_mlt.hub.card import PLACEHOLDER_REPO
from modeling_au_mlt.hub.publish import push_model_folder

EXAMPLES = {"examples/grace_hopper.jpg", "examples/synthetic_face.png"}

NOT_SENT = [
    "training_args.bin",
    ".README.md.tmp",
    "checkpoint-3/model.safetensors",
    "checkpoint-3/trainer_state.json",
    "runs/Dec01/events.out.tfevents.1",
    "optimizer.pt",
    "examples/notes.txt",
    "examples/.partial.png",
]


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "au-mlt"
    for index, name in enumerate(sorted(TRAINED_FOLDER_FILES | EXAMPLES) + NOT_SENT):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"content {index} of {name}".encode())
    return folder


def snapshot(folder: Path) -> dict:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_push_sends_exactly_the_hub_ready_files(model_folder, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)

    def create_commit(self, repo_id, operations, **kwargs):
        calls["create_commit"] = (repo_id, operations)
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    url = push_model_folder(model_folder, "org/au-mlt", private=True)
    assert url == "https://huggingface.co/org/au-mlt/commit/abc"
    assert calls["create_repo"] == ("org/au-mlt", {"private": True, "exist_ok": True, "repo_type": "model"})
    repo_id, operations = calls["create_commit"]
    assert repo_id == "org/au-mlt"
    assert {operation.path_in_repo for operation in operations} == TRAINED_FOLDER_FILES | EXAMPLES
    for operation in operations:
        assert Path(operation.path_or_fileobj).read_bytes() == (model_folder / operation.path_in_repo).read_bytes()


def test_a_card_rendered_without_a_repository_is_sent_naming_the_one_pushed_to(model_folder, monkeypatch):
    card = (
        f"widget: https://huggingface.co/{PLACEHOLDER_REPO}/resolve/main/examples/a.jpg\nmodel={PLACEHOLDER_REPO!r}\n"
    )
    (model_folder / "README.md").write_text(card)
    sent = {}

    def create_commit(self, repo_id, operations, **kwargs):
        sent.update({operation.path_in_repo: operation.path_or_fileobj for operation in operations})
        return SimpleNamespace(commit_url="https://huggingface.co/org/au-mlt/commit/abc")

    monkeypatch.setattr(HfApi, "create_repo", lambda *args, **kwargs: None)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    push_model_folder(model_folder, "org/au-mlt")
    expected = "widget: https://huggingface.co/org/au-mlt/resolve/main/examples/a.jpg\nmodel='org/au-mlt'\n"
    assert sent["README.md"] == expected.encode()
    assert (model_folder / "README.md").read_text() == card  # the local folder is unchanged


def test_a_folder_without_weights_is_refused_before_any_upload(model_folder, monkeypatch):
    monkeypatch.setattr(HfApi, "create_repo", lambda *args, **kwargs: pytest.fail("must not contact the Hub"))
    (model_folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['model.safetensors'\]"):
        push_model_folder(model_folder, "org/au-mlt")


def test_offline_push_fails_clearly_and_leaves_the_folder_untouched(model_folder, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    script = importlib.util.spec_from_file_location("push_to_hub", REPO_ROOT / "scripts" / "push_to_hub.py")
    push_to_hub = importlib.util.module_from_spec(script)
    script.loader.exec_module(push_to_hub)
    before = snapshot(model_folder)
    assert push_to_hub.main(["--model_dir", str(model_folder), "--repo_id", "org/au-mlt"]) == 1
    stderr = capsys.readouterr().err
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in stderr
    assert "local folder is unchanged" in stderr
    assert snapshot(model_folder) == before
