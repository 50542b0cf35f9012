"""Stack configuration is validated once, up front, with errors that name the key."""

import base64
import datetime

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.settings import EdgeMode, Image, SettingsError, TlsIssuer, load_settings
from support.program_mocks import PROJECT_DIR, STACKS, Registered, journal_keys, run_program, stack_config

LETS_ENCRYPT_STAGING = {"tlsIssuer": "letsencrypt-staging", "acmeServer": "", "acmeCaBundle": ""}
GATEWAY = {"edge": "gateway", "gatewayClassName": "traefik", "gatewayNamespace": "traefik-system"}


def settings_for(stack: str, **overrides: object):
    config = stack_config(stack, **overrides)
    return load_settings(journal_keys(config), stack, config["kubernetes:context"])


def test_dev_stack_is_small_and_gets_certificates_from_the_local_acme_server():
    settings = settings_for("dev")
    assert settings.namespace == "journal-dev"
    assert settings.frontend.replicas == 1
    assert settings.redis.replicas == 1
    assert settings.edge.tls.issuer is TlsIssuer.ACME
    assert settings.edge.tls.acme_server == "https://pebble.pebble.svc.cluster.local:14000/dir"
    assert settings.edge.tls.ca_bundle.startswith("-----BEGIN CERTIFICATE-----\n")
    assert settings.edge.mode is EdgeMode.INGRESS


def test_prod_stack_is_replicated_persistent_and_trusted():
    settings = settings_for("prod")
    assert settings.namespace == "journal-prod"
    assert settings.frontend.replicas >= 2
    assert settings.fileserver.replicas >= 2
    assert settings.redis.replicas == 3
    assert settings.redis.storage_size == "50Gi"
    assert settings.edge.host == "journal.example.com"
    assert settings.edge.tls.issuer is TlsIssuer.LETSENCRYPT_PRODUCTION


def test_namespace_can_be_chosen_explicitly():
    assert settings_for("dev", namespace="team-journal").namespace == "team-journal"


def test_tls_can_be_turned_off_without_a_host():
    settings = settings_for("dev", tlsIssuer="none", host="", tlsEmail="", acmeServer="", acmeCaBundle="")
    assert settings.edge.tls is None
    assert settings.edge.host is None


@pytest.mark.parametrize(
    "reference, tag, digest",
    [
        ("docker.io/library/redis:7.0.15-bookworm", "7.0.15-bookworm", None),
        ("Registry.Example.com/my--app/a__b:1.0.0", "1.0.0", None),
        ("localhost/journal:1.2.3", "1.2.3", None),
        ("registry.example.com:5000/journal/api:v1.0.1-bfeda01f", "v1.0.1-bfeda01f", None),
        ("redis@sha256:" + "a" * 64, None, "sha256:" + "a" * 64),
        ("redis:7.0.15@sha256:" + "b" * 64, "7.0.15", "sha256:" + "b" * 64),
    ],
)
def test_pinned_images_are_accepted(reference, tag, digest):
    image = settings_for("dev", redisImage=reference).redis.image
    assert image == Image(reference=reference, tag=tag, digest=digest)


def test_a_digest_only_image_gets_a_label_safe_version():
    image = settings_for("dev", redisImage="redis@sha256:" + "c" * 64).redis.image
    assert image.version == "sha256-cccccccccccc"


