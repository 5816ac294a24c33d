#!/usr/bin/env bash
# Refresh requirements/lock.txt: install the newest releases that pyproject.toml's ranges allow
# into a fresh virtual environment (.venv-lock), run the whole test suite, and only if it passes
# write the installed versions (pip freeze, graphrel itself left out) as the new lock.
# torch stays at the version of README's install-and-test command (a CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
torch_pin=$(grep -m1 '^pip install torch==' README.md | grep -o 'torch==[^ ]*')
python=$(command -v python || command -v python3)
"$python" -m venv --clear .venv-lock
# shellcheck disable=SC1091
source .venv-lock/bin/activate
pip install "$torch_pin"
pip install -e ".[dev,spark]"
python -m pytest -q
{
  echo "# Versions the whole test suite passed with ($(python -VV | head -1 | cut -d' ' -f1-2), $(uname -sm))."
  echo "# Constraints for README's install command; pyproject.toml keeps ranges for library users."
  echo "# Refresh: bash tools/refresh_lock.sh (writes this file only if the tests pass)."
  pip freeze --exclude-editable | sed "s/^torch==.*/$torch_pin/"
} > requirements/lock.txt.tmp
mv requirements/lock.txt.tmp requirements/lock.txt
echo "requirements/lock.txt refreshed: $(grep -vc '^#' requirements/lock.txt) pinned packages"
