"""Argument types shared by the commands."""

from __future__ import annotations

import argparse


def at_least(minimum: int):
    """An argparse type: a whole number >= `minimum` (argparse names the option and exits with status 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is not allowed; allowed: >= {minimum}")
        return value

    return parse
