"""``nnunet-diffrefine train-refiner``: train a refiner for an already trained nnU-Net model."""

from __future__ import annotations

import argparse
import sys

from nnunet_diffrefine.cli.arguments import (
    add_device,
    add_model_arguments,
    add_overwrite,
    key_value,
    non_negative_int,
    positive_float,
    positive_int,
)

SUMMARY = "train a diffusion refiner on a trained model's out-of-fold probabilities"
DESCRIPTION = (
    "Train a refiner for each fold of a model trained with nnUNetv2_train ... --npz (any trainer, stock "
    "nnU-Net included) on the fold's out-of-fold validation probabilities in the model's preprocessed "
    "space; it is saved in fold_N/refiner_NAME, where 'nnunet-diffrefine refine' finds it. Settings: the "
    "paper's by default, changed by --preset, the flags below and --set; they are printed, written to "
    "the training log and saved with every checkpoint. An interrupted run resumes; a finished refiner "
    "is kept unless --overwrite."
)
PARSER_OPTIONS = {"add_help": False, "formatter_class": argparse.RawDescriptionHelpFormatter}

# flag -> the refiner setting it sets
SCHEDULE_FLAGS = {
    "epochs": "max_epochs",
    "iters_per_epoch": "iterations_per_epoch",
    "patience": "patience",
    "lr": "learning_rate",
    "weight_decay": "weight_decay",
    "batch_size": "batch_size",
    "steps": "inference_steps",
    "patch_size": "patch_size",
    "seed": "seed",
}


def settings_from_args(args: argparse.Namespace):
    """The refiner's typed settings: its defaults (the paper's), ``--preset``, the flags, then ``--set``."""
    from nnunet_diffrefine.refine.registry import refiner_settings

    changes = {
        key: getattr(args, flag) for flag, key in SCHEDULE_FLAGS.items() if getattr(args, flag) is not None
    }
    changes.update(dict(args.set or []))
    return refiner_settings(args.refiner, args.preset, **changes)


def run(args: argparse.Namespace) -> int:
    from nnunet_diffrefine.environment import nnunet_folders
    from nnunet_diffrefine.refine.train import train_refiner_for_model

    settings = settings_from_args(args)
    print(f"{args.refiner} settings: {settings.summary()}")
    folders = train_refiner_for_model(
        nnunet_folders(),
        args.d,
        args.tr,
        args.p,
        args.c,
        args.f,
        args.refiner,
        settings,
        args.oof_from,
        args.device,
        args.overwrite,
        tag=args.tag,
    )
    for folder in folders:
        print(f"trained refiner in {folder}")
    return 0


def settings_table() -> str:
    """Every refiner's settings and defaults (imports the refiners, so only built for ``--help``)."""
    from nnunet_diffrefine.refine.registry import refiner_class, trainable_refiners

    lines = ["settings of each refiner (default = the paper's; --set KEY=VALUE changes any of them):"]
    for name in trainable_refiners():
        cls = refiner_class(name).settings_class
        presets = ", ".join(p for p in cls.presets() if p != "paper")
        lines.append(f"\n{name} (presets: paper, {presets}):")
        lines += [
            f"  {key:<21} {default!r:<16} {text}" for key, default, text in cls.describe() if key != "preset"
        ]
    return "\n".join(lines)


class _HelpWithSettings(argparse.Action):
    """``-h``: the usual help followed by :func:`settings_table`."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        print("\n" + settings_table())
        sys.exit(0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nnunet_diffrefine.refine.registry import trainable_refiners

    names = trainable_refiners()
    p.add_argument(
        "-h", "--help", action=_HelpWithSettings, help="show this help and every refiner's settings"
    )
    add_model_arguments(p, "nnUNetTrainer", ["0"], "folds to train a refiner for")
    p.add_argument("--refiner", required=True, choices=names, help=", ".join(names))
    p.add_argument(
        "--tag",
        default=None,
        help="save as fold_N/refiner_<refiner>__<tag>, next to the default one (a variant with other "
        "settings); apply it with 'refine --refiner <refiner>__<tag>'",
    )
    p.add_argument(
        "--oof-from",
        nargs="+",
        type=non_negative_int,
        default=None,
        help="train on the out-of-fold probabilities of these folds together (e.g. 0 1 2 3 4 after a full "
        "cross-validation; default: each fold's own)",
    )
    p.add_argument(
        "--preset", default="paper", help="named settings: paper (default), cpu (short CPU schedules), tiny"
    )
    schedule = p.add_argument_group("schedule (default: the preset's)")
    schedule.add_argument("--epochs", type=positive_int, help="maximum epochs")
    schedule.add_argument("--iters-per-epoch", type=positive_int, help="training iterations per epoch")
    schedule.add_argument("--patience", type=positive_int, help="early stopping: epochs without improvement")
    schedule.add_argument("--lr", type=positive_float, help="peak AdamW learning rate")
    schedule.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    schedule.add_argument(
        "--batch-size", type=positive_int, help="patches (MedSegDiff: slices) per iteration"
    )
    schedule.add_argument("--steps", type=positive_int, help="reverse diffusion steps at inference")
    schedule.add_argument("--patch-size", help="training patch Z,Y,X (none: the base model's)")
    schedule.add_argument("--seed", type=non_negative_int, help="seed of weights, sampling and noise")
    schedule.add_argument(
        "--set", action="append", type=key_value, metavar="KEY=VALUE", help="any other setting"
    )
    add_device(p)
    add_overwrite(p, "retrain a refiner that is already trained")
