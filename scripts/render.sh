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
"$root/venv/bin/python" "$root/scripts/render_state.py" config "$stack_config" "$config" "$out"

# Objects whose file went missing from rendered/STACK leave the render state, with what
# refers to them, so that the update below writes them again (scripts/render_state.py
# says why and how).
export_file="$root/.pulumi/render/$stack.export.json"
trap 'rm -f "$export_file"' EXIT
"$root/scripts/pulumi.sh" "$stack" stack export --file "$export_file"
summary=$("$root/venv/bin/python" "$root/scripts/render_state.py" forget-missing "$export_file" "$out")
if [ -n "$summary" ]; then
	echo "render.sh: $summary" >&2
	"$root/scripts/pulumi.sh" "$stack" stack import --file "$export_file" >&2
fi

"$root/scripts/pulumi.sh" "$stack" up --yes --skip-preview --config-file "$config"
echo "render.sh: manifests of stack '$stack' are in $out (Secrets in plaintext)" >&2
