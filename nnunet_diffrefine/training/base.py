"""The trainer base shared by every trainer of this project.

What it changes relative to ``nnUNetTrainer`` (everything else, including nnU-Net's sampling, data
augmentation, validation, checkpoints, ``--c`` and ``--npz``, is inherited unchanged):

- the network: the plans' architecture entry is replaced by this trainer's network (kept when the
  plans already name it, e.g. from ``nnunet-diffrefine plans``) and the patch size is rounded up
  to what the network needs; both are written into the plans the trainer holds, so the
  ``plans.json`` saved in the results folder agrees with what was trained and inference builds
  the same network;
- the loss (``make_loss``), wrapped in nnU-Net's deep-supervision weighting when the network has
  deep supervision;
- AdamW (lr 1e-4, weight decay 1e-5), linear warm-up then cosine decay, gradient clipping at 1.0
  (``grad_clip``; nnU-Net's own step clips at 12 and has no setting for it, so the clip is an optimizer
  step pre-hook, :func:`clip_gradients_before_step`, and nnU-Net's ``train_step`` runs unchanged);
- the schedule can be shortened with environment variables (``nnunet_diffrefine.training.schedule``);
  the values in force are printed to the training log, and nnU-Net's ``debug.json`` beside the
  checkpoints records them with every other trainer attribute.

AMP is used only on CUDA, as in nnU-Net.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.training.architectures import ARCHITECTURES, ArchitectureSpec, round_up_patch
from nnunet_diffrefine.training.schedule import (
    SCHEDULE_VARIABLES,
    WarmupCosineLRScheduler,
    schedule_overrides,
)

DEFAULT_DEVICE = torch.device("cuda")  # nnU-Net's default; run_training passes -device


def clip_gradients_before_step(optimizer: torch.optim.Optimizer, max_norm: float):
    """Clip the global gradient norm of ``optimizer``'s parameters to ``max_norm`` before each of its steps
    (a step pre-hook; after AMP's unscaling, which nnU-Net does before it steps). Returns the hook handle."""

    def clip(opt: torch.optim.Optimizer, args, kwargs) -> None:
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    return optimizer.register_step_pre_hook(clip)


def deep_supervision_weights(num_outputs: int, is_ddp: bool = False) -> np.ndarray:
    """nnU-Net's weights: halved per resolution level, the lowest level dropped, normalised to sum 1."""
    weights = np.array([1 / (2**i) for i in range(num_outputs)])
    weights[-1] = 1e-6 if is_ddp else 0.0
    return weights / weights.sum()


class ScheduleFromEnvironmentMixin:
    """nnU-Net's trainer constructor, then this trainer's defaults (:meth:`set_trainer_defaults`), then the
    ``DIFFREFINE_*`` schedule variables over them."""

    warmup_epochs: int = 5
    keep_checkpoints: tuple[int, ...] = ()

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = DEFAULT_DEVICE,
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)  # type: ignore[call-arg]
        self.set_trainer_defaults()
        self.apply_schedule_overrides()

    def set_trainer_defaults(self) -> None:
        """What this trainer changes relative to ``nnUNetTrainer`` before the schedule variables apply."""

    def apply_schedule_overrides(self) -> None:
        for attribute, value in schedule_overrides().items():
            setattr(self, attribute, value)

    def on_train_start(self) -> None:
        super().on_train_start()  # type: ignore[misc]
        self.use_channels_last_on_cpu()
        self.log_schedule()

    def use_channels_last_on_cpu(self) -> None:
        """On the CPU, a 3D network's weights go to ``torch.channels_last_3d`` (each convolution then runs
        in that layout, same arithmetic): 30-40 % less time per training iteration for every 3D network
        here, measured by ``benchmarks/bench_networks.py --memory-format``. The parameters stay the same
        objects (the optimiser keeps them) and checkpoints load into either layout. Not on CUDA, where
        it was not measured."""
        if self.device.type != "cpu" or len(self.configuration_manager.patch_size) != 3:  # type: ignore[attr-defined]
            return
        self.network.to(memory_format=torch.channels_last_3d)  # type: ignore[attr-defined]
        self.print_to_log_file(  # type: ignore[attr-defined]
            "network weights in memory format channels_last_3d (CPU)", also_print_to_console=True
        )

    def on_epoch_end(self) -> None:
        """nnU-Net's epoch end, after keeping this epoch's weights as ``checkpoint_epoch_<N>.pth`` when ``N``
        (epochs finished, counted from 1) is in ``keep_checkpoints``: earlier snapshots of a fold, whose
        out-of-fold predictions are more real priors for a refiner (``checkpoint_priors``); nnU-Net itself
        keeps only the best, the latest and the final weights. Saved before nnU-Net's own checkpoints, so
        its ``current_epoch`` says N, as ``checkpoint_latest.pth`` saved after epoch N does."""
        finished = self.current_epoch + 1  # type: ignore[attr-defined]
        if finished in self.keep_checkpoints and finished < self.num_epochs:  # type: ignore[attr-defined]
            folder = self.output_folder  # type: ignore[attr-defined]
            self.save_checkpoint(os.path.join(folder, f"checkpoint_epoch_{finished}.pth"))  # type: ignore[attr-defined]
        super().on_epoch_end()  # type: ignore[misc]

    def log_schedule(self) -> None:
        set_vars = {v: getattr(self, a) for a, v in SCHEDULE_VARIABLES.items() if hasattr(self, a)}
        self.print_to_log_file(  # type: ignore[attr-defined]
            f"schedule: {self.num_epochs} epochs x {self.num_iterations_per_epoch} iterations "  # type: ignore[attr-defined]
            f"({self.num_val_iterations_per_epoch} validation iterations); set by {set_vars}",  # type: ignore[attr-defined]
            also_print_to_console=True,
        )


