# Shell helpers to run a throwaway PostgreSQL cluster for tests. Source it, then call
# `pg_throwaway_start` (sets DATABASE_URL) and `pg_throwaway_stop` (from a trap).
#
# initdb and the server refuse to run as root; as root (CI) they run as the `postgres` user.

pg_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_ensure_installed() {
  pg_bin_dir >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing PostgreSQL (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pg_bin_dir >/dev/null || { echo "PostgreSQL binaries (initdb, pg_ctl) are missing: install the postgresql package" >&2; return 1; }
}

# Runs a command as the cluster's owner: ourselves, or `postgres` when we are root.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_throwaway_start() {
  pg_ensure_installed || return 1
  local bin; bin="$(pg_bin_dir)"
  PG_THROWAWAY_DIR="$(mktemp -d /tmp/salesagent-pg.XXXXXX)"
  chmod 755 "$PG_THROWAWAY_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_THROWAWAY_DIR"
  local port; port="$(pg_free_port)"
  pg_as_owner "$bin/initdb" -D "$PG_THROWAWAY_DIR/data" -U postgres -A trust --no-sync -E UTF8 >"$PG_THROWAWAY_DIR/initdb.log" 2>&1 \
    || { cat "$PG_THROWAWAY_DIR/initdb.log" >&2; return 1; }
  # Durability off: this cluster lives for one test run.
  pg_as_owner "$bin/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -l "$PG_THROWAWAY_DIR/server.log" -w -t 60 start \
    -o "-p $port -k $PG_THROWAWAY_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" >/dev/null \
    || { cat "$PG_THROWAWAY_DIR/server.log" >&2; return 1; }
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "==> throwaway PostgreSQL on port $port ($PG_THROWAWAY_DIR)"
}

pg_throwaway_stop() {
  [ -n "${PG_THROWAWAY_DIR:-}" ] && [ -d "$PG_THROWAWAY_DIR/data" ] || return 0
  pg_as_owner "$(pg_bin_dir)/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_THROWAWAY_DIR"
  PG_THROWAWAY_DIR=""
}
