"""Adapters for training frameworks, each importing its framework only when used:

- :mod:`autowarm.integrations.hf`: ``Trainer(..., callbacks=[AutowarmCallback()])``;
- :mod:`autowarm.integrations.lightning`: ``lightning.Trainer(callbacks=[AutowarmCallback()])``.

accelerate needs no adapter: ``accelerator.prepare(autowarm.wrap(optimizer))`` and
``autowarm.report(optimizer, loss)`` (the function form finds the wrapper inside accelerate's).
"""
