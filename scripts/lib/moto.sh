# Starts moto's server (an SQS / EventBridge Scheduler stand-in from PyPI) for tests on a
# free loopback port; sets MOTO_ENDPOINT. `moto_stop` ends it.

moto_start() {
  command -v moto_server >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
  local port; port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  MOTO_LOG="$(mktemp /tmp/salesagent-moto.XXXXXX)"
  moto_server -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" >/dev/null 2>&1; then
      export MOTO_ENDPOINT="http://127.0.0.1:$port"
      export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
      echo "==> moto server on port $port"
      return 0
    fi
    sleep 0.1
  done
  echo "moto server did not start:" >&2; cat "$MOTO_LOG" >&2
  return 1
}

moto_stop() {
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
  [ -n "${MOTO_LOG:-}" ] && rm -f "$MOTO_LOG"
  MOTO_PID=""
  return 0
}
