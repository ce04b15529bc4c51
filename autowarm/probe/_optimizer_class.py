"""Inside a trial: the class of the optimizer the script wrapped.

The code to paste builds that one with the recipe's peak LR (``evidence.script_optimizer``,
:mod:`autowarm.schedule._code`), so a script on SGD is not handed an AdamW at an SGD's peak LR
(Lightning's own Transformer example, SGD at 0.1, was: ``torch.optim.AdamW(..., lr=2.85)``).
"""

from __future__ import annotations

from typing import Any


def optimizer_class(driven: list[Any]) -> str | None:
    """The class of the bare optimizer under the first wrapped one (``"torch.optim.SGD"``,
    ``"__main__.Lion"``): the code to paste builds that one with the recipe's peak LR, not an
    AdamW the script never used; None if nothing was wrapped."""
    if not driven:
        return None
    cls = type(getattr(driven[0], "optimizer", driven[0]))
    module = "torch.optim" if cls.__module__.startswith("torch.optim.") else cls.__module__
    return f"{module}.{cls.__qualname__}"
