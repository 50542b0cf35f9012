"""The whole program, run under mocks with the real Pulumi.dev.yaml and Pulumi.prod.yaml:
every object it emits is valid Kubernetes, and the objects fit together."""

import hashlib
import re
import sys

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.redis import LAUNCH_SCRIPT, PRESTOP_SCRIPT, SCRIPTS, SENTINEL_SCRIPT
from components.settings import parse_image
from support.kubernetes_schema import validate_strictly
from support.program_mocks import PROJECT_DIR, Registered, is_custom_resource, is_secret, run_program, run_under_mocks

# The journal API's package turns bytecode writing off for the whole interpreter (its
# image has a read-only root filesystem): back as it was once its bounds are read.
_write_bytecode = sys.dont_write_bytecode
from journal_api.serving import SHUTDOWN_SECONDS  # noqa: E402

sys.dont_write_bytecode = _write_bytecode

NGINX_CONF = PROJECT_DIR / "images" / "fileserver" / "nginx.conf"

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
CLUSTER_SCOPED_KINDS = ("Namespace",)
REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


def workloads(deployed):
    return [obj for kind in WORKLOAD_KINDS for obj in deployed.objects(kind)]


def pod_specs(deployed):
    return [(w["metadata"]["name"], w["spec"]["template"]["spec"]) for w in workloads(deployed)]


def containers(deployed):
    return [(name, c) for name, spec in pod_specs(deployed) for c in spec["containers"]]


def redis_containers(deployed) -> dict[str, dict]:
    """The Redis pod's containers by name: "redis", and "sentinel" with several pods."""
    spec = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container["env"]}


def fails_over(deployed) -> bool:
    return deployed.object("StatefulSet", "redis")["spec"]["replicas"] > 1


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- schema -------------------------------------------------------------------------------


def test_every_builtin_object_is_valid_against_the_kubernetes_schema(deployed):
    builtin = [m for m in deployed.kubernetes_objects() if not is_custom_resource(m)]
    assert len(builtin) >= 14
    for manifest in builtin:
        validate_strictly(manifest)


def test_the_issuer_is_a_cert_manager_v1_acme_issuer_solving_through_the_edge(deployed):
    (issuer,) = deployed.objects("Issuer")
    assert issuer["apiVersion"] == "cert-manager.io/v1"
    acme = issuer["spec"]["acme"]
    assert {"server", "email", "privateKeySecretRef", "solvers"} <= set(acme)
    (solver,) = acme["solvers"]
    if deployed.objects("Gateway"):
        (parent,) = solver["http01"]["gatewayHTTPRoute"]["parentRefs"]
        assert parent["name"] == deployed.objects("Gateway")[0]["metadata"]["name"]
    else:
        assert solver["http01"]["ingress"]["ingressClassName"] == deployed.objects("Ingress")[0]["spec"]["ingressClassName"]


# --- where things live and how they are labelled -----------------------------------------


def test_nothing_lives_in_the_default_namespace(deployed):
    (namespace,) = deployed.objects("Namespace")
    name = namespace["metadata"]["name"]
    assert name not in ("default", "")
    for manifest in deployed.kubernetes_objects():
        if manifest["kind"] not in CLUSTER_SCOPED_KINDS:
            assert manifest["metadata"]["namespace"] == name, manifest["metadata"]


def test_the_namespace_enforces_the_restricted_pod_security_standard(deployed):
    (namespace,) = deployed.objects("Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_every_object_carries_the_recommended_labels(deployed):
    for manifest in deployed.kubernetes_objects():
        labels = manifest["metadata"]["labels"]
        missing = [key for key in REQUIRED_LABELS if key not in labels]
        assert not missing, f"{manifest['kind']} {manifest['metadata'].get('name')} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "pulumi"
        assert labels["app.kubernetes.io/part-of"] == "journal"


def test_selectors_use_stable_labels_that_the_pod_template_carries(deployed):
    for workload in workloads(deployed):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert "app.kubernetes.io/version" not in selector
        assert matches(selector, workload["spec"]["template"]["metadata"]["labels"])


def test_workloads_and_their_pods_carry_the_version_they_run(deployed):
    for workload in workloads(deployed):
        (version,) = {parse_image(c["image"]).version for c in workload["spec"]["template"]["spec"]["containers"]}
        for labels in (workload["metadata"]["labels"], workload["spec"]["template"]["metadata"]["labels"]):
            assert labels["app.kubernetes.io/version"] == version, workload["metadata"]["name"]


def test_every_resource_is_a_child_of_a_journal_component(deployed):
    components = {r.urn for r in deployed.resources if r.type.startswith("journal:index:")}
    assert len(components) == 6
    for resource in deployed.resources:
        if resource.custom:
            assert resource.parent in components, resource.urn


# --- references between objects ------------------------------------------------------------


def test_every_service_selects_the_pods_of_some_workload(deployed):
    templates = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(deployed)]
    for service in deployed.objects("Service"):
        selector = service["spec"]["selector"]
        assert selector, service["metadata"]["name"]
        assert any(matches(selector, labels) for labels in templates), service["metadata"]["name"]


