"""One real `babelcap serve --profile tiny-cpu` for every integration test that needs it."""

from __future__ import annotations

import pytest

from tests.integration.serving import running_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """(base URL, serve process) of the tiny-cpu gateway, API key ``serving.KEY``."""
    with running_gateway(tmp_path_factory.mktemp("serve")) as started:
        yield started
