"""`python -m app COMMAND`: see app/ops/cli.py."""

import sys

from app.ops.cli import main

sys.exit(main())
