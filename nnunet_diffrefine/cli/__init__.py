"""The ``nnunet-diffrefine`` command: one argparse subcommand per module, each a thin wrapper
over a library function of the same purpose (as nnU-Net's commands are)."""
