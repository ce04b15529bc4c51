"""The training data a plain loop draws from a DataLoader (probe/_loaders.py), in-process."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from autowarm.probe import _loaders


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_loaders, "_drawn", {})
    cls = torch.utils.data.dataloader._BaseDataLoaderIter
    monkeypatch.setattr(cls, "__next__", cls.__next__)  # the patch is undone after the test
    _loaders.install()


def _dataset(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32).unsqueeze(1))


def _draw(loader: DataLoader, batches: int) -> None:
    it = iter(loader)
    for _ in range(batches):
        next(it)


@pytest.mark.usefixtures("counting")
def test_a_distributed_samplers_step_takes_the_batch_times_the_ranks() -> None:
    # each of 4 ranks draws 8 a step from its quarter of 1,000 examples: 32 a step in all
    sampler = DistributedSampler(_dataset(1000), num_replicas=4, rank=0, shuffle=False)
    _draw(DataLoader(sampler.dataset, batch_size=8, sampler=sampler), 20)
    assert _loaders.data(20) == {"train_examples": 1000, "examples_per_step": 32}


@pytest.mark.usefixtures("counting")
@pytest.mark.parametrize(("split_batches", "batch", "per_step"), [(False, 8, 16), (True, 16, 16)])
def test_accelerates_sharded_batches_count_every_process(
    split_batches: bool, batch: int, per_step: int
) -> None:
    # run_clm_no_trainer on 2 processes: 8 a process a step was read as 8 a step (0.5 passes)
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    data = _dataset(1000)
    batches = BatchSampler(SequentialSampler(data), batch, drop_last=False)
    shard = BatchSamplerShard(batches, num_processes=2, split_batches=split_batches)
    _draw(DataLoader(data, batch_sampler=shard), 20)
    assert _loaders.data(20) == {"train_examples": 1000, "examples_per_step": per_step}


@pytest.mark.usefixtures("counting")
def test_without_a_sized_loader_the_data_stay_unknown() -> None:
    assert _loaders.data(10) is None  # nothing drawn
    with torch.no_grad():  # an evaluation is not the training data
        _draw(DataLoader(_dataset(100), batch_size=10), 5)
    assert _loaders.data(5) is None
    _draw(DataLoader(_dataset(100), batch_size=None), 5)  # no batching: one example a draw
    assert _loaders.data(5) == {"train_examples": 100, "examples_per_step": 1}
