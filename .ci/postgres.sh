#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the run-store tests and prints its URL:
#   export AUGLAB_TEST_PG_URL=$(bash .ci/postgres.sh)
# Debian's postgresql package provides the binaries (.ci/run installs it); the data lives in
# $AUGLAB_PG_DATA (default /tmp/auglab-pg), trusted on loopback only, port $AUGLAB_PG_PORT (54329).
set -euo pipefail
PORT=${AUGLAB_PG_PORT:-54329}
DATA=${AUGLAB_PG_DATA:-/tmp/auglab-pg}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$BIN" ]; then
  BIN=$(dirname "$(command -v initdb)")
fi
as_owner() {  # initdb and the server refuse to run as root: run them as the postgres user there
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ ! -s "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -A trust -U auglab >/dev/null
fi
if ! as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=off" start >/dev/null
fi
echo "postgresql://auglab@127.0.0.1:$PORT/postgres"
