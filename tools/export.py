#!/usr/bin/env python
"""Offline exporter: ``python tools/export.py VIDEO BUNDLE [fit options]`` is ``livetex fit VIDEO -o BUNDLE``."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from livetex.cli import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2 or args[0].startswith("-") or args[1].startswith("-"):
        print("usage: python tools/export.py VIDEO BUNDLE [livetex fit options]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(["fit", args[0], "-o", args[1], *args[2:]]))
