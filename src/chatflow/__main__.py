"""``python -m chatflow``."""

import sys

from chatflow.cli import main

sys.exit(main())
