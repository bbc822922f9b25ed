# Sourced by scripts/fuzz-api and scripts/bench-api: an API on a free port in a throwaway
# namespace (Redis key prefix <name>:<id>:, database sellersync_<name>_<id>), with demo users each
# holding a queued job, removed again when the calling script exits.
# Expects ROOT (the checkout, the working directory), VAR, VENV, BIN and log() to be set.

# start_throwaway_api NAME USERS: exports the namespace's settings, starts the API, waits until
# it is ready and sets API_URL and ADMIN_TOKEN (an hour).
start_throwaway_api() {
  local name=$1 users=$2 id port
  # pymongo drops the throwaway database afterwards.
  "$VENV"/bin/python -c "import pymongo" 2>/dev/null || scripts/services pip "pymongo>=4,<5"
  id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export SELLERSYNC_ENV=test SELLERSYNC_CONFIG_DIR="$ROOT/config" LOG_LEVEL=warn PORT=$port CRON_ENABLED=false
  export REDIS_KEY_PREFIX="$name:$id:" MONGODB_DATABASE="sellersync_${name//-/_}_$id"
  export JWT_SECRET="$name-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

  "$BIN/sellersync" migrate >/dev/null
  "$BIN/sellersync" seed-demo --users "$users" --accounts 1 >/dev/null
  "$BIN/sellersync" enqueue --all >/dev/null
  mkdir -p "$VAR/log"
  THROWAWAY_LOG="$VAR/log/$name.log"
  "$BIN/sellersync-api" >"$THROWAWAY_LOG" 2>&1 &
  THROWAWAY_PID=$!
  trap stop_throwaway_api EXIT
  API_URL="http://127.0.0.1:$port"
  local deadline=$((SECONDS + 30))
  until curl -fsS "$API_URL/readyz" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$THROWAWAY_PID" 2>/dev/null; then
      log "the API did not become ready; last lines of $THROWAWAY_LOG:"
      tail -n 20 "$THROWAWAY_LOG" >&2
      exit 1
    fi
    sleep 0.1
  done
  ADMIN_TOKEN=$("$BIN/sellersync" token mint --sub "$name" --role admin --ttl 1h)
}

stop_throwaway_api() {
  kill -TERM "$THROWAWAY_PID" 2>/dev/null || true
  wait "$THROWAWAY_PID" 2>/dev/null || true
  "$VENV"/bin/python -c "import pymongo, sys; pymongo.MongoClient(sys.argv[1]).drop_database(sys.argv[2])" \
    "mongodb://127.0.0.1:${MONGO_PORT:-27017}/?directConnection=true" "$MONGODB_DATABASE" || true
  redis-cli -p "${REDIS_PORT:-6379}" --scan --pattern "$REDIS_KEY_PREFIX*" \
    | xargs -r redis-cli -p "${REDIS_PORT:-6379}" del >/dev/null || true
}
