"""Every object the program emits for dev, prod and dev with the gateway edge, created on a
real Kubernetes 1.34 API server (tests/support/kube_apiserver.py: etcd and kube-apiserver, no
nodes) with the cert-manager and Gateway API (standard channel) CRDs the local cluster
installs: the server accepts each one, with strict field validation, custom resources
included (their OpenAPI schemas and CEL rules), keeps the fields we set, and Pod Security
Admission at "restricted" finds nothing to warn about in our pod templates, nor anything
to refuse in the pods that the controllers would make from them.

Negative controls prove the harness sees problems: under the same namespace policy, a pod
template running as root, privileged, draws Pod Security warnings and the same spec as a
bare Pod is refused by the enforce mode; and one hardening field removed from a program
template draws its own warning.

The server is built by toolchain/install-kubernetes.sh (a no-op once built) and started
once for the module.
"""

import copy

import pytest

from support.program_mocks import KUBERNETES_VERSION, VARIANTS, run_program
from support.kube_apiserver import KubeAPIServer, Response, StartError, running_apiserver, secret_data, wire_form

pytestmark = pytest.mark.apiserver

KUBERNETES_MINOR = KUBERNETES_VERSION.split(".")[1]  # the release the schema tests use
CRDS = ("cert-manager-crds", "gateway-api-crds")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

# The negative control's pod: root, privileged, escalating, all that "restricted" forbids.
ROOT_PRIVILEGED_POD_SPEC = {
    "automountServiceAccountToken": False,
    "containers": [
        {
            "name": "root",
            "image": "docker.io/library/busybox:1.36.1",
            "command": ["sleep", "3600"],
            "securityContext": {"privileged": True, "runAsUser": 0, "allowPrivilegeEscalation": True},
        }
    ],
}
CONTROL_NAMESPACE = "journal-psa-control"


@pytest.fixture(scope="module")
def server():
    """The API server, built if needed; a failure to build or start fails (never skips)
    every test here."""
    failure = None
    try:
        with running_apiserver() as api:
            api.install_crds(*CRDS)
            yield api
    except StartError as error:
        failure = str(error)
    if failure is not None:
        pytest.fail(f"cannot start the test API server (see toolchain/install-kubernetes.sh --help):\n{failure}", pytrace=False)


class Applied:
    """One stack's objects created on the server, in order, with the answers."""

    def __init__(self, stack: str, manifests: list[dict], responses: list[Response]):
        self.stack = stack
        self.manifests = manifests
        self.responses = responses

    def of_kind(self, kind: str) -> list[dict]:
        return [m for m in self.manifests if m["kind"] == kind]

    def workloads(self) -> list[dict]:
        return [m for m in self.manifests if m["kind"] in WORKLOAD_KINDS]


@pytest.fixture(scope="module", params=list(VARIANTS))
def applied(request, server: KubeAPIServer) -> Applied:
    """The program's objects for one variant, exactly as it registers them (under mocks),
    created for real: the Namespace first, then every other object in program order. Each
    variant in a namespace named after it (dev's two edge modes would share one)."""
    stack, overrides = VARIANTS[request.param]
    program = run_program(stack, **overrides, namespace=f"journal-{request.param}")
    manifests = [wire_form(m) for m in program.kubernetes_objects()]
    manifests.sort(key=lambda m: m["kind"] != "Namespace")  # stable: program order otherwise
    return Applied(request.param, manifests, [server.create(m) for m in manifests])


def describe(manifest: dict) -> str:
    return f"{manifest['kind']} {manifest['metadata'].get('namespace', '')}/{manifest['metadata']['name']}".replace(" /", " ")


def stored(server: KubeAPIServer, manifest: dict) -> dict:
    response = server.read(manifest)
    assert response.status == 200, f"{describe(manifest)}: {response.error()}"
    return response.body


