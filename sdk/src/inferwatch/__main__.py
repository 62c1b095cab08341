"""``python -m inferwatch``: the ``inferwatch`` command."""

import sys

from inferwatch.cli import main

sys.exit(main())
