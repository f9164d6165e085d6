"""Running Ovation on a host: service states, systemd units, installs, backups, imports."""