def differences(sent: object, kept: object, path: str = "") -> list[str]:
    """Where `kept` (the object read back) lacks or changed something of `sent`. The
    server may add fields (defaults, status, metadata) but should drop nothing we set.
    An empty list or map counts as absent: the API omits empty fields on output, with the
    same meaning (the file server's container sends `env: []` and reads back without)."""
    if sent in ([], {}) and kept is None:
        return []
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [f"{path}: sent an object, kept {kept!r}"]
        return [d for key, value in sent.items() for d in differences(value, kept.get(key), f"{path}.{key}")]
    if isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            return [f"{path}: sent {sent!r}, kept {kept!r}"]
        return [d for i, (a, b) in enumerate(zip(sent, kept)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if sent == kept else [f"{path}: sent {sent!r}, kept {kept!r}"]


def pod_from_template(workload: dict, namespace: str) -> dict:
    """The Pod a workload's controller would create: its template, with the claim
    volumes a StatefulSet adds for its volumeClaimTemplates (ordinal 0)."""
    template = copy.deepcopy(workload["spec"]["template"])
    name = workload["metadata"]["name"]
    spec = template["spec"]
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        claim_name = claim["metadata"]["name"]
        spec.setdefault("volumes", []).append(
            {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"}}
        )
    metadata = {**template.get("metadata", {}), "name": f"{name}-0", "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def default_service_account(namespace: str) -> dict:
    """What kube-controller-manager creates in every namespace; the ServiceAccount
    admission plugin refuses a Pod whose service account does not exist."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}


# --- the server ------------------------------------------------------------------------------


def test_the_server_is_the_kubernetes_release_the_schema_tests_use(server):
    version = server.version()
    assert (version["major"], version["minor"]) == ("1", KUBERNETES_MINOR), version
    assert version["gitVersion"].startswith(f"v1.{KUBERNETES_MINOR}."), version


# --- the program's objects ---------------------------------------------------------------------


def test_the_server_accepts_every_object(applied):
    kinds = {m["kind"] for m in applied.manifests}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "NetworkPolicy", "Secret", "ConfigMap", "Issuer", "Certificate"} <= kinds
    assert {"Ingress"} <= kinds or {"Gateway", "HTTPRoute"} <= kinds
    refused = [
        f"{describe(m)}: {r.error()}" for m, r in zip(applied.manifests, applied.responses) if r.status != 201
    ]
    assert not refused, f"{applied.stack}: the API server refused:\n" + "\n".join(refused)


def test_no_object_draws_a_warning(applied):
    # The namespace warns at "restricted": a pod template that breaks the profile would
    # be answered with `Warning: would violate PodSecurity "restricted:..."` here.
    assert applied.of_kind("Namespace")[0]["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    assert applied.of_kind("Deployment") and applied.of_kind("StatefulSet")
    warned = [f"{describe(m)}: {w}" for m, r in zip(applied.manifests, applied.responses) for w in r.warnings]
    assert not warned, f"{applied.stack}: the API server warned:\n" + "\n".join(warned)


def test_the_server_keeps_every_field_we_set(applied, server):
    changed = []
    for manifest in applied.manifests:
        kept = stored(server, manifest)
        sent = dict(manifest)
        if manifest["kind"] == "Secret":
            # stringData is write-only: the server merges it into data.
            sent.pop("stringData", None)
            sent.pop("data", None)
            if secret_data(kept) != secret_data(manifest):
                changed.append(f"{describe(manifest)}: data differs from what was sent")
        changed += [f"{describe(manifest)} {d}" for d in differences(sent, kept)]
    assert not changed, f"{applied.stack}: the server did not keep:\n" + "\n".join(changed)


def test_the_fields_the_design_relies_on_survive_the_server(applied, server):
    (namespace,) = applied.of_kind("Namespace")
    labels = stored(server, namespace)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == f"v1.{KUBERNETES_MINOR}"

    (statefulset,) = applied.of_kind("StatefulSet")
    kept = stored(server, statefulset)["spec"]
    assert kept["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert kept["serviceName"] == "redis-write"
    assert kept["volumeClaimTemplates"][0]["spec"]["resources"] == statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]

    for deployment in applied.of_kind("Deployment"):
        kept = stored(server, deployment)["spec"]
        assert kept["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}

    for workload in applied.workloads():
        pod = stored(server, workload)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    for ingress in applied.of_kind("Ingress"):
        kept = stored(server, ingress)["spec"]
        paths = [(p["path"], p["pathType"], p["backend"]["service"]["name"]) for rule in kept["rules"] for p in rule["http"]["paths"]]
        assert paths == [("/api", "Prefix", "frontend"), ("/", "Prefix", "fileserver")]
        assert kept["ingressClassName"] == "nginx"
    for route in applied.of_kind("HTTPRoute"):
        kept = stored(server, route)["spec"]
        if route["metadata"]["name"].endswith("-https-redirect"):
            continue
        paths = [(r["matches"][0]["path"]["value"], r["backendRefs"][0]["name"], r["backendRefs"][0]["port"]) for r in kept["rules"]]
        assert paths == [("/api", "frontend", 8080), ("/", "fileserver", 80)]
    for gateway in applied.of_kind("Gateway"):
        kept = stored(server, gateway)["spec"]
        assert [(l["name"], l["port"]) for l in kept["listeners"]] == [("http", 80), ("https", 443)]

    headless = stored(server, next(s for s in applied.of_kind("Service") if s["metadata"]["name"] == "redis-write"))
    assert headless["spec"]["clusterIP"] == "None"
    for service in applied.of_kind("Service"):
        if service["metadata"]["name"] != "redis-write":
            assert stored(server, service)["spec"]["clusterIP"].startswith("10.96.")

    for budget in applied.of_kind("PodDisruptionBudget"):
        assert stored(server, budget)["spec"]["maxUnavailable"] == 1


def test_the_pods_of_every_workload_pass_pod_security_enforcement(applied, server):
    """Enforcement judges Pods, not templates: create the Pod each controller would make."""
    (namespace,) = applied.of_kind("Namespace")
    name = namespace["metadata"]["name"]
    assert server.create(default_service_account(name)).status == 201
    problems = []
    for workload in applied.workloads():
        pod = pod_from_template(workload, name)
        status, warnings = server.create(pod)
        if status != 201 or warnings:
            problems.append(f"{describe(workload)}'s pod: {status} {warnings}")
    assert not problems, f"{applied.stack}:\n" + "\n".join(problems)


# --- negative controls: the harness does see violations ---------------------------------------


@pytest.fixture(scope="module")
def control_namespace(server: KubeAPIServer) -> str:
    """A namespace with exactly the program's Pod Security labels (dev's Namespace,
    renamed), and its default service account."""
    (namespace,) = [m for m in run_program("dev").kubernetes_objects() if m["kind"] == "Namespace"]
    namespace = copy.deepcopy(namespace)
    namespace["metadata"]["name"] = CONTROL_NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for manifest in (namespace, default_service_account(CONTROL_NAMESPACE)):
        response = server.create(manifest)
        assert response.status == 201, response.error()
    return CONTROL_NAMESPACE


def test_a_root_privileged_pod_template_draws_pod_security_warnings(server, control_namespace):
    labels = {"app": "root-privileged"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "root-privileged", "namespace": control_namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": ROOT_PRIVILEGED_POD_SPEC},
        },
    }
    status, warnings = server.create(deployment)
    assert status == 201  # templates are only warned about; enforcement judges pods
    (warning,) = [w for w in warnings if "PodSecurity" in w]
    assert warning.startswith(f'would violate PodSecurity "restricted:v1.{KUBERNETES_MINOR}": '), warning
    for violation in ("privileged", "allowPrivilegeEscalation != false", "runAsNonRoot != true", "runAsUser=0", "seccompProfile"):
        assert violation in warning, warning


def test_a_root_privileged_pod_is_forbidden_by_pod_security(server, control_namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-privileged", "namespace": control_namespace},
        "spec": ROOT_PRIVILEGED_POD_SPEC,
    }
    response = server.create(pod)
    assert response.status == 403, response.error()
    assert response.body["reason"] == "Forbidden"
    message = response.body["message"]
    assert f'violates PodSecurity "restricted:v1.{KUBERNETES_MINOR}"' in message, message
    assert "privileged" in message and "runAsUser=0" in message, message
    assert server.read(pod).status == 404


def test_one_hardening_field_less_in_a_program_template_draws_a_warning(server, control_namespace):
    """The same check, at the grain of our own objects: the program's fileserver
    Deployment without its pod's seccomp profile."""
    (deployment,) = [
        m for m in run_program("dev").kubernetes_objects() if m["kind"] == "Deployment" and m["metadata"]["name"] == "fileserver"
    ]
    deployment = copy.deepcopy(deployment)
    deployment["metadata"]["namespace"] = control_namespace
    del deployment["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
    status, warnings = server.create(deployment)
    assert status == 201
    assert warnings == [
        f'would violate PodSecurity "restricted:v1.{KUBERNETES_MINOR}": seccompProfile '
        '(pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    ]


def test_custom_resources_are_held_to_their_crd_schemas_and_rules(server):
    """The negative control of the custom kinds: a misspelt field is refused (strict field
    validation against the CRD's schema), and so is a Gateway that breaks one of the Gateway
    API's CEL rules (TLS on a plain HTTP listener)."""
    stack, overrides = VARIANTS["dev-gateway"]
    program = run_program(stack, **overrides, namespace="journal-crd-control")
    namespace = wire_form(program.objects("Namespace")[0])
    assert server.create(namespace).status == 201
    certificate = wire_form(copy.deepcopy(program.objects("Certificate")[0]))
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    misspelt = server.create(certificate)
    assert misspelt.status == 400 and 'unknown field "spec.dnsName"' in misspelt.error(), misspelt.error()

    gateway = wire_form(copy.deepcopy(program.objects("Gateway")[0]))
    http, https = gateway["spec"]["listeners"]
    http["tls"] = https["tls"]
    broken = server.create(gateway)
    assert broken.status == 422 and "tls must not be specified for protocols ['HTTP'" in broken.error(), broken.error()
