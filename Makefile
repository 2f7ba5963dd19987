# Every target runs through uv against the one workspace lock.
UV ?= uv
RUN := $(UV) run --frozen
PYTEST := $(RUN) pytest
SERVICES := gateway generation_worker pet_api report_worker replicate_mock
K8S_OVERLAYS := dev prod
K8S_BUILD := build/k8s
K8S_RENDERED := $(foreach o,$(K8S_OVERLAYS),$(K8S_BUILD)/$(o).yaml)

.PHONY: help install up down logs run migrate user test test-core test-e2e test-web screenshots \
        $(addprefix test-,$(SERVICES)) lint fmt bench k8s

help: ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'
	@for s in $(SERVICES); do printf "  %-24s %s\n" "test-$$s" "tests of services/$$s"; done

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) no .pyc is
# ever cached, and every process start would compile its imports from source again (~1 s).
install: ## create .venv from uv.lock (all workspace packages and dev tools), and checkov's own
	$(UV) sync --frozen --all-packages --compile-bytecode
	UV=$(UV) ./deploy/checkov.sh --install-only

up: ## build the image and start every container (needs Docker)
	docker compose up --build -d

down: ## stop the containers (volumes are kept)
	docker compose down

logs: ## follow the containers' logs
	docker compose logs -f

run: install .env ## run every service as a local process (Ctrl-C stops all)
	$(RUN) python -m core.cli create-database
	$(RUN) alembic upgrade head
	$(RUN) honcho start -f deploy/Procfile -d . -e .env

.env: ## first run: local settings from the documented defaults
	cp .env.example .env
	@echo "created .env from .env.example; edit it to change any setting"

migrate: ## create the database if missing and apply every migration
	$(RUN) python -m core.cli create-database
	$(RUN) alembic upgrade head

user: ## create a user: make user USERNAME=alice PASSWORD=secret123
	$(RUN) python -m core.cli create-user $(if $(USERNAME),--username $(USERNAME)) $(if $(PASSWORD),--password $(PASSWORD))

lint: k8s ## ruff, mypy --strict, hadolint, dclint, Kubernetes schemas and checkov policies
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy libs/core/src libs/testkit/src
	$(RUN) mypy services/*/src
	$(RUN) hadolint deploy/Dockerfile
	./deploy/dclint.sh
	$(RUN) python deploy/k8s/validate.py $(K8S_RENDERED)
	UV=$(UV) ./deploy/checkov.sh $(addprefix -f ,$(K8S_RENDERED)) -f deploy/Dockerfile

k8s: ## render the Kubernetes overlays (kubectl kustomize) into build/k8s/<overlay>.yaml
	@command -v kubectl >/dev/null || { echo "make k8s: kubectl (with kustomize) is needed" >&2; exit 1; }
	@mkdir -p $(K8S_BUILD)
	@for overlay in $(K8S_OVERLAYS); do \
		kubectl kustomize deploy/k8s/overlays/$$overlay >$(K8S_BUILD)/$$overlay.yaml.tmp || exit 1; \
		mv $(K8S_BUILD)/$$overlay.yaml.tmp $(K8S_BUILD)/$$overlay.yaml; \
		echo "rendered $(K8S_BUILD)/$$overlay.yaml"; \
	done

fmt: ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test: lint ## lint, then every test
	$(PYTEST) libs services tests bench/tests

test-core: ## tests of libs/core
	$(PYTEST) libs/core/tests

$(addprefix test-,$(SERVICES)): test-%:
	$(PYTEST) services/$*/tests

test-e2e: ## cross-service end-to-end tests (real processes)
	$(PYTEST) tests

test-web: ## browser tests: both pages in headless Chromium (apt-get install chromium)
	$(PYTEST) -m web libs services tests

screenshots: test-web ## the README's screenshots, from a browser test run
	mkdir -p docs/screenshots
	cp build/screenshots/*.png docs/screenshots/

bench: ## benchmarks, printed as tables (bench/README.md); BENCH_ARGS=--write-results: RESULTS.md
	$(RUN) python -m bench $(BENCH_ARGS)
