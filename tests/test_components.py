"""Each component on its own, under mocks: what its settings change in what it emits."""

import pulumi

from components.edge import Edge, Route
from components.fileserver import FileServer
from components.frontend import Frontend
from components.labels import JournalTiers
from components.namespace import StackNamespace
from components.network import TrafficPolicy
from components.redis import RedisCluster, RedisConnection
from components.settings import load_settings
from conftest import journal_keys, run_under_mocks, stack_config

TIERS = JournalTiers.of("journal-test")


def settings_for(**overrides: object):
    config = stack_config("dev", **overrides)
    return load_settings(journal_keys(config), "test", config["kubernetes:context"])


def build(component):
    """Runs `component()` alone under mocks and returns what it registered; a dict that
    `component` returns is awaited as its outputs."""

    def program():
        result = component()
        return result if isinstance(result, dict) else None

    return run_under_mocks("test", {}, program)


def test_namespace_is_named_by_the_settings_and_pins_the_pod_security_version():
    deployed = build(lambda: {"name": StackNamespace("ns", "journal-test", TIERS.namespace).name})
    (namespace,) = deployed.objects("Namespace")
    assert deployed.outputs["name"] == "journal-test"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == "v1.34"


def test_redis_generates_an_alphanumeric_password_of_the_configured_length():
    settings = settings_for(redisPasswordLength=48).redis
    deployed = build(lambda: RedisCluster("redis", settings, TIERS.redis, "ns"))
    (password,) = deployed.of_type("random:index/randomPassword:RandomPassword")
    assert password.state["length"] == 48
    assert password.state["special"] is False


def test_redis_runs_the_configured_number_of_pods_on_the_configured_storage():
    settings = settings_for(redisReplicas=3, redisStorageSize="20Gi", redisStorageClass="fast-ssd").redis
    deployed = build(lambda: RedisCluster("redis", settings, TIERS.redis, "ns"))
    statefulset = deployed.object("StatefulSet", "redis")["spec"]
    assert statefulset["replicas"] == 3
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"] == {"requests": {"storage": "20Gi"}}
    assert len(deployed.objects("PodDisruptionBudget")) == 1


def test_redis_leaves_the_storage_class_to_the_cluster_when_unset():
    settings = settings_for(redisStorageClass="").redis
    deployed = build(lambda: RedisCluster("redis", settings, TIERS.redis, "ns"))
    (claim,) = deployed.object("StatefulSet", "redis")["spec"]["volumeClaimTemplates"]
    assert "storageClassName" not in claim["spec"]


def test_redis_probes_authenticate_without_the_password_in_their_command():
    settings = settings_for().redis
    deployed = build(lambda: RedisCluster("redis", settings, TIERS.redis, "ns"))
    container = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"] == ["sh", "/scripts/redis-probe.sh", "readiness"]
    assert container["livenessProbe"]["exec"]["command"] == ["sh", "/scripts/redis-probe.sh", "liveness"]
    assert container["command"] == ["sh", "/scripts/redis-launch.sh"]
    assert all("valueFrom" not in e for e in container["env"]), "the password is read from the mounted file"


def fake_redis() -> RedisConnection:
    return RedisConnection(
        read_host=pulumi.Output.from_input("redis.ns.svc"),
        write_host=pulumi.Output.from_input("redis-0.redis-write.ns.svc"),
        port=6379,
        password_secret_name=pulumi.Output.from_input("redis-password"),
        password_secret_key="passwd",
    )