# Each row: config key, bad value, words the error must contain.
INVALID = [
    ("frontendReplicas", "0", "from 1 to"),
    ("frontendReplicas", "-2", "whole number"),
    ("redisReplicas", "three", "whole number"),
    ("redisReplicas", "2", "at least 3 (Sentinels need a majority"),
    ("fileserverReplicas", "1000", "from 1 to"),
    ("frontendCpuRequest", "lots", "CPU quantity"),
    ("frontendCpuLimit", "0m", "positive CPU"),
    ("frontendMemoryLimit", "1G", "binary suffix"),
    ("redisMemoryRequest", "-128Mi", "binary suffix"),
    ("redisStorageSize", "50GB", "binary suffix"),
    ("redisStorageClass", "Fast_SSD", "StorageClass"),
    ("redisPasswordLength", "16", "from 32"),
    ("frontendImage", "registry.example.com/journal/api:latest", "pinned"),
    ("frontendImage", "registry.example.com/journal/api", "pinned"),
    ("redisImage", "redis:7", "pinned"),
    ("fileserverImage", "nginx:alpine", "pinned"),
    ("frontendImage", "Registry/API:v1.0.0", "image reference"),
    ("frontendImage", "registry.example.com/a:5000/api:v1.0.0", "image reference"),
    ("frontendImage", "registry.example.com/journal/api:v1.0.1-", "pinned"),
    ("frontendImage", "registry.example.com/journal/api:v1.0.1-" + "a" * 60, "at most 63"),
    ("host", "Journal.Example.com", "DNS name"),
    ("host", "journal..example.com", "DNS name"),
    ("host", "10.0.0.1", "not an IP address"),
    ("host", "journal", "fully qualified"),
    ("host", "a" * 64 + ".example.com", "DNS name"),
    ("tlsIssuer", "letsencrypt", "one of"),
    ("tlsEmail", "not-an-email", "email"),
    ("namespace", "default", "own"),
    ("namespace", "kube-system", "own"),
    ("namespace", "Journal", "DNS label"),
    ("namespace", "journal\n", "DNS label"),
    ("redisImage", "redis:7.0.15\n", "image reference"),
    ("ingressClassName", "", "IngressClass"),
    ("frontendJournalEntries", "0", "from 1"),
    ("frontendWritesPerMinute", "0", "from 1 to 60000"),
    ("frontendWritesPerMinute", "60001", "from 1 to 60000"),
    ("frontendWriteBurst", "0", "from 1 to 10000"),
    ("frontendWriteBurst", "1.5", "whole number"),
    ("clusterDnsCacheSeconds", "-1", "from 0 to 3600"),
    ("clusterDnsCacheSeconds", "30s", "whole number"),
    ("rolloutTimeout", "5", "duration"),
    ("rolloutTimeout", "10s", "from 30s"),
    ("rolloutTimeout", "2h", "duration"),
    ("rolloutTimeout", "61m", "to 60m"),
    ("protectData", "yes", "true or false"),
    ("edge", "gatway", "one of 'ingress', 'gateway'"),
    ("acmeServer", "", "https:// URL of an ACME directory"),
    ("acmeServer", "http://pebble.example.com/dir", "https:// URL"),
    ("acmeServer", "https://", "https:// URL"),
    ("acmeServer", "https://ca.example.com:99999/dir", "https:// URL"),
    ("acmeServer", "https://admin:hunter2@ca.example.com/dir", "https:// URL"),
    ("acmeServer", "https://ca.example.com/dir\n", "https:// URL"),
    ("gatewayClassName", "Traefik_GW", "GatewayClass name"),
    ("gatewayNamespace", "gateway.system", "namespace name"),
]


def base_for(key: str) -> dict:
    """The gateway keys are only valid in gateway mode: their rows start from it."""
    return GATEWAY if key.startswith("gateway") else {}


@pytest.mark.parametrize("key, value, expected", INVALID, ids=[f"{k}={v!r}" for k, v, _ in INVALID])
def test_invalid_value_is_refused_naming_key_and_value(key, value, expected):
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", **{**base_for(key), key: value})
    (problem,) = refused.value.problems
    assert problem.startswith(f"journal:{key}")
    assert repr(value) in problem
    assert expected in problem


def test_tls_without_a_host_is_refused():
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", host="")
    assert refused.value.problems == ["journal:host must be set when journal:tlsIssuer is 'acme': a certificate names a host"]


def test_lets_encrypt_issuers_name_their_own_directory():
    assert settings_for("dev", **LETS_ENCRYPT_STAGING).edge.tls.acme_server == (
        "https://acme-staging-v02.api.letsencrypt.org/directory"
    )
    assert settings_for("prod").edge.tls.acme_server == "https://acme-v02.api.letsencrypt.org/directory"
    assert settings_for("prod").edge.tls.ca_bundle is None


