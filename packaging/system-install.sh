# Sourced by install.sh --system: Ovation as systemd services on a Debian/Ubuntu host.
# Every step checks first and acts only when something is missing or out of date, so a second
# run changes nothing. With --dry-run, `run` prints the commands instead of running them.
#
#   user     ovation (system user, no login shell, home /var/lib/ovation)
#   code     /opt/ovation/venv (a virtual environment with Ovation installed from this tree)
#   command  /usr/local/bin/platformctl (finds the configuration in /etc/ovation/ovation.env)
#   config   /etc/ovation/ovation.env (0640 root:ovation: secret key, database password)
#   data     /var/lib/ovation (0750 ovation:ovation)
#   units    ovation-*.service and ovation.target, written by `platformctl install`
#
# Where systemd is not PID 1 (a container, WSL without systemd) the same steps run, but
# `platformctl install --no-units` writes no units and starts nothing: the last line says how to
# run Ovation in the foreground with `platformctl up`. A dry run plans for the host it runs on.

SYSTEM_USER=ovation
PREFIX=/opt/ovation
SYSTEM_VENV=$PREFIX/venv
ENV_FILE=/etc/ovation/ovation.env
DATA_DIR=/var/lib/ovation
WRAPPER=/usr/local/bin/platformctl
SYSTEMD=0
if [ -d /run/systemd/system ]; then SYSTEMD=1; fi  # sd_booted(): systemd is PID 1

