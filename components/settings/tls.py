"""The TLS keys: which ACME issuer, for which host, and the CA bundle that a private ACME
server's own certificate is checked against."""

import re
import ssl
from urllib.parse import urlsplit

from .reader import CONFIG_NAMESPACE, ConfigReader, ConfigSource
from .values import TlsIssuer, TlsSettings

_EMAIL = re.compile(r"[^@\s]+@[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+", re.IGNORECASE)
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s*[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
_ANY = re.compile(r".+", re.DOTALL)


def read_tls_settings(read: ConfigReader, source: ConfigSource, host: str | None) -> TlsSettings | None:
    """The edge's TLS, or None without an issuer; every problem with it is added to `read`.
    `host` is the edge's host as read, None when it is unset or refused."""
    issuer = read.choice("tlsIssuer", TlsIssuer)
    acme_keys = ("acmeServer", "acmeCaBundle")
    if issuer is not None and issuer is not TlsIssuer.ACME:
        # A CA bundle or server that is set but unused would look like it is in force.
        for key in acme_keys:
            if source.get(key):
                read.problems.append(
                    f"{CONFIG_NAMESPACE}:{key} is only used when {CONFIG_NAMESPACE}:tlsIssuer is 'acme', "
                    f"but tlsIssuer is {issuer.value!r}"
                )
    if issuer in (None, TlsIssuer.NONE):
        return None
    email = read.string("tlsEmail", _EMAIL, f"must be an email address for the ACME account when tlsIssuer is {issuer.value!r}")
    if host is not None and "." not in host:
        read.problems.append(
            f"{CONFIG_NAMESPACE}:host must be a fully qualified name when {CONFIG_NAMESPACE}:tlsIssuer is "
            f"{issuer.value!r}: an ACME server certifies no single-label name, got {host!r}"
        )
    if host is None and source.get("host") in (None, ""):
        read.problems.append(
            f"{CONFIG_NAMESPACE}:host must be set when {CONFIG_NAMESPACE}:tlsIssuer is {issuer.value!r}: "
            "a certificate names a host"
        )
    acme_server = issuer.lets_encrypt_directory
    ca_bundle = None
    if issuer is TlsIssuer.ACME:
        acme_server = read.string(
            "acmeServer", _ANY, "must be the https:// URL of an ACME directory, such as 'https://ca.example.internal/acme/directory'"
        )
        if acme_server is not None and not _is_https_url(acme_server):
            read.problems.append(
                f"{CONFIG_NAMESPACE}:acmeServer must be the https:// URL of an ACME directory, such as "
                f"'https://ca.example.internal/acme/directory', got {acme_server!r}"
            )
        ca_bundle = _ca_bundle(read, source.get("acmeCaBundle") or None)
    return TlsSettings(
        issuer=issuer, email=email or "", acme_server=acme_server or "", host=host or "", ca_bundle=ca_bundle
    )


def _is_https_url(value: str) -> bool:
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return (
        url.scheme == "https"
        and bool(url.hostname)
        and "@" not in url.netloc
        and not url.fragment
        and not any(c.isspace() for c in value)
    )


def _ca_bundle(read: ConfigReader, raw: str | None) -> str | None:
    """The PEM bundle, normalised to its certificate blocks, or None (the public roots);
    every problem with it is added to `read`."""
    if raw is None:
        return None
    key = f"{CONFIG_NAMESPACE}:acmeCaBundle"
    # Before anything else: a key pasted into config is a secret in plaintext.
    if "PRIVATE KEY-----" in raw:
        read.problems.append(
            f"{key} holds a private key: it must hold CA certificates only (remove the key from the "
            "configuration and treat it as exposed)"
        )
        return None
    blocks = _PEM_CERTIFICATE.findall(raw)
    leftover = _PEM_CERTIFICATE.sub("", raw).strip()
    if not blocks or leftover:
        shown = repr(leftover[:40] + "...") if leftover else "no certificate"
        read.problems.append(
            f"{key} must be PEM CA certificates ('-----BEGIN CERTIFICATE-----' blocks and nothing else), got {shown}"
        )
        return None
    bundle = "\n".join(blocks) + "\n"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=bundle)
    except ssl.SSLError as error:
        read.problems.append(f"{key} holds a certificate that does not parse ({error.reason or error}): check the PEM blocks")
        return None
    stats = context.cert_store_stats()
    if stats["x509_ca"] != len(blocks):
        read.problems.append(
            f"{key} must hold CA certificates only (the ones that sign the ACME server's certificate): "
            f"{len(blocks) - stats['x509_ca']} of its {len(blocks)} certificates are not CAs"
        )
        return None
    return bundle
