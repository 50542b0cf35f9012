"""The journal API: the frontend image of the journal service (run: python3 -m journal_api).

Standard library and redis-py: the image needs Debian's python3 and python3-redis.
"""

import sys

# The image runs with a read-only root filesystem: never try to write __pycache__
# (set here, not in __main__, because the package is imported before __main__ runs).
sys.dont_write_bytecode = True
