"""nnU-Net's dataset fingerprint, drawing a chosen number of foreground intensities.

nnU-Net's fingerprint draws 10^8 foreground intensities per channel in total (10^8 / n per case, with
replacement) whatever the dataset's size: for 5 phantoms of 32³ voxels that is 2 x 10^7 draws per case
and channel, and 43 of the 53 s of ``nnUNetv2_plan_and_preprocess`` on 2 cores. The draws only feed the
intensity statistics of CT normalisation (clip percentiles, mean, std); MRI channels (nnU-Net's
``ZScoreNormalization``, which BraTS datasets get) never read them, and spacing, shapes, patch size,
network and preprocessing do not depend on them. So a small MRI dataset can draw far fewer with plans
that differ only in ``foreground_intensity_properties_per_channel``.

The extraction is nnU-Net's own (its public ``extract_fingerprint_dataset`` with its extractor, one
attribute changed). nnU-Net reads its folders from the environment when it is imported, so this runs
as its own process, as nnU-Net's commands do:

    python -m nnunet_diffrefine.workspace.fingerprint -d ID -np N --intensity-samples K [--verify_dataset_integrity]

An existing fingerprint is kept (as ``nnUNetv2_extract_fingerprint`` without ``--clean`` does), so
``nnUNetv2_plan_and_preprocess`` run afterwards plans from it.
"""

from __future__ import annotations

import argparse

SAMPLES_ATTRIBUTE = "num_foreground_voxels_for_intensitystats"
"""The attribute of nnU-Net's ``DatasetFingerprintExtractor`` that holds the total number of draws."""


def sampled_extractor_class(intensity_samples: int) -> type:
    """nnU-Net's ``DatasetFingerprintExtractor`` drawing ``intensity_samples`` foreground intensities per
    channel in total (spread evenly over the cases) instead of 10^8."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
        DatasetFingerprintExtractor,
    )

    if intensity_samples < 1:
        raise ValueError(f"intensity_samples must be at least 1, got {intensity_samples}")

    class SampledFingerprintExtractor(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if not hasattr(self, SAMPLES_ATTRIBUTE):  # a renamed attribute would be ignored silently
                raise RuntimeError(
                    f"nnU-Net's DatasetFingerprintExtractor has no attribute {SAMPLES_ATTRIBUTE!r} any more; "
                    "run plan_and_preprocess without intensity_samples"
                )
            if intensity_samples < len(self.dataset):  # nnU-Net would draw 0 per case, then fail on them
                raise ValueError(
                    f"intensity_samples ({intensity_samples}) must be at least the number of training cases "
                    f"({len(self.dataset)})"
                )
            setattr(self, SAMPLES_ATTRIBUTE, float(intensity_samples))

    return SampledFingerprintExtractor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", type=int, required=True, help="dataset id")
    p.add_argument("-np", type=int, default=2, help="processes (as nnUNetv2_extract_fingerprint's -np)")
    p.add_argument(
        "--intensity-samples", type=int, required=True, help="foreground draws per channel, in total"
    )
    p.add_argument("--verify_dataset_integrity", action="store_true")
    a = p.parse_args(argv)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    extract_fingerprint_dataset(
        a.d,
        sampled_extractor_class(a.intensity_samples),
        a.np,
        check_dataset_integrity=a.verify_dataset_integrity,
        clean=False,
        verbose=False,
        show_progress_bar=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
