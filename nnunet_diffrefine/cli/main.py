"""Entry point of the ``nnunet-diffrefine`` console script."""

from __future__ import annotations

import argparse
import importlib
import sys

from nnunet_diffrefine import __version__
from nnunet_diffrefine.errors import DiffRefineError
from nnunet_diffrefine.utils.io import OutputExistsError

# subcommand name -> module in nnunet_diffrefine.cli providing SUMMARY, DESCRIPTION, add_arguments(parser),
# run(args) and optionally PARSER_OPTIONS (more keyword arguments of the sub-parser)
SUBCOMMANDS: dict[str, str] = {
    "env": "env",
    "synth": "synth",
    "convert": "convert",
    "demo": "demo",
    "plans": "plans",
    "benchmark": "benchmark",
    "evaluate": "evaluate",
    "train-refiner": "train_refiner",
    "refine": "refine",
    "report": "report",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; with ``only``, only that subcommand gets its options (the others are
    listed with their summaries): some options' choices import torch, seconds that ``evaluate`` or
    ``report`` need not wait for."""
    parser = argparse.ArgumentParser(
        prog="nnunet-diffrefine",
        description="nnU-Net v2 extension for multimodal brain tumor MRI: trainers, diffusion refiners, "
        "BraTS metrics, reports. Run 'nnunet-diffrefine COMMAND -h' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"nnunet_diffrefine.cli.{module_name}")
        options = getattr(module, "PARSER_OPTIONS", {})
        sub_parser = sub.add_parser(name, help=module.SUMMARY, description=module.DESCRIPTION, **options)
        if only in (None, name):
            module.add_arguments(sub_parser)
        sub_parser.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (DiffRefineError, OutputExistsError, FileNotFoundError) as e:
        print(f"nnunet-diffrefine {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nnunet-diffrefine {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
