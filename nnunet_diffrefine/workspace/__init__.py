"""The nnU-Net workspace: its three folders passed explicitly, its commands as one typed API, and one
resumable stage runner. The demo, the benchmark scripts and the test fixtures drive nnU-Net through it."""

from nnunet_diffrefine.workspace.commands import CommandError, NnUNetCommands
from nnunet_diffrefine.workspace.folders import NnUNetFolders, trainer_folder
from nnunet_diffrefine.workspace.stages import Stage, StageError, StageRunner, exit_on_sigterm, git_commit

__all__ = [
    "CommandError",
    "NnUNetCommands",
    "NnUNetFolders",
    "Stage",
    "StageError",
    "StageRunner",
    "exit_on_sigterm",
    "git_commit",
    "trainer_folder",
]
