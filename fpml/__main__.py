"""``python -m fpml`` runs the ``fpml`` command."""

import sys

from fpml.cli import main

sys.exit(main())
