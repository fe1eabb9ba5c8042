# revocd — build, test, run.
#   make run    the demo on embedded defaults
#   make test   install what is missing (venv, Debian packages) and run the suite
#   make unit   the unit tests only (tests/unit: pure rules and codecs, no servers)
#   make bench  micro-benchmarks and load benchmarks, figures into docs/benchmarks.md

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.revocd-installed

# Debian packages the tests drive for real: openssl (OCSP client, CRL verifier),
# softhsm2 (PKCS#11 token), nginx (stapling server, benchmark anchor), curl, wrk and
# ab (apache2-utils) for the benchmarks, prometheus for promtool (checks and unit-tests
# deploy/prometheus/alerts.yml), systemd for systemd-analyze (verifies deploy/systemd),
# varnish with varnish-modules (vmod-xkey) as the purged CDN edge (deploy/varnish),
# rsyslog with rsyslog-gnutls as the SIEM collector over TCP and TLS (RFC 5425).
DEB_PACKAGES := openssl softhsm2 nginx curl wrk apache2-utils prometheus systemd varnish varnish-modules rsyslog rsyslog-gnutls
DEB_BINARIES := openssl softhsm2-util nginx curl wrk ab promtool systemd-analyze varnishd rsyslogd

.PHONY: all venv ext sysdeps test lint typecheck unit suite run bench clean

all: venv ext

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

# Incremental: cythonize only rebuilds a module whose .pyx changed.
ext: venv
	REVOCD_REQUIRE_EXT=1 $(PY) setup.py --quiet build_ext --inplace

sysdeps:
	@missing=""; for b in $(DEB_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	ls /usr/lib/*/varnish/vmods/libvmod_xkey.so >/dev/null 2>&1 || missing="$$missing vmod-xkey"; \
	ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing="$$missing rsyslog-gnutls"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages ($(DEB_PACKAGES)); missing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_PACKAGES); \
	fi

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv
	$(PY) -m mypy

# The pure rules and codecs, no servers: seconds. (tests/unit)
unit: venv ext
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Everything, against real valkey-server, SoftHSM2, openssl, nginx...
suite: venv ext sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck suite

run: venv ext
	$(VENV)/bin/revocd demo $(DEMO_ARGS)

bench: venv ext sysdeps
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) loadtests/bench_core.py --write docs/benchmarks.md
	$(PY) loadtests/bench_store.py --write docs/benchmarks.md
	$(PY) loadtests/bench_ledger.py --write docs/benchmarks.md
	$(PY) loadtests/bench_certparse.py --write docs/benchmarks.md
	$(PY) loadtests/bench_inventory.py --write docs/benchmarks.md
	$(PY) loadtests/bench_presign.py --write docs/benchmarks.md
	$(PY) loadtests/bench_http.py --write docs/benchmarks.md
	$(PY) loadtests/bench_crl_loop.py --write docs/benchmarks.md
	$(PY) loadtests/bench_memory.py --write docs/benchmarks.md
	$(PY) loadtests/bench_overload.py --write docs/benchmarks.md
	$(PY) loadtests/bench_hsm.py --write docs/benchmarks.md
	$(PY) loadtests/bench_crl.py --write docs/benchmarks.md
	$(PY) loadtests/bench_scaling.py --write docs/benchmarks.md --plots docs/plots
	$(PY) loadtests/drill_mass_revocation.py --revocations 100000 --write docs/benchmarks.md
	$(PY) loadtests/drill_mass_revocation.py --revocations 10000 --ledger --write docs/benchmarks.md
	$(PY) loadtests/bench_summary.py --write docs/benchmarks.md

clean:
	rm -rf build $(VENV) responder/**/*.so responder/**/*.c ext/*.c .pytest_cache .mypy_cache .ruff_cache .hypothesis
