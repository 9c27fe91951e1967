"""Atomic file output: a result (any file, JSON, a figure, a folder) appears under its final name only once it
is completely written."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` only if the block completes, so an
    interrupted run never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: str | Path, data, *, compact: bool = False) -> Path:
    """Write `data` as JSON at `path` atomically, indented with a final newline, or `compact` (one line without
    spaces or final newline, for large machine-read files); returns the path."""
    text = json.dumps(data, separators=(",", ":")) if compact else json.dumps(data, indent=2) + "\n"
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def save_figure(figure, path: str | Path, dpi: int = 100, **savefig_options) -> Path:
    """Write a matplotlib `figure` at `path` atomically, in the format its suffix names (PNG without one);
    returns the path."""
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, **savefig_options)
    return Path(path)


def replace_dir(complete: Path, output_dir: Path, *, keep_other_entries: bool = False) -> None:
    """Rename the finished folder `complete` to `output_dir`; an earlier output is moved aside first and
    deleted after. With `keep_other_entries`, entries of the earlier output that `complete` lacks (e.g. a
    training run's checkpoints) are moved into it before the swap."""
    if not output_dir.exists():
        os.replace(complete, output_dir)
        return
    if keep_other_entries:
        for entry in output_dir.iterdir():
            if not (complete / entry.name).exists():
                os.replace(entry, complete / entry.name)
    old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
    os.replace(output_dir, old / "previous")
    os.replace(complete, output_dir)
    shutil.rmtree(old, ignore_errors=True)
