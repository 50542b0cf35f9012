"""Strict validation against the Kubernetes OpenAPI schema (kubernetes-validate), with each
schema file read once per run.

kubernetes_validate.validate reads its JSON schema files again on every call, the
definitions file of several megabytes included: about a tenth of a second per object,
most of the unit layer's time. The files never change during a run, so they are cached.
"""

import functools
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils

from support.program_mocks import KUBERNETES_VERSION

kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)


def validate_strictly(manifest: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError for a field the schema does not know, a
    wrong type or a missing required field."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
