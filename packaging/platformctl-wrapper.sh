# Sourced by install.sh --system, and by the tests that run the wrapper for real.
# platformctl_wrapper ENV_FILE VENV prints the text of /usr/local/bin/platformctl: the venv's
# platformctl with the system's env file, unless OVATION_ENV_FILE names another one.
platformctl_wrapper() {
  printf '%s\n' '#!/bin/sh' \
    "# Installed by Ovation's install.sh: platformctl with the system configuration." \
    ": \"\${OVATION_ENV_FILE:=$1}\"" \
    'export OVATION_ENV_FILE' \
    "exec $2/bin/platformctl \"\$@\""
}
