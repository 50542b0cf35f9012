"""Stack configuration -> frozen, validated settings.

Every key is read and checked here, once, before any resource is registered: a bad value
stops the program with one error that lists every problem by its config key, and nothing
is half-created. Defaults live in Pulumi.yaml (the engine applies them); this package
holds no second copy of them.

    values.py           the settings the components take, one frozen dataclass per tier
    image_reference.py  the image reference grammar, and which references are pinned
    quantities.py       CPU and binary quantities
    reader.py           reading one key at a time, every problem named by its key
    tls.py              the TLS keys and the ACME server's CA bundle
    passphrase.py       the passphrase file the engine encrypts the stack's secrets with
    loader.py           the stack's settings from its config, and the checks across keys
"""

from .image_reference import Image, parse_image
from .loader import MAX_REDIS_REPLICAS, load_settings, load_stack_settings
from .reader import SettingsError
from .values import (
    EdgeMode,
    EdgeSettings,
    FileServerSettings,
    FrontendSettings,
    ImagePullSettings,
    RedisSettings,
    Resources,
    Rollout,
    StackSettings,
    TlsIssuer,
    TlsSettings,
)

__all__ = [
    "MAX_REDIS_REPLICAS",
    "EdgeMode",
    "EdgeSettings",
    "FileServerSettings",
    "FrontendSettings",
    "Image",
    "ImagePullSettings",
    "RedisSettings",
    "Resources",
    "Rollout",
    "SettingsError",
    "StackSettings",
    "TlsIssuer",
    "TlsSettings",
    "load_settings",
    "load_stack_settings",
    "parse_image",
]