@pytest.mark.parametrize("key", ["acmeServer", "acmeCaBundle"])
@pytest.mark.parametrize("issuer", ["none", "letsencrypt-production"])
def test_an_acme_setting_without_the_acme_issuer_is_refused_not_ignored(key, issuer):
    dev_acme = {"acmeServer": "https://ca.example.com/directory", "acmeCaBundle": settings_for("dev").edge.tls.ca_bundle}
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", **{"tlsIssuer": issuer, "acmeServer": "", "acmeCaBundle": "", key: dev_acme[key]})
    assert refused.value.problems == [f"journal:{key} is only used when journal:tlsIssuer is 'acme', but tlsIssuer is {issuer!r}"]


def test_an_acme_server_may_be_publicly_trusted():
    tls = settings_for("dev", acmeCaBundle="", acmeServer="https://ca.example.com/acme/directory").edge.tls
    assert tls.ca_bundle is None and tls.ca_bundle_base64 is None
    assert tls.acme_server == "https://ca.example.com/acme/directory"


def self_signed_certificate(tmp_path, *, ca: bool) -> str:
    """A P-256 certificate with basicConstraints CA:TRUE or CA:FALSE; its key in key.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_a_ca_bundle_of_several_cas_is_kept_whole_and_encoded_for_cert_manager(tmp_path):
    own_ca = self_signed_certificate(tmp_path, ca=True)
    pebble_ca = settings_for("dev").edge.tls.ca_bundle
    tls = settings_for("dev", acmeCaBundle=f"\n{own_ca}\n\n{pebble_ca}\n").edge.tls
    assert tls.ca_bundle == own_ca + pebble_ca
    assert base64.b64decode(tls.ca_bundle_base64).decode() == own_ca + pebble_ca


def test_a_ca_bundle_holding_a_private_key_is_refused_without_echoing_it(tmp_path):
    bundle = settings_for("dev").edge.tls.ca_bundle
    self_signed_certificate(tmp_path, ca=True)
    key = (tmp_path / "key.pem").read_text()
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", acmeCaBundle=bundle + key)
    (problem,) = refused.value.problems
    assert problem.startswith("journal:acmeCaBundle holds a private key")
    assert key.splitlines()[1] not in str(refused.value)


def test_a_ca_bundle_with_a_certificate_that_is_not_a_ca_is_refused(tmp_path):
    leaf = self_signed_certificate(tmp_path, ca=False)
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", acmeCaBundle=leaf)
    assert refused.value.problems == [
        "journal:acmeCaBundle must hold CA certificates only (the ones that sign the ACME server's certificate): "
        "1 of its 1 certificates are not CAs"
    ]


@pytest.mark.parametrize(
    "bundle, expected",
    [
        ("not a certificate", "must be PEM CA certificates"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "does not parse"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\ntrailing words", "must be PEM CA certificates"),
    ],
)
def test_a_ca_bundle_that_is_not_pem_certificates_is_refused(bundle, expected):
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", acmeCaBundle=bundle)
    (problem,) = refused.value.problems
    assert problem.startswith("journal:acmeCaBundle") and expected in problem


def test_gateway_mode_takes_its_class_and_the_namespace_of_its_proxies():
    edge = settings_for("dev", **GATEWAY).edge
    assert edge.mode is EdgeMode.GATEWAY
    assert edge.gateway_class == "traefik"
    assert edge.proxy_namespace == "traefik-system"
    assert settings_for("dev").edge.proxy_namespace == "ingress-nginx"


@pytest.mark.parametrize("key", ["gatewayClassName", "gatewayNamespace"])
def test_gateway_mode_without_its_class_or_namespace_is_refused(key):
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", **{**GATEWAY, key: ""})
    assert refused.value.problems == [f"journal:{key} must be set when journal:edge is 'gateway', got nothing"]


@pytest.mark.parametrize("key", ["gatewayClassName", "gatewayNamespace"])
def test_a_gateway_setting_in_ingress_mode_is_refused_not_ignored(key):
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", **{key: GATEWAY[key]})
    assert refused.value.problems == [f"journal:{key} is only used when journal:edge is 'gateway', but edge is 'ingress'"]


def test_tls_without_an_email_is_refused():
    with pytest.raises(SettingsError) as refused:
        settings_for("prod", tlsEmail="")
    (problem,) = refused.value.problems
    assert problem.startswith("journal:tlsEmail must be an email address")


def test_a_request_above_its_limit_is_refused():
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", redisMemoryRequest="512Mi", redisMemoryLimit="256Mi")
    assert refused.value.problems == [
        "journal:redisMemoryRequest ('512Mi') must not exceed journal:redisMemoryLimit ('256Mi')"
    ]


def test_a_stack_name_that_cannot_name_objects_is_refused():
    with pytest.raises(SettingsError, match="stack name 'Dev_1'"):
        load_settings(journal_keys(stack_config("dev")), "Dev_1", "journal-local")


@pytest.mark.parametrize("context", [None, ""])
def test_a_stack_that_names_no_cluster_context_is_refused(context):
    with pytest.raises(SettingsError) as refused:
        load_settings(journal_keys(stack_config("dev")), "dev", context)
    assert refused.value.problems == [
        "kubernetes:context must name the kubeconfig context this stack deploys to (set it in Pulumi.dev.yaml: "
        "a stack never uses whichever context is current), got ''"
    ]


def test_a_rendered_stack_needs_no_cluster_context():
    assert load_settings(journal_keys(stack_config("dev")), "dev", None, rendering=True).kube_context is None


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_names_its_cluster_context(stack):
    assert settings_for(stack).kube_context == stack_config(stack)["kubernetes:context"] != ""


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as refused:
        settings_for("dev", frontendReplicas="0", redisImage="redis:latest", host="UPPER")
    keys = [problem.split(" ", 1)[0] for problem in refused.value.problems]
    assert keys == ["journal:frontendReplicas", "journal:redisImage", "journal:host"]


@pytest.mark.parametrize("key, value, expected", INVALID, ids=[f"{k}={v!r}" for k, v, _ in INVALID])
def test_the_program_with_an_invalid_value_registers_no_resource(key, value, expected):
    registered: list[Registered] = []
    with pytest.raises(SettingsError, match=f"journal:{key}"):
        run_program("dev", registered=registered, **{**base_for(key), key: value})
    assert registered == []


def test_the_readme_documents_every_config_key():
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    readme = (PROJECT_DIR / "README.md").read_text()
    undocumented = [key for key in project["config"] if f"`{key}`" not in readme]
    assert undocumented == []


def test_the_acme_email_is_case_insensitive():
    assert settings_for("prod", tlsEmail="Ops@Example.COM").edge.tls.email == "Ops@Example.COM"


# --- the passphrase the engine encrypts the stack's secrets with ------------------------


def passphrase_in(directory, mode: int):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "passphrase"
    path.write_text("correct horse battery staple")
    path.chmod(mode)
    return path


def test_a_passphrase_file_only_its_owner_may_read_is_taken(tmp_path):
    config = stack_config("prod")
    settings = load_settings(journal_keys(config), "prod", config["kubernetes:context"],
                             passphrase_file=str(passphrase_in(tmp_path, 0o600)))  # fmt: skip
    assert settings.instance == "journal-prod"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_passphrase_file_others_may_read_is_refused_naming_the_file_and_its_mode(tmp_path, mode):
    path = passphrase_in(tmp_path, mode)
    config = stack_config("prod")
    with pytest.raises(SettingsError) as refused:
        load_settings(journal_keys(config), "prod", config["kubernetes:context"], passphrase_file=str(path))
    (problem,) = refused.value.problems
    assert f"PULUMI_CONFIG_PASSPHRASE_FILE '{path}'" in problem and f"mode {mode:04o}" in problem


def test_dev_s_own_passphrase_is_refused_for_any_other_stack(tmp_path):
    dev_passphrase = tmp_path / ".pulumi" / "dev-passphrase"
    passphrase_in(tmp_path / ".pulumi", 0o600).rename(dev_passphrase)
    dev, prod = stack_config("dev"), stack_config("prod")
    load_settings(journal_keys(dev), "dev", dev["kubernetes:context"], passphrase_file=str(dev_passphrase))
    with pytest.raises(SettingsError, match="stack 'prod' would be encrypted with dev's own passphrase"):
        load_settings(journal_keys(prod), "prod", prod["kubernetes:context"], passphrase_file=str(dev_passphrase))


def test_a_passphrase_file_that_is_not_there_is_refused(tmp_path):
    config = stack_config("prod")
    with pytest.raises(SettingsError, match="names '.*missing', which cannot be read"):
        load_settings(journal_keys(config), "prod", config["kubernetes:context"], passphrase_file=str(tmp_path / "missing"))
