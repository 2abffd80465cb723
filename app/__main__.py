"""`python -m app COMMAND`: see app/cli.py."""

import sys

from app.cli import main

sys.exit(main())
