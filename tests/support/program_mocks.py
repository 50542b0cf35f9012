"""Running the program, or one component, under Pulumi mocks, and reading back what it
registered as plain Kubernetes manifests."""

import hashlib
import runpy
import string
import secrets as random_source
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeGuard

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import Stack

from support.kubectl import Manifest

# How a value marked secret travels through the Pulumi RPC layer.
SECRET_SIGNATURE = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROJECT = "journal"
# The Kubernetes release every schema and API-server test holds the objects to.
KUBERNETES_VERSION = "1.34.0"
STACKS = ("dev", "prod")
# The dev stack with a Gateway API edge, as the local cluster serves it (Traefik's
# GatewayClass, its proxies in ingress-nginx).
GATEWAY_EDGE = {"edge": "gateway", "gatewayClassName": "traefik", "gatewayNamespace": "ingress-nginx"}
# The API groups of the custom kinds the program declares (cert-manager, Gateway API): the
# built-in Kubernetes schema does not know them; tests/integration/test_apiserver.py checks them
# against their real CRDs.
CUSTOM_API_GROUPS = ("cert-manager.io", "gateway.networking.k8s.io")


def is_custom_resource(manifest: Manifest) -> bool:
    return manifest["apiVersion"].split("/")[0] in CUSTOM_API_GROUPS


# Each stack file as it is, and dev in the other edge mode.
VARIANTS = {"dev": ("dev", {}), "prod": ("prod", {}), "dev-gateway": ("dev", GATEWAY_EDGE)}


def stack_config(stack: str, **overrides: object) -> dict[str, str]:
    """What the engine hands the program: Pulumi.yaml's defaults, then the stack file's
    values, then any overrides, as `journal:key` -> string."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    values = {
        f"{PROJECT}:{key}": str(spec["default"])
        for key, spec in project["config"].items()
        if "default" in spec
    }
    stack_file = PROJECT_DIR / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        values.update({key: str(value) for key, value in yaml.safe_load(stack_file.read_text())["config"].items()})
    values.update({f"{PROJECT}:{key}": str(value) for key, value in overrides.items()})
    return values


def journal_keys(config: dict[str, str]) -> dict[str, str]:
    """The `journal:` keys of a stack's configuration, without their namespace."""
    prefix = f"{PROJECT}:"
    return {key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)}


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    state: dict[str, Any]
    dependencies: list[str]
    ignore_changes: list[str]
    protect: bool
    custom_timeouts: dict[str, str]
    """Pulumi's customTimeouts for this resource: create, update, delete ('' when unset)."""
    auto_named: bool
    """The program left metadata.name out, so the provider named the object."""

    @property
    def is_kubernetes(self) -> bool:
        return self.type.startswith("kubernetes:")

    def manifest(self) -> Manifest:
        """The object as it would be sent to the API server (secret values unwrapped)."""
        return {key: reveal(value) for key, value in self.state.items() if key in MANIFEST_FIELDS}


MANIFEST_FIELDS = ("apiVersion", "kind", "metadata", "spec", "data", "stringData", "type", "immutable")


def is_secret(value: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and value.get(SECRET_SIGNATURE[0]) == SECRET_SIGNATURE[1]


def reveal(value: object) -> object:
    if is_secret(value):
        return reveal(value["value"])
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


class JournalMocks(pulumi.runtime.Mocks):
    """The provider as far as shapes go: inputs come back as state, auto-named objects get
    a generated name, and RandomPassword a real random result."""

    def __init__(self) -> None:
        self.auto_named: set[str] = set()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ.startswith("kubernetes:") and "metadata" in state:
            metadata = dict(state["metadata"])
            if "name" not in metadata:
                self.auto_named.add(args.name)
                suffix = hashlib.sha256(repr(sorted(state.items())).encode()).hexdigest()[:8]
                metadata["name"] = f"{args.name}-{suffix}"
            state["metadata"] = metadata
        if args.typ == "random:index/randomPassword:RandomPassword":
            alphabet = string.ascii_letters + string.digits
            state["result"] = "".join(random_source.choice(alphabet) for _ in range(int(args.inputs["length"])))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: JournalMocks):
        super().__init__(mocks)
        self.auto_named = mocks.auto_named
        self.registered: list[Registered] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(
                Registered(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    custom=request.custom,
                    state=self.resources[response.urn].state,
                    dependencies=list(request.dependencies),
                    ignore_changes=list(request.ignoreChanges),
                    protect=bool(request.protect),
                    custom_timeouts={
                        "create": request.customTimeouts.create,
                        "update": request.customTimeouts.update,
                        "delete": request.customTimeouts.delete,
                    },
                    auto_named=request.name in self.auto_named,
                )
            )
        return response


@dataclass
class ProgramRun:
    """Everything one run registered."""

    resources: list[Registered]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    """The names of the outputs the engine would be handed as secrets."""

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def kubernetes_objects(self) -> list[Manifest]:
        return [r.manifest() for r in self.resources if r.is_kubernetes]

    def objects(self, kind: str) -> list[Manifest]:
        return [m for m in self.kubernetes_objects() if m["kind"] == kind]

    def object(self, kind: str, name: str) -> Manifest:
        matches = [m for m in self.objects(kind) if m["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
        return matches[0]


def run_under_mocks(
    stack: str,
    config: dict[str, str],
    program: Callable[[], dict[str, Any] | None],
    registered: list[Registered] | None = None,
    secret_keys: Sequence[str] = (),
) -> ProgramRun:
    """Runs `program` under mocks; `registered`, if given, receives every resource as it
    is registered (and so is filled even when the program fails); `secret_keys` are the
    config keys stored as secrets."""
    monitor = RecordingMonitor(JournalMocks())
    if registered is not None:
        monitor.registered = registered
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, list(secret_keys))
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    async def record(exported: dict[str, Any]) -> None:
        for name, value in exported.items():
            output = pulumi.Output.from_input(value)
            outputs[name] = await output.future()
            if await output.is_secret():
                secret_outputs.add(name)

    @pulumi.runtime.test
    def run() -> pulumi.Output[None]:
        # The root Stack resource outlives set_mocks, and with it the stack
        # transformations an earlier program registered: a fresh program starts with none.
        root = pulumi.runtime.get_root_resource()
        if root is not None:
            root._transformations = []
        return pulumi.Output.from_input(record(program() or {}))

    run()
    return ProgramRun(resources=monitor.registered, outputs=outputs, secret_outputs=secret_outputs)


def run_program(stack: str, registered: list[Registered] | None = None, secret_keys: Sequence[str] = (),
                **overrides: object) -> ProgramRun:
    """Runs __main__.py as the engine would for `stack`, with its real stack file and the
    `overrides`, `secret_keys` (`journal:key`) among them stored as secrets."""

    def program() -> dict[str, Any]:
        # pulumi.export() records on the root Stack resource, which outlives set_mocks.
        root = pulumi.runtime.get_root_resource()
        assert isinstance(root, Stack), "the mocks make a Stack the root of every run"
        root.outputs.clear()
        runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")
        return dict(root.outputs)

    return run_under_mocks(stack, stack_config(stack, **overrides), program, registered, secret_keys)
