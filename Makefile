# `make demo`: venv + install, Fashion-MNIST, index 70k images with the committed demo model, serve on :7860.
# `make test`: install what the tests need and run them. Each step reuses what an earlier run made.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The shared defaults live in training/defaults.env (also read by the app, the indexer, compose and the image).
default = $(shell sed -n 's/^$(1)=//p' training/defaults.env)
DEFAULT_MODEL := $(call default,MODEL_DIR)
DEFAULT_COLLECTION := $(call default,COLLECTION)
DEFAULT_DATASET := $(call default,DATASET)
MODEL ?= $(DEFAULT_MODEL)
COLLECTION ?= $(DEFAULT_COLLECTION)
DATASET ?= $(DEFAULT_DATASET)
EPOCHS ?= 36
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
OPENCLIPART := /usr/share/openclipart/png
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: install data model backbone index demo serve space collection test test-fast eval bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch this machine carries; an unpinned torch would pull a CUDA build of several GB.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

data: $(FMNIST)
$(FMNIST):
	apt-get update && apt-get install -y dataset-fashion-mnist
$(OPENCLIPART):
	apt-get update && apt-get install -y openclipart-png

# The pretrained backbone (committed): what every model trained without --model starts from. Two stages, each resumes
# when stopped: 40 epochs from scratch (BACKBONE_STAGE1), then 20 more from its weights at half the learning rate.
BACKBONE_STAGE1 ?= data/backbone-stage1
backbone: | install data $(OPENCLIPART)
	$(PY) -m training pretrain --output $(BACKBONE_STAGE1)
	$(PY) -m training pretrain --output $(call default,BACKBONE) --init $(BACKBONE_STAGE1) --epochs 20 \
		--learning_rate 1e-3

# The demo model is committed (MODEL): `make demo` trains only when it is missing. `make model`
# trains it again in two stages, on two augmented views of every image: the classes, and an instance head that tells
# each image from the others, so that a changed picture finds its very image (README: "Your photos"). Stage 1 trains
# from scratch (STAGE1); stage 2 fine-tunes it for FINE_EPOCHS more at a lower rate (FINE_RATE), which
# settles the weights the first stage's schedule left. Then its encoder for photos on real surfaces (<model>/surface,
# training/surface_encoder.py) learns to put the training images' views on generated surfaces where the model puts the
# images. A stopped run resumes from its last epoch's checkpoint (<model>/checkpoints, data/<model>-surface) when
# started again; the model's metrics.json and card record both stages, the encoder's metrics.json its own.
STAGE1 ?= data/fmnist-small-stage1
FINE_EPOCHS ?= 4
FINE_RATE ?= 3e-4
$(MODEL)/model.safetensors:
	$(MAKE) model

model: | install data
	$(PY) -m training --dataset $(DATASET) --model fmnist-small --epochs $(EPOCHS) --instance-weight 0.25 \
		--bits 64 --output $(STAGE1)
	$(PY) -m training --dataset $(DATASET) --model $(STAGE1) --epochs $(FINE_EPOCHS) --learning-rate $(FINE_RATE) \
		--instance-weight 0.25 --bits 64 --output $(MODEL)
	$(PY) -m training surfaces --model $(MODEL) --dataset $(DATASET)

index: $(MODEL)/model.safetensors | install data
	$(PY) -m indexer build --model $(MODEL) --dataset $(DATASET) --collection $(COLLECTION)

demo: index serve

serve: install
	$(PY) -m app --model $(MODEL) --collection $(COLLECTION)

# Your own folder of pictures, one command: index it with the pretrained backbone and serve it, while its own model
# fine-tunes from the backbone and then answers (or use MODEL=… given here). Re-run after adding pictures: the model
# is reused and only the new pictures are indexed. ARGS=… go to python -m app.collection (--start, --epochs, …).
collection: install
	@test -n "$(DATA)" || { echo "give the folder: make collection DATA=path/to/pictures" >&2; exit 2; }
	$(PY) -m app.collection "$(DATA)" $(if $(filter command line,$(origin MODEL)),--model "$(MODEL)") $(ARGS)

# The folder to push to a Hugging Face Space (README: "Hugging Face Spaces").
space: $(MODEL)/model.safetensors
	$(PY) app/space.py --bundle dist/space --model $(MODEL)

# CI (CI=true) and SLOW=1 also run the tests marked slow (load, real-data training).
test: install
	$(PY) -m pytest $(if $(or $(CI),$(SLOW)),,-m "not slow")

test-fast: install
	$(PY) -m pytest -m "not realdata and not browser"

eval: index
	$(PY) -m indexer evaluate --model $(MODEL) --dataset $(DATASET) --collection $(COLLECTION) \
		--bench-json bench/results/retrieval.json

bench: index | $(OPENCLIPART)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/embedding.py --model $(MODEL)
	$(PY) bench/indexing.py --model $(MODEL)
	$(PY) bench/search.py --model $(MODEL)
	$(PY) bench/serving.py --model $(MODEL) --collection $(COLLECTION)
	$(PY) bench/mixed.py --model $(MODEL) --collection $(COLLECTION)
	$(PY) bench/explore.py --model $(MODEL) --collection $(COLLECTION)
	$(PY) bench/masks.py
	$(PY) bench/robustness.py --model $(MODEL) --collection $(COLLECTION)
	$(PY) bench/folders.py
	$(PY) bench/clipart.py
	$(PY) bench/styles.py
	$(PY) bench/report.py

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info
