"""napari dock widgets: thin adapters from layers to the GUI-free core and back.

Every widget reads layers, runs a core generator in a worker (:mod:`._jobs`), and writes
layers on the main thread. State shared between widgets (the model, the embedding cache, the
curated frames, the project folder) lives in one :class:`~._session.Session` per viewer.
"""
