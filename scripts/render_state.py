"""What scripts/render.sh prepares before a render, in two commands:

    render_state.py config STACK_FILE RENDER_FILE OUT
    render_state.py forget-missing EXPORT_FILE OUT

`config` writes the render's configuration file: the stack's (salt included) without its
kubeconfig context, which the provider refuses beside a render directory, plus the
provider's `renderYamlToDirectory`.

`forget-missing` edits an exported render state in place. The provider writes a file only
when it creates or updates an object: with every object already in the state, a rerun
after OUT (or some of its files) was deleted would write nothing and report success. So
the objects whose file is missing leave the state, with every resource that refers to
them (dependents, children), and the next update creates them again: their files are
written anew. The rest of the state stays, the generated Redis password above all (a
fresh state would render a new one, and a GitOps sync would then change the password
under a running Redis); auto-named objects get new names, and the objects that use them
follow. It prints one line when it edits the state, nothing when every file is there.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

import yaml


def render_config(stack_settings: dict, out: str) -> dict:
    """The stack's settings as a render takes them: no cluster, the render directory."""
    config = dict(stack_settings["config"])
    config.pop("kubernetes:context", None)
    config["kubernetes:renderYamlToDirectory"] = out
    return {**stack_settings, "config": config}


def rendered_path(outputs: dict, out: str) -> Optional[str]:
    """Where the provider renders an object (renderPathForResource, provider 4.25), or None
    when its identity cannot be read here (a secret value stands in its place)."""
    api_version, kind = outputs.get("apiVersion"), outputs.get("kind")
    metadata = outputs.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace") or "default"
    if not all(isinstance(value, str) for value in (api_version, kind, name, namespace)):
        return None
    file_name = f"{api_version.replace('/', '_').replace(':', '_')}-{kind.lower()}-{namespace}-{name}.yaml"
    crd = kind == "CustomResourceDefinition" and api_version.startswith("apiextensions.k8s.io/")
    return os.path.join(out, "0-crd" if crd else "1-manifest", file_name)


def missing_manifests(resources: list[dict], out: str) -> set[str]:
    """URNs of the live Kubernetes objects whose rendered file is not in `out`."""
    missing = set()
    for resource in resources:
        if resource.get("custom") and resource["type"].startswith("kubernetes:") and not resource.get("delete"):
            path = rendered_path(resource.get("outputs") or {}, out)
            if path is not None and not os.path.isfile(path):
                missing.add(resource["urn"])
    return missing


def _references(resource: dict) -> Iterator[Optional[str]]:
    """Every URN a resource's state entry names; the import refuses a state in which one
    of them is gone."""
    yield resource.get("parent")
    yield resource.get("deletedWith")
    yield resource.get("viewOf")
    yield from resource.get("dependencies") or []
    yield from resource.get("replaceWith") or []
    for urns in (resource.get("propertyDependencies") or {}).values():
        yield from urns


def with_dependents(resources: Iterable[dict], urns: set[str]) -> set[str]:
    """`urns` and every resource that refers to one of them, directly or not."""
    closure = set(urns)
    grown = True
    while grown:
        grown = False
        for resource in resources:
            if resource["urn"] not in closure and any(urn in closure for urn in _references(resource)):
                closure.add(resource["urn"])
                grown = True
    return closure


def forget_missing(exported: dict, out: str) -> Optional[str]:
    """Drops from `exported` what must be rendered again; a summary, or None when every
    file is there (and `exported` is untouched)."""
    resources = exported["deployment"].get("resources") or []
    missing = missing_manifests(resources, out)
    if not missing:
        return None
    dropped = with_dependents(resources, missing)
    exported["deployment"]["resources"] = [r for r in resources if r["urn"] not in dropped]
    return f"{len(missing)} rendered file(s) missing; {len(dropped)} resource(s) leave the render state to be rendered again"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config")
    config.add_argument("stack_file", type=Path)
    config.add_argument("render_file", type=Path)
    config.add_argument("out")
    forget = commands.add_parser("forget-missing")
    forget.add_argument("export_file", type=Path)
    forget.add_argument("out")
    args = parser.parse_args(argv)

    if args.command == "config":
        settings = render_config(yaml.safe_load(args.stack_file.read_text()), args.out)
        args.render_file.write_text(yaml.safe_dump(settings, sort_keys=False))
    else:
        exported = json.loads(args.export_file.read_text())
        summary = forget_missing(exported, args.out)
        if summary is not None:
            args.export_file.write_text(json.dumps(exported))
            print(summary)


if __name__ == "__main__":
    main()
