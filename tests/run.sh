#!/usr/bin/env bash
# The test command (README, .ci/run): installs everything the tests need, then runs the whole
# suite. Extra arguments go to pytest, e.g. `bash tests/run.sh tests/unit -x`.
# The suite runs in parallel (pytest-xdist), one worker per CPU; TEST_WORKERS=N sets the
# number, TEST_WORKERS=0 runs it in one process (e.g. for `-x` or `--pdb`).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '==> %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  python3 -m venv .venv
fi
step "installing the project with its test extra"
.venv/bin/pip install --disable-pip-version-check -q -e '.[test]'

# The official OpenClaw CLI (npm `openclaw`, needs Node 24) for the compatibility tests.
# Node 24 comes from the npm package `node@24`; the CLI is installed under that node.
cli_dir=.cache/official-cli
if [ ! -x "$cli_dir/cli/node_modules/.bin/openclaw" ] || [ ! -x "$cli_dir/node/node_modules/.bin/node" ]; then
  step "installing node@24 and openclaw@2026.9.6 into $cli_dir (once)"
  mkdir -p "$cli_dir/node" "$cli_dir/cli"
  npm install --no-audit --no-fund --loglevel=error --prefix "$cli_dir/node" node@24
  PATH="$PWD/$cli_dir/node/node_modules/.bin:$PATH" \
    npm install --no-audit --no-fund --loglevel=error --prefix "$cli_dir/cli" openclaw@2026.9.6
fi
export OPENCLAW_OFFICIAL_CLI="$PWD/$cli_dir/cli/node_modules/.bin/openclaw"
export OPENCLAW_OFFICIAL_NODE_BIN="$PWD/$cli_dir/node/node_modules/.bin"

# ngircd, the real IRC server the IRC channel tests run against (tests/fakes/ircd.py).
if ! command -v ngircd >/dev/null 2>&1 && [ ! -x /usr/sbin/ngircd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing ngircd (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngircd) >/dev/null
  else
    echo "warning: ngircd is not installed and cannot be installed here (needs root and apt-get);" \
      "install it (Debian/Ubuntu: apt-get install ngircd) or the IRC tests are skipped" \
      "(and fail when CI is set: tests/needs.py)" >&2
  fi
fi

# The checks, configured in pyproject.toml: lint (ruff), types (mypy), the layer contracts
# (import-linter). Each failure is named, the suite still runs so that one CI run reports
# everything, and the command fails at the end if any check did.
failed_checks=()
check() {
  local name=$1
  shift
  step "check: $name"
  if ! "$@"; then
    failed_checks+=("$name")
    printf '==> FAILED check: %s (%s)\n' "$name" "$*" >&2
  fi
}
check ruff .venv/bin/ruff check --quiet .
check mypy .venv/bin/mypy
check import-linter .venv/bin/lint-imports --no-cache --no-logo

step "running the test suite"
status=0
# Each test starts its own gateways on ephemeral ports with its own temp state dir, so the
# workers share nothing.
.venv/bin/pytest -n "${TEST_WORKERS:-auto}" "$@" || status=$?
if [ ${#failed_checks[@]} -gt 0 ]; then
  printf '==> FAILED checks: %s (see their output above)\n' "${failed_checks[*]}" >&2
  exit 1
fi
exit "$status"
