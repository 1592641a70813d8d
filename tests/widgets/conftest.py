import pytest


def pytest_collection_modifyitems(items):
    # Everything in tests/widgets needs a display (Xvfb in CI).
    for item in items:
        if "/tests/widgets/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.gui)
