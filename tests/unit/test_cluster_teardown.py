"""Tearing the local cluster down finds its processes by walking its cgroups
(localcluster/processes.py) while the kubelet, not yet killed, removes pods' cgroups."""

import os
from pathlib import Path

import pytest

from localcluster import processes


@pytest.fixture
def cgroup_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cgroup hierarchy of the cluster's own, in a temporary directory."""
    root = tmp_path / "journal-iac"
    monkeypatch.setattr(processes, "cgroup_hierarchies", lambda: [tmp_path])
    monkeypatch.setattr(processes, "CGROUP", root.name)
    for pod, pids in (("pod-a", "7\n"), ("pod-b", "42\n43\n")):
        (root / "kubepods" / pod).mkdir(parents=True)
        (root / "kubepods" / pod / "cgroup.procs").write_text(pids)
    (root / "cgroup.procs").write_text("1\n")
    return root


def vanishing(monkeypatch: pytest.MonkeyPatch, gone: Path) -> None:
    """`gone` is removed between its parent's listing and its own."""
    listed = os.scandir

    def scandir(path):
        if Path(path) == gone:
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return listed(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_pods_cgroup_removed_during_the_walk_is_skipped_and_every_other_process_found(cgroup_tree, monkeypatch):
    vanishing(monkeypatch, cgroup_tree / "kubepods" / "pod-a")
    assert processes.cgroup_pids() == {1, 42, 43}


def test_cgroups_are_listed_parents_first_so_reversed_they_can_be_removed_children_first(cgroup_tree):
    directories = processes.cgroup_directories(cgroup_tree)
    assert directories[0] == cgroup_tree
    for directory in directories[1:]:
        assert directories.index(directory.parent) < directories.index(directory)
