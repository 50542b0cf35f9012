"""The journal service on Kubernetes: settings -> namespace -> tiers -> traffic policy -> outputs."""

import pulumi

from components.edge import Edge, Route
from components.fileserver import FileServer
from components.frontend import API_PATH, Frontend
from components.labels import JournalLabels
from components.namespace import StackNamespace
from components.network import TrafficPolicy
from components.redis import RedisCluster
from components.settings import load_stack_settings
from components.waits import bound_every_wait

settings = load_stack_settings()
bound_every_wait(settings.rollout)
labels = JournalLabels.of(settings.instance)

namespace = StackNamespace("journal", settings.namespace, labels.namespace, settings.protect_data).name
redis = RedisCluster("redis", settings.redis, labels.redis, namespace)
frontend = Frontend("frontend", settings.frontend, labels.frontend, namespace, redis.connection)
fileserver = FileServer("fileserver", settings.fileserver, labels.fileserver, namespace)
edge = Edge(
    "edge",
    settings.edge,
    labels.edge,
    namespace,
    routes=[
        Route(API_PATH, frontend.service_name, frontend.service_port),
        Route("/", fileserver.service_name, fileserver.service_port),
    ],
)
TrafficPolicy("traffic", settings, labels, namespace)

pulumi.export("url", edge.url)
pulumi.export("namespace", namespace)
pulumi.export("frontendService", frontend.service_name)
pulumi.export("fileserverService", fileserver.service_name)
pulumi.export("redisReadHost", redis.connection.read_host)
pulumi.export("redisWriteHost", redis.connection.write_host)
pulumi.export("redisPasswordSecret", redis.connection.password_secret_name)
