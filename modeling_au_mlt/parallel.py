"""One function over many tasks in worker processes, results in task order (the converters, the generator)."""

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import cv2

T, R = TypeVar("T"), TypeVar("R")


def parallel_map(function: Callable[[T], R], tasks: Sequence[T], num_proc: int) -> Iterator[R]:
    """`function` over `tasks` in order, in up to `num_proc` worker processes when that helps (else in this one).

    Workers are forked where the platform allows: a spawned worker re-imports the package (and with it
    transformers), which costs seconds of CPU per worker. A forked worker that inherits a running OpenCV thread
    pool deadlocks when it touches it (seen in the test suite after face detection had run), so the pool is
    shut down while the workers live.
    """
    if num_proc <= 1 or len(tasks) <= 1:
        yield from map(function, tasks)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.get_context(method).Pool(min(num_proc, len(tasks))) as pool:
            yield from pool.imap(function, tasks)
    finally:
        cv2.setNumThreads(threads)
