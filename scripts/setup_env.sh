#!/usr/bin/env bash
# Create .venv with the pinned dependencies (idempotent). Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# EGL/GL libraries for headless MuJoCo rendering (Debian/Ubuntu), when missing and we can install.
if ! ldconfig -p 2>/dev/null | grep -q "libEGL.so.1"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing EGL/GL system libraries for headless rendering"
    apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0
  else
    echo "warning: libEGL not found; install libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=24"
# torch first and exactly pinned: this takes the CPU build; anything unpinned may pull CUDA wheels.
.venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# ROS 2: a sourced distro's rclpy (PYTHONPATH) wins; otherwise the Kilted wheels from PyPI.
if [ -n "${ROS_DISTRO:-}" ] && .venv/bin/python -c "import rclpy" 2>/dev/null; then
  echo "using the sourced ROS 2 $ROS_DISTRO (rclpy from $(.venv/bin/python -c 'import rclpy, os; print(os.path.dirname(rclpy.__file__))'))"
else
  .venv/bin/python -m pip install -q -r requirements-ros.txt -c constraints.txt
fi
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e ros2_ws/src/vla_ros
touch .venv/.installed
