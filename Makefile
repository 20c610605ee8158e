# The README's two commands are `make lab` and `make test`; the rest are their parts.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: bootstrap lab lab-up lab-down lint unit unit-compiled integration molecule test

bootstrap:
	@scripts/bootstrap.sh

## Boot the embedded lab, converge it with site.yml, then a demo call per tenant.
lab: bootstrap lab-up
	ansible-playbook -i inventories/lab playbooks/site.yml
	python lab/labctl.py summary

lab-up:
	python lab/labctl.py up

lab-down: bootstrap
	python lab/labctl.py down

lint:
	yamllint --strict .
	ansible-lint
	ruff check .
	mypy

unit:
	pytest -q tests/unit

## The runtime's unit tests again, against the mypyc-compiled wheel the role ships.
unit-compiled:
	compiled=$$(scripts/compiled_runtime.sh) && PYTHONPATH=$$compiled PBX_RUNTIME_EXPECT_COMPILED=1 \
		pytest -q -o pythonpath= tests/unit/test_build.py tests/unit/core tests/unit/policy \
		tests/unit/registrar tests/unit/sip tests/unit/transport

integration:
	pytest -q tests/integration

molecule:
	molecule test -s default
	molecule test -s compartments

## Everything CI runs.
test: bootstrap lint unit unit-compiled integration molecule
