import pytest


def pytest_collection_modifyitems(items):
    # Everything in tests/widgets needs a display (Xvfb in CI).
    for item in items:
        if "/tests/widgets/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch):
    """A widget question (a modal dialog) would hang a test: fail instead, naming it. A test
    that expects a question replaces ``confirm`` on its widget."""
    from napari_cosine_embed._widgets.correct import CorrectWidget

    def unexpected(self, question: str) -> bool:
        raise AssertionError(f"unexpected question: {question}")

    monkeypatch.setattr(CorrectWidget, "confirm", unexpected)
