"""Queries run on one dedicated thread with one torch thread; callers keep their own."""

from __future__ import annotations

import threading

import pytest
import torch

from pixtention.selector.worker import on_query_thread


def _where() -> tuple[str, int]:
    return threading.current_thread().name, torch.get_num_threads()


def test_queries_run_single_threaded_on_their_own_thread() -> None:
    before = torch.get_num_threads()
    name, threads = on_query_thread(_where)
    assert name.startswith("pixtention-query") and threads == 1
    assert torch.get_num_threads() == before  # the caller's (and the sampler's) pool is untouched
    assert on_query_thread(on_query_thread, _where) == (name, 1)  # nested: runs in place
    assert on_query_thread(_where)[0] == name  # one thread, reused


def test_errors_reach_the_caller_unchanged() -> None:
    def fail() -> None:
        raise KeyError("no such adapter")

    with pytest.raises(KeyError, match="no such adapter"):
        on_query_thread(fail)
    assert on_query_thread(_where)[1] == 1  # the thread survives a failed query


def test_select_runs_there(monkeypatch) -> None:
    import importlib

    module = importlib.import_module("pixtention.selector.select")
    seen = []
    real = module.parse_prompt

    def spy(prompt):
        seen.append(_where())
        return real(prompt)

    monkeypatch.setattr(module, "parse_prompt", spy)

    class Empty:
        def __len__(self) -> int:
            return 0

    assert module.select("a red dragon", Empty()) == []
    assert module.select.__name__ == "select" and "best first" in module.select.__doc__
    assert seen and seen[0][0].startswith("pixtention-query") and seen[0][1] == 1
