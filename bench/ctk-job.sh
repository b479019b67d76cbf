#!/usr/bin/env bash
# The same-scope job as a person runs it with Chaos Toolkit: start the target with docker
# (http.server serving a folder on a 16 MiB tmpfs, port on 127.0.0.1), wait until it
# answers (bounded), `chaos run` experiment.json, remove the target (also on failure).
# Usage: bench/ctk-job.sh CHAOS_BIN IMAGE [JOURNAL]
set -euo pipefail
chaos=$1 image=$2 journal=${3:-/dev/null}
here=$(cd "$(dirname "$0")" && pwd)
name="fulldisk-bench-ctk-$$"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" --label fulldisk.bench=ctk --user 1000:1000 \
  --mount type=tmpfs,destination=/srv/www,tmpfs-size=16m,tmpfs-mode=1777 \
  -p 127.0.0.1::8000 "$image" python3 -m http.server 8000 --directory /srv/www >/dev/null
port=$(docker port "$name" 8000/tcp | head -1 | sed 's/.*://')
export BENCH_URL="http://127.0.0.1:$port" BENCH_CONTAINER="$name"
for _ in $(seq 300); do  # at most 300 tries, 10 ms apart: 3 s and more under load
  curl -fsS -o /dev/null --max-time 1 "$BENCH_URL/" && break
  sleep 0.01
done
"$chaos" --log-file /dev/null run --journal-path "$journal" --no-verify-tls \
  "$here/experiment.json"
