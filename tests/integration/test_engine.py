"""The program through the real Pulumi engine: the pinned CLI, the Python language host
and the Kubernetes and random providers built by toolchain/install-pulumi.sh, with no
cluster reachable. Each test module works on its own copy of the project, so the
repository's stack files and state are never touched. As for a user, dev runs on the
passphrase scripts/pulumi.sh generates for the copy, every other stack on one from the
environment."""

import base64
import json
import shutil
import stat
import subprocess

import pytest
import yaml

from support.kubernetes_schema import validate_strictly
from support.program_mocks import PROJECT_DIR, is_custom_resource, run_program
from support.project_copy import Project, copy_project
from scripts import render_state

pytestmark = pytest.mark.engine

@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return copy_project(tmp_path_factory.mktemp("project"))


def preview_steps(project: Project, stack: str, *args: str, **env: str) -> dict[str, int]:
    result = project.pulumi(stack, "preview", "--json", *args, **env)
    counts: dict[str, int] = {}
    for step in json.loads(result.stdout)["steps"]:
        counts[step["op"]] = counts.get(step["op"], 0) + 1
    return counts


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_preview_plans_every_resource_the_program_declares(project, stack):
    declared = run_program(stack).resources
    # The engine also counts the stack itself.
    assert preview_steps(project, stack) == {"create": len(declared) + 1}


def assert_rendered_completely(project: Project, stack: str) -> dict[str, dict]:
    """Every object of the stack rendered once, valid and owner-only; the manifests by kind/name."""
    out = project.root / "rendered" / stack
    manifests = project.manifests(out)
    assert len(manifests) == len(run_program(stack).kubernetes_objects())
    by_name = {}
    for path in manifests:
        manifest = yaml.safe_load(path.read_text())
        if not is_custom_resource(manifest):
            validate_strictly(manifest)
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        by_name[f"{manifest['kind']}/{manifest['metadata']['name']}"] = manifest
    assert stat.S_IMODE((project.root / "rendered").stat().st_mode) == 0o700
    return by_name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_rendered_manifests_are_valid_kubernetes_and_private(project, stack):
    project.render(stack)
    assert_rendered_completely(project, stack)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_second_render_changes_nothing(project, stack):
    project.render(stack)
    config = project.root / ".pulumi" / "render" / f"Pulumi.{stack}.yaml"
    steps = preview_steps(project, stack, "--config-file", str(config), **project.render_backend())
    assert set(steps) == {"same"}


def test_a_render_writes_again_what_was_deleted(project):
    out = project.render("dev")
    before = assert_rendered_completely(project, "dev")
    shutil.rmtree(out)
    project.render("dev")
    after = assert_rendered_completely(project, "dev")
    # The generated password stays: only the objects were rendered again.
    assert after["Secret/redis-journal-password"]["data"] == before["Secret/redis-journal-password"]["data"]
    # One file: it comes back, and what refers to an auto-named object follows its new name.
    (config_map,) = (out / "1-manifest").glob("v1-configmap-*-frontend-config-*.yaml")
    config_map.unlink()
    project.render("dev")
    again = assert_rendered_completely(project, "dev")
    (name,) = [key.split("/", 1)[1] for key in again if key.startswith("ConfigMap/frontend-config-")]
    assert f'"name": "{name}"' in json.dumps(again["Deployment/frontend"])


def test_the_render_state_names_each_objects_file_as_the_provider_does(project):
    """scripts/render.sh finds what is missing by the names scripts/render_state.py
    gives: every object of the render state has one, and it is a file the provider wrote."""
    out = project.render("prod")
    exported = json.loads(project.pulumi("prod", "stack", "export", **project.render_backend()).stdout)
    objects = [r for r in exported["deployment"]["resources"] if r["custom"] and r["type"].startswith("kubernetes:")]
    paths = {render_state.rendered_path(r["outputs"], str(out)) for r in objects}
    assert len(paths) == len(objects) == len(run_program("prod").kubernetes_objects())
    assert paths == {str(path) for path in project.manifests(out)}


def test_the_dev_stack_file_stays_as_committed(project):
    """dev's salt belongs to the clone's own passphrase: it is kept under .pulumi/, never
    in the tracked Pulumi.dev.yaml, whatever runs."""
    project.pulumi("dev", "preview")
    project.render("dev")
    project.pulumi("dev", "stack", "output")
    project.pulumi("dev", "config")
    assert (project.root / "Pulumi.dev.yaml").read_text() == project.stack_files["dev"]
    assert "\nencryptionsalt: v1:" in (project.root / ".pulumi" / "stacks" / "Pulumi.dev.yaml").read_text()


def test_the_prod_stack_file_gains_its_salt_and_nothing_else(project):
    """Every other stack's passphrase comes from the environment, shared by a team: Pulumi
    records its salt in the stack file, to be committed once."""
    project.pulumi("prod", "preview")
    project.render("prod")
    text = (project.root / "Pulumi.prod.yaml").read_text()
    assert text.startswith(project.stack_files["prod"])
    assert text[len(project.stack_files["prod"]) :].startswith("encryptionsalt: v1:")
    assert text.count("\n") == project.stack_files["prod"].count("\n") + 1


def test_the_stack_follows_the_argument(project):
    for stack in ("prod", "dev", "prod"):
        listed = project.pulumi(stack, "stack", "ls", "--json").stdout
        (current,) = [entry["name"] for entry in json.loads(listed) if entry["current"]]
        assert current == stack
    assert project.pulumi("dev", "version").stdout.strip().startswith("v3.")
    assert json.loads(project.pulumi("dev", "stack", "output", "--json").stdout) == {}


