#!/usr/bin/env bash
# Writes the Kubernetes manifests of one stack into rendered/STACK instead of applying
# them, for GitOps and review:
#
#   scripts/render.sh STACK
#
# The program runs unchanged through the real engine; the Kubernetes provider is given
# `renderYamlToDirectory`, so nothing talks to a cluster. Renders keep their own state
# (.pulumi/render-state), apart from any real deployment's. A rerun rewrites only what
# changed, and writes again any file that went missing from rendered/STACK.
#
# Secrets are written IN PLAINTEXT (the Redis password in its Secret manifest): rendered/
# is git-ignored and owner-only. Do not commit it or copy it anywhere shared.
set -euo pipefail

if [ $# -ne 1 ]; then
	sed -n '2,5s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
stack=$1
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/Pulumi.$stack.yaml" ] || { echo "render.sh: no Pulumi.$stack.yaml" >&2; exit 2; }

umask 077
mkdir -p "$root/rendered" "$root/.pulumi/render"
chmod 700 "$root/rendered"
out="$root/rendered/$stack"

export PULUMI_BACKEND_URL="file://$root/.pulumi/render-state"
# Creates the stack on first use and names the configuration file scripts/pulumi.sh
# gives the engine: Pulumi.STACK.yaml, or for dev with its per-clone passphrase the
# private copy that holds the salt (the tracked file stays as it is).
stack_config=$("$root/scripts/pulumi.sh" "$stack" --config-file-path)

# That configuration (salt included) plus the provider's render directory, in a config
# file of the render's own. A render talks to no cluster: the stack's context goes (the
# provider refuses it beside a render directory).
config="$root/.pulumi/render/Pulumi.$stack.yaml"
"$root/venv/bin/python" - "$stack_config" "$config" "$out" <<'PY'
import pathlib, sys, yaml

stack_file, render_file, out = sys.argv[1:]
settings = yaml.safe_load(pathlib.Path(stack_file).read_text())
settings["config"].pop("kubernetes:context", None)
settings["config"]["kubernetes:renderYamlToDirectory"] = out
pathlib.Path(render_file).write_text(yaml.safe_dump(settings, sort_keys=False))
PY

# The provider writes a file only when it creates or updates an object: with every
# object already in the render state, a rerun after rendered/STACK (or some of its
# files) was deleted would write nothing and report success. So the objects whose file
# is missing leave the render state first, with every resource that refers to them
# (dependents, children), and the update below creates them again: their files are
# written anew. The rest of the state stays, the generated Redis password above all
# (a fresh state would render a new one, and a GitOps sync would then change the
# password under a running Redis); auto-named objects get new names, and the objects
# that use them follow.
export_file="$root/.pulumi/render/$stack.export.json"
trap 'rm -f "$export_file"' EXIT
"$root/scripts/pulumi.sh" "$stack" stack export --file "$export_file"
missing=$("$root/venv/bin/python" - "$export_file" "$out" <<'PY'
import json, os, sys

export_file, out = sys.argv[1:]
with open(export_file) as f:
    exported = json.load(f)
resources = exported["deployment"].get("resources") or []


def rendered_path(outputs):
    """Where the provider renders an object (renderPathForResource, provider 4.25)."""
    api_version, kind = outputs.get("apiVersion"), outputs.get("kind")
    metadata = outputs.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace") or "default"
    if not all(isinstance(value, str) and value for value in (api_version, kind, name, namespace)):
        return None  # not readable here (a secret value): not checked
    file_name = f"{api_version.replace('/', '_').replace(':', '_')}-{kind.lower()}-{namespace}-{name}.yaml"
    crd = kind == "CustomResourceDefinition" and api_version.startswith("apiextensions.k8s.io/")
    return os.path.join(out, "0-crd" if crd else "1-manifest", file_name)


dropped = set()
for resource in resources:
    if resource.get("custom") and resource["type"].startswith("kubernetes:") and not resource.get("delete"):
        path = rendered_path(resource.get("outputs") or {})
        if path is not None and not os.path.isfile(path):
            dropped.add(resource["urn"])
if not dropped:
    sys.exit(0)


def references(resource):
    yield resource.get("parent")
    yield resource.get("deletedWith")
    yield resource.get("viewOf")
    yield from resource.get("dependencies") or []
    yield from resource.get("replaceWith") or []
    for urns in (resource.get("propertyDependencies") or {}).values():
        yield from urns


missing = len(dropped)
grown = True
while grown:
    grown = False
    for resource in resources:
        if resource["urn"] not in dropped and any(urn in dropped for urn in references(resource)):
            dropped.add(resource["urn"])
            grown = True
exported["deployment"]["resources"] = [r for r in resources if r["urn"] not in dropped]
with open(export_file, "w") as f:
    json.dump(exported, f)
print(f"{missing} rendered file(s) missing; {len(dropped)} resource(s) leave the render state to be rendered again")
PY
)
if [ -n "$missing" ]; then
	echo "render.sh: $missing" >&2
	"$root/scripts/pulumi.sh" "$stack" stack import --file "$export_file" >&2
fi

"$root/scripts/pulumi.sh" "$stack" up --yes --skip-preview --config-file "$config"
echo "render.sh: manifests of stack '$stack' are in $out (Secrets in plaintext)" >&2
