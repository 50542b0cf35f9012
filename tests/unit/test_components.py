"""Each component on its own, under mocks: what its settings change in what it emits."""

import base64
import dataclasses
import json

import pulumi
import pytest

from components.edge import Edge, EdgeArgs, Route
from components.fileserver import FileServer, FileServerArgs
from components.frontend import Frontend, FrontendArgs
from components.labels import JournalLabels
from components.namespace import StackNamespace, StackNamespaceArgs
from components.network import TrafficPolicy, TrafficPolicyArgs
from components.redis import RedisCluster, RedisClusterArgs, RedisConnection
from components.settings import EdgeSettings, FrontendSettings, RedisSettings, StackSettings, load_settings
from support.program_mocks import journal_keys, run_under_mocks, stack_config

LABELS = JournalLabels.of("journal-test")


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
    args = StackNamespaceArgs(name="journal-test", labels=LABELS.namespace)
    deployed = build(lambda: {"name": StackNamespace("ns", args).name})
    (namespace,) = deployed.objects("Namespace")
    assert deployed.outputs["name"] == "journal-test"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == "v1.34"


@pytest.mark.parametrize("protected", [None, False, True], ids=["by-default", "unprotected", "protected"])
def test_the_namespace_is_protected_only_when_its_args_say_so(protected):
    args = StackNamespaceArgs(name="journal-test", labels=LABELS.namespace)
    if protected is not None:
        args = dataclasses.replace(args, protected=protected)
    (namespace,) = build(lambda: StackNamespace("ns", args)).of_type("kubernetes:core/v1:Namespace")
    assert namespace.protect is bool(protected)


def redis_cluster(settings: RedisSettings) -> RedisCluster:
    return RedisCluster("redis", RedisClusterArgs(settings=settings, labels=LABELS.redis, namespace="ns"))


def test_redis_generates_an_alphanumeric_password_of_the_configured_length():
    settings = settings_for(redisPasswordLength=48).redis
    deployed = build(lambda: redis_cluster(settings))
    passwords = deployed.of_type("random:index/randomPassword:RandomPassword")
    # One per user: journal (the frontend), replication, sentinel, operator, admin.
    assert len(passwords) == 5
    assert len({password.state["result"] for password in passwords}) == 5
    for password in passwords:
        assert password.state["length"] == 48
        assert password.state["special"] is False


def test_redis_runs_the_configured_number_of_pods_on_the_configured_storage():
    settings = settings_for(redisReplicas=3, redisStorageSize="20Gi", redisStorageClass="fast-ssd").redis
    deployed = build(lambda: redis_cluster(settings))
    statefulset = deployed.object("StatefulSet", "redis")["spec"]
    assert statefulset["replicas"] == 3
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"] == {"requests": {"storage": "20Gi"}}
    assert len(deployed.objects("PodDisruptionBudget")) == 1


def test_redis_leaves_the_storage_class_to_the_cluster_when_unset():
    settings = settings_for(redisStorageClass="").redis
    deployed = build(lambda: redis_cluster(settings))
    (claim,) = deployed.object("StatefulSet", "redis")["spec"]["volumeClaimTemplates"]
    assert "storageClassName" not in claim["spec"]


def test_redis_probes_authenticate_without_the_password_in_their_command():
    settings = settings_for().redis
    deployed = build(lambda: redis_cluster(settings))
    container = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"] == ["sh", "/scripts/redis-probe.sh", "readiness"]
    assert container["livenessProbe"]["exec"]["command"] == ["sh", "/scripts/redis-probe.sh", "liveness"]
    assert container["command"] == ["sh", "/scripts/redis-launch.sh"]
    assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in container["env"]), \
        "the password is read from the mounted file"


def test_redis_master_knows_its_peers_and_reads_the_operators_recovery_decision_from_its_pod():
    settings = settings_for(redisReplicas=3).redis
    deployed = build(lambda: redis_cluster(settings))
    container = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PODS"]["value"] == "3"
    assert env["REDIS_RECOVERY"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['journal-iac/redis-recovery']"}
    }


