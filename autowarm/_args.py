"""argparse types shared by the subcommands: a bad number is a usage error (exit 2)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what} but got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what} but got {value}")
    return value
