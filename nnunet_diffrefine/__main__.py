import sys

from nnunet_diffrefine.cli.main import main

sys.exit(main())
