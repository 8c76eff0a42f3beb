"""The identity refiner: returns the prior unchanged (the framework's reference point and test)."""

from __future__ import annotations

import numpy as np

from nnunet_diffrefine.refine.base import Refiner, register


@register
class IdentityRefiner(Refiner):
    name = "identity"

    def refine(self, prior: np.ndarray, image: np.ndarray, seed: int = 0) -> np.ndarray:
        return np.asarray(prior, dtype=np.float32)
