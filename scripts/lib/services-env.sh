# Sourced by the scripts after `scripts/services up`: exports the ports it recorded in
# var/services.env (REDIS_PORT: our own Redis's when the distribution's service holds 6379), so
# the binaries, the tests and redis-cli use the servers `up` chose. Expects ROOT to be set.
services_env="${SELLERSYNC_VAR_DIR:-$ROOT/var}/services.env"
if [ -f "$services_env" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$services_env"
  set +a
fi
unset services_env
