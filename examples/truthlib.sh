# Shared helpers for examples/<name>/truth.sh: drive a corpus target by hand, WITHOUT
# fulldisk, and record what happened as JSON. Source it after setting NAME and IMAGE.
# Everything created is labelled fulldisk.dev=corpus and fulldisk.corpus.run=$RUN and is
# removed on exit (also on Ctrl-C), so only this run's resources are ever touched.
set -euo pipefail
BASE=${BASE:-fulldisk/base:bookworm}
RUN="corpus-${NAME}-$$"
LABELS=(--label fulldisk.dev=corpus --label "fulldisk.corpus.run=$RUN")
HERE=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
EVENTS=$(mktemp)
T0=$(date +%s.%N)

cleanup() {
  local ids
  ids=$(docker ps -aq --filter "label=fulldisk.corpus.run=$RUN")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
  ids=$(docker volume ls -q --filter "label=fulldisk.corpus.run=$RUN")
  [ -n "$ids" ] && docker volume rm -f $ids >/dev/null 2>&1 || true
  rm -f "$EVENTS" "${BODY:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_image() {  # build the target's image from its Dockerfile (cached by Docker)
  docker build -q -t "$IMAGE" --build-arg "BASE=$BASE" --label fulldisk.dev=corpus "$HERE" >/dev/null
}

now() { python3 -c "import time; print(f'{time.time() - $T0:.3f}')"; }

event() {  # event PHASE KIND JSON-OBJECT: one observation, timestamped
  jq -c --arg phase "$1" --arg kind "$2" --arg t "$(now)" \
    '{t: ($t|tonumber), phase: $phase, kind: $kind} + .' <<<"$3" >> "$EVENTS"
}

mkvol() {  # mkvol NAME SIZE UID:GID -> a docker tmpfs volume, as fulldisk would make it
  local uid=${3%%:*} gid=${3##*:}
  docker volume create "${LABELS[@]}" --driver local --opt type=tmpfs --opt device=tmpfs \
    --opt "o=size=$2,uid=$uid,gid=$gid,mode=0755" "$RUN-$1" >/dev/null
  # Hold it for the whole run: a tmpfs volume dies with the last container mounting it.
  docker run -d "${LABELS[@]}" -v "$RUN-$1:/v" "$BASE" sleep 3600 >/dev/null
}

seed() {  # seed VOLUME PATH: copy the image's files at PATH into the (empty) tmpfs volume
  docker run --rm "${LABELS[@]}" --user 0 --entrypoint sh -v "$RUN-$1:/seed" "$IMAGE" \
    -c "cp -a '$2/.' /seed/"
}

df_json() {  # df_json VOLUME -> {"bytes_free":..,"bytes_total":..}
  docker run --rm "${LABELS[@]}" -v "$RUN-$1:/v" "$BASE" \
    stat -f -c '{"bytes_free": %a, "block": %S, "blocks": %b}' /v \
    | jq -c '{bytes_free: (.bytes_free * .block), bytes_total: (.blocks * .block)}'
}

fill() {  # fill VOLUME UID:GID: ballast with dd as the app's user until the disk refuses
  local out rc
  set +e
  out=$(docker run --rm "${LABELS[@]}" --user "$2" -v "$RUN-$1:/v" "$BASE" \
        dd if=/dev/zero of=/v/.fulldisk-ballast bs=4096 2>&1)
  rc=$?
  set -e
  event fill ballast "$(jq -n --arg out "$(tail -n 3 <<<"$out")" --argjson rc "$rc" --arg v "$1" \
    --argjson df "$(df_json "$1")" '{volume: $v, dd_exit: $rc, dd_output: $out, disk: $df}')"
}

free() {  # free VOLUME: remove only the ballast
  docker run --rm "${LABELS[@]}" -v "$RUN-$1:/v" "$BASE" rm -f /v/.fulldisk-ballast
  event free ballast_removed "$(jq -n --arg v "$1" --argjson df "$(df_json "$1")" '{volume: $v, disk: $df}')"
}

port_of() {  # port_of CONTAINER PORT -> the 127.0.0.1 port it is published on
  docker port "$1" "$2/tcp" | grep -m1 '^127.0.0.1:' | cut -d: -f2
}

wait_for() {  # wait_for SECONDS CMD...: poll a condition with a deadline
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.2
  done
}

BODY=$(mktemp)
http() {  # http PHASE LABEL CURL-ARGS...: one request, bounded at 20 s; records the outcome
  local phase=$1 label=$2; shift 2
  local w rc
  set +e
  w=$(curl -sS --noproxy '*' --max-time 20 -o "$BODY" -D "$BODY.h" \
        -w '{"status": %{http_code}, "seconds": %{time_total}, "bytes_received": %{size_download}}' "$@" 2>"$BODY.e")
  rc=$?
  set -e
  local enc len
  enc=$(grep -i '^content-encoding:' "$BODY.h" | tail -n1 | cut -d' ' -f2- | tr -d '\r' || true)
  len=$(grep -i '^content-length:' "$BODY.h" | tail -n1 | cut -d' ' -f2- | tr -d '\r' || true)
  event "$phase" http "$(jq -n --argjson w "${w:-{\}}" --argjson rc "$rc" --arg lbl "$label" \
     --arg err "$(cat "$BODY.e")" --arg enc "$enc" --arg len "$len" \
     --arg excerpt "$(head -c 300 "$BODY" | tr -c '[:print:]' ' ')" \
     --arg sha "$(sha256sum < "$BODY" | cut -d' ' -f1)" \
     '$w + {label: $lbl, curl_exit: $rc, curl_error: $err, content_encoding: $enc,
            content_length: $len, body_sha256: $sha, body_excerpt: $excerpt}')"
  rm -f "$BODY.h" "$BODY.e"
  return 0
}

