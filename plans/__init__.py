"""The plans presets: one JSON file per network (``mednext.json``, ``swinunetr.json`` ...).

Each file gives the plans ``architecture`` entry of one of this project's networks
(``network_class_name`` and its ``arch_kwargs``, for the default size and for the small-CPU preset)
and how the network fits nnU-Net (number of stride-2 downsamplings, the multiple every patch side
must be, deep supervision, the suffix of the plans name). ``nnunet-diffrefine plans`` reads them
(``nnunet_diffrefine.training.architectures``); edit or add a file to change a preset.

Installed as the package ``nnunet_diffrefine.plans`` (editable or wheel), like ``trainers/``.
"""