def fake_redis() -> RedisConnection:
    return RedisConnection(
        read_host=pulumi.Output.from_input("redis.ns.svc"),
        port=6379,
        username="journal",
        password_secret_name=pulumi.Output.from_input("redis-password"),
        password_secret_key="passwd",
        write_host=pulumi.Output.from_input("redis-0.redis-write.ns.svc"),
        sentinels=None,
        sentinel_port=None,
        sentinel_master_name="journal",
        write_acknowledgements=0,
    )


def frontend(settings: FrontendSettings) -> Frontend:
    return Frontend("frontend", FrontendArgs(settings=settings, labels=LABELS.frontend, namespace="ns", redis=fake_redis()))


def test_frontend_takes_replicas_resources_journal_size_and_write_limits_from_settings():
    settings = settings_for(frontendReplicas=4, frontendJournalEntries=25, frontendCpuLimit="2",
                            frontendWritesPerMinute=90, frontendWriteBurst=5).frontend
    deployed = build(lambda: frontend(settings))
    deployment = deployed.object("Deployment", "frontend")["spec"]
    assert deployment["replicas"] == 4
    (container,) = deployment["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["cpu"] == "2"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    (config,) = deployed.objects("ConfigMap")
    assert config["data"] == {"journalEntries": "25", "writesPerMinute": "90", "writeBurst": "5"}
    from_config = {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert from_config == {
        variable: {"name": config["metadata"]["name"], "key": key}
        for variable, key in (("JOURNAL_ENTRIES", "journalEntries"), ("WRITES_PER_MINUTE", "writesPerMinute"),
                              ("WRITE_BURST", "writeBurst"))
    }


def test_a_single_frontend_pod_gets_no_disruption_budget():
    settings = settings_for(frontendReplicas=1).frontend
    deployed = build(lambda: frontend(settings))
    assert deployed.objects("PodDisruptionBudget") == []


def test_fileserver_serves_the_configured_image_on_port_80():
    image = "registry.example.com/journal/static:v2.0.0-0123abcd"
    settings = settings_for(fileserverImage=image, fileserverReplicas=2).fileserver
    args = FileServerArgs(settings=settings, labels=LABELS.fileserver, namespace="ns")
    deployed = build(lambda: FileServer("fileserver", args))
    (container,) = deployed.object("Deployment", "fileserver")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    service = deployed.object("Service", "fileserver")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert deployed.object("Deployment", "fileserver")["metadata"]["labels"]["app.kubernetes.io/version"] == "v2.0.0-0123abcd"


ROUTES = [Route("/api", "frontend", 8080), Route("/", "fileserver", 80)]
NO_TLS = {"tlsIssuer": "none", "tlsEmail": "", "acmeServer": "", "acmeCaBundle": ""}
LETS_ENCRYPT_PRODUCTION = {"tlsIssuer": "letsencrypt-production", "acmeServer": "", "acmeCaBundle": ""}
GATEWAY = {"edge": "gateway", "gatewayClassName": "traefik", "gatewayNamespace": "gateway-proxies"}


def edge(settings: EdgeSettings) -> Edge:
    return Edge("edge", EdgeArgs(settings=settings, labels=LABELS.edge, namespace="ns", routes=ROUTES))


def build_edge(**overrides: object):
    settings = settings_for(**overrides).edge
    return build(lambda: {"url": edge(settings).url})


def test_edge_without_tls_has_no_issuer_no_certificate_and_no_tls_block():
    deployed = build_edge(**NO_TLS, host="journal.test.example.com")
    (ingress,) = deployed.objects("Ingress")
    assert deployed.objects("Issuer") == deployed.objects("Certificate") == []
    assert "tls" not in ingress["spec"]
    assert not [key for key in ingress["metadata"].get("annotations", {}) if key.startswith("cert-manager.io/")]
    assert deployed.outputs["url"] == "http://journal.test.example.com/"


def test_edge_without_a_host_serves_any_host():
    deployed = build_edge(**NO_TLS, host="")
    (rule,) = deployed.objects("Ingress")[0]["spec"]["rules"]
    assert "host" not in rule
    assert deployed.outputs["url"] == ""


def test_lets_encrypt_is_an_acme_issuer_of_the_stacks_own_namespace():
    (issuer,) = build_edge(**LETS_ENCRYPT_PRODUCTION).objects("Issuer")
    assert issuer["metadata"]["name"] == "letsencrypt-production"
    assert issuer["metadata"]["namespace"] == "ns"
    assert issuer["spec"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert issuer["spec"]["acme"]["email"] == "platform-team@example.com"
    assert "caBundle" not in issuer["spec"]["acme"]


def test_any_acme_server_is_trusted_through_its_own_ca_bundle_only():
    tls = settings_for().edge.tls
    (issuer,) = build_edge().objects("Issuer")
    assert issuer["metadata"]["name"] == "acme"
    assert issuer["spec"]["acme"]["server"] == tls.acme_server == "https://pebble.pebble.svc.cluster.local:14000/dir"
    assert base64.b64decode(issuer["spec"]["acme"]["caBundle"]).decode() == tls.ca_bundle


def test_the_certificate_covers_the_host_into_the_secret_the_ingress_serves():
    deployed = build_edge(host="journal.test.example.com")
    (certificate,) = deployed.objects("Certificate")
    (issuer,) = deployed.objects("Issuer")
    (tls,) = deployed.objects("Ingress")[0]["spec"]["tls"]
    assert certificate["spec"]["dnsNames"] == tls["hosts"] == ["journal.test.example.com"]
    assert certificate["spec"]["secretName"] == tls["secretName"]
    assert certificate["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "Issuer", "name": issuer["metadata"]["name"]}
    assert certificate["spec"]["privateKey"]["rotationPolicy"] == "Always"


def test_up_waits_for_the_acme_account_and_the_certificate_and_the_certificate_for_its_issuer():
    deployed = build_edge()
    for kind in ("Issuer", "Certificate"):
        (awaited,) = deployed.objects(kind)
        assert awaited["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}
    (certificate,) = deployed.of_type("kubernetes:cert-manager.io/v1:Certificate")
    (issuer,) = deployed.of_type("kubernetes:cert-manager.io/v1:Issuer")
    assert issuer.urn in certificate.dependencies


async def names_of_resources_behind(output: pulumi.Output) -> list[str]:
    return sorted(resource._name for resource in await output.resources())


@pytest.mark.parametrize("overrides", [{}, GATEWAY], ids=["ingress", "gateway"])
def test_the_url_is_exported_only_once_the_certificate_and_the_entry_are_ready(overrides):
    settings = settings_for(**overrides).edge

    def program():
        url = edge(settings).url
        return {"awaits": pulumi.Output.from_input(names_of_resources_behind(url))}

    awaited = build(program).outputs["awaits"]
    entry = ["edge-ingress"] if not overrides else ["edge-gateway", "edge-https-redirect", "edge-route"]
    assert awaited == sorted(["edge-certificate", *entry])


def test_no_shim_annotation_asks_cert_manager_for_a_second_certificate():
    for overrides in ({}, GATEWAY):
        deployed = build_edge(**overrides)
        for entry in deployed.objects("Ingress") + deployed.objects("Gateway"):
            assert not any(key.startswith("cert-manager.io/") for key in entry["metadata"]["annotations"])


def test_edge_uses_the_configured_ingress_class_for_the_ingress_and_the_challenges():
    deployed = build_edge(ingressClassName="haproxy")
    assert deployed.objects("Ingress")[0]["spec"]["ingressClassName"] == "haproxy"
    (solver,) = deployed.objects("Issuer")[0]["spec"]["acme"]["solvers"]
    assert solver == {"http01": {"ingress": {"ingressClassName": "haproxy"}}}


def test_gateway_mode_serves_https_for_the_host_with_the_certificate_and_no_ingress():
    deployed = build_edge(**GATEWAY, host="journal.test.example.com")
    assert deployed.objects("Ingress") == []
    gateway = deployed.object("Gateway", "journal")
    (certificate,) = deployed.objects("Certificate")
    assert gateway["spec"]["gatewayClassName"] == "traefik"
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    assert {name: (l["protocol"], l["port"], l["hostname"]) for name, l in listeners.items()} == {
        "http": ("HTTP", 80, "journal.test.example.com"),
        "https": ("HTTPS", 443, "journal.test.example.com"),
    }
    assert listeners["https"]["tls"] == {
        "mode": "Terminate",
        "certificateRefs": [{"kind": "Secret", "name": certificate["spec"]["secretName"]}],
    }
    for listener in listeners.values():
        assert listener["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    assert gateway["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Programmed"}
    assert deployed.outputs["url"] == "https://journal.test.example.com/"


def test_gateway_mode_routes_each_path_prefix_to_its_service_over_https_only():
    deployed = build_edge(**GATEWAY, host="journal.test.example.com")
    route = deployed.object("HTTPRoute", "journal")
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "journal", "sectionName": "https"}
    ]
    assert route["spec"]["hostnames"] == ["journal.test.example.com"]
    assert [(r["matches"], r["backendRefs"]) for r in route["spec"]["rules"]] == [
        ([{"path": {"type": "PathPrefix", "value": "/api"}}], [{"name": "frontend", "port": 8080}]),
        ([{"path": {"type": "PathPrefix", "value": "/"}}], [{"name": "fileserver", "port": 80}]),
    ]
    awaited = json.loads(route["metadata"]["annotations"]["pulumi.com/waitFor"])
    assert {expression.split('"')[1] for expression in awaited} == {"Accepted", "ResolvedRefs"}


def test_gateway_mode_redirects_plain_http_and_answers_challenges_there():
    deployed = build_edge(**GATEWAY)
    redirect = deployed.object("HTTPRoute", "journal-https-redirect")
    assert redirect["spec"]["parentRefs"][0]["sectionName"] == "http"
    (rule,) = redirect["spec"]["rules"]
    assert rule["filters"] == [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]
    (solver,) = deployed.objects("Issuer")[0]["spec"]["acme"]["solvers"]
    assert solver == {
        "http01": {
            "gatewayHTTPRoute": {
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "journal", "sectionName": "http"}]
            }
        }
    }


def test_gateway_mode_without_tls_serves_plain_http_and_redirects_nothing():
    deployed = build_edge(**GATEWAY, **NO_TLS)
    (listener,) = deployed.object("Gateway", "journal")["spec"]["listeners"]
    assert listener["protocol"] == "HTTP"
    (route,) = deployed.objects("HTTPRoute")
    assert route["spec"]["parentRefs"][0]["sectionName"] == "http"
    assert deployed.outputs["url"] == "http://journal.dev.example.com/"


def test_the_certificate_never_waits_for_the_gateway_that_waits_for_it():
    deployed = build_edge(**GATEWAY)
    (certificate,) = deployed.of_type("kubernetes:cert-manager.io/v1:Certificate")
    (gateway,) = deployed.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    assert gateway.urn not in certificate.dependencies


def policy_names(deployed):
    return sorted(p["metadata"]["name"] for p in deployed.objects("NetworkPolicy"))


def traffic_policy(settings: StackSettings) -> TrafficPolicy:
    return TrafficPolicy("t", TrafficPolicyArgs(edge=settings.edge, labels=LABELS, namespace="ns", sentinel_port=None))


def test_traffic_policy_opens_the_acme_solver_only_with_tls():
    with_tls = settings_for()
    without_tls = settings_for(**NO_TLS)
    assert "acme-http01-solver" in policy_names(build(lambda: traffic_policy(with_tls)))
    assert "acme-http01-solver" not in policy_names(build(lambda: traffic_policy(without_tls)))


@pytest.mark.parametrize(
    "overrides, proxies",
    [({"ingressControllerNamespace": "haproxy-controller"}, "haproxy-controller"), (GATEWAY, "gateway-proxies")],
    ids=["ingress", "gateway"],
)
def test_traffic_policy_admits_only_the_edge_proxies(overrides, proxies):
    settings = settings_for(**overrides)
    deployed = build(lambda: traffic_policy(settings))
    for name in ("frontend", "fileserver", "acme-http01-solver"):
        (rule,) = deployed.object("NetworkPolicy", name)["spec"]["ingress"]
        assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": proxies}}}]


def test_redis_keeps_its_data_within_its_memory_limit():
    settings = settings_for(redisMemoryRequest="1Gi", redisMemoryLimit="2Gi").redis
    deployed = build(lambda: redis_cluster(settings))
    container = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["REDIS_MAXMEMORY"]) == int(0.7 * 2 * 2**30)
