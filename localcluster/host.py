"""What a cluster changes on the host outside its own directory, recorded before `up`
changes anything and put back by `down`, also after a crash or a kill.

A node is not a contained program: the kubelet sets kernel parameters
(vm.overcommit_memory, kernel.panic, kernel.panic_on_oops), the bridge plugin turns on
IP forwarding, kube-proxy, kube-router and the CNI plugins add iptables chains and ipsets,
containerd makes network namespaces and mount points, and every pod adds links and
mounts. Rather than trusting each of them to clean up, the snapshot records the state
those live in, and restore() brings back whatever differs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from . import commands

SYSCTL_ROOT = Path("/proc/sys")
# Counters and identifiers the kernel changes by itself: never "restored".
VOLATILE_SYSCTLS = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid$|kernel\.pty\.nr$|kernel\.tainted$|fs\.dentry-state$|fs\.inode-"
    r"|fs\.file-nr$|fs\.aio-nr$|fs\.quota\.|fs\.fscache\.|net\.netfilter\.nf_conntrack_count$"
    r"|vm\.stat_refresh$|vm\.drop_caches$|vm\.compact_memory$|kernel\.sched_domain\.|fs\.binfmt_misc\."
    r"|net\.ipv4\.route\.flush$|net\.ipv6\.route\.flush$|net\.ipv4\.neigh\.|net\.ipv6\.neigh\."
    r"|net\.ipv4\.conf\.|net\.ipv6\.conf\.)"
)
# Per-interface settings of the interfaces that existed before are kept, those of the
# cluster's own interfaces go with them; "all" and "default" are host-global.
HOST_WIDE_INTERFACE_SYSCTLS = re.compile(r"^net\.ipv[46]\.conf\.(all|default)\.")
# IP forwarding first: writing it resets every interface's forwarding flag.
FIRST_SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
NETNS_DIR = Path("/run/netns")
CONTAINERD_RUN_DIR = Path("/run/containerd")
HOSTS_FILE = Path("/etc/hosts")
# Ends every line the cluster adds to HOSTS_FILE: restore() removes exactly those, and
# keeps whatever else was edited there meanwhile.
HOSTS_MARK = "# journal-iac local cluster"


def read_sysctls() -> dict[str, str]:
    values = {}
    for path in SYSCTL_ROOT.rglob("*"):
        name = ".".join(path.relative_to(SYSCTL_ROOT).parts)
        if VOLATILE_SYSCTLS.match(name) and not HOST_WIDE_INTERFACE_SYSCTLS.match(name):
            continue
        try:
            if not path.is_file() or not os.access(path, os.W_OK):
                continue
            values[name] = path.read_text().strip()
        except OSError:
            continue
    return values


def without_counters(saved: str) -> str:
    """iptables-save output with packet counters and comments on dates dropped."""
    lines = []
    for line in saved.splitlines():
        if line.startswith("#"):
            continue
        lines.append(re.sub(r"^(:\S+ \S+) \[\d+:\d+\]$", r"\1", line))
    return "\n".join(lines) + "\n"


def nft_tables() -> list[str]:
    return sorted(line.strip() for line in commands.run("nft", "list", "tables", check=False).stdout.splitlines() if line.startswith("table "))


def ipsets() -> list[str]:
    return sorted(commands.run("ipset", "list", "-n", check=False).stdout.split())


def add_host_names(address: str, names: tuple[str, ...]) -> None:
    """`names` resolve to `address` for every program on the host (curl, a browser, Python)
    while the cluster runs."""
    with HOSTS_FILE.open("a") as hosts:
        hosts.write(f"{address} {' '.join(names)} {HOSTS_MARK}\n")


def _without_cluster_names(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.rstrip().endswith(HOSTS_MARK))


def mountpoints() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        points.append(line.split()[4].encode().decode("unicode_escape"))
    return points


@dataclass
class HostState:
    sysctls: dict[str, str]
    iptables: str
    ip6tables: str
    nft_tables: list[str]
    ipsets: list[str]
    links: list[str]
    mounts: list[str]
    netns: list[str]
    containerd_run_dir: bool
    hosts: str = ""
    """HOSTS_FILE as it was (a record from before the cluster named hosts there has none)."""

    @classmethod
    def read(cls) -> "HostState":
        return cls(
            sysctls=read_sysctls(),
            iptables=without_counters(commands.run("iptables-save").stdout),
            ip6tables=without_counters(commands.run("ip6tables-save").stdout),
            nft_tables=nft_tables(),
            ipsets=ipsets(),
            links=sorted(os.listdir("/sys/class/net")),
            mounts=mountpoints(),
            netns=sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else [],
            containerd_run_dir=CONTAINERD_RUN_DIR.exists(),
            hosts=HOSTS_FILE.read_text() if HOSTS_FILE.exists() else "",
        )

    def save(self, path: Path) -> None:
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> "HostState":
        return cls(**json.loads(path.read_text()))

    def differences(self, other: "HostState") -> list[str]:
        """What differs in `other`, one line per difference (empty when nothing does)."""
        found = []
        for name in sorted(set(self.sysctls) | set(other.sysctls)):
            before, after = self.sysctls.get(name), other.sysctls.get(name)
            if before is not None and after is not None and before != after:
                found.append(f"sysctl {name}: {before!r} -> {after!r}")
        for label, before, after in (("iptables", self.iptables, other.iptables), ("ip6tables", self.ip6tables, other.ip6tables)):
            if before != after:
                found.append(f"{label} rules differ")
        for label in ("nft_tables", "ipsets", "links", "mounts", "netns"):
            before, after = set(getattr(self, label)), set(getattr(other, label))
            for item in sorted(after - before):
                found.append(f"{label}: {item} added")
            for item in sorted(before - after):
                found.append(f"{label}: {item} gone")
        if self.containerd_run_dir != other.containerd_run_dir:
            found.append(f"{CONTAINERD_RUN_DIR} {'added' if other.containerd_run_dir else 'gone'}")
        if self.hosts != other.hosts:
            found.append(f"{HOSTS_FILE} differs")
        return found

    # --- restore ---------------------------------------------------------------------

    def restore(self, log) -> None:
        """Puts the host back as recorded. Every step runs even when one fails; the
        failures are raised together at the end."""
        errors: list[str] = []
        for step in (self._unmount, self._remove_netns, self._remove_links, self._restore_firewall, self._restore_sysctls,
                     self._remove_host_names):
            try:
                step(log)
            except Exception as error:  # each step is independent of the others
                errors.append(f"{step.__name__.strip('_')}: {error}")
        if not self.containerd_run_dir and CONTAINERD_RUN_DIR.exists():
            commands.run("rm", "-rf", "--one-file-system", str(CONTAINERD_RUN_DIR), check=False)
        if errors:
            raise RuntimeError("; ".join(errors))

    def _unmount(self, log) -> None:
        recorded = set(self.mounts)
        for _ in range(5):
            extra = [point for point in mountpoints() if point not in recorded]
            if not extra:
                return
            # Deepest first, so nothing is left mounted over.
            for point in sorted(extra, key=lambda p: p.count("/"), reverse=True):
                if commands.run("umount", point, check=False).returncode != 0:
                    commands.run("umount", "-l", point, check=False)
        left = [point for point in mountpoints() if point not in recorded]
        if left:
            raise RuntimeError(f"still mounted: {', '.join(left[:5])}")

    def _remove_netns(self, log) -> None:
        if not NETNS_DIR.is_dir():
            return
        for name in os.listdir(NETNS_DIR):
            if name not in self.netns:
                (NETNS_DIR / name).unlink(missing_ok=True)
        if not self.netns and not os.listdir(NETNS_DIR):
            NETNS_DIR.rmdir()

    def _remove_links(self, log) -> None:
        for name in sorted(set(os.listdir("/sys/class/net")) - set(self.links)):
            commands.run("ip", "link", "delete", name, check=False)

    def _restore_firewall(self, log) -> None:
        # iptables-restore replaces every table it is given (user chains included);
        # tables created since, and ipsets (only free once no rule uses them), go.
        commands.run("iptables-restore", input=self.iptables)
        commands.run("ip6tables-restore", input=self.ip6tables)
        for table in nft_tables():
            if table not in self.nft_tables:
                commands.run("nft", "delete", *table.split())
        for name in ipsets():
            if name not in self.ipsets:
                commands.run("ipset", "destroy", name, check=False)

    def _restore_sysctls(self, log) -> None:
        current = read_sysctls()
        changed = [name for name, value in self.sysctls.items() if current.get(name) not in (None, value)]
        changed.sort(key=lambda name: (name not in FIRST_SYSCTLS, name))
        for name in changed:
            try:
                (SYSCTL_ROOT / name.replace(".", "/")).write_text(self.sysctls[name])
            except OSError as error:
                log(f"cannot restore sysctl {name}: {error}")

    def _remove_host_names(self, log) -> None:
        if not HOSTS_FILE.exists():
            return
        current = HOSTS_FILE.read_text()
        kept = _without_cluster_names(current)
        if kept != current:
            # In place, not by rename: a container's /etc/hosts is a bind mount.
            with HOSTS_FILE.open("r+") as hosts:
                hosts.write(kept)
                hosts.truncate()
