#!/usr/bin/env bash
# Installs Debian's wrk (the saturation generator of bench/run.sh and bench/scale_out.sh)
# when it is missing.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
echo "installing wrk (the saturation generator)" >&2
if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
"${sudo[@]}" apt-get install -y wrk >/dev/null || {
  "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y wrk >/dev/null
}
