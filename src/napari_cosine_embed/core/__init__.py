"""GUI-free core: arrays in, arrays out. Never imports napari, qtpy or magicgui."""