GENERATED_SECRETS = {
    # Each Redis user's password (components/redis.py), and the write credential.
    **{name: "passwd" for name in ("redis-journal-password", "redis-replication-password", "redis-sentinel-password",
                                   "redis-operator-password", "redis-admin-password")},
    "frontend-write-credential": "credential",
}


def test_no_generated_secret_appears_in_state_or_output(project):
    """The Redis users' passwords and the write credential (a stack output, but a secret one)."""
    out = project.render("prod")
    exported = project.pulumi("prod", "stack", "export", **project.render_backend()).stdout
    project.pulumi("prod", "stack", "output", "--json", **project.render_backend())
    assert json.loads(exported)["deployment"]["resources"], "the export holds the stack's resources"
    for secret_name, key in GENERATED_SECRETS.items():
        (secret_file,) = (out / "1-manifest").glob(f"v1-secret-*-{secret_name}.yaml")
        # The provider renders stringData as base64 data, as the API server stores it.
        password = base64.b64decode(yaml.safe_load(secret_file.read_text())["data"][key]).decode()
        assert len(password) >= 32, secret_name
        forms = (password, base64.b64encode(password.encode()).decode())
        assert not any(form in exported for form in forms), f"the state holds {secret_name} in plaintext"
        leaks = [i for i, text in enumerate(project.transcript) if any(form in text for form in forms)]
        assert leaks == [], f"a command printed {secret_name}"


def test_a_bad_config_value_stops_preview_with_the_programs_own_error(project):
    bad = project.root / "bad-config.yaml"
    config = yaml.safe_load((project.root / "Pulumi.dev.yaml").read_text())
    config["config"]["journal:frontendReplicas"] = "0"
    bad.write_text(yaml.safe_dump(config))
    result = project.pulumi("dev", "preview", "--config-file", str(bad), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "journal:frontendReplicas must be a whole number from 1 to 50, got '0'" in output
    assert "Traceback" not in output


def test_a_pull_password_in_plaintext_stops_preview_and_is_never_shown(project):
    """The engine tells the program which keys are secrets: one that is not is refused."""
    plain = project.root / "plain-password.yaml"
    config = yaml.safe_load((project.root / "Pulumi.dev.yaml").read_text())
    password = "plain-pull-password-5e1c"
    config["config"] |= {
        "journal:imagePullRegistry": "registry.example.com",
        "journal:imagePullUsername": "journal",
        "journal:imagePullPassword": password,
    }
    plain.write_text(yaml.safe_dump(config))
    result = project.pulumi("dev", "preview", "--config-file", str(plain), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "journal:imagePullPassword is stored in plaintext: set it with `pulumi config set --secret" in output
    assert password not in output


# --- plain `pulumi` in the project root, after `source scripts/env.sh` ---------------------


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Project:
    """A copy of the project that is a git clone, as a user's is."""
    project = copy_project(tmp_path_factory.mktemp("clone"))
    shutil.copy2(PROJECT_DIR / ".gitattributes", project.root / ".gitattributes")
    git = ["git", "-C", str(project.root), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "--all", ":!venv"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "as cloned"], check=True)
    return project


def test_plain_pulumi_previews_dev_in_a_fresh_clone_and_keeps_its_salt_out_of_commits(clone):
    steps = json.loads(clone.plain_pulumi("dev", "preview", "--json").stdout)["steps"]
    assert len(steps) == len(run_program("dev").resources) + 1
    assert json.loads(clone.plain_pulumi("dev", "stack", "output", "--json").stdout) == {}
    # Pulumi wrote the state's salt into Pulumi.dev.yaml; it is this clone's alone.
    (salt,) = [line for line in (clone.root / "Pulumi.dev.yaml").read_text().splitlines() if line.startswith("encryptionsalt:")]
    assert salt in (clone.root / ".pulumi" / "stacks" / "Pulumi.dev.yaml").read_text()
    diff = subprocess.run(["git", "-C", str(clone.root), "diff", "--", "Pulumi.dev.yaml"], capture_output=True, text=True, check=True)
    assert diff.stdout == ""
    # The wrapper takes the same salt, without a word about it.
    assert "ignoring the encryptionsalt" not in clone.pulumi("dev", "preview").stderr


def test_plain_pulumi_refuses_prod_on_devs_passphrase_before_creating_anything(clone):
    clone.plain_pulumi("dev", "stack", "init", "prod", "--secrets-provider", "passphrase", "--no-select")
    refused = clone.plain_pulumi("dev", "preview", "--stack", "prod", check=False)
    assert refused.returncode != 0
    assert "stack 'prod' would be encrypted with dev's own passphrase" in refused.stdout + refused.stderr
    listed = json.loads(clone.plain_pulumi("dev", "stack", "ls", "--json").stdout)
    assert [entry.get("resourceCount", 0) for entry in listed if entry["name"] == "prod"] == [0]


def test_a_fresh_clones_first_command_may_be_for_prod(tmp_path):
    """No stack selected yet and prod's passphrase from the environment: scripts/env.sh
    selects dev for later plain commands without tripping over the unset file variable."""
    project = copy_project(tmp_path)
    assert project.pulumi("prod", "stack", "--show-name").stdout.strip() == "prod"


def test_the_tracked_dev_stack_file_holds_no_salt():
    # A salt committed there belongs to one clone's passphrase: every other clone's
    # Pulumi would answer "incorrect passphrase".
    assert "encryptionsalt" not in (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
