from __future__ import annotations


class Recipe:  # placeholder until the schedule library lands
    pass
