"""Generation's torch thread count: one, unless COSYNTH_THREADS or OMP_NUM_THREADS says otherwise."""

import pytest
import torch

from napari_cosynth.engine.threads import generation_threads, use_generation_threads
from napari_cosynth.errors import CosynthError


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_one_thread_unless_the_user_says_otherwise(monkeypatch, restore_threads):
    monkeypatch.delenv("COSYNTH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert generation_threads() == 1
    torch.set_num_threads(2)
    assert use_generation_threads("cpu") == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    assert generation_threads() is None and use_generation_threads("cpu") == 2
    monkeypatch.setenv("COSYNTH_THREADS", "3")
    assert generation_threads() == 3 and use_generation_threads() == 3


def test_a_gpu_run_leaves_the_cpu_threads_alone(monkeypatch, restore_threads):
    monkeypatch.setenv("COSYNTH_THREADS", "1")
    torch.set_num_threads(2)
    assert use_generation_threads("cuda:0") == 2


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_a_bad_cosynth_threads_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("COSYNTH_THREADS", value)
    message = f"COSYNTH_THREADS='{value}': must be a whole number of threads >= 1"
    with pytest.raises(CosynthError, match=message):
        generation_threads()