if [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
  echo "install.sh --system must run as root (sudo ./install.sh --system)." >&2
  exit 1
fi
SUDO=""

apt_install redis-server python3-venv
if [ "$POSTGRES" = 1 ]; then
  apt_install postgresql
fi

if ! id -u "$SYSTEM_USER" >/dev/null 2>&1; then
  say "creating the system user $SYSTEM_USER"
  run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "Ovation engagement appliance" "$SYSTEM_USER"
fi

if [ ! -d "$PREFIX" ]; then
  run install -d -m 0755 -o root -g root "$PREFIX"
fi
if [ ! -x "$SYSTEM_VENV/bin/python" ]; then
  say "creating $SYSTEM_VENV"
  run "$PYTHON" -m venv "$SYSTEM_VENV"
fi
# Reinstall only when this source tree differs from the installed one.
SOURCE_HASH=$(find setup.cfg pyproject.toml appliance cli web plugins -type f \
  \( -name '*.py' -o -name '*.cfg' -o -name '*.toml' -o -path '*/static/*' \) \
  -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
SYSTEM_STAMP="$SYSTEM_VENV/.ovation-source-$SOURCE_HASH"
if [ ! -f "$SYSTEM_STAMP" ]; then
  say "installing Ovation into $SYSTEM_VENV"
  run "$SYSTEM_VENV/bin/python" -m pip install -q --upgrade pip
  run "$SYSTEM_VENV/bin/python" -m pip install -q --upgrade .
  run sh -c "rm -f '$SYSTEM_VENV'/.ovation-source-* && touch '$SYSTEM_STAMP'"
fi

. packaging/platformctl-wrapper.sh
WRAPPER_TEXT=$(platformctl_wrapper "$ENV_FILE" "$SYSTEM_VENV")
if [ ! -f "$WRAPPER" ] || [ "$(cat "$WRAPPER")" != "$WRAPPER_TEXT" ]; then
  say "writing $WRAPPER"
  if [ "$DRY_RUN" = 1 ]; then echo "would write $WRAPPER"; else
    printf '%s\n' "$WRAPPER_TEXT" > "$WRAPPER"; chmod 0755 "$WRAPPER"; fi
fi

if [ "$POSTGRES" = 1 ]; then
  # A role with a password, reached over loopback TCP, so root (running platformctl) and the
  # service user both connect with the URL in the env file. The password is generated once
  # and kept in the env file (0640 root:ovation).
  if [ -f "$ENV_FILE" ] && grep -q '^OVATION_DATABASE_URL=postgresql://' "$ENV_FILE"; then
    DATABASE_URL=$(sed -n 's/^OVATION_DATABASE_URL=//p' "$ENV_FILE" | tail -1)
    DB_PASSWORD=$(printf '%s' "$DATABASE_URL" | sed -n 's|^postgresql://[^:]*:\([^@]*\)@.*|\1|p')
  fi
  if [ -z "${DB_PASSWORD:-}" ]; then
    DB_PASSWORD=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')
    DATABASE_URL="postgresql://$SYSTEM_USER:$DB_PASSWORD@127.0.0.1:5432/ovation"
  fi
  psql_as_postgres() { runuser -u postgres -- psql -X -q -tA "$@"; }
  if [ "$SYSTEMD" = 1 ]; then
    run systemctl enable --now --quiet postgresql
  elif ! psql_as_postgres -c 'SELECT 1' >/dev/null 2>&1; then
    # No systemd to start it (and none to start it at boot): Debian's init script does.
    run service postgresql start
  fi
  if [ "$DRY_RUN" = 1 ] && ! command -v psql >/dev/null; then
    echo "would create the PostgreSQL role $SYSTEM_USER and database ovation"
  else
    if [ "$(psql_as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$SYSTEM_USER'" 2>/dev/null)" != 1 ]; then
      say "creating the PostgreSQL role $SYSTEM_USER"
      ROLE_SQL="CREATE ROLE $SYSTEM_USER LOGIN PASSWORD :'password'"
    else
      # Keeps the role's password equal to the env file's (a no-op when it already is).
      ROLE_SQL="ALTER ROLE $SYSTEM_USER LOGIN PASSWORD :'password'"
    fi
    # The password goes through stdin and a psql variable: never on a command line.
    if [ "$DRY_RUN" = 1 ]; then echo "would run: psql as postgres: ${ROLE_SQL%% PASSWORD*} PASSWORD (generated)"
    else printf '%s\n' "$ROLE_SQL" | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v password="$DB_PASSWORD"; fi
    if [ "$(psql_as_postgres -c "SELECT 1 FROM pg_database WHERE datname = 'ovation'" 2>/dev/null)" != 1 ]; then
      say "creating the PostgreSQL database ovation"
      run runuser -u postgres -- createdb --owner "$SYSTEM_USER" --encoding UTF8 ovation
    fi
  fi
  # Handed over in the environment (readable by root only), not as --database on a command line.
  export PLATFORMCTL_DATABASE_URL="$DATABASE_URL"
fi

# Without systemd: the env file (secret key, database password), the data directory and the
# migrations all the same, so `platformctl up` finds everything; just no units.
if [ "$SYSTEMD" = 0 ]; then
  INSTALL_ARGS=(--no-units "${INSTALL_ARGS[@]}")
  say "platformctl install --no-units (systemd is not running on this host)"
else
  say "platformctl install"
fi
PLATFORMCTL="$SYSTEM_VENV/bin/platformctl"
[ -x "$PLATFORMCTL" ] || PLATFORMCTL="$VENV/bin/platformctl"  # a dry run before the venv exists
if [ "$DRY_RUN" = 1 ]; then
  if [ -x "$PLATFORMCTL" ]; then
    "$PLATFORMCTL" install --dry-run --venv "$SYSTEM_VENV" "${INSTALL_ARGS[@]}"
  else
    echo "would run: $SYSTEM_VENV/bin/platformctl install --venv $SYSTEM_VENV ${INSTALL_ARGS[*]}"
  fi
else
  env OVATION_ENV_FILE="$ENV_FILE" "$PLATFORMCTL" install --venv "$SYSTEM_VENV" \
    "${INSTALL_ARGS[@]}"
fi
if [ "$SYSTEMD" = 1 ]; then
  if [ "$DRY_RUN" = 0 ]; then say "done: platformctl status"; fi
else
  say "systemd is not running on this host, so Ovation gets no units and nothing starts it at boot: run it in the foreground as $SYSTEM_USER: runuser -u $SYSTEM_USER -- $WRAPPER up"
fi
