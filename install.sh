#!/usr/bin/env bash
# Ovation installer. Idempotent: running it twice changes nothing the second time.
#
#   ./install.sh --dev            local virtual environment (.venv) for trying and developing
#   ./install.sh --test [ARGS]    --dev, plus what the tests need, then the whole test suite
#                                 (ARGS go to pytest)
#   ./install.sh --bench [ARGS]   --dev, plus what the benchmarks need (wrk, PostgreSQL,
#                                 Chromium), then all of them: rewrites docs/benchmarks.md
#                                 (ARGS go to `python -m bench`, e.g. --quick)
#   ./install.sh --system [--postgres] [ARGS]  as root: install Ovation system-wide as systemd
#                                 services (ARGS go to `platformctl install`)
#   ./install.sh --dry-run ...    print what would be done
set -euo pipefail

cd "$(dirname "$0")"
MODE=""
DRY_RUN=0
PASSED_ARGS=()
VENV=.venv
POSTGRES=0
INSTALL_ARGS=()

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) MODE=${MODE:-dev} ;;
    --test) MODE=test ;;
    --bench) MODE=bench ;;
    --dry-run) DRY_RUN=1 ;;
    --system) MODE=system ;;
    --postgres) POSTGRES=1 ;;
    -h|--help) usage; exit 0 ;;
    *) if [ "$MODE" = system ]; then INSTALL_ARGS+=("$1"); elif [ "$MODE" = test ] || [ "$MODE" = bench ]; then PASSED_ARGS+=("$1"); else echo "install.sh: unknown option $1" >&2; usage >&2; exit 2; fi ;;
  esac
  shift
done
if [ -z "$MODE" ]; then
  echo "install.sh: say --dev (local venv), --test (venv + test services + test suite)," >&2
  echo "--bench (venv + benchmark tools + all benchmarks)" >&2
  echo "or --system (as root: systemd services, venv in /opt/ovation)." >&2
  exit 2
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
run() { if [ "$DRY_RUN" = 1 ]; then echo "would run: $*"; else "$@"; fi; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_UPDATED=0
apt_install() {
  # Install the Debian packages in "$@" that are missing; `apt-get update` once, first.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "install.sh: please install ${missing[*]} with your system's package manager" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    run $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing ${missing[*]}"
  run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "install.sh: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ "$MODE" = system ]; then
  . packaging/system-install.sh  # the system-wide install (issue 7)
  exit 0
fi

# What `platformctl up` needs: a redis-server it can start and own.
command -v redis-server >/dev/null || apt_install redis-server
if [ "$MODE" = test ] || [ "$MODE" = bench ]; then
  # Real PostgreSQL and Chromium for the tests (the tests start private instances).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
  command -v chromium >/dev/null || apt_install chromium
  apt_install fonts-noto-color-emoji  # reaction icons in the browser tests and screenshots
fi
if [ "$MODE" = bench ]; then
  command -v wrk >/dev/null || apt_install wrk  # the HTTP load generator
fi
if [ "$MODE" = test ]; then
  command -v npm >/dev/null || apt_install nodejs npm  # axe-core for the browser tests
  command -v tmux >/dev/null || apt_install tmux
  command -v openssl >/dev/null || apt_install openssl  # SMTP TLS tests' certificate
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  say "creating $VENV"
  run "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  say "installing Ovation and its dependencies into $VENV"
  run "$VENV/bin/python" -m pip install -q --upgrade pip
  run "$VENV/bin/python" -m pip install -q -e '.[dev]'
  run rm -f "$VENV"/.installed-*
  run touch "$STAMP"
fi

if [ "$MODE" = dev ]; then
  say "ready: $VENV/bin/platformctl up"
  exit 0
fi

if [ "$MODE" = bench ]; then
  say "running the benchmarks (several minutes; the machine should be otherwise idle)"
  if [ "$DRY_RUN" = 1 ]; then echo "would run: $VENV/bin/python -m bench ${PASSED_ARGS[*]:-}"; exit 0; fi
  exec "$VENV/bin/python" -m bench "${PASSED_ARGS[@]}"
fi

# The browser tests inject axe-core from a project-local node_modules (npm registry only).
if [ ! tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then
  say "installing the browser tests' npm packages into tests/browser/node_modules"
  run npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

say "running the test suite"
if [ "$DRY_RUN" = 1 ]; then echo "would run: $VENV/bin/python -m pytest ${PASSED_ARGS[*]:-}"; exit 0; fi
exec "$VENV/bin/python" -m pytest "${PASSED_ARGS[@]}"
