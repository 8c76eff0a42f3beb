"""Losses of the two papers: segmentation losses for the trainers (:mod:`.segmentation`) and the
diffusion refiners' losses (:mod:`.diffusion`). Importing this sub-package imports torch."""