execp() {  # execp PHASE LABEL CONTAINER CMD...: one exec probe, bounded at 20 s
  local phase=$1 label=$2 c=$3; shift 3
  local out rc s e
  s=$(date +%s.%N)
  set +e
  out=$(timeout 25 docker exec "$c" timeout 20 "$@" 2>&1)
  rc=$?
  set -e
  e=$(date +%s.%N)
  event "$phase" exec "$(jq -n --arg lbl "$label" --argjson rc "$rc" --arg out "$(head -c 400 <<<"$out")" \
     --arg secs "$(python3 -c "print(round($e - $s, 3))")" \
     '{label: $lbl, exit: $rc, timed_out: ($rc == 124), seconds: ($secs|tonumber), output: $out}')"
  LAST_OUT=$out
  return 0
}

logs_json() {  # logs_json PHASE CONTAINER [FILE...]: docker logs and log files where they are
  local phase=$1 c=$2; shift 2
  local all; all=$(docker logs "$c" 2>&1 || true)
  event "$phase" container_log "$(jq -n --arg text "$(tail -n 40 <<<"$all")" \
    --arg errs "$(grep -i -E 'error|warn|space|full|errno|fatal|signal|abort' <<<"$all" | tail -n 40 || true)" \
    '{source: "stdout+stderr", error_lines: ($errs | split("\n")), tail: ($text | split("\n"))}')"
  local f
  for f in "$@"; do
    event "$phase" file_log "$(jq -n --arg path "$f" \
      --arg text "$(docker exec "$c" sh -c "tail -n 60 '$f'" 2>&1 || true)" \
      '{source: $path, tail: ($text | split("\n"))}')"
  done
}

restarts() { docker inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' "$1"; }

finish() {  # finish EXTRA-JSON: write observed.json from the recorded events
  jq -s --argjson extra "$1" --arg name "$NAME" --arg image "$IMAGE" \
    '{target: $name, image: $image, measured_without_fulldisk: true} + $extra + {events: .}' \
    "$EVENTS" > "$HERE/observed.json"
  echo "wrote $HERE/observed.json ($(jq '.events | length' "$HERE/observed.json") events)"
}
