#!/usr/bin/env bash
# Install the npm packages of the browser test (tests/browser/package-lock.json: Converse.js
# and playwright-core) into tests/browser/node_modules. Idempotent: does nothing while the
# installed tree matches the lock file. Playwright's own browser download is never used (the
# test drives Debian's /usr/bin/chromium).
set -euo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/browser" && pwd)
stamp="$dir/node_modules/.roost-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "npm not found: cannot install the browser test's packages" >&2
    exit 1
fi
echo "installing the browser test's npm packages in $dir"
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
echo "$want" > "$stamp"
