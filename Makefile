# make run   - set everything up and start the demo board
# make test  - set everything up and run the whole suite
# make bench - print the budget table of SPEC section 9

PY := .venv/bin/python
VENV_STAMP := .venv/.installed
DEPS_STAMP := .deps/.fetched

.PHONY: run test bench lint typecheck setup system lock clean

setup: system $(VENV_STAMP) $(DEPS_STAMP)

system:
	@sh tools/install-system.sh

$(VENV_STAMP): requirements-dev.txt
	python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.txt
	touch $@

$(DEPS_STAMP): deps.lock $(VENV_STAMP)
	$(PY) tools/perch.py deps
	touch $@

run: setup
	$(PY) tools/demo.py

lint: $(VENV_STAMP)
	.venv/bin/ruff check .

typecheck: $(VENV_STAMP)
	$(PY) tools/typecheck.py

test: setup lint typecheck
	.venv/bin/pytest -n 2 --dist loadfile

bench: setup
	$(PY) bench/run.py

# Re-pin the host tools (needs network): requirements-dev.in -> requirements-dev.txt
lock:
	python3 -m venv .venv-lock && .venv-lock/bin/pip install -q pip-tools
	.venv-lock/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	rm -rf .venv-lock

clean:
	rm -rf build dist run .stubs .mypy_cache .pytest_cache
