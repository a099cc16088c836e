# Shell helpers for the browser test: Debian's Chromium and Node.js with playwright-core
# (pinned in e2e/package-lock.json; it drives the system browser, never downloads one).
# Source it, then call `browser_ensure` (sets CHROMIUM) and `e2e_node_modules_ensure`.

browser_find() {
  local candidate
  for candidate in "${CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

browser_ensure() {
  if ! browser_find >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> installing Chromium (apt)"
      apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
        || echo "apt-get could not install chromium" >&2
    fi
  fi
  CHROMIUM="$(browser_find)" || {
    echo "FAILED: no Chromium (install Debian's chromium package, or set CHROMIUM); the browser test cannot run" >&2
    return 1
  }
  export CHROMIUM
  echo "==> browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
}

e2e_node_modules_ensure() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || true
    fi
  }
  command -v node >/dev/null 2>&1 || { echo "FAILED: Node.js is missing; the browser test cannot run" >&2; return 1; }
  if [ ! -d e2e/node_modules/playwright-core ]; then
    echo "==> npm ci (e2e: playwright-core)"
    (cd e2e && npm ci --no-audit --no-fund --loglevel=error) || {
      echo "FAILED: npm could not install playwright-core; the browser test cannot run" >&2
      return 1
    }
  fi
}
