"""Warm models: pipelines and scorers stay loaded between runs in an LRU; on the CPU at most a set number of each,
the least recently used let go first; ``loaded_models`` names them by credited id and device, never by path."""

import shutil

import pytest
import torch

from workshop.runner.models import Warm, keep_warm, load_pipeline, loaded_models, resolve
from workshop.runner.scoring import load_scorer

CPU = torch.device("cpu")


@pytest.fixture
def cold():
    for pool in Warm.pools:  # pipelines, scorers, VAEs: whatever tests before left warm
        pool.entries.clear()
    yield
    keep_warm(2)


def test_the_least_recently_used_pipeline_is_let_go_on_the_cpu(tmp_path, cold):
    copy = tmp_path / "tiny-copy"
    shutil.copytree(resolve("tiny").path, copy)
    tiny = load_pipeline(resolve("tiny"), CPU)
    shapes = load_pipeline(resolve("shapes"), CPU)
    assert load_pipeline(resolve("tiny"), CPU) is tiny  # warm, and now the most recently used
    load_pipeline(resolve(str(copy)), CPU)
    assert loaded_models() == ["tiny on cpu", "tiny-copy on cpu"]  # shapes went; a local folder by its name only
    assert load_pipeline(resolve("shapes"), CPU) is not shapes  # loaded again
    assert loaded_models() == ["tiny-copy on cpu", "shapes on cpu"]
    keep_warm(1)
    assert loaded_models() == ["shapes on cpu"]


def test_scorers_are_kept_warm_likewise(cold):
    keep_warm(1)
    tiny = load_scorer("tiny-clip", CPU)
    assert load_scorer("tiny-clip", CPU) is tiny and loaded_models() == ["tiny-clip (scorer) on cpu"]
    load_scorer("shapes-clip", CPU)
    assert loaded_models() == ["shapes-clip (scorer) on cpu"]
    assert load_scorer("tiny-clip", CPU) is not tiny
