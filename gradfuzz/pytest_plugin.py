"""pytest plugin: ``pytest --gradfuzz-replay .gradfuzz`` replays a store as regression tests.

One test item per open stored failure; it fails while the failure reproduces.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradfuzz")
    group.addoption("--gradfuzz-replay", metavar="STORE", default=None,
                    help="replay every open failure in this gradfuzz store as a test")
    group.addoption("--gradfuzz-trust-store", action="store_true", default=False,
                    help="import whatever code the store's records name (default: the working directory's only)")


class GradfuzzReplayItem(pytest.Item):
    def __init__(self, *, failure, **kwargs):
        super().__init__(**kwargs)
        self.failure = failure

    def runtest(self) -> None:
        from gradfuzz.regression import check_failure

        check_failure(self.failure, trust_store=self.config.getoption("--gradfuzz-trust-store"))

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, f"gradfuzz replay: {self.failure.target} [{self.failure.category}]"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    store = config.getoption("--gradfuzz-replay")
    if not store:
        return
    from gradfuzz.store import FailureStore, StoreError

    try:
        read = FailureStore(store).read()
    except StoreError as error:
        raise pytest.UsageError(str(error)) from None
    for failure in read.failures:
        if failure.status == "fixed":
            continue
        name = f"gradfuzz-replay[{failure.target}:{failure.category}:{failure.id[:8]}]"
        items.append(GradfuzzReplayItem.from_parent(session, name=name, failure=failure))
