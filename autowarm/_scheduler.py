from __future__ import annotations


class RecipeLR:  # placeholder until the schedule library lands
    pass
