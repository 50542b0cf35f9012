"""The local cluster's images (localcluster/images.py): built once per set of inputs, and
the same bytes from the same inputs. Marker `cluster`: the images are what `make test`
builds for the cluster (as root, with debootstrap)."""

import json
import tarfile

import pytest

from support.local_cluster import cluster_bin_dir
from localcluster import images

pytestmark = pytest.mark.cluster


def test_an_image_whose_inputs_did_not_change_is_not_built_again():
    bin_dir = cluster_bin_dir()
    for image, archive in images.build_all(bin_dir):
        before = archive.stat().st_mtime_ns
        assert images.build(image, bin_dir) == archive
        assert archive.stat().st_mtime_ns == before


def test_an_input_file_that_changes_names_a_new_archive(tmp_path, monkeypatch):
    bin_dir = cluster_bin_dir()
    (api,) = [image for image in images.IMAGES if image.key == "journal-api"]
    before = images.archive_path(api, bin_dir)
    project = tmp_path / "project"
    ((source, _),) = api.files  # the API's package, as a path from the project's root
    (project / source).mkdir(parents=True)
    for path in (images.PROJECT_DIR / source).glob("*.py"):
        (project / source / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(images, "PROJECT_DIR", project)
    assert images.archive_path(api, bin_dir) == before
    (project / source / "server.py").write_text("# changed\n", encoding="utf-8")
    assert images.archive_path(api, bin_dir) != before


def test_a_layer_is_the_same_bytes_from_the_same_files(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("journal\n")
    (root / "bin").symlink_to("usr/bin")
    first = images.write_layer(root, tmp_path / "first.tar")
    (root / "etc" / "hostname").touch()  # a new mtime, the same content
    assert images.write_layer(root, tmp_path / "second.tar") == first
    with tarfile.open(tmp_path / "first.tar") as layer:
        assert {member.mtime for member in layer.getmembers()} == {images.EPOCH}


def test_every_archive_carries_exactly_the_names_the_stacks_use():
    for image, archive in images.build_all(cluster_bin_dir()):
        with tarfile.open(archive) as tar:
            (manifest,) = json.load(tar.extractfile("manifest.json"))
            config = json.load(tar.extractfile(manifest["Config"]))
        assert manifest["RepoTags"] == list(image.names)
        assert config["config"]["User"] == image.user
        assert not config["config"]["User"].startswith("0")
