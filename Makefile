# The two commands of the README: `make demo` (the main job) and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): requirements.txt requirements-nodeps.txt requirements-ros.txt constraints.txt setup.py \
          ros2_ws/src/vla_ros/setup.py scripts/setup_env.sh
	./scripts/setup_env.sh

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ros_demo --episodes 3 --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q --durations 15 tests

clean:
	rm -rf runs .pytest_cache
