"""Refinement of the probabilities nnU-Net exports: the framework, its refiners and postprocessing.

``nnunet-diffrefine refine`` reads an ``nnUNetv2_predict --save_probabilities`` folder, hands each
refiner (prior probabilities, image) in the base model's preprocessed space, and writes refined
``.npz``/``.pkl``/segmentation files in nnU-Net's own format.
"""
