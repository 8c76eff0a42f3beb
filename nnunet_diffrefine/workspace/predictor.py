"""nnU-Net's own predictor for one fold of a trained model, set up as its final validation sets it up."""

from __future__ import annotations

import os


def fold_predictor(
    model_folder: str | os.PathLike,
    fold: int | str,
    checkpoint: str = "checkpoint_final.pth",
    device: str = "cpu",
    use_mirroring: bool = True,
):
    """An ``nnUNetPredictor`` for ``model_folder/fold_{fold}/{checkpoint}`` (step 0.5, Gaussian blending,
    the trainer's mirroring axes when ``use_mirroring``; everything on the device only on CUDA)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_diffrefine.environment import ensure_trainer_lookup

    ensure_trainer_lookup()
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=use_mirroring,
        perform_everything_on_device=device.startswith("cuda"),
        device=torch.device(device),
        verbose=False,
        verbose_preprocessing=False,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(
        str(model_folder), use_folds=(fold,), checkpoint_name=checkpoint
    )
    return predictor
