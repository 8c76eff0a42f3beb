"""nnunet-diffrefine: an nnU-Net v2 extension for multimodal brain tumor MRI.

Sub-packages, one per stage of the pipeline:

- ``data``: BraTS conventions, the BraTS -> nnU-Net converter and the synthetic phantoms;
- ``networks``, ``losses``: the networks and losses of the trainers and refiners;
- ``training``: the nnU-Net trainer base, plans presets and schedules;
- ``refine``: the refiners (DDPM, MedSegDiff, CorrDiff, the deterministic control), their training
  and ``refine_folder``;
- ``evaluation``: BraTS metrics (nnU-Net's, HD95, lesion-wise, the official protocol);
- ``benchmark``: models compared with stock nnU-Net on the same folds; paired statistics;
- ``report``: the radiology-style report;
- ``workspace``: nnU-Net's folders, commands and a resumable stage runner;
- ``demo``: the end-to-end demo; ``cli``: the ``nnunet-diffrefine`` command and its subcommands;
- ``utils``: small shared helpers (atomic writes, statistics, resources);
- ``environment``: the one module that reads environment variables.

The papers the refiners follow, cited by first author in the code: Ke et al., "Diffusion-Refined
Segmentation and Vision-Language Interpretation for Pediatric Brain Tumor MRI" (arXiv:2606.14072, 2026)
and Evans et al., "CoMNeT: A MedNeXt-CorrDiff Framework for Volumetric Brain Tumor Segmentation"
(preprint).

Heavy dependencies (torch, nnunetv2, SimpleITK) are imported lazily inside functions so that
``import nnunet_diffrefine`` and ``nnunet-diffrefine --help`` stay fast.
"""

__version__ = "0.1.0"
