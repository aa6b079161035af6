#!/usr/bin/env bash
# Regenerate deploy/requirements.lock: every runtime dependency of pyproject.toml, and the
# build backend (setuptools, wheel), pinned with the sha256 of each file on PyPI. The
# container image installs exactly this (deploy/Dockerfile), so what was tested ships.
#
#   deploy/lock.sh            after any change to [project] dependencies or build-system
#
# tests/unit/test_lock.py fails when pyproject.toml and the lock disagree. Run it with
# the Python of the image (3.11, Linux): the resolution follows the running interpreter's
# environment markers. pip-tools runs from a throw-away venv; the project venv is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q 'pip-tools>=7.4,<8'

# Hashes must be those of PyPI's files, not of a local mirror or wheel cache: no pip
# configuration, no find-links, PyPI as the only index.
PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS='' PIP_EXTRA_INDEX_URL='' \
CUSTOM_COMPILE_COMMAND='deploy/lock.sh' \
  "$tools/bin/pip-compile" --quiet --no-config \
    --index-url https://pypi.org/simple --no-emit-index-url \
    --generate-hashes --strip-extras --allow-unsafe \
    --build-deps-for wheel \
    --output-file deploy/requirements.lock --upgrade \
    pyproject.toml
