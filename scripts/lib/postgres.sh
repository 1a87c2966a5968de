# shellcheck shell=bash
# A private PostgreSQL server for the job store tests (tests/integration/store_*), from Debian's
# `postgresql` package: its own cluster in a temporary directory, on a free port of 127.0.0.1,
# trust authentication, nothing shared with a system cluster. Works as root (initdb and postgres
# refuse root: they run as the `postgres` user, which owns the directory) and as a normal user.
#
#   pg_start [DIR]   creates a cluster in DIR (default: a new temporary directory) unless DIR holds
#                    one, starts it, creates the database; exports SUMMARIZER_TEST_PG_URL
#                    (postgresql://postgres@127.0.0.1:PORT/summarizer_test) and PG_TEST_DIR. A
#                    cluster started again keeps its port.
#   pg_halt [DIR]    stops the server, keeps the cluster (a test of a restart starts it again)
#   pg_stop [DIR]    stops the server and deletes DIR; does nothing if there is nothing to stop.
# DIR defaults to $PG_TEST_DIR. Messages go to stderr. PG_BIN overrides the binaries' directory.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_TEST_DATABASE=summarizer_test

# runuser is in /usr/sbin, which a minimal PATH (env -i, some CI runners) leaves out.
_pg_runuser() {
  local runuser
  runuser=$(PATH=$PATH:/usr/sbin:/sbin command -v runuser) || { echo "postgres.sh: runuser (util-linux) is missing" >&2; return 1; }
  "$runuser" -u postgres -- "$@"
}

# Runs a PostgreSQL program as the cluster's owner, from a directory that owner can enter.
_pg_run() {
  local dir=$1
  shift
  if [[ $(id -u) -eq 0 ]]; then
    (cd "$dir" && _pg_runuser "$@")
  else
    (cd "$dir" && "$@")
  fi
}

_pg_fail() {
  echo "postgres.sh: $*" >&2
  return 1
}

pg_start() {
  local dir=${1:-${PG_TEST_DIR:-}} port="" attempt
  [[ -x $PG_BIN/initdb ]] || _pg_fail "$PG_BIN/initdb is missing: install Debian's postgresql (scripts/install-deps.sh)" || return 1
  if [[ -z $dir ]]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/summarizer-pg.XXXXXX") || return 1
  fi
  mkdir -p "$dir" || return 1
  touch "$dir/.summarizer-pg" || return 1  # pg_stop deletes only directories marked so
  export PG_TEST_DIR=$dir                  # before anything can fail: pg_stop cleans up what exists
  if [[ $(id -u) -eq 0 ]]; then
    getent passwd postgres >/dev/null || _pg_fail "no postgres user (Debian's postgresql package creates it)" || return 1
    chown -R postgres: "$dir" || return 1
    chmod 0700 "$dir" || return 1
    _pg_runuser test -w "$dir" ||
      _pg_fail "the postgres user cannot write $dir: set TMPDIR to a directory it can reach" || return 1
  fi

  if [[ ! -f $dir/data/PG_VERSION ]]; then
    if ! _pg_run "$dir" "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
      >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2
      _pg_fail "initdb failed in $dir/data"
      return 1
    fi
    # Sockets in the cluster's own directory: /var/run/postgresql may not exist or be writable.
    # Enough connections for ctest -j on a big machine (each test process opens up to 5).
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
EOF
  fi

  [[ -f $dir/port ]] && port=$(<"$dir/port")
  for attempt in 1 2 3 4 5 6 7 8; do
    # A port nobody listens on is found by trying: postgres fails to start on a taken one.
    [[ -f $dir/port ]] || port=$((20000 + RANDOM % 40000))
    if _pg_run "$dir" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null; then
      echo "$port" >"$dir/port"
      break
    fi
    if [[ -f $dir/port ]] || ! grep -q "could not bind\|could not create any TCP/IP sockets" "$dir/server.log"; then
      tail -n 20 "$dir/server.log" >&2
      _pg_fail "the server in $dir did not start (attempt $attempt, port $port)"
      return 1
    fi
  done
  [[ -f $dir/port ]] || _pg_fail "no free port found for the server in $dir" || return 1

  if [[ -z $(_pg_run "$dir" "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_TEST_DATABASE'") ]]; then
    _pg_run "$dir" "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$PG_TEST_DATABASE" || return 1
  fi
  export SUMMARIZER_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/$PG_TEST_DATABASE"
  echo "postgres.sh: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $SUMMARIZER_TEST_PG_URL (cluster in $dir)" >&2
}

pg_halt() {
  local dir=${1:-${PG_TEST_DIR:-}}
  [[ -n $dir && -f $dir/data/PG_VERSION ]] || return 0
  if _pg_run "$dir" "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    _pg_run "$dir" "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
      _pg_fail "the server in $dir did not stop" || return 1
  fi
}

pg_stop() {
  local dir=${1:-${PG_TEST_DIR:-}}
  [[ -n $dir && -f $dir/.summarizer-pg ]] || return 0
  pg_halt "$dir" || return 1
  rm -rf "$dir"
  if [[ ${PG_TEST_DIR:-} == "$dir" ]]; then
    unset PG_TEST_DIR SUMMARIZER_TEST_PG_URL
  fi
}
