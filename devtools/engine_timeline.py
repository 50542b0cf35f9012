"""Where one Pulumi command's time goes, from the engine's own log
(`pulumi ... -v=9 --logtostderr 2> LOG`), for devtools/benchmark-cluster.sh:

    venv/bin/python devtools/engine_timeline.py LABEL=LOG [LABEL=LOG...]

prints one column per log, the phases as rows (seconds):

    start         the CLI, the state and the language host, until the program runs
    sdk           Python starting and the SDKs' imports, until the stack is declared
    program       the program's own imports and declarations, until the last one
    steps         after the last declaration, until the engine's last step ends (the
                  providers' checks, diffs and whatever they wait for)
    exit          the program finishing after that
    save          writing the state, until the CLI's last line
"""

import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PHASES = ("start", "sdk", "program", "steps", "exit", "save")


@dataclass(frozen=True)
class Timeline:
    seconds: dict[str, float]
    # Resources the program declared, the stack and its components included.
    declared: int


def _messages(log: Path):
    for line in log.read_text().splitlines():
        brace = line.find("{")
        if brace < 0:
            continue
        try:
            entry = json.loads(line[brace:])
        except json.JSONDecodeError:
            continue
        time = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", entry.get("time", ""))
        if time:
            whole, fraction = time.groups()
            at = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
            yield at + float(fraction or 0), entry.get("msg", "")


def timeline(log: Path) -> Timeline:
    marks: dict[str, float] = {}
    declared: set[str] = set()
    first = last = None
    for at, message in _messages(log):
        first = at if first is None else first
        last = at
        if "langhost[python].Run(" in message and "executing" in message:
            marks.setdefault("run", at)
        elif match := re.search(r"registering resource: (ty=\S+, name=[^,]+)", message):
            marks.setdefault("stack", at)
            marks["declared"] = at
            declared.add(match.group(1))
        elif "markOperationComplete(" in message or "registered resource outputs" in message:
            marks["stepped"] = at
        elif "langhost[python].Run(" in message and "success" in message:
            marks["ran"] = at
    if first is None or last is None or not {"run", "ran"} <= marks.keys():
        raise SystemExit(f"{log}: not a `-v=9 --logtostderr` log of a Python program's run")
    stack = marks.get("stack", marks["ran"])
    declared_at = marks.get("declared", stack)
    stepped = max(marks.get("stepped", declared_at), declared_at)
    return Timeline(
        {
            "start": marks["run"] - first,
            "sdk": stack - marks["run"],
            "program": declared_at - stack,
            "steps": stepped - declared_at,
            "exit": marks["ran"] - stepped,
            "save": last - marks["ran"],
        },
        len(declared),
    )


def main(arguments: list[str]) -> None:
    if not arguments or any("=" not in argument for argument in arguments):
        raise SystemExit(__doc__)
    columns = [(label, timeline(Path(path))) for label, path in (argument.split("=", 1) for argument in arguments)]
    width = max(len(label) for label, _ in columns) + 2
    print(f"{'':10}" + "".join(f"{label:>{width}}" for label, _ in columns))
    for phase in PHASES:
        print(f"{phase:10}" + "".join(f"{line.seconds[phase]:>{width - 2}.2f} s" for _, line in columns))
    print(f"{'total':10}" + "".join(f"{sum(line.seconds.values()):>{width - 2}.2f} s" for _, line in columns))
    print(f"{'declared':10}" + "".join(f"{line.declared:>{width}}" for _, line in columns))


if __name__ == "__main__":
    main(sys.argv[1:])
