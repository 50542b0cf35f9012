"""Container image references: the grammar container runtimes accept, and which of them
are pinned to one exact build."""

import re
from dataclasses import dataclass

# Patterns are applied with fullmatch: with match(), "$" would also accept a trailing newline.

# An exact release: v1.0.1, 1.27.3-alpine, v1.0.1-bfeda01f. Floating tags such as
# "latest", "7" or "alpine" move under a running Deployment and are refused. The tag is
# also the version label, so it must be a label value: at most 63 characters, ending in
# a letter or digit.
_EXACT_VERSION_TAG = re.compile(r"(?=.{1,63}\Z)v?[0-9]+\.[0-9]+\.[0-9]+([-_.][A-Za-z0-9_.-]*[A-Za-z0-9])?")
# The image reference grammar of the OCI distribution spec (as container runtimes parse it).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REGISTRY = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]+)?")
# A registry as a reference names it: a host with a dot or a port, or localhost.
REGISTRY_HOST = re.compile(rf"(?=[^/]*[.:]|localhost\Z){_REGISTRY.pattern}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True)
class Image:
    """A container image reference: [registry/]path[:tag][@digest]."""

    reference: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> bool:
        """Pinned by digest, or by an exact release tag (never 'latest' or '7')."""
        return self.digest is not None or (self.tag is not None and bool(_EXACT_VERSION_TAG.fullmatch(self.tag)))

    @property
    def version(self) -> str:
        """The value of the app.kubernetes.io/version label: the tag when it is an exact
        release (a valid label value by construction), else a digest prefix."""
        if self.tag is not None and _EXACT_VERSION_TAG.fullmatch(self.tag):
            return self.tag
        return "sha256-" + (self.digest or "")[len("sha256:") :][:12]


def parse_image(reference: str) -> Image | None:
    """The reference's parts, or None when it is not a valid image reference."""
    name, _, digest = reference.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        return None
    # A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    tag = None
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            return None
    first, _, rest = name.partition("/")
    # As container runtimes read it: the first component names a registry only when it
    # looks like a host (a dot or a port) or is "localhost"; then it may have capitals.
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _REGISTRY.fullmatch(first):
            return None
        name = rest
    if not all(_PATH_COMPONENT.fullmatch(component) for component in name.split("/")):
        return None
    return Image(reference=reference, tag=tag, digest=digest or None)
