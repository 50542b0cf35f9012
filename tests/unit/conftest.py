"""The whole program under mocks, shared by the unit tests that read its objects."""

import pytest

from support.program_mocks import VARIANTS, ProgramRun, run_program


@pytest.fixture(scope="session", params=list(VARIANTS))
def deployed(request) -> ProgramRun:
    """The whole program, once per real stack file, and once with the gateway edge."""
    stack, overrides = VARIANTS[request.param]
    return run_program(stack, **overrides)
