"""Refinement of the probabilities nnU-Net exports: the refiner contract, its refiners, training and
application to nnU-Net's folders.

``nnunet-diffrefine refine`` reads an ``nnUNetv2_predict --save_probabilities`` folder, hands each
refiner (prior probabilities, image) in the base model's preprocessed space, and writes refined
``.npz``/``.pkl``/segmentation files in nnU-Net's own format. This package depends on nothing above
it (not on ``training``, ``benchmark``, ``demo`` or ``cli``): see :mod:`.base` for the contract and
:mod:`.registry` for how refiners are found.
"""
