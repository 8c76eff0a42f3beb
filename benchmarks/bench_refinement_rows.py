"""The rows of the phantom refinement benchmark (``bench_refinement.py``) and the tables they appear in:
declarations shared by the script and its report (``bench_refinement_report.py``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET_ID = 962
BASES = {  # row -> (trainer, plans preset architecture); run in this order (cheapest answer first)
    "nnU-Net (stock)": ("nnUNetTrainerCustomSchedule", "nnunet"),
    "MedNeXt": ("MedNeXtTrainer", "mednext"),
    "Res U-Net": ("ResUNetTrainer", "resunet"),
    "SegResNet": ("SegResNetTrainer", "segresnet"),
    "Swin-UNETR": ("SwinUNETRTrainer", "swinunetr"),
}
REFINED = {  # row -> (prior row, refiner, inference overrides)
    "DDPM (scratch)": ("Swin-UNETR", "ddpm_scratch", {}),
    "DDPM (cond)": ("Swin-UNETR", "ddpm", {}),
    "MedSegDiff (scratch)": ("Swin-UNETR", "medsegdiff_scratch", {}),
    "MedSegDiff (cond)": ("Swin-UNETR", "medsegdiff", {}),
    "MedSegDiff (cond), highway only (w = 0)": ("Swin-UNETR", "medsegdiff", {"fusion_weight": 0.0}),
    "CoMNeT (MedNeXt + CorrDiff, fold ensemble)": ("MedNeXt", "corrdiff", {}),
    "Control (deterministic)": ("Swin-UNETR", "control", {}),
}
TABLES = {
    "Ke et al., Table 3 layout": [
        "nnU-Net (stock)",
        "Res U-Net",
        "Swin-UNETR",
        *list(REFINED)[:5],
        "Control (deterministic)",
    ],
    "Evans et al. (CoMNeT), Table 2 layout": ["nnU-Net (stock)", "SegResNet", "MedNeXt", list(REFINED)[5]],
}
PAIRS = [("DDPM (scratch)", "DDPM (cond)"), ("MedSegDiff (scratch)", "MedSegDiff (cond)")]
PAIRS += [("MedSegDiff (cond), highway only (w = 0)", "MedSegDiff (cond)")]
PAIRS += [("Control (deterministic)", r) for r in ("DDPM (cond)", "MedSegDiff (cond)")]  # is diffusion needed