def test_frontend_takes_replicas_resources_and_journal_size_from_settings():
    settings = settings_for(frontendReplicas=4, frontendJournalEntries=25, frontendCpuLimit="2").frontend
    deployed = build(lambda: Frontend("frontend", settings, TIERS.frontend, "ns", fake_redis()))
    deployment = deployed.object("Deployment", "frontend")["spec"]
    assert deployment["replicas"] == 4
    (container,) = deployment["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["cpu"] == "2"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    (config,) = deployed.objects("ConfigMap")
    assert config["data"] == {"journalEntries": "25"}


def test_a_single_frontend_pod_gets_no_disruption_budget():
    settings = settings_for(frontendReplicas=1).frontend
    deployed = build(lambda: Frontend("frontend", settings, TIERS.frontend, "ns", fake_redis()))
    assert deployed.objects("PodDisruptionBudget") == []


def test_fileserver_serves_the_configured_image_on_port_80():
    image = "registry.example.com/journal/static:v2.0.0-0123abcd"
    settings = settings_for(fileserverImage=image, fileserverReplicas=2).fileserver
    deployed = build(lambda: FileServer("fileserver", settings, TIERS.fileserver, "ns"))
    (container,) = deployed.object("Deployment", "fileserver")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    service = deployed.object("Service", "fileserver")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert deployed.object("Deployment", "fileserver")["metadata"]["labels"]["app.kubernetes.io/version"] == "v2.0.0-0123abcd"


ROUTES = [Route("/api", "frontend", 8080), Route("/", "fileserver", 80)]


def test_edge_without_tls_has_no_issuer_no_annotation_and_no_tls_block():
    settings = settings_for(tlsIssuer="none", tlsEmail="", host="journal.test.example.com").edge
    deployed = build(lambda: {"url": Edge("edge", settings, TIERS.edge, "ns", ROUTES).url})
    (ingress,) = deployed.objects("Ingress")
    assert deployed.objects("ClusterIssuer") == []
    assert "tls" not in ingress["spec"]
    assert ingress["metadata"]["annotations"] == {}
    assert deployed.outputs["url"] == "http://journal.test.example.com/"


def test_edge_without_a_host_serves_any_host():
    settings = settings_for(tlsIssuer="none", tlsEmail="", host="").edge
    deployed = build(lambda: {"url": Edge("edge", settings, TIERS.edge, "ns", ROUTES).url})
    (rule,) = deployed.objects("Ingress")[0]["spec"]["rules"]
    assert "host" not in rule
    assert deployed.outputs["url"] == ""


def test_edge_issuer_points_at_the_chosen_lets_encrypt_endpoint():
    settings = settings_for(tlsIssuer="letsencrypt-production").edge
    deployed = build(lambda: Edge("edge", settings, TIERS.edge, "ns", ROUTES))
    (issuer,) = deployed.objects("ClusterIssuer")
    assert issuer["metadata"]["name"] == "journal-test-letsencrypt-production"
    assert issuer["spec"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert issuer["spec"]["acme"]["email"] == "platform-team@example.com"


def test_edge_uses_the_configured_ingress_class():
    settings = settings_for(ingressClassName="haproxy").edge
    deployed = build(lambda: Edge("edge", settings, TIERS.edge, "ns", ROUTES))
    assert deployed.objects("Ingress")[0]["spec"]["ingressClassName"] == "haproxy"
    (solver,) = deployed.objects("ClusterIssuer")[0]["spec"]["acme"]["solvers"]
    assert solver["http01"]["ingress"]["ingressClassName"] == "haproxy"


def policy_names(deployed):
    return sorted(p["metadata"]["name"] for p in deployed.objects("NetworkPolicy"))


def test_traffic_policy_opens_the_acme_solver_only_with_tls():
    with_tls = settings_for()
    without_tls = settings_for(tlsIssuer="none", tlsEmail="")
    assert "acme-http01-solver" in policy_names(build(lambda: TrafficPolicy("t", with_tls, TIERS, "ns")))
    assert "acme-http01-solver" not in policy_names(build(lambda: TrafficPolicy("t", without_tls, TIERS, "ns")))


def test_traffic_policy_admits_only_the_configured_ingress_controller():
    settings = settings_for(ingressControllerNamespace="haproxy-controller")
    deployed = build(lambda: TrafficPolicy("t", settings, TIERS, "ns"))
    for name in ("frontend", "fileserver"):
        (rule,) = deployed.object("NetworkPolicy", name)["spec"]["ingress"]
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "haproxy-controller"}}}
        ]


def test_redis_keeps_its_data_within_its_memory_limit():
    settings = settings_for(redisMemoryRequest="1Gi", redisMemoryLimit="2Gi").redis
    deployed = build(lambda: RedisCluster("redis", settings, TIERS.redis, "ns"))
    container = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["REDIS_MAXMEMORY"]) == int(0.7 * 2 * 2**30)
