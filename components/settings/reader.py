"""Reading the stack's config keys one by one, collecting every problem instead of
stopping at the first."""

import re
from collections.abc import Callable
from enum import Enum
from typing import Protocol, TypeVar

import pulumi

from .image_reference import Image, parse_image
from .quantities import binary_bytes, cpu_cores
from .values import Resources

CONFIG_NAMESPACE = "journal"

T = TypeVar("T")
Choice = TypeVar("Choice", bound=Enum)


class SettingsError(pulumi.RunError):
    """Raised with every invalid config value, each named by its key.

    A RunError makes the engine print the message alone, without a Python traceback.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class ConfigSource(Protocol):
    def get(self, key: str) -> str | None: ...


class ConfigReader:
    """Reads keys from the config, collecting problems instead of stopping at the first."""

    def __init__(self, source: ConfigSource):
        self._source = source
        self.problems: list[str] = []
        self._refused: set[str] = set()

    def _raw(self, key: str) -> str | None:
        return self._source.get(key)

    def refused(self, key: str) -> bool:
        """Whether the value of `key` was read and refused: a problem names it already."""
        return key in self._refused

    def _fail(self, key: str, expectation: str, value: str | None) -> None:
        self._refused.add(key)
        shown = "nothing" if value is None else repr(value)
        self.problems.append(f"{CONFIG_NAMESPACE}:{key} {expectation}, got {shown}")

    def _parse(self, key: str, parse: Callable[[str], T | None], expectation: str) -> T | None:
        raw = self._raw(key)
        parsed = parse(raw) if raw is not None else None
        if parsed is None:
            self._fail(key, expectation, raw)
        return parsed

    def count(self, key: str, minimum: int, maximum: int) -> int:
        def parse(raw: str) -> int | None:
            if not re.fullmatch(r"[0-9]+", raw):
                return None
            number = int(raw)
            return number if minimum <= number <= maximum else None

        return self._parse(key, parse, f"must be a whole number from {minimum} to {maximum}") or minimum

    def boolean(self, key: str) -> bool:
        # Pulumi's typed boolean config arrives as "true" or "false".
        flags = {"true": True, "false": False}
        return bool(self._parse(key, lambda raw: flags.get(raw.lower()), "must be true or false"))

    def duration_seconds(self, key: str, minimum: int, maximum: int) -> int:
        def parse(raw: str) -> int | None:
            match = re.fullmatch(r"([0-9]+)(s|m)", raw)
            if not match:
                return None
            seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
            return seconds if minimum <= seconds <= maximum else None

        expectation = f"must be a duration in seconds or minutes ('90s', '5m') from {minimum}s to {maximum // 60}m"
        return self._parse(key, parse, expectation) or minimum

    def string(self, key: str, pattern: re.Pattern[str], expectation: str, optional: bool = False) -> str | None:
        raw = self._raw(key)
        if optional and raw in (None, ""):
            return None
        if raw is None or not pattern.fullmatch(raw):
            self._fail(key, expectation, raw)
            return None
        return raw

    def secret_string(self, key: str, pattern: re.Pattern[str], expectation: str) -> str | None:
        """An optional secret: a problem with it never shows the value."""
        raw = self._raw(key)
        if raw in (None, ""):
            return None
        if not pattern.fullmatch(raw):
            self._refused.add(key)
            self.problems.append(f"{CONFIG_NAMESPACE}:{key} {expectation} (its value is a secret: not shown here)")
            return None
        return raw

    def image(self, key: str) -> Image:
        raw = self._raw(key)
        image = parse_image(raw) if raw is not None else None
        if image is None:
            self._fail(key, "must be an image reference such as 'registry.example.com/app:v1.0.1-bfeda01f'", raw)
            return Image(reference="", tag=None, digest=None)
        if not image.pinned:
            self._fail(
                key,
                "must be pinned: an exact version tag of at most 63 characters ending in a letter or "
                "digit (v1.0.1, 1.27.3-alpine, v1.0.1-bfeda01f) or an @sha256: digest, never 'latest' "
                "or a floating tag",
                raw,
            )
        return image

    def cpu(self, key: str) -> str | None:
        return self._parse(
            key, lambda raw: raw if cpu_cores(raw) else None, "must be a positive CPU quantity such as '250m' or '1.5'"
        )

    def binary_quantity(self, key: str) -> str | None:
        return self._parse(
            key,
            lambda raw: raw if binary_bytes(raw) else None,
            "must be a positive quantity with a binary suffix such as '256Mi' or '50Gi'",
        )

    def choice(self, key: str, enum: type[Choice]) -> Choice | None:
        raw = self._raw(key)
        try:
            return enum(raw)
        except ValueError:
            names = ", ".join(repr(member.value) for member in enum)
            self._fail(key, f"must be one of {names}", raw)
            return None

    def resources(self, tier: str) -> Resources:
        resources = Resources(
            cpu_request=self.cpu(f"{tier}CpuRequest") or "",
            cpu_limit=self.cpu(f"{tier}CpuLimit") or "",
            memory_request=self.binary_quantity(f"{tier}MemoryRequest") or "",
            memory_limit=self.binary_quantity(f"{tier}MemoryLimit") or "",
        )
        for kind, request, limit, amount in (
            ("Cpu", resources.cpu_request, resources.cpu_limit, cpu_cores),
            ("Memory", resources.memory_request, resources.memory_limit, binary_bytes),
        ):
            if request and limit and amount(request) > amount(limit):
                self.problems.append(
                    f"{CONFIG_NAMESPACE}:{tier}{kind}Request ({request!r}) "
                    f"must not exceed {CONFIG_NAMESPACE}:{tier}{kind}Limit ({limit!r})"
                )
        return resources
