"""The identity refiner: returns the prior unchanged (the framework's reference point and test)."""

from __future__ import annotations

import numpy as np

from nnunet_diffrefine.refine.base import Refiner


class IdentityRefiner(Refiner):
    """Returns the prior unchanged: refining with it reproduces nnU-Net's own files exactly."""

    name = "identity"

    def refine_with_uncertainty(self, prior: np.ndarray, image: np.ndarray, seed: int = 0):
        prior = np.asarray(prior, dtype=np.float32)
        return prior, np.zeros_like(prior)
