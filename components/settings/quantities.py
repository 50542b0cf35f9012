"""Kubernetes resource quantities, as far as the stack's config takes them: CPU in cores
or millicores, memory and storage with a binary suffix."""

import re
from decimal import Decimal

_CPU = re.compile(r"[0-9]+m|[0-9]+(\.[0-9]{1,3})?")
# Only binary suffixes: "1G" is a valid quantity but means 10^9 bytes, and it is almost
# always a typo for "1Gi".
_BINARY_QUANTITY = re.compile(r"([0-9]+)(Ki|Mi|Gi|Ti|Pi)")
_BINARY_FACTORS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def cpu_cores(quantity: str) -> Decimal:
    """Cores in a CPU quantity; 0 for anything that is not one."""
    if not _CPU.fullmatch(quantity):
        return Decimal(0)
    return Decimal(quantity[:-1]) / 1000 if quantity.endswith("m") else Decimal(quantity)


def binary_bytes(quantity: str) -> int:
    """Bytes in a binary quantity; 0 for anything that is not one."""
    match = _BINARY_QUANTITY.fullmatch(quantity)
    return int(match[1]) * _BINARY_FACTORS[match[2]] if match else 0
