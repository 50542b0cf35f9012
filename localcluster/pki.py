"""The cluster's certificates and kubeconfigs, made with the openssl command.

One CA signs everything: the API server's serving certificate, a client certificate per
component (its identity is the certificate's CN and O, which the API server's Node and
RBAC authorizers read: `system:node:<node>` in `system:nodes` for the kubelet,
`system:kube-controller-manager`, `system:kube-scheduler`, `system:kube-proxy`), and the
kubelet's serving certificate, which the API server checks when it calls the kubelet
(logs, exec). ECDSA P-256 keys: quick to make, accepted by every component.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import commands

DAYS = 30


@dataclass(frozen=True)
class Identity:
    name: str
    common_name: str
    organization: str = ""
    # Subject alternative names of a serving certificate, "DNS:..." and "IP:...".
    alt_names: tuple[str, ...] = ()

    @property
    def serving(self) -> bool:
        return bool(self.alt_names)


def make_ca(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    commands.run(
        "openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt"), "-days", str(DAYS),
        "-subj", "/CN=journal-iac local cluster CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip


def issue(directory: Path, identity: Identity, ca: tuple[Path, Path] | None = None) -> None:
    """<name>.crt and <name>.key in `directory`, signed by `ca` (certificate, key), by
    default the directory's own ca.crt and ca.key."""
    ca_crt, ca_key = ca or (directory / "ca.crt", directory / "ca.key")
    subject = f"/CN={identity.common_name}" + (f"/O={identity.organization}" if identity.organization else "")
    usage = "serverAuth" if identity.serving else "clientAuth"
    extensions = [
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext", f"extendedKeyUsage={usage}",
    ]  # fmt: skip
    if identity.alt_names:
        extensions += ["-addext", f"subjectAltName={','.join(identity.alt_names)}"]
    commands.run(
        "openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", str(directory / f"{identity.name}.key"), "-out", str(directory / f"{identity.name}.crt"),
        "-CA", str(ca_crt), "-CAkey", str(ca_key), "-days", str(DAYS),
        "-subj", subject, *extensions,
    )  # fmt: skip


def service_account_keys(directory: Path) -> None:
    """The key pair that signs (private) and verifies (public) service-account tokens."""
    commands.run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(directory / "service-account.key"))
    commands.run("openssl", "ec", "-in", str(directory / "service-account.key"), "-pubout", "-out", str(directory / "service-account.pub"))


def kubeconfig(path: Path, server: str, pki: Path, user: str, contexts: tuple[str, ...] = ("local",)) -> None:
    """A kubeconfig for `user` (its certificate and key in `pki`), with one context per
    name in `contexts`, all on the same cluster and user; the first is current."""
    context_entries = "".join(
        f"- name: {name}\n  context:\n    cluster: journal-iac-local\n    user: {user}\n" for name in contexts
    )
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: journal-iac-local\n"
        "  cluster:\n"
        f"    server: {server}\n"
        f"    certificate-authority: {pki / 'ca.crt'}\n"
        "users:\n"
        f"- name: {user}\n"
        "  user:\n"
        f"    client-certificate: {pki / f'{user}.crt'}\n"
        f"    client-key: {pki / f'{user}.key'}\n"
        f"contexts:\n{context_entries}"
        f"current-context: {contexts[0]}\n"
    )
    path.chmod(0o600)
