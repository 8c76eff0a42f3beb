"""``nnunet-diffrefine train-refiner``: train a refiner for an already trained nnU-Net model."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def train_refiner_for_model(
    dataset: str | int,
    trainer: str,
    plans: str,
    configuration: str,
    folds: list[int],
    refiner: str,
    out_of_fold_from: list[int] | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    log=print,
) -> list[Path]:
    """Train ``refiner`` for each fold of ``nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIGURATION``.

    Each fold's refiner trains on that fold's out-of-fold probabilities (``fold_N/validation/*.npz``,
    from ``nnUNetv2_train ... --npz``), or on those of the folds ``out_of_fold_from`` together. Returns
    the ``fold_N/refiner_<name>`` folders.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_diffrefine.errors import InputError
    from nnunet_diffrefine.refine.base import check_refiner_name
    from nnunet_diffrefine.refine.run import model_folder_for
    from nnunet_diffrefine.training.refiner_stage import train_refiner

    check_refiner_name(refiner)
    model = model_folder_for(dataset, trainer, plans, configuration)
    plans_manager = PlansManager(str(model / "plans.json"))
    dataset_json = json.loads((model / "dataset.json").read_text())
    try:
        configuration_manager = plans_manager.get_configuration(configuration)
    except Exception as e:  # nnU-Net raises a bare RuntimeError for an unknown configuration
        raise InputError(f"{model / 'plans.json'}: {e}") from None
    preprocessed = (
        Path(os.environ.get("nnUNet_preprocessed", ""))
        / plans_manager.dataset_name
        / configuration_manager.data_identifier
    )
    if not os.environ.get("nnUNet_preprocessed") or not preprocessed.is_dir():
        raise InputError(
            f"{preprocessed} does not exist: the refiner trains on the base model's preprocessed data "
            f"(set nnUNet_preprocessed and run nnUNetv2_plan_and_preprocess)"
        )
    sources = None
    if out_of_fold_from:
        sources = [model / f"fold_{f}" / "validation" for f in out_of_fold_from]
    done = []
    for fold in folds:
        fold_folder = model / f"fold_{fold}"
        if not (fold_folder / "checkpoint_final.pth").is_file():
            raise InputError(
                f"{fold_folder / 'checkpoint_final.pth'} does not exist: finish nnUNetv2_train for fold {fold} first"
            )
        log(f"fold {fold}: training the {refiner} refiner")
        done.append(
            train_refiner(
                fold_folder,
                refiner,
                preprocessed,
                plans_manager,
                configuration_manager,
                dataset_json,
                device=device,
                validation_folders=sources,
                overwrite=overwrite,
                log=log,
            )
        )
    return done


def run(args: argparse.Namespace) -> int:
    folders = train_refiner_for_model(
        args.d,
        args.tr,
        args.p,
        args.c,
        [int(f) for f in args.f],
        args.refiner,
        [int(f) for f in args.oof_from] if args.oof_from else None,
        device=args.device,
        overwrite=args.overwrite,
    )
    for folder in folders:
        print(f"trained refiner in {folder}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-refiner",
        help="train a diffusion refiner on a trained model's out-of-fold probabilities",
        description="Train a refiner (corrdiff, ddpm, ddpm_scratch, medsegdiff, medsegdiff_scratch) for each "
        "fold of a model trained with nnUNetv2_train ... --npz (any trainer, stock nnU-Net included). It "
        "trains on the fold's out-of-fold validation probabilities in the model's preprocessed space and is "
        "saved in fold_N/refiner_NAME, where 'nnunet-diffrefine refine' finds it. An interrupted run "
        "resumes; a finished refiner is kept unless --overwrite. The schedule follows the "
        "DIFFREFINE_REFINER_* variables (see the README).",
    )
    p.add_argument("-d", required=True, help="dataset id or name")
    p.add_argument("-c", default="3d_fullres", help="configuration (default: 3d_fullres)")
    p.add_argument("-tr", default="nnUNetTrainer", help="trainer of the base model (default: nnUNetTrainer)")
    p.add_argument("-p", default="nnUNetPlans", help="plans of the base model (default: nnUNetPlans)")
    p.add_argument("-f", nargs="+", default=["0"], help="folds to train a refiner for (default: 0)")
    p.add_argument(
        "--refiner", required=True, help="corrdiff, ddpm, ddpm_scratch, medsegdiff or medsegdiff_scratch"
    )
    p.add_argument(
        "--oof-from",
        nargs="+",
        default=None,
        help="train on the out-of-fold probabilities of these folds together (e.g. 0 1 2 3 4 after a full "
        "cross-validation; default: each fold's own)",
    )
    p.add_argument("-device", default="cpu", choices=["cpu", "cuda"], help="device (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="retrain a refiner that is already trained")
    p.set_defaults(func=run)
