"""The ``--fit-option KEY=VALUE`` and ``--loss NAME=W`` arguments the benchmark scripts share.

Each script says in its own help whom the values apply to (which settings); the parsing, the
one-line error for a bad value (argparse's exit 2) and the report's note of what was set live here.
"""
from __future__ import annotations

import argparse
from typing import Dict, Tuple

from fitter.config import parse_fit_options, parse_loss_option


def add_fit_arguments(ap: argparse.ArgumentParser, applies_to: str = "the fits") -> None:
    """Add the repeatable ``--fit-option`` and ``--loss`` arguments; ``applies_to`` ends their help."""
    ap.add_argument("--fit-option", action="append", default=[], metavar="KEY=VALUE",
                    help=f"FitConfig field (value read as JSON when it parses) for {applies_to}; repeatable")
    ap.add_argument("--loss", action="append", default=[], metavar="NAME=W",
                    help=f"loss weight for {applies_to}; repeatable")


def read_fit_arguments(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Tuple[Dict[str, object], Dict[str, float]]:
    """(FitConfig options, loss weights) of the parsed ``args``; a bad value ends the script through
    ``ap.error`` with its one-line message."""
    try:
        options = parse_fit_options(args.fit_option)
    except ValueError as err:
        ap.error(str(err))
    return options, read_losses(ap, args.loss)


def read_losses(ap: argparse.ArgumentParser, texts) -> Dict[str, float]:
    """The loss weights of ``--loss NAME=W`` texts (the calibration scripts take only these); a bad
    one ends the script through ``ap.error``."""
    try:
        return dict(parse_loss_option(text) for text in texts)
    except ValueError as err:
        ap.error(str(err))


def describe_fit_arguments(options: Dict[str, object], losses: Dict[str, float], sep: str = " ") -> str:
    """What the arguments set, for a report's header: `` key=value.`` then `` --loss name=w.`` each."""
    return ("".join(f"{sep}{k}={v}." for k, v in options.items())
            + "".join(f"{sep}--loss {k}={v:g}." for k, v in losses.items()))