class nnUNetTrainerCustomSchedule(ScheduleFromEnvironmentMixin, nnUNetTrainer):  # noqa: N801 - nnU-Net naming
    """Stock ``nnUNetTrainer`` (network, loss, SGD, poly schedule) whose length follows the
    ``DIFFREFINE_*`` variables: the stock baseline for short CPU runs."""


class DiffRefineTrainerBase(ScheduleFromEnvironmentMixin, nnUNetTrainer):
    """Base of the MedNeXt, Swin-UNETR, residual U-Net and SegResNet trainers."""

    architecture_key: str = ""
    grad_clip: float = 1.0

    def set_trainer_defaults(self) -> None:
        """The papers' optimiser (AdamW 1e-4, weight decay 1e-5), the network's deep supervision and its
        plans (:meth:`adapt_plans`)."""
        self.initial_lr = 1e-4
        self.weight_decay = 1e-5
        self.enable_deep_supervision = self.spec.deep_supervision
        if self.label_manager.ignore_label is not None:
            raise InputError(f"{type(self).__name__} does not support datasets with an ignore label")
        self.adapt_plans()

    # --- what subclasses choose -----------------------------------------------------------------
    @property
    def spec(self) -> ArchitectureSpec:
        return ARCHITECTURES[self.architecture_key]

    def make_loss(self, regions: bool, batch_dice: bool) -> nn.Module:
        """The loss on one output; ``regions``: sigmoid region channels, else softmax classes."""
        raise NotImplementedError

    # --- plans ------------------------------------------------------------------------------------
    def adapt_plans(self) -> None:
        """Put this trainer's network and a compatible patch size into the plans it holds."""
        raw = self.plans_manager.plans["configurations"][self.configuration_name]
        resolved = self.configuration_manager.configuration
        architecture = resolved["architecture"]
        if architecture.get("network_class_name") != self.spec.class_name:
            architecture = self.spec.architecture()
        raw["architecture"] = architecture
        raw["patch_size"] = round_up_patch(resolved["patch_size"], self.spec.patch_multiple)
        # a fresh PlansManager: get_configuration is cached per manager and would return the old one
        self.configuration_manager = PlansManager(self.plans_manager.plans).get_configuration(
            self.configuration_name
        )

    # --- nnU-Net hooks ----------------------------------------------------------------------------
    def _build_loss(self) -> nn.Module:
        loss = self.make_loss(self.label_manager.has_regions, bool(self.configuration_manager.batch_dice))
        if self.enable_deep_supervision:
            loss = DeepSupervisionWrapper(
                loss, deep_supervision_weights(len(self._get_deep_supervision_scales()), self.is_ddp)
            )
        return loss

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """nnU-Net switches deep supervision back on after validation; only networks that have it get it."""
        super().set_deep_supervision_enabled(enabled and self.spec.deep_supervision)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay
        )
        scheduler = WarmupCosineLRScheduler(optimizer, self.initial_lr, self.num_epochs, self.warmup_epochs)
        clip_gradients_before_step(optimizer, self.grad_clip)
        return optimizer, scheduler

    def on_train_start(self) -> None:
        super().on_train_start()
        arch = self.configuration_manager.configuration["architecture"]
        n_params = sum(p.numel() for p in self.network.parameters())
        self.print_to_log_file(
            f"network: {arch['network_class_name']} {arch['arch_kwargs']} ({n_params:,} parameters), "
            f"patch size {self.configuration_manager.patch_size}, AdamW lr {self.initial_lr} wd {self.weight_decay}, "
            f"warm-up {self.warmup_epochs} epochs + cosine, gradient clip {self.grad_clip}",
            also_print_to_console=True,
        )
