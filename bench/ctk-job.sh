#!/usr/bin/env bash
# The same-scope job as a person runs it with Chaos Toolkit: start the target with docker
# (http.server serving a folder on a 16 MiB tmpfs, port on 127.0.0.1), wait until it
# answers (bounded), `chaos run` experiment.json, remove the target (also on failure).
# Usage: bench/ctk-job.sh CHAOS_BIN IMAGE [JOURNAL]
set -euo pipefail
chaos=$1 image=$2 journal=${3:-/dev/null}
here=$(cd "$(dirname "$0")" && pwd)
name="fulldisk-bench-ctk-$$"
. "$here/httpserver.sh" ctk
export BENCH_URL="$url" BENCH_CONTAINER="$name"
"$chaos" --log-file /dev/null run --journal-path "$journal" --no-verify-tls \
  "$here/experiment.json"
