"""The journal API: the frontend image of the journal service (run: python3 -m journal_api).

Standard library only, so the image needs nothing but Debian's python3.
"""

import sys

# The image runs with a read-only root filesystem: never try to write __pycache__
# (set here, not in __main__, because the package is imported before __main__ runs).
sys.dont_write_bytecode = True
