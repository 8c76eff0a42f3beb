"""The CPU schedule under which the base models learn on the synthetic phantoms (a named preset).

The papers train for hundreds of GPU epochs: AdamW at 1e-4 (Ke et al. Table 1, Evans et al. Table 1)
barely moves a network in a few hundred CPU iterations (MedNeXt stayed at a mean Dice of 0.02 after
100 iterations at 1e-4). For short CPU runs this preset keeps every paper setting but the length and
the peak learning rate: AdamW at 1e-3 for our trainers (10x the papers'), and nnU-Net's own SGD
(momentum 0.99, poly decay) at 1e-1 for stock nnU-Net (10x nnU-Net's default: at 1e-2 it had not
found the enhancing tumour after 400 iterations, held-out ET Dice 0.00, mean 0.37; at 3e-2 0.41; at
1e-1 0.65, on the demo's 48³ phantoms, fold 0 of 2, 4 test cases; a short schedule wants the larger
step, as in super-convergence), the same number of iterations for every model, a 2-epoch warm-up,
and a checkpoint every 5 epochs so that an interrupted run resumes (``--c``). It is applied through
the trainers' schedule variables (nnU-Net's trainer constructor has no other door) together with the
small-CPU plans (``nnunet-diffrefine plans --cpu``: patch <= 64³, batch 2, few features). The papers'
settings stay the defaults everywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nnunet_diffrefine.environment import TrainerSchedule


@dataclass(frozen=True)
class CPUSchedule:
    """Length and peak learning rates of a short CPU training (one epoch = ``iterations`` batches)."""

    epochs: int = 40
    iterations: int = 25
    val_iterations: int = 5
    warmup_epochs: int = 2
    save_every: int = 5
    adamw_lr: float = 1e-3
    stock_sgd_lr: float = 1e-1
    keep_checkpoints: tuple[int, ...] = ()
    """epochs whose weights are kept too (``checkpoint_epoch_<N>.pth``: more priors for a refiner)"""

    @property
    def total_iterations(self) -> int:
        return self.epochs * self.iterations

    def environment(self, trainer: str) -> dict[str, str]:
        """The ``DIFFREFINE_*`` variables that apply this schedule to ``nnUNetv2_train -tr trainer``."""
        lr = self.stock_sgd_lr if trainer.startswith("nnUNetTrainer") else self.adamw_lr
        return TrainerSchedule(
            num_epochs=self.epochs,
            num_iterations_per_epoch=self.iterations,
            num_val_iterations_per_epoch=self.val_iterations,
            warmup_epochs=self.warmup_epochs,
            initial_lr=lr,
            save_every=self.save_every,
            keep_checkpoints=tuple(self.keep_checkpoints) or None,
        ).environment()

    def to_json(self) -> dict:
        return asdict(self)
