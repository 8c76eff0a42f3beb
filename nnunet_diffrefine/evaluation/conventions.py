"""How empty masks are scored: the BraTS convention (default) or nnU-Net's NaN convention.

=============================  ==========================  ===============================
situation                      ``"brats"`` (BraTS scorer)   ``"nan"`` (nnU-Net)
=============================  ==========================  ===============================
both masks empty               Dice 1, HD95 0               Dice NaN, HD95 NaN
one mask empty                 Dice 0, HD95 = penalty       Dice 0, HD95 NaN
=============================  ==========================  ===============================

The penalty is 374 mm by default, the diagonal of the 240 x 240 x 155 mm BraTS field of view, which
is what the BraTS 2023 scorer writes for an infinite HD95. The same rules apply to IoU (as Dice),
sensitivity and precision (0/0: 1 when both masks are empty, else 0; NaN under ``"nan"``) and to the
lesion-wise scores (see :mod:`nnunet_diffrefine.evaluation.lesionwise`).
"""

from __future__ import annotations

from typing import Literal

from nnunet_diffrefine.errors import InputError

EmptyConvention = Literal["brats", "nan"]
EMPTY_CONVENTIONS: tuple[str, ...] = ("brats", "nan")

BRATS_HD95_PENALTY_MM: float = 374.0
"""HD95 (mm) the BraTS scorer gives when one of the two masks is empty."""


def check_empty_convention(convention: str) -> str:
    """Return ``convention`` if it is known, else raise :class:`InputError`."""
    if convention not in EMPTY_CONVENTIONS:
        raise InputError(
            f"unknown empty-mask convention {convention!r}; choose one of {', '.join(EMPTY_CONVENTIONS)}"
        )
    return convention


def check_penalty(penalty: float) -> float:
    """Return the HD95 penalty (mm) as a float if it is finite and >= 0, else raise :class:`InputError`."""
    value = float(penalty)
    if not 0.0 <= value < float("inf"):
        raise InputError(f"the HD95 penalty must be a finite number of mm >= 0, got {penalty}")
    return value