def test_every_service_target_port_is_a_named_container_port(deployed):
    for service in deployed.objects("Service"):
        (workload,) = [w for w in workloads(deployed) if matches(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        port_names = {p["name"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_every_statefulset_is_governed_by_a_headless_service_of_the_stack(deployed):
    for statefulset in deployed.objects("StatefulSet"):
        service = deployed.object("Service", statefulset["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["publishNotReadyAddresses"] is True
        assert matches(service["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])


def routes(deployed) -> dict[str, tuple[str, int]]:
    """Path prefix -> (Service, port), from the Ingress or the HTTPRoute that serves the host."""
    found = {}
    for ingress in deployed.objects("Ingress"):
        (rule,) = ingress["spec"]["rules"]
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix"
            backend = path["backend"]["service"]
            found[path["path"]] = (backend["name"], backend["port"]["number"])
    for route in deployed.objects("HTTPRoute"):
        for rule in route["spec"]["rules"]:
            for backend in rule.get("backendRefs", []):
                ((match,),) = [rule["matches"]]
                assert match["path"]["type"] == "PathPrefix"
                found[match["path"]["value"]] = (backend["name"], backend["port"])
    return found


def test_every_route_names_an_existing_service_and_port(deployed):
    assert routes(deployed)
    for service_name, port in routes(deployed).values():
        service = deployed.object("Service", service_name)
        assert port in [p["port"] for p in service["spec"]["ports"]]


def test_the_api_and_the_static_files_share_one_host(deployed):
    assert {path: service for path, (service, _) in routes(deployed).items()} == {"/api": "frontend", "/": "fileserver"}
    hosts = [rule.get("host") for ingress in deployed.objects("Ingress") for rule in ingress["spec"]["rules"]]
    hosts += [host for route in deployed.objects("HTTPRoute") for host in route["spec"]["hostnames"]]
    assert len(set(hosts)) == 1


def test_the_certificate_covers_exactly_the_served_host_into_the_secret_the_edge_serves(deployed):
    (certificate,) = deployed.objects("Certificate")
    for ingress in deployed.objects("Ingress"):
        (rule,) = ingress["spec"]["rules"]
        assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": certificate["spec"]["secretName"]}]
        assert certificate["spec"]["dnsNames"] == [rule["host"]]
    for gateway in deployed.objects("Gateway"):
        https = [listener for listener in gateway["spec"]["listeners"] if listener["protocol"] == "HTTPS"]
        assert [(l["hostname"], l["tls"]["certificateRefs"][0]["name"]) for l in https] == [
            (certificate["spec"]["dnsNames"][0], certificate["spec"]["secretName"])
        ]


def test_a_storage_change_never_replaces_the_redis_statefulset(deployed):
    (statefulset,) = deployed.of_type("kubernetes:apps/v1:StatefulSet")
    assert "spec.volumeClaimTemplates" in statefulset.ignore_changes


def generated(deployed, name: str) -> Registered:
    """The RandomPassword of that resource name."""
    (password,) = [r for r in deployed.of_type("random:index/randomPassword:RandomPassword") if r.name == name]
    return password


def secret_resource(deployed, name: str) -> Registered:
    """The Secret of that object name, as registered (its secret values still marked)."""
    (secret,) = [r for r in deployed.of_type("kubernetes:core/v1:Secret") if r.state["metadata"]["name"] == name]
    return secret


def test_the_write_credential_is_generated_and_kept_as_a_secret_in_a_secret_of_its_own(deployed):
    password = generated(deployed, "frontend-write-credential")
    secret = secret_resource(deployed, "frontend-write-credential")
    assert is_secret(secret.state["stringData"])
    assert secret.manifest()["stringData"] == {"credential": password.state["result"]}
    assert password.state["length"] >= 32
    assert password.state["special"] is False
REDIS_USERS = {"journal", "replication", "sentinel", "operator", "admin"}


def redis_user_secrets(deployed) -> dict:
    """Each Redis user's Secret resource, by the user it belongs to."""
    secrets = [r for r in deployed.resources if r.type == "kubernetes:core/v1:Secret"
               and "journal-iac/redis-user" in r.manifest()["metadata"].get("annotations", {})]
    return {secret.manifest()["metadata"]["annotations"]["journal-iac/redis-user"]: secret for secret in secrets}


def test_each_redis_user_has_a_generated_password_in_a_secret_of_its_own_with_its_hash(deployed):
    passwords = [p for p in deployed.of_type("random:index/randomPassword:RandomPassword")
                 if p.name != "frontend-write-credential"]
    secrets = redis_user_secrets(deployed)
    assert set(secrets) == REDIS_USERS
    results = {password.state["result"] for password in passwords}
    assert len(results) == len(passwords) == len(REDIS_USERS)
    for user, secret in secrets.items():
        assert is_secret(secret.state["stringData"]), user
        data = secret.manifest()["stringData"]
        assert set(data) == {"passwd", "sha256"}, user
        assert data["passwd"] in results, user
        assert data["sha256"] == hashlib.sha256(data["passwd"].encode()).hexdigest(), user
    assert secrets["journal"].manifest()["metadata"]["name"] == "redis-journal-password"
    assert len({secret.manifest()["stringData"]["passwd"] for secret in secrets.values()}) == len(REDIS_USERS)
    assert all(password.state["length"] >= 32 for password in passwords)


def users_directory(deployed, container: dict) -> dict[str, str]:
    """What a Redis pod's container finds in its users' directory: each file's path, with
    the user whose Secret it comes from and the key, as "user/key"."""
    spec = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/redis-users"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    by_name = {secret.manifest()["metadata"]["name"]: user for user, secret in redis_user_secrets(deployed).items()}
    assert volume["projected"]["defaultMode"] == 0o440
    files = {}
    for source in volume["projected"]["sources"]:
        user = by_name[source["secret"]["name"]]
        for item in source["secret"]["items"]:
            files[item["path"]] = f"{user}/{item['key']}"
    return files


def test_redis_containers_mount_the_passwords_they_send_and_the_hashes_of_the_rest(deployed):
    spec = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    hashes = {f"{user}.sha256": f"{user}/sha256" for user in REDIS_USERS}
    assert env_of(containers["redis"])["REDIS_USERS_DIR"] == "/etc/redis-users"
    assert users_directory(deployed, containers["redis"]) == {
        **hashes, "operator": "operator/passwd", "replication": "replication/passwd"}
    if fails_over(deployed):
        assert env_of(containers["sentinel"])["REDIS_USERS_DIR"] == "/etc/redis-users"
        del hashes["replication.sha256"]
        assert users_directory(deployed, containers["sentinel"]) == {
            **hashes, "operator": "operator/passwd", "sentinel": "sentinel/passwd"}
    else:
        assert set(containers) == {"redis"}
    # No container is handed a password in its environment.
    for container in spec["containers"]:
        assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in container.get("env", []))


def test_every_generated_secret_has_a_secret_of_its_own_and_no_other_secret_exists(deployed):
    assert len(deployed.of_type("random:index/randomPassword:RandomPassword")) == len(REDIS_USERS) + 1
    assert len(deployed.objects("Secret")) == len(REDIS_USERS) + 1


def test_configmaps_are_auto_named_and_workloads_reference_the_generated_names(deployed):
    configmaps = deployed.of_type("kubernetes:core/v1:ConfigMap")
    assert configmaps and all(configmap.auto_named for configmap in configmaps)
    generated = {configmap.state["metadata"]["name"] for configmap in configmaps}
    frontend = deployed.object("Deployment", "frontend")["spec"]["template"]["spec"]
    (entries,) = [e for e in frontend["containers"][0]["env"] if e["name"] == "JOURNAL_ENTRIES"]
    assert entries["valueFrom"]["configMapKeyRef"]["name"] in generated
    redis = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]
    (scripts,) = [v for v in redis["volumes"] if v["name"] == "scripts"]
    assert scripts["configMap"]["name"] in generated


@pytest.mark.parametrize("secret_name, directory, variable, file, items", [
    ("redis-journal-password", "/etc/redis-passwd", "REDIS_PASSWORD_FILE", "/etc/redis-passwd/passwd",
     # Its Redis user's password alone: not even its hash beside it in the Secret.
     [{"key": "passwd", "path": "passwd"}]),
    ("frontend-write-credential", "/etc/journal-write", "WRITE_CREDENTIAL_FILE", "/etc/journal-write/credential", None),
])
def test_the_frontend_reads_each_secret_from_a_read_only_file_it_is_told_of(deployed, secret_name, directory,
                                                                           variable, file, items):
    frontend = deployed.object("Deployment", "frontend")["spec"]["template"]["spec"]
    (volume,) = [v for v in frontend["volumes"] if v.get("secret", {}).get("secretName") == secret_name]
    (container,) = frontend["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": directory, "readOnly": True}
    assert env_of(container)[variable] == file
    assert volume["secret"].get("items") == items


def test_no_secret_value_reaches_an_environment_variable(deployed):
    values = [r.state["result"] for r in deployed.of_type("random:index/randomPassword:RandomPassword")]
    for name, container in containers(deployed):
        for variable in container.get("env", []):
            assert "secretKeyRef" not in variable.get("valueFrom", {}), (name, variable["name"])
            assert not any(value in str(variable.get("value", "")) for value in values), (name, variable["name"])


def test_a_stopping_frontend_exits_within_the_grace_period(deployed):
    spec = deployed.object("Deployment", "frontend")["spec"]["template"]["spec"]
    (api,) = spec["containers"]
    # The kubelet counts the grace period from the deletion: the preStop sleep, then
    # SIGTERM, after which the API stops within SHUTDOWN_SECONDS; then SIGKILL.
    pre_stop = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = spec.get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
    assert pre_stop + SHUTDOWN_SECONDS < grace


def test_the_frontend_is_told_where_to_read_and_write(deployed):
    frontend = deployed.object("Deployment", "frontend")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(frontend)
    statefulset = deployed.object("StatefulSet", "redis")
    namespace = deployed.objects("Namespace")[0]["metadata"]["name"]
    assert env["REDIS_READ_HOST"] == f"redis.{namespace}.svc"
    assert env["REDIS_PASSWORD_FILE"] == "/etc/redis-passwd/passwd"
    assert env["REDIS_USERNAME"] == "journal"
    if not fails_over(deployed):
        assert env["REDIS_WRITE_HOST"] == f"redis-0.redis-write.{namespace}.svc"
        assert "REDIS_SENTINELS" not in env
        return
    # The master moves: writes go where the Sentinels say, and count once a replica has them.
    assert "REDIS_WRITE_HOST" not in env
    pods = [f"redis-{i}.redis-write.{namespace}.svc:26379" for i in range(int(statefulset["spec"]["replicas"]))]
    assert env["REDIS_SENTINELS"].split() == pods
    assert env["REDIS_MASTER_NAME"] == "journal"
    assert env["REDIS_MIN_REPLICA_ACKS"] == "1"


def test_redis_pods_name_each_other_by_their_stable_dns_names(deployed):
    statefulset = deployed.object("StatefulSet", "redis")
    namespace = statefulset["metadata"]["namespace"]
    for container in redis_containers(deployed).values():
        env = env_of(container)
        assert env["REDIS_MASTER_HOST"] == f"redis-0.{statefulset['spec']['serviceName']}.{namespace}.svc"
        assert env["REDIS_PODS"] == str(int(statefulset["spec"]["replicas"]))


def test_a_loading_redis_is_not_restarted_part_way(deployed):
    statefulset = deployed.object("StatefulSet", "redis")["spec"]
    container = redis_containers(deployed)["redis"]
    startup = container["startupProbe"]
    assert startup["exec"]["command"] == container["livenessProbe"]["exec"]["command"]
    # An election's wait for a silent pod (30 s, plus 5 s a pod asked) and loading a
    # large append-only file fit.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 + 5 * statefulset["replicas"] + 300


def test_a_hung_redis_leaves_the_read_service_about_as_soon_as_the_sentinels_replace_it(deployed):
    readiness = redis_containers(deployed)["redis"]["readinessProbe"]
    assert readiness["exec"]["command"] == ["sh", "/scripts/redis-probe.sh", "readiness"]
    # The Sentinels promote a replica some 7 s after the master hangs (5 s down-after);
    # reads sent to a hung pod meanwhile time out.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] + readiness["timeoutSeconds"] <= 8


def test_a_sentinel_runs_beside_each_redis_exactly_when_there_are_several_pods(deployed):
    containers = redis_containers(deployed)
    if not fails_over(deployed):
        assert list(containers) == ["redis"]
        return
    assert list(containers) == ["redis", "sentinel"]
    template = deployed.object("StatefulSet", "redis")["spec"]["template"]
    # An operator's `kubectl exec redis-0 -- redis-cli` reaches Redis, not the Sentinel.
    assert template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "redis"
    sentinel = containers["sentinel"]
    assert sentinel["image"] == containers["redis"]["image"]
    assert sentinel["command"] == ["sh", f"/scripts/{SENTINEL_SCRIPT.name}"]
    (port,) = sentinel["ports"]
    assert port["containerPort"] == int(env_of(sentinel)["REDIS_SENTINEL_PORT"]) == 26379
    assert env_of(sentinel)["REDIS_SENTINEL_PORT"] == env_of(containers["redis"])["REDIS_SENTINEL_PORT"]
    # Both containers share the in-memory config directory: the Sentinel reads there
    # which master the Redis beside it follows.
    config = env_of(sentinel)["REDIS_CONF_DIR"]
    assert config == env_of(containers["redis"])["REDIS_CONF_DIR"]
    for container in containers.values():
        assert any(m["mountPath"] == config and m["name"] == "config" for m in container["volumeMounts"])
    # The Sentinel waits up to 120 s for its Redis to know its role: its startup probe
    # must not restart it first.
    startup = sentinel["startupProbe"]
    assert startup["exec"]["command"] == ["sh", "/scripts/redis-probe.sh", "sentinel"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > 120


def test_a_stopping_redis_master_hands_its_role_over_within_the_grace_period(deployed):
    spec = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]
    redis = redis_containers(deployed)["redis"]
    if not fails_over(deployed):
        assert "lifecycle" not in redis  # one pod: nobody to hand over to
        return
    assert redis["lifecycle"]["preStop"]["exec"]["command"] == ["sh", f"/scripts/{PRESTOP_SCRIPT.name}"]
    # The hook waits for a second replica in sync, up to 3 s for the replicas to catch
    # up, then for the new master, then up to 4 s as its replica; Redis then needs time
    # of its own to flush its append-only file.
    env = env_of(redis)
    hook = int(env["REDIS_PRESTOP_REPLICAS_WAIT_SECONDS"]) + 3 + int(env["REDIS_PRESTOP_WAIT_SECONDS"]) + 4
    assert spec["terminationGracePeriodSeconds"] >= hook + 5
    # The hook's log goes where `kubectl logs` finds it: redis-server (PID 1)'s stderr.
    assert redis["command"][-1].endswith(LAUNCH_SCRIPT.name) and not spec.get("shareProcessNamespace")
    assert env["REDIS_PRESTOP_LOG"] == "/proc/1/fd/2"


def test_a_redis_rollout_waits_out_the_cluster_dns_cache_between_pods(deployed):
    # A restarted pod is out of its peers' reach by name until the cluster DNS forgets
    # its old address (30 s with kubeadm's CoreDNS, the default): the next pod, perhaps
    # the master handing over to it, stops only after that.
    spec = deployed.object("StatefulSet", "redis")["spec"]
    if not fails_over(deployed):
        assert "minReadySeconds" not in spec  # one pod: nobody to reach it
        return
    assert spec["minReadySeconds"] > 30


@pytest.mark.parametrize("cache_seconds", [5, 120])
def test_the_rollout_pause_follows_the_clusters_dns_cache(cache_seconds):
    spec = run_program("prod", clusterDnsCacheSeconds=cache_seconds).object("StatefulSet", "redis")["spec"]
    assert cache_seconds < spec["minReadySeconds"] <= cache_seconds + 10


def test_reads_are_balanced_over_every_redis_pod_behind_one_address(deployed):
    read = deployed.object("Service", "redis")["spec"]
    assert read["type"] == "ClusterIP" and "clusterIP" not in read
    assert read["selector"] == deployed.object("StatefulSet", "redis")["spec"]["selector"]["matchLabels"]


def test_redis_ships_its_scripts_verbatim(deployed):
    (scripts,) = [c for c in deployed.objects("ConfigMap") if "redis-launch.sh" in c["data"]]
    assert scripts["data"] == {script.name: script.read_text() for script in SCRIPTS}
    # redis-common.sh is sourced by the others from their own directory.
    assert "redis-common.sh" in scripts["data"]


def test_redis_data_outlives_the_statefulset(deployed):
    statefulset = deployed.object("StatefulSet", "redis")["spec"]
    assert statefulset["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = redis_containers(deployed)["redis"]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts


# --- hardening ------------------------------------------------------------------------------


def test_every_pod_runs_restricted(deployed):
    for name, spec in pod_specs(deployed):
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, name
        # Above 10000: no pod's user or group is an account of the node's.
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            assert security[key] >= 10000, (name, key)
        # The user's own group, which also owns the mounted volumes; chowned only when
        # their root does not already belong to it.
        assert security["runAsGroup"] == security["fsGroup"] == security["runAsUser"], name
        assert security["fsGroupChangePolicy"] == "OnRootMismatch", name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name


def test_every_container_is_locked_down_and_sized(deployed):
    for name, container in containers(deployed):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory", "ephemeral-storage"}, name
        assert "readinessProbe" in container and "livenessProbe" in container, name


def test_every_scratch_volume_is_bounded_and_the_http_tiers_write_only_to_tmp(deployed):
    for name, spec in pod_specs(deployed):
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                assert "sizeLimit" in volume["emptyDir"], (name, volume)
    for deployment in deployed.objects("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
            assert [(m["name"] in scratch, m["mountPath"]) for m in writable] == [(True, "/tmp")]


def test_the_redis_config_which_holds_the_password_never_touches_the_nodes_disk(deployed):
    spec = deployed.object("StatefulSet", "redis")["spec"]["template"]["spec"]
    for container in spec["containers"]:
        config_dir = env_of(container)["REDIS_CONF_DIR"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == config_dir]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert volume["emptyDir"]["medium"] == "Memory"


def test_password_files_are_readable_by_their_owner_and_group_only(deployed):
    modes = {
        name: [(v.get("secret") or v.get("projected"))["defaultMode"] for v in spec["volumes"] if "secret" in v or "projected" in v]
        for name, spec in pod_specs(deployed)
    }
    redis_volumes = 2 if fails_over(deployed) else 1
    assert modes == {"frontend": [0o440, 0o440], "redis": [0o440] * redis_volumes, "fileserver": []}


def test_http_probes_ask_each_tiers_health_endpoint(deployed):
    health_paths = {"frontend": "/api/healthz", "fileserver": "/"}
    for deployment in deployed.objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        expected = health_paths[deployment["metadata"]["name"]]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": expected, "port": "http"}


def test_the_file_server_port_is_the_one_its_nginx_conf_listens_on(deployed):
    listens = [int(port) for port in re.findall(r"^\s*listen\s+(\d+)\s*;", NGINX_CONF.read_text(), re.MULTILINE)]
    (container,) = deployed.object("Deployment", "fileserver")["spec"]["template"]["spec"]["containers"]
    assert [int(port["containerPort"]) for port in container["ports"]] == listens


def test_every_image_is_pinned(deployed):
    for name, container in containers(deployed):
        image = parse_image(container["image"])
        assert image is not None and image.pinned, (name, container["image"])
        assert container["imagePullPolicy"] == "IfNotPresent", name


def test_every_mount_names_a_declared_volume_or_claim(deployed):
    for workload in workloads(deployed):
        spec = workload["spec"]
        declared = {v["name"] for v in spec["template"]["spec"]["volumes"]}
        declared |= {claim["metadata"]["name"] for claim in spec.get("volumeClaimTemplates", [])}
        for container in spec["template"]["spec"]["containers"]:
            for mount in container["volumeMounts"]:
                assert mount["name"] in declared, (workload["metadata"]["name"], mount)


def test_the_root_filesystem_is_read_only_and_tmp_is_scratch_space(deployed):
    for name, spec in pod_specs(deployed):
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
            assert all(m["name"] in scratch or m["mountPath"] == "/data" for m in writable), name


def test_replicated_workloads_have_a_disruption_budget_and_single_pods_none(deployed):
    budgets = deployed.objects("PodDisruptionBudget")
    for workload in workloads(deployed):
        covering = [b for b in budgets if matches(b["spec"]["selector"]["matchLabels"], workload["spec"]["template"]["metadata"]["labels"])]
        expected = 1 if workload["spec"]["replicas"] > 1 else 0
        assert len(covering) == expected, workload["metadata"]["name"]
        for budget in covering:
            assert budget["spec"]["maxUnavailable"] == 1
            assert budget["spec"]["selector"] == workload["spec"]["selector"]


def test_pods_spread_across_nodes_as_a_rule_and_across_zones_as_a_preference(deployed):
    for workload in workloads(deployed):
        spec = workload["spec"]["template"]["spec"]
        nodes, zones = spec["topologySpreadConstraints"]
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert (nodes["topologyKey"], nodes["whenUnsatisfiable"], nodes["maxSkew"]) == ("kubernetes.io/hostname", "DoNotSchedule", 1)
        assert nodes["nodeTaintsPolicy"] == "Honor"
        assert (zones["topologyKey"], zones["whenUnsatisfiable"]) == ("topology.kubernetes.io/zone", "ScheduleAnyway")
        for constraint in (nodes, zones):
            # The tier's own pods: the selector matches the template and names the tier.
            assert matches(constraint["labelSelector"]["matchLabels"], pod_labels)
            assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == pod_labels["app.kubernetes.io/component"]
            # A Deployment's rollout runs two ReplicaSets at once: only the new one's pods
            # count. StatefulSet pods carry no pod-template-hash to match on.
            rollout_aware = ["pod-template-hash"] if workload["kind"] == "Deployment" else None
            assert constraint.get("matchLabelKeys") == rollout_aware, workload["metadata"]["name"]


def test_the_frontend_rolls_out_without_losing_capacity(deployed):
    strategy = deployed.object("Deployment", "frontend")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


# --- traffic ---------------------------------------------------------------------------------


def test_all_traffic_is_denied_unless_a_policy_allows_it(deployed):
    deny = deployed.object("NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_every_network_policy_selects_pods_that_exist(deployed):
    templates = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(deployed)]
    for policy in deployed.objects("NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if "acme.cert-manager.io/http01-solver" in selector:
            continue  # cert-manager's solver pods, created on demand
        assert not selector or any(matches(selector, labels) for labels in templates), policy["metadata"]["name"]


# --- the flows the service needs, each checked from both ends -------------------------------

# The edge proxy of every variant: the ingress controller's namespace, or the gateway's.
EDGE_PROXY = {"namespace": "ingress-nginx"}
CLUSTER_DNS = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}


def peer_matches(peer: dict, endpoint: dict, own_namespace: str) -> bool:
    """Whether a NetworkPolicyPeer admits `endpoint` (its namespace, its pod labels)."""
    namespace = endpoint.get("namespace", own_namespace)
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"].get("matchLabels", {}), {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != own_namespace:
        return False
    pod_selector = peer.get("podSelector", {}).get("matchLabels", {})
    return matches(pod_selector, endpoint.get("labels", {}))


def port_matches(rule: dict, protocol: str, port: int) -> bool:
    return "ports" not in rule or {"protocol": protocol, "port": port} in rule["ports"]


def allowed(deployed, direction: str, at: dict, other: dict, protocol: str, port: int) -> bool:
    """Some policy that selects the pods `at` lets traffic in `direction` to or from `other`."""
    namespace = deployed.objects("Namespace")[0]["metadata"]["name"]
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in deployed.objects("NetworkPolicy"):
        spec = policy["spec"]
        if direction not in spec["policyTypes"] or not matches(spec["podSelector"].get("matchLabels", {}), at["labels"]):
            continue
        for rule in spec.get(key, []):
            # As Kubernetes reads it: a rule without peers (no `from`/`to`, or an empty
            # list) admits every peer, not none.
            admitted = not rule.get(peers) or any(peer_matches(p, other, namespace) for p in rule[peers])
            if port_matches(rule, protocol, port) and admitted:
                return True
    return False


def test_the_policy_checker_reads_a_rule_without_peers_as_everybody():
    class OnePolicy:
        def __init__(self, rule: dict):
            self.policy = {"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [rule]}}

        def objects(self, kind: str) -> list[dict]:
            return {"Namespace": [{"metadata": {"name": "ns"}}], "NetworkPolicy": [self.policy]}[kind]

    stranger = {"namespace": "elsewhere", "labels": {"app": "anything"}}
    for open_rule in ({}, {"from": []}, {"ports": [{"protocol": "TCP", "port": 80}]}):
        assert allowed(OnePolicy(open_rule), "Ingress", {"labels": {}}, stranger, "TCP", 80), open_rule
    closed = {"from": [{"podSelector": {"matchLabels": {"app": "friend"}}}]}
    assert not allowed(OnePolicy(closed), "Ingress", {"labels": {}}, stranger, "TCP", 80)


def pod_labels(deployed, component: str) -> dict:
    (workload,) = [w for w in workloads(deployed) if w["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return {"labels": workload["spec"]["template"]["metadata"]["labels"]}


@pytest.mark.parametrize(
    "source, destination, port",
    [("frontend", "redis", 6379), ("redis", "redis", 6379)],
)
def test_a_needed_flow_between_tiers_is_open_at_both_ends(deployed, source, destination, port):
    source_pods, destination_pods = pod_labels(deployed, source), pod_labels(deployed, destination)
    assert allowed(deployed, "Egress", source_pods, destination_pods, "TCP", port)
    assert allowed(deployed, "Ingress", destination_pods, source_pods, "TCP", port)


@pytest.mark.parametrize("destination", ["frontend", "fileserver"])
def test_the_edge_proxy_reaches_the_container_port_behind_each_route(deployed, destination):
    pods = pod_labels(deployed, destination)
    (container_port,) = [
        p["containerPort"] for w in workloads(deployed) if matches(pods["labels"], w["spec"]["template"]["metadata"]["labels"])
        for c in w["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    ]
    assert allowed(deployed, "Ingress", pods, EDGE_PROXY, "TCP", container_port)


@pytest.mark.parametrize("component", ["frontend", "redis", "fileserver"])
@pytest.mark.parametrize("protocol", ["UDP", "TCP"])
def test_every_pod_can_ask_the_cluster_dns(deployed, component, protocol):
    assert allowed(deployed, "Egress", pod_labels(deployed, component), CLUSTER_DNS, protocol, 53)


@pytest.mark.parametrize("component", ["frontend", "redis", "fileserver"])
@pytest.mark.parametrize("port", [6379, 26379, 8080, 443])
def test_no_pod_sends_anything_out_of_the_namespace(deployed, component, port):
    elsewhere = {"namespace": "elsewhere", "labels": pod_labels(deployed, component)["labels"]}
    assert not allowed(deployed, "Egress", pod_labels(deployed, component), elsewhere, "TCP", port)


@pytest.mark.parametrize("component", ["frontend", "redis", "fileserver"])
def test_port_53_is_open_to_the_cluster_dns_only(deployed, component):
    other_system_pod = {"namespace": "kube-system", "labels": {"k8s-app": "metrics-server"}}
    assert not allowed(deployed, "Egress", pod_labels(deployed, component), other_system_pod, "UDP", 53)


@pytest.mark.parametrize(
    "source, destination, port",
    [("fileserver", "redis", 6379), ("fileserver", "redis", 26379), ("frontend", "fileserver", 8080), ("redis", "frontend", 8080)],
)
def test_a_flow_the_service_does_not_need_stays_closed(deployed, source, destination, port):
    source_pods, destination_pods = pod_labels(deployed, source), pod_labels(deployed, destination)
    assert not (
        allowed(deployed, "Egress", source_pods, destination_pods, "TCP", port)
        and allowed(deployed, "Ingress", destination_pods, source_pods, "TCP", port)
    )


def test_cert_manager_solvers_are_reachable_from_the_edge_proxy(deployed):
    solver = {"labels": {"acme.cert-manager.io/http01-solver": "true"}}
    assert allowed(deployed, "Ingress", solver, EDGE_PROXY, "TCP", 8089)


def test_only_the_frontend_and_redis_itself_may_reach_redis(deployed):
    redis = deployed.object("NetworkPolicy", "redis")["spec"]
    (rule,) = redis["ingress"]
    components = sorted(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in rule["from"])
    assert components == ["frontend", "redis"]
    # The Sentinels' port only where Sentinels run.
    sentinel_port = [{"protocol": "TCP", "port": 26379}] if fails_over(deployed) else []
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}, *sentinel_port]


@pytest.mark.parametrize("source", ["frontend", "redis"])
def test_the_sentinels_answer_the_frontend_and_each_other_where_they_run(deployed, source):
    source_pods, redis_pods = pod_labels(deployed, source), pod_labels(deployed, "redis")
    open_both_ways = allowed(deployed, "Egress", source_pods, redis_pods, "TCP", 26379) and allowed(
        deployed, "Ingress", redis_pods, source_pods, "TCP", 26379
    )
    assert open_both_ways == fails_over(deployed)


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_name_the_service_and_never_a_redis_password(deployed):
    passwords = [p for p in deployed.of_type("random:index/randomPassword:RandomPassword")
                 if p.name != "frontend-write-credential"]
    assert deployed.outputs["url"].startswith("https://")
    assert set(deployed.outputs) >= {"url", "namespace", "frontendService", "fileserverService"}
    for password in passwords:
        assert all(password.state["result"] not in str(value) for value in deployed.outputs.values())


def test_the_documented_rotation_replaces_the_credential_the_program_generates(deployed):
    """docs/operations.md's `up --replace` names the RandomPassword's real URN (the
    stack's name aside), or the rotation would replace nothing."""
    documented = re.findall(r"--replace '(urn:pulumi:[^']+)'", (PROJECT_DIR / "docs" / "operations.md").read_text())
    urn = generated(deployed, "frontend-write-credential").urn
    assert [documented_urn.split("::")[1:] for documented_urn in documented] == [urn.split("::")[1:]]


def test_the_write_credential_is_an_output_for_its_holders_and_a_secret_one(deployed):
    credential = generated(deployed, "frontend-write-credential").state["result"]
    assert deployed.outputs["writeCredential"] == credential
    assert deployed.outputs["writeCredentialSecret"] == "frontend-write-credential"
    # The engine gets it marked secret: encrypted in state, hidden by `stack output`.
    assert deployed.secret_outputs == {"writeCredential"}


# --- lifecycle: how long `up` waits, what it may not delete --------------------------------


def test_every_wait_of_up_is_bounded_by_the_rollout_timeout(deployed):
    """Deployments, the StatefulSet, Services and the Ingress alike: any of them would
    otherwise hold `up` for the provider's ten minutes."""
    kubernetes = [r for r in deployed.resources if r.is_kubernetes]
    assert len(kubernetes) >= 15
    for resource in kubernetes:
        assert resource.custom_timeouts == {"create": "300s", "update": "300s", "delete": ""}, resource.name


def test_the_stack_forces_its_apply_on_every_kubernetes_object_it_owns(deployed):
    """A field someone set by hand (`kubectl scale`) belongs to another field manager:
    without the force, `up --refresh` stops at the conflict instead of undoing the edit."""
    kubernetes = [r for r in deployed.resources if r.is_kubernetes]
    assert len(kubernetes) >= 15
    for resource in kubernetes:
        assert resource.manifest()["metadata"]["annotations"]["pulumi.com/patchForce"] == "true", resource.name


def test_a_shorter_rollout_timeout_reaches_every_resource():
    deployed = run_program("dev", rolloutTimeout="90s")
    for resource in deployed.resources:
        if resource.is_kubernetes:
            assert resource.custom_timeouts["create"] == resource.custom_timeouts["update"] == "90s", resource.name


def test_the_mocks_still_leave_a_resource_transform_unrun():
    """Why components/waits.py bounds the waits with a stack transformation and not with
    its successor, a resource transform: Pulumi's mock monitor accepts a transform and
    never calls it. Should this fail, the mocks run transforms, and the bound can move."""
    called = []

    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        called.append(args.name)
        protected = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(protect=True))
        return pulumi.ResourceTransformResult(args.props, protected)

    def program():
        pulumi.runtime.register_resource_transform(transform)
        k8s.core.v1.ConfigMap("probe", metadata={"name": "probe"})

    (probe,) = run_under_mocks("test", {}, program).resources
    assert called == []
    assert probe.protect is False


@pytest.mark.parametrize("stack, protected", [("dev", False), ("prod", True)])
def test_the_data_is_protected_where_the_stack_says_so(stack, protected):
    deployed = run_program(stack)
    guarded = {r.type: r.protect for r in deployed.resources if r.type in ("kubernetes:core/v1:Namespace", "kubernetes:apps/v1:StatefulSet")}
    assert guarded == {"kubernetes:core/v1:Namespace": protected, "kubernetes:apps/v1:StatefulSet": protected}
    # Nothing else is protected: the stateless tiers can always be replaced.
    assert [r.name for r in deployed.resources if r.protect and r.type not in guarded] == []


def test_http_pods_keep_serving_for_a_moment_after_they_leave_the_service(deployed):
    """A replaced pod sleeps before SIGTERM while the ingress controller and kube-proxy
    drop it, so a rollout sends no request to a pod that stopped listening."""
    for deployment in deployed.objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}, deployment["metadata"]["name"]


def test_a_redis_pod_that_never_becomes_ready_does_not_block_the_revert(deployed):
    (statefulset,) = deployed.objects("StatefulSet")
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"


def test_services_are_not_awaited_their_workloads_are(deployed):
    """`up` waits for the rollouts (pods Ready, so the Services' endpoints), not for the
    provider's ten-second Service settling, which every dependent waited for in turn."""
    for service in deployed.objects("Service"):
        assert service["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true", service["metadata"]["name"]
    for kind in ("Deployment", "StatefulSet", "Ingress"):
        for obj in deployed.objects(kind):
            assert "pulumi.com/skipAwait" not in obj["metadata"].get("annotations", {}), obj["metadata"]["name"]


def test_http_pods_are_checked_for_readiness_often_and_restarted_only_after_long_failure(deployed):
    for deployment in deployed.objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        assert readiness["periodSeconds"] * readiness["failureThreshold"] <= 6
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
