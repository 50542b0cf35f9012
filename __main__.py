"""The journal service on Kubernetes: settings -> namespace -> tiers -> traffic policy -> outputs."""

import pulumi

from components.edge import Edge, EdgeArgs, Route
from components.fileserver import FileServer, FileServerArgs
from components.frontend import API_PATH, Frontend, FrontendArgs
from components.labels import JournalLabels
from components.namespace import StackNamespace, StackNamespaceArgs
from components.network import TrafficPolicy, TrafficPolicyArgs
from components.ownership import own_every_field
from components.redis import RedisCluster, RedisClusterArgs
from components.settings import load_stack_settings
from components.waits import bound_every_wait

settings = load_stack_settings()
bound_every_wait(settings.rollout)
own_every_field()
labels = JournalLabels.of(settings.instance)

stack_namespace = StackNamespace(
    "journal",
    StackNamespaceArgs(
        name=settings.namespace, labels=labels.namespace, protected=settings.protect_data, image_pull=settings.image_pull
    ),
)
namespace, pull_secret = stack_namespace.name, stack_namespace.image_pull_secret
redis = RedisCluster(
    "redis",
    RedisClusterArgs(settings=settings.redis, labels=labels.redis, namespace=namespace, image_pull_secret=pull_secret),
)
frontend = Frontend(
    "frontend",
    FrontendArgs(
        settings=settings.frontend,
        labels=labels.frontend,
        namespace=namespace,
        redis=redis.connection,
        image_pull_secret=pull_secret,
    ),
)
fileserver = FileServer(
    "fileserver",
    FileServerArgs(
        settings=settings.fileserver, labels=labels.fileserver, namespace=namespace, image_pull_secret=pull_secret
    ),
)
edge = Edge(
    "edge",
    EdgeArgs(
        settings=settings.edge,
        labels=labels.edge,
        namespace=namespace,
        routes=[
            Route(API_PATH, frontend.service_name, frontend.service_port),
            Route("/", fileserver.service_name, fileserver.service_port),
        ],
    ),
)
TrafficPolicy(
    "traffic",
    TrafficPolicyArgs(
        edge=settings.edge, labels=labels, namespace=namespace, sentinel_port=redis.connection.sentinel_port
    ),
)

pulumi.export("url", edge.url)
pulumi.export("namespace", namespace)
pulumi.export("frontendService", frontend.service_name)
pulumi.export("fileserverService", fileserver.service_name)
pulumi.export("redisReadHost", redis.connection.read_host)
# One of the two: the single pod's host name, or the Sentinels that name the master.
pulumi.export("redisWriteHost", redis.connection.write_host)
pulumi.export("redisSentinels", redis.connection.sentinels)
pulumi.export("redisPasswordSecret", redis.connection.password_secret_name)
# What adds and deletes entries, for the journal's writers: secret, so `stack output`
# shows it only with --show-secrets and the state keeps it encrypted.
pulumi.export("writeCredential", pulumi.Output.secret(frontend.write_credential))
pulumi.export("writeCredentialSecret", frontend.write_credential_secret_name)
