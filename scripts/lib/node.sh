# shellcheck shell=bash
# Sourced by scripts/check-*.sh: Node.js tooling under tools/ (Debian's nodejs 18 + npm, or a newer
# node already on the machine).
#
#   npm_ci_once DIR   `npm ci` in DIR unless DIR/node_modules was installed from the same
#                     package-lock.json already (a stamp holds the lock's hash), so a warm machine
#                     skips the download. Never downloads a browser (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD).

npm_ci_once() {
  local dir=$1 stamp lock_hash
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are missing: run scripts/install-deps.sh (Debian: nodejs npm)" >&2
    return 1
  fi
  stamp=$dir/node_modules/.installed-from-lock
  lock_hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$lock_hash" ]]; then
    return 0
  fi
  echo "npm ci in $dir (node $(node --version), npm $(npm --version))"
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$stamp"
}
