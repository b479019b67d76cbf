#!/usr/bin/env bash
# The floor of the same-scope job: the bare docker CLI and curl doing its steps with no
# judging at all. Start http.server on a 16 MiB tmpfs (port on 127.0.0.1), wait until it
# answers (bounded), the home page before, while (fallocate) and after the folder is full,
# remove the container (also on failure).
# Usage: bench/floor-job.sh IMAGE
set -euo pipefail
image=$1
here=$(cd "$(dirname "$0")" && pwd)
name="fulldisk-bench-floor-$$"
. "$here/httpserver.sh" floor
curl -fsS -o /dev/null --max-time 3 "$url/"
docker exec "$name" sh -c 'fallocate -l 16M /srv/www/.ballast || true'
curl -fsS -o /dev/null --max-time 3 "$url/"
docker exec "$name" rm -f /srv/www/.ballast
curl -fsS -o /dev/null --max-time 3 "$url/"
