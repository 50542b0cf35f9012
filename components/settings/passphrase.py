"""The passphrase that encrypts the stack's secrets in its state, as the environment gives
it to the engine (and so to this program): checked before anything is created.

Pulumi reads PULUMI_CONFIG_PASSPHRASE_FILE for every stack alike, so a shell that
`source scripts/env.sh` set up for dev would hand dev's own passphrase to
`pulumi up --stack prod` too, and prod's secrets would be encrypted with a file that
was never meant to protect them."""

import stat
from pathlib import Path

PASSPHRASE_FILE_VARIABLE = "PULUMI_CONFIG_PASSPHRASE_FILE"
#: Where scripts/env.sh generates dev's own passphrase, in the clone's .pulumi/.
DEV_PASSPHRASE = Path(".pulumi") / "dev-passphrase"


def passphrase_problems(stack: str, passphrase_file: str | None) -> list[str]:
    """What is wrong with the stack's passphrase file, if one is given: one readable by
    others than its owner, or dev's own passphrase for any other stack."""
    if not passphrase_file:
        return []
    path = Path(passphrase_file)
    problems = []
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as error:
        return [f"{PASSPHRASE_FILE_VARIABLE} names {passphrase_file!r}, which cannot be read: {error.strerror}"]
    if mode & 0o077:
        problems.append(
            f"{PASSPHRASE_FILE_VARIABLE} {passphrase_file!r} may be read by others than its owner (mode {mode:04o}); "
            f"it decrypts every secret in the state of stack {stack!r}: `chmod 600` it"
        )
    if stack != "dev" and path.resolve().parts[-2:] == DEV_PASSPHRASE.parts:
        problems.append(
            f"stack {stack!r} would be encrypted with dev's own passphrase ({passphrase_file!r}): set "
            f"{PASSPHRASE_FILE_VARIABLE} (or PULUMI_CONFIG_PASSPHRASE) to {stack}'s passphrase"
        )
    return problems
