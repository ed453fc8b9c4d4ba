"""``python -m funapi_sync``: the same command line as the ``funapi-sync`` script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
