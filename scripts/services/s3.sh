# scripts/services/s3.sh: an S3-compatible server on loopback for the S3
# state backend's tests (tests/it/backend_s3.rs). Sourced by scripts/test.
#
# The server is moto (PyPI `moto[server]`), installed into a virtualenv cached
# at target/moto-venv so repeated runs on one machine do not reinstall it.
# moto honours conditional writes (`If-None-Match: *` and `If-Match` on
# PutObject), which the backend's journal and lock depend on; the tests check
# that explicitly.
#
# Exports PLINTH_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_DEFAULT_REGION.

S3_SERVICE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
S3_SERVICE_PID=""

service_s3_start() {
  local venv="$S3_SERVICE_ROOT/target/moto-venv"
  local tmp="${PLINTH_TEST_TMP:?PLINTH_TEST_TMP must be set}"
  local started=$SECONDS
  if [[ ! -x "$venv/bin/moto_server" ]]; then
    echo "s3: installing moto[server] into $venv"
    mkdir -p "$S3_SERVICE_ROOT/target"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' >"$tmp/moto-pip.log" 2>&1 || {
      cat "$tmp/moto-pip.log" >&2
      echo "s3: pip install 'moto[server]' failed" >&2
      rm -rf "$venv"
      return 1
    }
  fi

  # A free port on loopback (the kernel picks it; the tiny race before moto
  # binds it is acceptable for a test harness).
  local port
  port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
  S3_SERVICE_PID=$!
  echo "$S3_SERVICE_PID" >"$tmp/moto.pid"

  local i
  for i in $(seq 1 150); do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then
      break
    fi
    if ! kill -0 "$S3_SERVICE_PID" 2>/dev/null; then
      cat "$tmp/moto.log" >&2
      echo "s3: moto_server exited during start-up" >&2
      return 1
    fi
    if [[ $i -eq 150 ]]; then
      cat "$tmp/moto.log" >&2
      echo "s3: moto_server did not answer on 127.0.0.1:$port within 30 s" >&2
      service_s3_stop
      return 1
    fi
    sleep 0.2
  done

  export PLINTH_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=test
  export AWS_SECRET_ACCESS_KEY=test
  export AWS_DEFAULT_REGION=us-east-1
  unset AWS_SESSION_TOKEN
  echo "s3: moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)') on $PLINTH_TEST_S3_ENDPOINT (ready in $((SECONDS - started)) s)"
}

service_s3_stop() {
  local pid="$S3_SERVICE_PID"
  if [[ -z "$pid" && -n "${PLINTH_TEST_TMP:-}" && -f "$PLINTH_TEST_TMP/moto.pid" ]]; then
    pid=$(cat "$PLINTH_TEST_TMP/moto.pid")
  fi
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  S3_SERVICE_PID=""
  [[ -n "${PLINTH_TEST_TMP:-}" ]] && rm -f "$PLINTH_TEST_TMP/moto.pid"
  unset PLINTH_TEST_S3_ENDPOINT
}
