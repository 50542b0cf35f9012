"""While the local cluster runs, this machine resolves the stacks' hosts to its ingress
through /etc/hosts (localcluster/host.py); `down` takes out exactly the lines `up` added,
also from a record made before the cluster named hosts there."""

import dataclasses
from pathlib import Path

import pytest

from localcluster import host

USERS_HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"


@pytest.fixture
def hosts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hosts"
    path.write_text(USERS_HOSTS)
    monkeypatch.setattr(host, "HOSTS_FILE", path)
    return path


def recorded(hosts: str) -> host.HostState:
    return host.HostState(sysctls={}, iptables="", ip6tables="", nft_tables=[], ipsets=[], links=[], mounts=[],
                          netns=[], containerd_run_dir=False, hosts=hosts)  # fmt: skip


def test_up_names_the_hosts_at_the_address_and_down_removes_that_line_only(hosts_file):
    before = recorded(hosts_file.read_text())
    host.add_host_names("10.96.0.80", ("journal.dev.example.com", "journal.example.com"))
    assert "10.96.0.80 journal.dev.example.com journal.example.com" in hosts_file.read_text()
    assert before.differences(dataclasses.replace(before, hosts=hosts_file.read_text())) == [f"{hosts_file} differs"]
    # Edited by someone else meanwhile: their line stays.
    with hosts_file.open("a") as hosts:
        hosts.write("192.0.2.7 build-cache\n")
    before._remove_host_names(print)
    assert hosts_file.read_text() == USERS_HOSTS + "192.0.2.7 build-cache\n"


def test_a_record_from_before_host_names_existed_still_removes_them(hosts_file):
    host.add_host_names("10.96.0.80", ("journal.dev.example.com",))
    old_record = {field.name: getattr(recorded(""), field.name) for field in dataclasses.fields(host.HostState)}
    del old_record["hosts"]
    host.HostState(**old_record)._remove_host_names(print)
    assert hosts_file.read_text() == USERS_HOSTS
