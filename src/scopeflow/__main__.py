"""``python -m scopeflow``: see :mod:`scopeflow.cli`."""

import sys

from scopeflow.cli import main

sys.exit(main())
