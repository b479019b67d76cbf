#!/usr/bin/env bash
# The floor of the same-scope job: the bare docker CLI and curl doing its steps with no
# judging at all. Start http.server on a 16 MiB tmpfs (port on 127.0.0.1), wait until it
# answers (bounded), the home page before, while (fallocate) and after the folder is full,
# remove the container (also on failure).
# Usage: bench/floor-job.sh IMAGE
set -euo pipefail
image=$1
name="fulldisk-bench-floor-$$"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" --label fulldisk.bench=floor --user 1000:1000 \
  --mount type=tmpfs,destination=/srv/www,tmpfs-size=16m,tmpfs-mode=1777 \
  -p 127.0.0.1::8000 "$image" python3 -m http.server 8000 --directory /srv/www >/dev/null
port=$(docker port "$name" 8000/tcp | head -1 | sed 's/.*://')
url="http://127.0.0.1:$port/"
for _ in $(seq 300); do  # at most 300 tries, 10 ms apart
  curl -fs -o /dev/null --max-time 1 "$url" && break
  sleep 0.01
done
curl -fsS -o /dev/null --max-time 3 "$url"
docker exec "$name" sh -c 'fallocate -l 16M /srv/www/.ballast || true'
curl -fsS -o /dev/null --max-time 3 "$url"
docker exec "$name" rm -f /srv/www/.ballast
curl -fsS -o /dev/null --max-time 3 "$url"
