"""Inside a trial: the training data a plain loop feeds through a ``torch.utils.data.DataLoader``.

The noise rule (:mod:`autowarm.probe._recommend`, step 6) cuts the LR for a noisy training loss
only where the full run revisits its examples often enough to memorise them; that needs the
run's passes over its training data. The HF and Lightning callbacks read them from their
trainer (:func:`autowarm.probe._child.note_data`); a plain loop that draws its batches from a
``DataLoader`` tells them by drawing: every batch the trial draws *with grad enabled* (training,
not an evaluation under ``torch.no_grad()``) is counted against its dataset. The dataset drawn
most is the training set: its length, and the examples its batches gave per optimizer step
(batch size x micro-batches, so gradient accumulation counts), are the trial's data.

Under a ``DistributedSampler`` each rank draws its own batches of the one dataset: a step takes
the batch times its ``num_replicas``. Not seen: loops that index tensors themselves (nanoGPT's
``get_batch``) and iterable datasets (no length); such a script can state its passes with
``autowarm probe --epochs``.
"""

from __future__ import annotations

from typing import Any

#: id(dataset) -> [batches drawn with grad enabled, examples a batch, the dataset's length]
_drawn: dict[int, list[int]] = {}


def install() -> None:
    """Count the batches every DataLoader iterator yields in this process (no-op without torch)."""
    try:
        import torch
        from torch.utils.data import dataloader
    except ImportError:
        return
    cls = getattr(dataloader, "_BaseDataLoaderIter", None)
    if cls is None:  # private: a torch without it counts nothing, as without a DataLoader
        return
    next_batch = cls.__next__
    if getattr(next_batch, "__autowarm_loaders__", False):
        return

    def counted(self: Any) -> Any:
        batch = next_batch(self)
        if torch.is_grad_enabled():  # an evaluation under no_grad is not the training data
            _note(self)
        return batch

    counted.__autowarm_loaders__ = True  # type: ignore[attr-defined]
    cls.__next__ = counted  # type: ignore[method-assign]


def _note(it: Any) -> None:
    dataset = getattr(it, "_dataset", None)
    seen = _drawn.get(id(dataset))
    if seen is None:
        # the loader's private fields: read defensively, a torch without them counts nothing
        collated = getattr(it, "_auto_collation", False)
        index_sampler = getattr(it, "_index_sampler", None)
        per = getattr(index_sampler, "batch_size", None) if collated else 1
        # a DistributedSampler's other ranks draw as many batches of other examples: one step
        # of the run takes the batch times the ranks (this count is rank 0's)
        sampler = getattr(index_sampler, "sampler", index_sampler)
        ranks = getattr(sampler, "num_replicas", 1)
        # accelerate's prepared loader shards the batches themselves: each process draws whole
        # batches, unless split_batches cuts one batch among them
        if not getattr(index_sampler, "split_batches", True):
            ranks = getattr(index_sampler, "num_processes", ranks)
        per = int(per or 0) * (ranks if isinstance(ranks, int) and ranks > 0 else 1)
        seen = _drawn[id(dataset)] = [0, per, sized(dataset)]
    seen[0] += 1


def sized(obj: Any) -> int:
    """``len(obj)``, or 0 where it has none (an iterable dataset)."""
    try:
        return len(obj)
    except TypeError:
        return 0


def data(steps: int) -> dict[str, int] | None:
    """The training data as the trial drew it over ``steps`` optimizer steps (the shape of
    :func:`autowarm.probe._child.note_data`'s), or None where no sized DataLoader fed it."""
    if steps <= 0 or not _drawn:
        return None
    batches, per, size = max(_drawn.values())
    if size <= 0 or per <= 0:
        return None
    return {"train_examples": size, "examples_per_step": max(1, round(batches * per / steps))}
