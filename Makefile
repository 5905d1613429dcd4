# Latent Lab. The two commands a new user needs:
#   make run    set up .venv (first time only) and start the app
#   make test   set up .venv (first time only) and run the test suite
# Set-up is idempotent: each step is skipped when its work is already done.

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-requirements

.PHONY: run test test-slow setup system-packages readme-table clean-venv

run: setup
	$(VENV)/bin/streamlit run app/main.py

test: setup
	$(VENV)/bin/python -m pytest

test-slow: setup
	$(VENV)/bin/python -m pytest -m slow

setup: system-packages $(STAMP)

system-packages:
	@sh scripts/system-packages.sh

# Reinstalled only when requirements.txt changes.
$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null || \
	  { echo "error: Latent Lab needs Python 3.11 or newer as '$(PYTHON)' (set PYTHON=... to pick another)"; exit 1; }
	@test -x $(VENV)/bin/python || { echo "== creating $(VENV)"; $(PYTHON) -m venv $(VENV); } || \
	  { echo "error: could not create $(VENV); on Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; }
	@echo "== installing requirements.txt into $(VENV) (torch is large: the first time takes a few minutes)"
	@$(VENV)/bin/python -m pip install --disable-pip-version-check -r requirements.txt || \
	  { echo "error: pip could not install requirements.txt (its message is above)"; exit 1; }
	@touch $(STAMP)

# Rewrite the README's table of shipped models from pretrained/manifest.json.
readme-table: setup
	@$(VENV)/bin/python scripts/readme_table.py

clean-venv:
	rm -rf $(VENV)
