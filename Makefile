# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench bench-serve bench-client bench-training bench-peers bench-profile bench-instructions bench-images bench-text lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,serve,ray,zoo,dev]'
	touch $(STAMP)

# The store every command uses (MODELPORT_HOME, default ~/.modelport): the demo model is trained
# into it once, and models trained in another shell are served as soon as they are registered.
# MODELPORT_PORT=8002 make run picks the port.
run: install
	$(BIN)/python -m modelport.demo
	$(BIN)/modelport serve

test: install
	$(BIN)/python -m pytest -q --durations=15 tests

bench: install
	$(BIN)/python bench/train.py

# The peers of the serving benchmark each get their own venv (MLServer pins an old FastAPI), with
# the onnxruntime modelport has, for the peers that serve the same ONNX file.
PEER_ORT = $(shell $(BIN)/python -c 'import onnxruntime; print(onnxruntime.__version__)')
bench-peers: install
	bench/.venvs/mlserver/bin/python -c "import mlserver, onnxruntime as o; assert o.__version__ == '$(PEER_ORT)'" 2>/dev/null || \
	  ($(PYTHON) -m venv bench/.venvs/mlserver && bench/.venvs/mlserver/bin/pip install -q mlserver \
	  mlserver-sklearn 'uvloop<0.22' scikit-learn==1.9.1 lightgbm==4.7.0 pandas onnxruntime==$(PEER_ORT))
	bench/.venvs/bentoml/bin/python -c "import bentoml, onnxruntime as o; assert o.__version__ == '$(PEER_ORT)'" 2>/dev/null || \
	  ($(PYTHON) -m venv bench/.venvs/bentoml && bench/.venvs/bentoml/bin/pip install -q bentoml \
	  scikit-learn==1.9.1 lightgbm==4.7.0 pandas onnxruntime==$(PEER_ORT))
	command -v hey >/dev/null || apt-get install -y hey

bench-profile: install
	$(BIN)/python bench/profile_request.py

bench-instructions: install  # instructions per request (valgrind): before/after, whatever the load
	command -v valgrind >/dev/null || apt-get install -y valgrind
	$(BIN)/python bench/instructions.py

bench-text: install  # sms_spam training (skipped without ../shared/data); the zoo's text models
	$(BIN)/python bench/text_training.py
	$(BIN)/python bench/text_models.py

bench-client: install
	$(BIN)/python bench/client.py

bench-images: install  # the labeller vs PyTorch, preprocessing, int8, ORT format; flower training
	$(BIN)/python bench/images.py
	$(BIN)/python bench/images_train.py
	$(BIN)/python bench/personalize.py

bench-training: install
	command -v hey >/dev/null || apt-get install -y hey
	$(BIN)/python bench/training.py

bench-serve: install bench-peers
	$(BIN)/python bench/serve.py

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) .pytest_cache
