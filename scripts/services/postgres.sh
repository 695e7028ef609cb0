# scripts/services/postgres.sh — sourced by scripts/test.
#
# service_postgres_start: a throwaway PostgreSQL cluster in
#   $PLINTH_TEST_TMP/pg, owned by the `postgres` OS user (initdb refuses to
#   run as root), trust authentication on loopback only, listening on a free
#   port of 127.0.0.1 (no Unix socket); exports
#   PLINTH_TEST_PG_URL=postgres://postgres@127.0.0.1:$PORT/postgres.
#   The cluster accepts TLS too (plain connections keep working): a
#   throwaway CA signs a server certificate for localhost, 127.0.0.1 and ::1
#   (key owned by postgres, mode 0600, in $PLINTH_TEST_TMP/pg/tls); exports
#   PLINTH_TEST_PG_CA (that CA's certificate) and PLINTH_TEST_PG_OTHER_CA (a
#   second CA that signed nothing), both in $PLINTH_TEST_TMP/pg-ca, readable
#   by the user running the tests. The role plinth_tls_only (created by the
#   tests that use it) is only let in over TLS.
#   Installs postgresql-15 (and openssl) with apt-get when missing.
# service_postgres_stop: stops that cluster (pg_ctl stop -m fast).
#
# Both are safe to call twice. Must not `exit`: this file is sourced.

_pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  return 1
}

# Runs a command as the postgres OS user (or as ourselves when not root).
_pg_as() {
  if [[ $(id -u) -ne 0 ]]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

_pg_free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
  fi
  local port
  for port in $(seq 54320 54420); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  return 1
}

# Writes a throwaway CA ($1/ca.crt, $1/ca.key), a second one
# ($1/other-ca.crt) and a server certificate signed by the first
# ($1/server.crt, $1/server.key) for localhost, 127.0.0.1 and ::1. EC P-256
# keys, valid for 2 days.
_pg_make_certs() {
  local out=$1 name
  [[ -n $out && -d $out ]] || return 1
  cat >"$out/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = plinth test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid
CNF
  for name in ca other-ca; do
    openssl req -x509 -new -nodes -config "$out/openssl.cnf" -extensions ca -days 2 \
      -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=plinth test $name" \
      -keyout "$out/$name.key" -out "$out/$name.crt" 2>>"$out/openssl.log" || return 1
  done
  openssl req -new -nodes -config "$out/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -subj "/CN=localhost" -keyout "$out/server.key" -out "$out/server.csr" 2>>"$out/openssl.log" &&
    openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
      -days 2 -extfile "$out/openssl.cnf" -extensions server -out "$out/server.crt" 2>>"$out/openssl.log"
}

service_postgres_start() {
  local bindir dir port i cadir
  : "${PLINTH_TEST_TMP:?PLINTH_TEST_TMP must be set (scripts/test sets it)}"
  dir="$PLINTH_TEST_TMP/pg"
  if [[ -n ${PLINTH_PG_DIR:-} && ${PLINTH_PG_DIR} == "$dir" && -f "$dir/data/postmaster.pid" ]]; then
    echo "postgres: already running on port ${PLINTH_PG_PORT:-?}"
    return 0
  fi
  if ! bindir=$(_pg_bindir); then
    echo "postgres: no server binaries; installing postgresql-15" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2 || {
      echo "postgres: could not install postgresql-15" >&2
      return 1
    }
    bindir=$(_pg_bindir) || { echo "postgres: initdb/pg_ctl still not found" >&2; return 1; }
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    echo "postgres: no openssl CLI (for the test certificates); installing openssl" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2 || {
      echo "postgres: could not install openssl" >&2
      return 1
    }
  fi
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres || return 1
  fi

  # $PLINTH_TEST_TMP comes from mktemp -d (mode 700, root): let the postgres
  # user traverse it, and give it a directory of its own.
  chmod o+x "$PLINTH_TEST_TMP" 2>/dev/null || true
  # A cluster left running here by an earlier start in another shell.
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    _pg_as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  mkdir -p "$dir" || return 1
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  chmod 700 "$dir"
  _pg_as test -w "$dir" || {
    echo "postgres: the postgres user cannot write $dir (is a parent directory closed to it?)" >&2
    return 1
  }

  _pg_as "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1 ||
    _pg_as "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
      --no-sync >"$dir/initdb.log" 2>&1 || {
    echo "postgres: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    return 1
  }
  # TLS: certificates made by us (the CAs stay ours, readable by the tests);
  # the server's pair is handed to postgres (the key must be its own, 0600).
  cadir="$PLINTH_TEST_TMP/pg-ca"
  rm -rf "$cadir"
  mkdir -p "$cadir" && chmod 700 "$cadir" || return 1
  _pg_make_certs "$cadir" || {
    echo "postgres: could not make the test certificates:" >&2
    cat "$cadir/openssl.log" >&2
    return 1
  }
  mkdir -p "$dir/tls" && cp "$cadir/server.crt" "$cadir/server.key" "$dir/tls/" || return 1
  rm -f "$cadir/server.key"
  [[ $(id -u) -eq 0 ]] && chown -R postgres: "$dir/tls"
  chmod 700 "$dir/tls" && chmod 600 "$dir/tls/server.key" && chmod 644 "$dir/tls/server.crt" || return 1
  cat >>"$dir/data/postgresql.conf" <<CONF

# Added by scripts/services/postgres.sh: TLS with a throwaway CA.
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
CONF

  # Loopback TCP only, password-less (throwaway cluster). The role
  # plinth_tls_only (the TLS tests create it) may only connect over TLS, so
  # a plain connection cannot pass for an encrypted one.
  cat >"$dir/data/pg_hba.conf" <<'EOF'
hostssl   all plinth_tls_only 127.0.0.1/32 trust
hostnossl all plinth_tls_only 127.0.0.1/32 reject
host all all 127.0.0.1/32 trust
host all all ::1/128      trust
EOF

  for i in 1 2 3; do
    port=$(_pg_free_port) || { echo "postgres: no free port" >&2; return 1; }
    # fsync off: the cluster is thrown away; tests measure semantics, not disks.
    if _pg_as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories= -c fsync=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null; then
      break
    fi
    port=
  done
  if [[ -z $port ]]; then
    echo "postgres: the server did not start:" >&2
    tail -n 30 "$dir/server.log" >&2
    return 1
  fi
  for i in $(seq 1 100); do
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "postgres: not ready after 10 s:" >&2
    tail -n 30 "$dir/server.log" >&2
    return 1
  fi
  export PLINTH_PG_DIR="$dir" PLINTH_PG_BINDIR="$bindir" PLINTH_PG_PORT="$port"
  export PLINTH_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export PLINTH_TEST_PG_CA="$cadir/ca.crt" PLINTH_TEST_PG_OTHER_CA="$cadir/other-ca.crt"
  echo "postgres: $("$bindir/postgres" --version) on 127.0.0.1:$port ($dir), TLS CA $PLINTH_TEST_PG_CA"
}

service_postgres_stop() {
  local dir="${PLINTH_PG_DIR:-${PLINTH_TEST_TMP:+$PLINTH_TEST_TMP/pg}}"
  local bindir="${PLINTH_PG_BINDIR:-}"
  [[ -n $dir && -f "$dir/data/postmaster.pid" ]] || return 0
  [[ -n $bindir ]] || bindir=$(_pg_bindir) || return 0
  _pg_as "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || true
  unset PLINTH_PG_DIR PLINTH_PG_PORT PLINTH_TEST_PG_URL PLINTH_TEST_PG_CA PLINTH_TEST_PG_OTHER_CA
}
