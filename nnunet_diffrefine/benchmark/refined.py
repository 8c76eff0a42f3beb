"""A refined benchmark row: which refiner, on which prior, trained and applied with which changes.
Shared by the phantom (:mod:`.heldout`) and the cross-validated (:mod:`.crossval`) benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Refined:
    """A refined row: ``refiner`` on ``prior``'s out-of-fold priors, trained with ``changes`` to the cpu
    preset (saved as ``refiner_<refiner>__<tag>`` when given) and applied with inference ``overrides``;
    ``force``: applied everywhere, whatever its validation gate says."""

    prior: str
    refiner: str
    overrides: dict = field(default_factory=dict)
    force: bool = False
    changes: dict = field(default_factory=dict)
    tag: str | None = None

    @property
    def folder_name(self) -> str:
        """The refiner's folder name in ``fold_N``: ``refiner_<folder_name>``."""
        return self.refiner + (f"__{self.tag}" if self.tag else "")
