"""``python -m babelcap``: the ``babelcap`` command."""

import sys

from babelcap.cli import main

sys.exit(main())
