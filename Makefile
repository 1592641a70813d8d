# Two commands for users: `make demo` and `make test`. Both create .venv on first use and are
# quick the second time (the install step re-runs only when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp-install
TORCH_VERSION := 2.13.0
XVFB_SCREEN := -screen 0 1600x1000x24
# the screenshots are taken at 1366x768 and at 1920x1080
SHOTS_SCREEN := -screen 0 1920x1200x24

.PHONY: demo test lint format screenshots benchmarks clean-venv help

help:
	@echo "make demo         open napari with the synthetic sample and the plugin's widgets"
	@echo "make test         install everything the suite needs, then lint and run all tests (headless)"
	@echo "make lint         ruff check + ruff format --check"
	@echo "make screenshots  regenerate docs/images/*.png under Xvfb"

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# torch first, pinned, so that the loose `torch>=` requirement of the package is already met and
# pip never pulls the multi-GB CUDA builds on machines that have a local CPU wheel.
$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[qt,testing]"
	@touch $@

# Xvfb from Debian's packages when there is no display; the Qt xcb platform needs the libraries
# listed too. Without root (or passwordless sudo) we say so and run only the headless tests.
XVFB_PKGS := xvfb xauth libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 \
	libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
	libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1

.PHONY: xvfb
xvfb:
	@if [ -z "$$DISPLAY" ] && ! command -v xvfb-run >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Xvfb from Debian's packages for the GUI tests"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(XVFB_PKGS) >/dev/null; \
	  fi; \
	fi

test: $(STAMP) xvfb lint
	@if [ -n "$$DISPLAY" ]; then \
	  $(PY) -m pytest; \
	elif command -v xvfb-run >/dev/null 2>&1; then \
	  xvfb-run -a -s "$(XVFB_SCREEN)" $(PY) -m pytest; \
	else \
	  echo "WARNING: no display and Xvfb could not be installed: running only the tests marked not gui"; \
	  $(PY) -m pytest -m "not gui"; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(VENV)/bin/ruff format --check src tests benchmarks docs

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks docs
	$(VENV)/bin/ruff format src tests benchmarks docs

# napari with the synthetic sample and the six widgets docked as tabs on the right. Only Linux
# can lack a display (macOS and Windows always have one; Wayland may set no DISPLAY).
demo: $(STAMP)
	@if [ "$$(uname -s)" = Linux ] && [ -z "$$DISPLAY" ] && [ -z "$$WAYLAND_DISPLAY" ]; then \
	  echo "no display: run 'make demo' in a desktop session (or set DISPLAY)"; exit 1; \
	fi
	$(PY) -m napari_cosine_embed._demo

# Drives the workflow panel through every step at two window sizes (a few minutes) and writes
# docs/images/*.png (1366x768) and docs/images/1920x1080/*.png. Under
# Xvfb where there is one, so the images do not depend on the desktop (its scaling, its theme).
screenshots: $(STAMP) xvfb
	@if command -v xvfb-run >/dev/null 2>&1; then \
	  xvfb-run -a -s "$(SHOTS_SCREEN)" $(PY) docs/screenshots.py docs/images; \
	elif [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  $(PY) docs/screenshots.py docs/images; \
	else \
	  echo "no display and no Xvfb: install xvfb (apt-get install xvfb) or run in a desktop"; exit 1; \
	fi

clean-venv:
	rm -rf $(VENV)
