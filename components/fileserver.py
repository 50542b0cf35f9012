"""FileServer: NGINX serving the journal's static files at /.

The image is the user's own static-files image built on an unprivileged NGINX, which
listens on 8080 and keeps its pid and temp files under /tmp, so the root filesystem can
stay read-only.
"""

from dataclasses import dataclass

import pulumi

from .labels import PartLabels
from .settings import FileServerSettings
from .stateless_tier import HttpContainer, stateless_http_tier

CONTAINER_PORT = 8080
SERVICE_PORT = 80
# Not the image's "nginx" user (101): an unprivileged NGINX runs as any uid that can read
# its configuration and files and write /tmp. Above 10000, the id matches no account of
# the node's.
NGINX_USER_ID = 10101


@dataclass(frozen=True)
class FileServerArgs:
    """What a FileServer is made of. Every field but `image_pull_secret` is required."""

    settings: FileServerSettings
    """Image, replicas and resources, from the stack's config."""
    labels: PartLabels
    """The file server tier's labels: every object carries them, and they select its pods."""
    namespace: pulumi.Input[str]
    """The namespace every object goes into."""
    image_pull_secret: pulumi.Input[str] | None = None
    """The Secret its pods pull their image with. Default None: pulled without one."""


class FileServer(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    service_port: int = SERVICE_PORT

    def __init__(self, name: str, args: FileServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("journal:index:FileServer", name, None, opts)
        settings = args.settings
        nginx = HttpContainer(
            name="nginx",
            image=settings.image,
            resources=settings.resources,
            user_id=NGINX_USER_ID,
            port=CONTAINER_PORT,
            health_path="/",
        )
        tier = stateless_http_tier(
            name, args.labels, args.namespace, settings.replicas, nginx, SERVICE_PORT, pulumi.ResourceOptions(parent=self),
            image_pull_secret=args.image_pull_secret,
        )

        self.service_name = tier.service.metadata.name
        self.deployment_name = tier.deployment.metadata.name
        self.register_outputs({"serviceName": self.service_name, "deploymentName": self.deployment_name})
