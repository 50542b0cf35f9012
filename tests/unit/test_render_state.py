"""scripts/render_state.py, what scripts/render.sh prepares before a render: its own
configuration file, and a render state that forgets the objects whose manifest went
missing, so that the next update writes them again. Over small exported states shaped as
`pulumi stack export` writes them; tests/integration/test_engine.py renders for real."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from support.program_mocks import SECRET_SIGNATURE
from scripts import render_state

STACK = "urn:pulumi:dev::journal"


def urn(type_: str, name: str) -> str:
    return f"{STACK}::{type_}::{name}"


def kubernetes_object(type_: str, name: str, api_version: str, kind: str, namespace: str | None = "journal-dev", **references) -> dict:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "urn": urn(type_, name),
        "custom": True,
        "type": type_,
        "outputs": {"apiVersion": api_version, "kind": kind, "metadata": metadata},
        **references,
    }


COMPONENT = {"urn": urn("journal:index:Frontend", "frontend"), "custom": False, "type": "journal:index:Frontend"}
PASSWORD = {"urn": urn("random:index/randomPassword:RandomPassword", "redis-password"), "custom": True, "type": "random:index/randomPassword:RandomPassword", "outputs": {"result": "[secret]"}}
NAMESPACE = kubernetes_object("kubernetes:core/v1:Namespace", "journal-dev", "v1", "Namespace", namespace=None)
CONFIG_MAP = kubernetes_object("kubernetes:core/v1:ConfigMap", "frontend-config-4f2a", "v1", "ConfigMap", parent=COMPONENT["urn"], dependencies=[NAMESPACE["urn"]])
DEPLOYMENT = kubernetes_object(
    "kubernetes:apps/v1:Deployment", "frontend", "apps/v1", "Deployment",
    parent=COMPONENT["urn"],
    propertyDependencies={"spec": [CONFIG_MAP["urn"]]},
)  # fmt: skip
# Refers to the ConfigMap only through the Deployment: it follows it out.
BUDGET = kubernetes_object("kubernetes:policy/v1:PodDisruptionBudget", "frontend", "policy/v1", "PodDisruptionBudget", dependencies=[DEPLOYMENT["urn"]])
SECRET = kubernetes_object("kubernetes:core/v1:Secret", "redis-password", "v1", "Secret", dependencies=[PASSWORD["urn"]])
RESOURCES = [COMPONENT, PASSWORD, NAMESPACE, CONFIG_MAP, DEPLOYMENT, BUDGET, SECRET]


def exported(*resources: dict) -> dict:
    return {"version": 3, "deployment": {"manifest": {}, "resources": copy.deepcopy(list(resources))}}


def render(out: Path, *resources: dict) -> None:
    """The files the provider writes for `resources`."""
    for resource in resources:
        path = Path(render_state.rendered_path(resource["outputs"], str(out)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"kind: {resource['outputs']['kind']}\n")


def left(state: dict) -> list[str]:
    """Kind/name of each resource left in the state."""
    return [f"{r['type'].rsplit(':', 1)[1]}/{r['urn'].rsplit('::', 1)[1]}" for r in state["deployment"]["resources"]]


def test_files_are_named_as_the_provider_names_them():
    out = "/r/dev"
    assert render_state.rendered_path(DEPLOYMENT["outputs"], out) == "/r/dev/1-manifest/apps_v1-deployment-journal-dev-frontend.yaml"
    # A cluster-scoped object is filed under the namespace `default`.
    assert render_state.rendered_path(NAMESPACE["outputs"], out) == "/r/dev/1-manifest/v1-namespace-default-journal-dev.yaml"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "entries.journal.example.com"}}
    assert render_state.rendered_path(crd, out) == "/r/dev/0-crd/apiextensions.k8s.io_v1-customresourcedefinition-default-entries.journal.example.com.yaml"


def test_with_every_file_there_the_state_is_untouched(tmp_path):
    render(tmp_path, NAMESPACE, CONFIG_MAP, DEPLOYMENT, BUDGET, SECRET)
    state = exported(*RESOURCES)
    assert render_state.forget_missing(state, str(tmp_path)) is None
    assert state == exported(*RESOURCES)


def test_a_missing_file_takes_its_object_and_everything_that_refers_to_it(tmp_path):
    render(tmp_path, NAMESPACE, DEPLOYMENT, BUDGET, SECRET)
    state = exported(*RESOURCES)
    summary = render_state.forget_missing(state, str(tmp_path))
    assert summary == "1 rendered file(s) missing; 3 resource(s) leave the render state to be rendered again"
    # The password, the component and what the ConfigMap does not reach all stay.
    assert left(state) == ["Frontend/frontend", "RandomPassword/redis-password", "Namespace/journal-dev", "Secret/redis-password"]
    assert state["deployment"]["resources"][1] == PASSWORD


def test_a_missing_parent_takes_its_children_and_their_dependents(tmp_path):
    namespace_child = dict(CONFIG_MAP, parent=NAMESPACE["urn"], dependencies=[])
    render(tmp_path, DEPLOYMENT, BUDGET, SECRET, namespace_child)
    state = exported(NAMESPACE, namespace_child, DEPLOYMENT, BUDGET, SECRET)
    render_state.forget_missing(state, str(tmp_path))
    assert left(state) == ["Secret/redis-password"]


@pytest.mark.parametrize("reference", ["deletedWith", "viewOf", "replaceWith"])
def test_every_kind_of_reference_is_followed_in_any_order(tmp_path, reference):
    """Pulumi keeps a state in order (each resource after what it refers to) for every
    kind of reference but a view's: here the referrer comes first, ahead of the ConfigMap
    it names, which goes with the Namespace."""
    value = [CONFIG_MAP["urn"]] if reference == "replaceWith" else CONFIG_MAP["urn"]
    follower = dict(SECRET, dependencies=[], **{reference: value})
    render(tmp_path, follower, CONFIG_MAP)
    state = exported(follower, CONFIG_MAP, NAMESPACE)
    render_state.forget_missing(state, str(tmp_path))
    assert left(state) == []


def test_a_deleted_rendered_directory_empties_the_state_of_kubernetes_objects(tmp_path):
    state = exported(*RESOURCES)
    summary = render_state.forget_missing(state, str(tmp_path / "gone"))
    assert summary.startswith("5 rendered file(s) missing; 5 resource(s)")
    assert left(state) == ["Frontend/frontend", "RandomPassword/redis-password"]


def test_an_object_whose_identity_is_secret_is_not_checked(tmp_path):
    hidden = copy.deepcopy(SECRET)
    hidden["outputs"]["metadata"] = {SECRET_SIGNATURE[0]: SECRET_SIGNATURE[1], "ciphertext": "v1:abc"}
    hidden_name = copy.deepcopy(SECRET)
    hidden_name["outputs"]["metadata"]["name"] = {SECRET_SIGNATURE[0]: SECRET_SIGNATURE[1], "ciphertext": "v1:def"}
    for resource in (hidden, hidden_name):
        state = exported(resource)
        assert render_state.forget_missing(state, str(tmp_path)) is None
        assert state == exported(resource)


def test_an_object_pending_deletion_is_not_checked(tmp_path):
    """An update interrupted half-way leaves the old copy of a replaced object in the
    state, marked for deletion: the next update deletes it, there is nothing to write."""
    state = exported(dict(CONFIG_MAP, delete=True))
    assert render_state.forget_missing(state, str(tmp_path)) is None


def test_a_custom_resource_definition_is_looked_for_under_0_crd(tmp_path):
    crd = kubernetes_object(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", "entries.journal.example.com",
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", namespace=None,
    )  # fmt: skip
    render(tmp_path, crd)
    assert render_state.forget_missing(exported(crd), str(tmp_path)) is None
    (written,) = (tmp_path / "0-crd").iterdir()
    (tmp_path / "1-manifest").mkdir()
    written.rename(tmp_path / "1-manifest" / written.name)
    assert render_state.forget_missing(exported(crd), str(tmp_path)) is not None


def test_the_render_config_is_the_stacks_without_its_context_plus_the_render_directory():
    stack = {"encryptionsalt": "v1:salt", "config": {"kubernetes:context": "journal-local", "journal:host": "journal.dev.example.com"}}
    rendered = render_state.render_config(stack, "/r/dev")
    assert rendered == {
        "encryptionsalt": "v1:salt",
        "config": {"journal:host": "journal.dev.example.com", "kubernetes:renderYamlToDirectory": "/r/dev"},
    }
    assert stack["config"]["kubernetes:context"] == "journal-local", "the stack's own settings are left as they were"
    assert render_state.render_config({"config": {}}, "/r/dev") == {"config": {"kubernetes:renderYamlToDirectory": "/r/dev"}}


def test_the_commands_write_their_files_and_say_what_they_forgot(tmp_path, capsys):
    stack_file, render_file = tmp_path / "Pulumi.dev.yaml", tmp_path / "render.yaml"
    stack_file.write_text("config:\n  kubernetes:context: journal-local\n  journal:host: journal.dev.example.com\nencryptionsalt: v1:salt\n")
    render_state.main(["config", str(stack_file), str(render_file), "/r/dev"])
    assert yaml.safe_load(render_file.read_text()) == {
        "config": {"journal:host": "journal.dev.example.com", "kubernetes:renderYamlToDirectory": "/r/dev"},
        "encryptionsalt": "v1:salt",
    }

    out, export_file = tmp_path / "dev", tmp_path / "dev.export.json"
    render(out, NAMESPACE, CONFIG_MAP, DEPLOYMENT, SECRET)
    export_file.write_text(json.dumps(exported(*RESOURCES)))
    render_state.main(["forget-missing", str(export_file), str(out)])
    assert capsys.readouterr().out == "1 rendered file(s) missing; 1 resource(s) leave the render state to be rendered again\n"
    assert "PodDisruptionBudget/frontend" not in left(json.loads(export_file.read_text()))
    # With every file there, nothing is said and nothing written.
    before = export_file.read_text()
    render(out, BUDGET)
    render_state.main(["forget-missing", str(export_file), str(out)])
    assert capsys.readouterr().out == "" and export_file.read_text() == before
