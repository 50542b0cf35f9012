"""A registry that asks for a credential: three stack settings, checked together, delivered
to every pod as one `kubernetes.io/dockerconfigjson` Secret and never in plain form."""

import base64
import json

import pytest

from components.settings import SettingsError, load_settings
from support.program_mocks import is_secret, journal_keys, run_program, stack_config

PASSWORD = "pull-password-7d3f"
CREDENTIAL = {"imagePullRegistry": "registry.example.com", "imagePullUsername": "journal", "imagePullPassword": PASSWORD}
# How `pulumi config set --secret` stores it.
SECRET_PASSWORD = ("journal:imagePullPassword",)


def settings_for(stored_as_secret: bool = True, **overrides: object):
    config = stack_config("dev", **overrides)
    return load_settings(journal_keys(config), "dev", config["kubernetes:context"],
                         is_secret=lambda key: stored_as_secret and key == "imagePullPassword")


def refusal(stored_as_secret: bool = True, **overrides: object) -> str:
    with pytest.raises(SettingsError) as refused:
        settings_for(stored_as_secret, **overrides)
    return str(refused.value)


def pod_templates(run):
    return {
        f"{m['kind']}/{m['metadata']['name']}": m["spec"]["template"]["spec"]
        for m in run.objects("Deployment") + run.objects("StatefulSet")
    }


def test_the_three_keys_make_the_credential_and_its_password_never_shows_in_the_settings():
    pull = settings_for(**CREDENTIAL).image_pull
    assert (pull.registry, pull.username, pull.password) == ("registry.example.com", "journal", PASSWORD)
    assert PASSWORD not in repr(settings_for(**CREDENTIAL))


def test_without_the_keys_there_is_no_credential():
    assert settings_for().image_pull is None


@pytest.mark.parametrize("left_out", sorted(CREDENTIAL))
def test_a_credential_missing_any_key_is_refused_naming_it(left_out):
    given = {key: value for key, value in CREDENTIAL.items() if key != left_out}
    message = refusal(**given)
    assert f"not set: journal:{left_out}" in message


@pytest.mark.parametrize("registry", ["registry", "https://registry.example.com", "registry.example.com/journal", ""])
def test_a_registry_that_is_not_a_host_as_references_name_it_is_refused(registry):
    if registry == "":
        # Empty is unset: the other two keys are then a credential for no registry.
        assert "not set: journal:imagePullRegistry" in refusal(**CREDENTIAL | {"imagePullRegistry": registry})
    else:
        assert "journal:imagePullRegistry must be a registry host" in refusal(**CREDENTIAL | {"imagePullRegistry": registry})


@pytest.mark.parametrize("registry", ["registry.example.com:5000", "localhost:5000", "localhost", "10.0.0.1:443"])
def test_a_host_with_a_port_or_localhost_is_a_registry(registry):
    assert settings_for(**CREDENTIAL | {"imagePullRegistry": registry}).image_pull.registry == registry


def test_a_user_name_with_a_colon_is_refused():
    assert "journal:imagePullUsername must be a user name" in refusal(**CREDENTIAL | {"imagePullUsername": "jour:nal"})


def test_a_password_stored_in_plaintext_is_refused_without_showing_it():
    message = refusal(stored_as_secret=False, **CREDENTIAL)
    assert "journal:imagePullPassword is stored in plaintext: set it with `pulumi config set --secret" in message
    assert PASSWORD not in message


def test_the_program_asks_the_engine_whether_the_password_is_a_secret():
    with pytest.raises(SettingsError, match="imagePullPassword is stored in plaintext"):
        run_program("dev", **CREDENTIAL)
    assert run_program("dev", secret_keys=SECRET_PASSWORD, **CREDENTIAL).objects("Secret")


def test_a_malformed_password_is_refused_without_showing_it():
    bad = "two words"
    message = refusal(**CREDENTIAL | {"imagePullPassword": bad})
    assert "journal:imagePullPassword must be the registry's password" in message
    assert bad not in message


def test_every_pod_pulls_with_the_one_secret_the_credential_becomes():
    run = run_program("dev", secret_keys=SECRET_PASSWORD, **CREDENTIAL)
    (secret,) = [s for s in run.objects("Secret") if s.get("type") == "kubernetes.io/dockerconfigjson"]
    document = json.loads(secret["stringData"][".dockerconfigjson"])
    login = document["auths"]["registry.example.com"]
    assert (login["username"], login["password"]) == ("journal", PASSWORD)
    assert base64.b64decode(login["auth"]).decode() == f"journal:{PASSWORD}"
    templates = pod_templates(run)
    assert len(templates) == 3, sorted(templates)  # the API, the file server and Redis
    for name, spec in templates.items():
        assert spec.get("imagePullSecrets") == [{"name": secret["metadata"]["name"]}], name


def test_the_credential_is_handed_to_the_engine_only_as_a_secret():
    run = run_program("dev", secret_keys=SECRET_PASSWORD, **CREDENTIAL)
    (registered,) = [
        r for r in run.of_type("kubernetes:core/v1:Secret") if r.state.get("type") == "kubernetes.io/dockerconfigjson"
    ]
    assert is_secret(registered.state["stringData"])


def test_without_a_credential_no_pod_names_a_pull_secret():
    run = run_program("dev")
    assert not [s for s in run.objects("Secret") if s.get("type") == "kubernetes.io/dockerconfigjson"]
    assert all("imagePullSecrets" not in spec for spec in pod_templates(run).values())
