# Two commands on a fresh machine:  ./setup.sh   then   make test
PY := .venv/bin/python

.PHONY: setup test test-fast bench

setup:
	./setup.sh

test:
	$(PY) -m pytest -q tests

test-fast:
	$(PY) -m pytest -q -x -m "not slow and not browser" tests

bench:
	$(PY) -m benchmarks.run_all
