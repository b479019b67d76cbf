#!/usr/bin/env bash
# smoke.sh: poke the datahub reference stack on tiny tmpfs volumes, hardened and with
# each defect switch, the way the fulldisk harness will (but by hand, with curl).
#
#   docker build --build-arg BASE=fulldisk/base:bookworm -t fulldisk/datahub:dev docker/datahub
#   docker/datahub/smoke.sh            # all scenarios
#   docker/datahub/smoke.sh sessions   # only scenarios whose name matches
#   SMOKE_KEEP=1 docker/datahub/smoke.sh ...  # leave objects behind for debugging (remove by label!)
#
# Every container, volume and network carries the label $SMOKE_LABEL and is removed on
# exit. Requests go only to ports published on 127.0.0.1; every loop is bounded.
set -u -o pipefail

IMAGE=${IMAGE:-fulldisk/datahub:dev}
SMOKE_LABEL=${SMOKE_LABEL:-fulldisk.dev=helper}
ONLY=${1:-}
P=dhsmoke$$
SEC=(--user 1000:1000 --cap-drop ALL --security-opt no-new-privileges)
LBL=(--label "$SMOKE_LABEL" --label "dhsmoke.run=$P")
TMP=$(mktemp -d /tmp/dhsmoke.XXXXXX)
PASS=0
FAIL=0
FAILED=()

# volume name:container path:size:inodes (the sizes of harness/targets/datahub.toml)
VOLSPEC=(
  "sessions:/var/lib/datahub/sessions:256k:128"
  "cache:/var/cache/datahub:512k:256"
  "downloads:/var/lib/datahub/downloads:8m:1024"
  "db:/var/lib/datahub/db:1m:64"
  "applogs:/var/log/datahub:256k:64"
  "weblogs:/var/log/nginx:256k:64"
)

cleanup() {
  [ -n "${SMOKE_KEEP:-}" ] && return 0
  local ids
  ids=$(docker ps -aq --filter "label=dhsmoke.run=$P")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  ids=$(docker volume ls -q --filter "label=dhsmoke.run=$P")
  [ -n "$ids" ] && docker volume rm $ids >/dev/null 2>&1
  ids=$(docker network ls -q --filter "label=dhsmoke.run=$P")
  [ -n "$ids" ] && docker network rm $ids >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASS=$((PASS + 1)); echo "  ok    $*"; }
bad() { FAIL=$((FAIL + 1)); FAILED+=("$SCEN: $*"); echo "  FAIL  $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
note() { echo "        $*"; }

# ---------------------------------------------------------------- stack

# start_stack DEFECTS [options...]: shared (all app paths on one 2 MiB volume),
# noseed (db volume left empty), nocleaner; env EXTRA_ENV=(-e K=V ...)
start_stack() {
  local defects=$1; shift
  local shared=0 seed=1 cleaner=1 o
  for o in "$@"; do
    case $o in shared) shared=1 ;; noseed) seed=0 ;; nocleaner) cleaner=0 ;; esac
  done
  docker network create "${LBL[@]}" "$P-net" >/dev/null
  APPV=() AGENTV=() CLEANV=() WEBV=()
  local spec name path size inodes vol
  if [ "$shared" = 1 ]; then
    docker volume create --driver local --opt type=tmpfs --opt device=tmpfs \
      --opt o=size=2m,nr_inodes=512,uid=1000,gid=1000 "${LBL[@]}" "$P-shared" >/dev/null
    AGENTV+=(-v "$P-shared:/v/shared")
  fi
  for spec in "${VOLSPEC[@]}"; do
    IFS=: read -r name path size inodes <<<"$spec"
    if [ "$shared" = 1 ] && [ "$name" != weblogs ]; then
      vol=$P-shared
    else
      vol=$P-$name
      docker volume create --driver local --opt type=tmpfs --opt device=tmpfs \
        --opt o=size=$size,nr_inodes=$inodes,uid=1000,gid=1000 "${LBL[@]}" "$vol" >/dev/null
      AGENTV+=(-v "$vol:/v/$name")
    fi
    case $name in
      weblogs) WEBV+=(-v "$vol:$path:nocopy") ;;
      downloads | applogs) APPV+=(-v "$vol:$path:nocopy"); CLEANV+=(-v "$vol:$path:nocopy") ;;
      *) APPV+=(-v "$vol:$path:nocopy") ;;
    esac
  done
  if [ "$shared" = 1 ]; then V_SESS=shared V_CACHE=shared V_DL=shared V_DB=shared V_LOGS=shared
  else V_SESS=sessions V_CACHE=cache V_DL=downloads V_DB=db V_LOGS=applogs; fi
  # the agent holds every tmpfs volume for the whole run (a tmpfs volume dies with its
  # last container) and does the fills, as the harness's agent will. Note: once the
  # agent holds an empty volume, Docker 20.10 copies the image's files into it when
  # another container mounts it (copy-up); ":nocopy" keeps the volumes truly empty,
  # so the db is seeded explicitly, from the image, by the agent.
  docker run -d "${LBL[@]}" "${SEC[@]}" --name "$P-agent" --network none "${AGENTV[@]}" \
    "$IMAGE" sleep infinity >/dev/null
  [ "$seed" = 1 ] && agent cp -a /var/lib/datahub/db/. "/v/$V_DB/"
  docker run -d "${LBL[@]}" "${SEC[@]}" --name "$P-app" --network "$P-net" --network-alias app \
    -e "DATAHUB_DEFECTS=$defects" "${EXTRA_ENV[@]}" -p 127.0.0.1::8000 "${APPV[@]}" "$IMAGE" datahub-app >/dev/null
  docker run -d "${LBL[@]}" "${SEC[@]}" --name "$P-web" --network "$P-net" \
    -p 127.0.0.1::8080 "${WEBV[@]}" "$IMAGE" datahub-web >/dev/null
  if [ "$cleaner" = 1 ]; then
    docker run -d "${LBL[@]}" "${SEC[@]}" --name "$P-cleaner" --network "$P-net" \
      -e "DATAHUB_DEFECTS=$defects" "${EXTRA_ENV[@]}" "${CLEANV[@]}" "$IMAGE" datahub-cleaner >/dev/null
  fi
  W=$(docker port "$P-web" 8080/tcp | grep 127.0.0.1 | head -1)
  local i
  for i in $(seq 1 60); do
    if [ "$(code GET /nginx-ready)" = 200 ] && [ "$(code GET /health)" != 502 ] && [ "$(code GET /health)" != 000 ]; then
      if [ "$cleaner" = 0 ] || docker logs "$P-cleaner" 2>&1 | grep -q "cleaner started"; then
        return 0
      fi
    fi
    sleep 0.25
  done
  echo "stack did not become ready"; docker logs "$P-app" 2>&1 | tail -5; return 1
}

stop_stack() {
  local ids
  ids=$(docker ps -aq --filter "label=dhsmoke.run=$P")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  ids=$(docker volume ls -q --filter "label=dhsmoke.run=$P")
  [ -n "$ids" ] && docker volume rm $ids >/dev/null 2>&1
  docker network rm "$P-net" >/dev/null 2>&1
  rm -f "$TMP"/*
  return 0
}

agent() { docker exec "$P-agent" "$@"; }

# fill VOL LEAVE_BYTES: ballast (written as uid 1000) until only LEAVE bytes are free
fill() {
  agent python3 -c '
import os, sys
p, leave = sys.argv[1], int(sys.argv[2])
st = os.statvfs(p)
n = max(0, st.f_bavail * st.f_frsize - leave)
fd = os.open(os.path.join(p, "ballast-%d" % os.getpid()), os.O_WRONLY | os.O_CREAT, 0o600)
buf = b"\0" * 65536
try:
    while n > 0:
        n -= os.write(fd, buf[: min(n, len(buf))])
    if leave == 0:
        while os.write(fd, buf): pass
except OSError:
    pass
os.close(fd)
' "/v/$1" "$2"
}
drain() { agent sh -c "rm -f /v/$1/ballast-*"; }
freebytes() { agent python3 -c 'import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_bavail*s.f_frsize)' "/v/$1"; }
usedpct() { agent python3 -c 'import os,sys; s=os.statvfs(sys.argv[1]); print(int(100*(s.f_blocks-s.f_bavail)/s.f_blocks))' "/v/$1"; }
applog() { agent cat "/v/$V_LOGS/app.log" 2>/dev/null; }

# code METHOD PATH [curl args...]: status code; body in $TMP/body, headers in $TMP/hdr
code() {
  local m=$1 p=$2; shift 2
  curl -sS -m 10 -X "$m" -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' "$@" "http://$W$p" 2>"$TMP/curlerr" || true
}
login() { rm -f "$TMP/jar"; code POST /login -c "$TMP/jar" --data "user=$1&password=$2"; }
home_shows() { code GET / -b "$TMP/jar" >/dev/null; grep -q "$1" "$TMP/body"; }
metric() { curl -sS -m 10 "http://$W/metrics" | awk -v m="datahub_$1_total" '$1 == m {print $2}'; }
body_has() { grep -q -- "$1" "$TMP/body"; }
eq() { [ "$1" = "$2" ]; }
gt() { [ "$1" -gt "$2" ]; }
lt() { [ "$1" -lt "$2" ]; }
applog_has() { applog | grep -q -- "$1"; }
# grep reads everything (no -q): with pipefail, an early exit would SIGPIPE docker logs
stderr_has() { docker logs "$P-app" 2>&1 >/dev/null | grep -- "$1" >/dev/null; }
torn_lines() {
  applog | grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [^ ]+: '
}

scenario() {
  SCEN=$1
  if [ -n "$ONLY" ] && [[ "$SCEN" != *"$ONLY"* ]]; then return 1; fi
  echo "== $SCEN"
  return 0
}

EXTRA_ENV=()
T0=$(date +%s)

# ---------------------------------------------------------------- hardened

if scenario hardened-basics; then
  start_stack "" noseed
  check "db created by the app on an empty db volume" applog_has "created database"
  c=$(code GET /); check "GET / -> 200 datahub, Log in ($c)" eval '[ "$c" = 200 ] && body_has datahub && body_has "Log in"'
  c=$(login alice wonderland); check "login alice -> 302 ($c)" eq "$c" 302
  check "next page: Logged in as alice" home_shows "Logged in as alice"
  check "a session file was written" eval 'agent sh -c "ls /v/sessions/sess_*" >/dev/null'
  c=$(login bob nope); check "bad password -> 401 Invalid login ($c)" eval '[ "$c" = 401 ] && body_has "Invalid login"'
  c=$(code GET /datasets/earthquakes); check "dataset page 200, name, cache miss ($c)" eval '[ "$c" = 200 ] && body_has earthquakes && grep -qi "x-datahub-cache: miss" $TMP/hdr'
  c=$(code GET /datasets/earthquakes); check "dataset page again: cache hit ($c)" eval '[ "$c" = 200 ] && body_has earthquakes && grep -qi "x-datahub-cache: hit" $TMP/hdr'
  c=$(code GET "/datasets/pluto-1/download?format=csv&size=100000"); check "csv download 200, exactly 100000 bytes ($c)" eval '[ "$c" = 200 ] && [ $(stat -c %s $TMP/body) = 100000 ]'
  c=$(code GET "/datasets/pluto-1/download?format=csv&size=100000"); check "same download again: cache hit ($c)" eval '[ "$c" = 200 ] && grep -qi "x-datahub-cache: hit" $TMP/hdr'
  c=$(code GET "/datasets/queens/download?format=geojson"); check "geojson default 2 MiB ($c)" eval '[ "$c" = 200 ] && [ $(stat -c %s $TMP/body) = 2097152 ] && python3 -m json.tool $TMP/body >/dev/null'
  check "downloads_served_total = 3 (miss, hit, geojson)" eq "$(metric downloads_served)" 3
  c=$(code GET /health); check "health ok 200 ($c)" eval '[ "$c" = 200 ] && grep -q "\"status\": \"ok\"" $TMP/body'
  c=$(code GET /nope); check "unknown path 404 ($c)" eq "$c" 404
  check "app.log: access records" applog_has "INFO datahub: GET /nope 404"
  check "app.log: no torn lines" eq "$(torn_lines)" 0
  check "nginx access.log written" eval 'agent grep -q "GET /nope" /v/weblogs/access.log'
  stop_stack
fi

if scenario hardened-sessions-full; then
  start_stack ""
  fill sessions $((40 * 1024))
  c=$(code GET /health); check "sessions 84% used: health degraded, 200 ($c)" eval '[ "$c" = 200 ] && grep -q "\"status\": \"degraded\"" $TMP/body'
  fill sessions 0
  note "sessions free after fill: $(freebytes sessions) bytes"
  c=$(login alice wonderland); check "login on full sessions volume -> 503 ($c)" eq "$c" 503
  check "error page: could not save session: No space left on device" body_has "could not save session: No space left on device"
  check "app.log: ERROR with the cause" eval 'applog | grep "ERROR" | grep -q "No space left on device"'
  check "session_save_failures_total = 1" eq "$(metric session_save_failures)" 1
  c=$(code GET /health); check "health failing 503 naming the sessions path ($c)" eval '[ "$c" = 503 ] && grep -q "sessions /var/lib/datahub/sessions is full" $TMP/body'
  drain sessions
  c=$(login alice wonderland); check "after drain: login 302 ($c)" eq "$c" 302
  check "after drain: Logged in as alice" home_shows "Logged in as alice"
  c=$(code GET /health); check "after drain: health ok ($c)" eq "$c" 200
  stop_stack
fi

if scenario hardened-logs-full; then
  start_stack ""
  fill applogs 0
  for i in $(seq 1 80); do code GET "/?req=$i" >/dev/null; done
  c=$(code GET /)
  check "app still answers with full log volume ($c)" eq "$c" 200
  check "stderr: logging: cannot write ... No space left on device" stderr_has "logging: cannot write /var/log/datahub/app.log: \[Errno 28\] No space left on device; record: "
  d=$(metric log_records_dropped); check "log_records_dropped_total > 0 ($d)" gt "${d:-0}" 0
  check "app.log: no torn lines while full" eq "$(torn_lines)" 0
  drain applogs
  code GET /after-drain >/dev/null
  check "after drain: gap marker 'dropped N log records'" applog_has "WARNING datahub.log: dropped [0-9]* log records while the disk was full"
  check "after drain: record written after the marker" applog_has "GET /after-drain 404"
  check "after drain: no torn lines" eq "$(torn_lines)" 0
  note "$(applog | grep 'dropped' | tail -1)"
  stop_stack
fi

if scenario hardened-downloads-reserve; then
  start_stack "" nocleaner
  fill downloads $((1536 * 1024))
  c=$(code GET "/datasets/pluto-2/download?format=csv&size=65536"); check "64 KiB with 1.5 MiB free: 200 ($c)" eq "$c" 200
  c=$(code GET "/datasets/pluto-3/download?format=csv&size=524288"); check "512 KiB with ~1.4 MiB free (reserve 1.2 MiB): 507 ($c)" eq "$c" 507
  check "507 has Retry-After: 30" grep -qi "^retry-after: 30" "$TMP/hdr"
  check "507 body names the cause" body_has "not enough free space"
  check "downloads_refused_total = 1" eq "$(metric downloads_refused)" 1
  check "downloads_served_total = 1" eq "$(metric downloads_served)" 1
  check "app.log: ERROR for the 507" eval 'applog | grep ERROR | grep -q "507: download refused"'
  check "no partial/temp file left" eval '! agent sh -c "ls -a /v/downloads" | grep -q "pluto-3"'
  fill downloads 0
  c=$(code GET "/datasets/pluto-4/download?format=csv&size=1000"); check "full volume: 507 ($c)" eq "$c" 507
  stop_stack
fi

if scenario hardened-downloads-enospc; then
  # a negative reserve lets the pre-check pass, so generation itself hits ENOSPC
  EXTRA_ENV=(-e DATAHUB_DOWNLOAD_RESERVE_PCT=-100)
  start_stack "" nocleaner
  fill downloads $((256 * 1024))
  c=$(code GET "/datasets/pluto-5/download?format=csv&size=524288"); check "512 KiB into 256 KiB free: 507 from ENOSPC during generation ($c)" eq "$c" 507
  check "507 body names the cause" body_has "No space left on device"
  check "partial temp file removed" eval '! agent ls -a /v/downloads | grep -q pluto-5'
  check "app.log: ERROR with errno 28" eval 'applog | grep ERROR | grep -q "could not generate pluto-5-524288.csv: \[Errno 28\] No space left on device"'
  check "downloads_refused_total = 1, served 0" eval '[ "$(metric downloads_refused)" = 1 ] && [ "$(metric downloads_served)" = 0 ]'
  c=$(code GET "/datasets/pluto-6/download?format=csv&size=65536"); check "space is still there afterwards: 64 KiB served ($c)" eq "$c" 200
  EXTRA_ENV=()
  stop_stack
fi

if scenario hardened-cache; then
  start_stack ""
  fill cache 4096
  c=$(code GET /datasets/staten-island); check "cache full (1 page left): page still 200 with the name ($c)" eval '[ "$c" = 200 ] && body_has staten-island'
  check "app.log: ERROR cannot write cache entry" eval 'applog | grep ERROR | grep -q "cannot write cache entry.*No space left on device"'
  check "no partial entry left" eval '! agent ls /v/cache/staten-island.html 2>/dev/null'
  drain cache
  c=$(code GET /datasets/staten-island); check "after drain: 200 with name ($c)" eval '[ "$c" = 200 ] && body_has staten-island'
  agent sh -c 'head -c 4096 /v/cache/staten-island.html > /v/cache/x && mv /v/cache/x /v/cache/staten-island.html'
  c=$(code GET /datasets/staten-island); check "truncated entry treated as a miss: 200 with name ($c)" eval '[ "$c" = 200 ] && body_has staten-island && grep -qi "x-datahub-cache: miss" $TMP/hdr'
  stop_stack
fi

if scenario hardened-cleaner; then
  EXTRA_ENV=(-e DATAHUB_MAX_AGE=3)
  start_stack ""
  for i in $(seq 1 12); do code GET "/datasets/pl-$i/download?format=csv&size=524288" >/dev/null; done
  sleep 0.5
  u=$(usedpct downloads); check "12 x 512 KiB into 8 MiB: cleaner keeps usage <= 50% ($u%)" eval '[ "$u" -le 50 ]'
  check "cleaner.log: pressure deletions" eval 'agent grep -q "disk pressure on /var/lib/datahub/downloads" /v/applogs/cleaner.log'
  sleep 4
  n=$(agent sh -c 'ls /v/downloads | wc -l'); check "files older than DATAHUB_MAX_AGE=3 deleted ($n left)" eq "$n" 0
  check "cleaner.log: age deletions" eval 'agent grep -q "older than 3s" /v/applogs/cleaner.log'
  EXTRA_ENV=()
  stop_stack
fi

if scenario hardened-db-full; then
  start_stack "" nocleaner
  fill db 0
  c=$(login alice wonderland); check "db volume full: login (read only) 302 ($c)" eq "$c" 302
  c=$(code GET "/datasets/eq/download?format=csv&size=10000"); check "download served 200 ($c)" eq "$c" 200
  check "app.log: ERROR cannot update counter (kept in memory)" eval 'applog | grep ERROR | grep -q "cannot update counter.*full"'
  c=$(code GET /metrics); check "metrics 200 and counter exact from memory: 1 ($c)" eval '[ "$c" = 200 ] && [ "$(metric downloads_served)" = 1 ]'
  drain db
  code GET "/datasets/eq/download?format=csv&size=10000" >/dev/null
  check "after drain: pending increment committed, counter 2 in SQLite" eval '[ "$(agent python3 -c "import sqlite3; print(sqlite3.connect(\"/v/db/datahub.sqlite\").execute(\"select sum(count) from downloads\").fetchone()[0])")" = 2 ]'
  stop_stack
fi

if scenario hardened-shared-disk; then
  start_stack "" shared nocleaner
  fill shared $((400 * 1024))
  c=$(code GET "/datasets/big-1/download?format=csv&size=262144"); check "shared 2 MiB disk, 400 KiB free: 256 KiB download refused 507 ($c)" eq "$c" 507
  c=$(login alice wonderland); check "login still works on the shared disk ($c)" eq "$c" 302
  check "next page: Logged in as alice" home_shows "Logged in as alice"
  check "app.log still written" applog_has "POST /login 302"
  stop_stack
fi

# ---------------------------------------------------------------- defects

if scenario defect-unknown; then
  out=$(docker run --rm "${LBL[@]}" "${SEC[@]}" -e DATAHUB_DEFECTS=silent_sessions,bogus "$IMAGE" datahub-app 2>&1); rc=$?
  check "unknown defect: exit 2 ($rc)" eq "$rc" 2
  check "message: datahub: unknown defect 'bogus'; known: ..." eval '[[ "$out" == *"datahub: unknown defect '"'"'bogus'"'"'; known: silent_sessions"* ]]'
  out=$(docker run --rm "${LBL[@]}" "${SEC[@]}" -e DATAHUB_DEFECTS=bogus "$IMAGE" datahub-cleaner 2>&1); rc=$?
  check "cleaner too: exit 2 ($rc)" eq "$rc" 2
fi

if scenario defect-silent_sessions; then
  start_stack silent_sessions
  fill sessions 0
  c=$(login alice wonderland); check "full sessions: login still 302 ($c)" eq "$c" 302
  check "next page: logged out (Log in)" eval 'home_shows "Log in" && ! body_has "Logged in as"'
  check "nothing in app.log names the cause" eval '! applog_has "No space left"'
  check "nothing on stderr names the cause" eval '! stderr_has "No space left"'
  note "session files: $(agent sh -c 'ls -ln /v/sessions | grep sess_' | awk '{print $5, $9}' | tr '\n' ' ')"
  stop_stack
fi

if scenario defect-log_blackhole; then
  start_stack log_blackhole
  fill applogs 0
  for i in $(seq 1 80); do code GET "/?req=$i" >/dev/null; done
  check "nothing on stderr names the cause" eval '! stderr_has "No space left" && ! stderr_has "Logging error"'
  check "log_records_dropped_total = 0 (nobody counts)" eq "$(metric log_records_dropped)" 0
  drain applogs
  code GET /after-drain >/dev/null
  check "no gap marker after drain" eval '! applog_has "dropped"'
  note "torn lines in app.log: $(torn_lines); last line: $(applog | tail -c 120 | tr '\n' '|')"
  stop_stack
fi

if scenario defect-unbounded_downloads; then
  start_stack unbounded_downloads shared nocleaner
  fill shared $((400 * 1024))
  c1=$(code GET "/datasets/big-1/download?format=csv&size=262144")
  c2=$(code GET "/datasets/big-2/download?format=csv&size=262144")
  check "no reserve: first 256 KiB served, second fails 500 ($c1, $c2)" eval '[ "$c1" = 200 ] && [ "$c2" = 500 ]'
  check "partial file left behind" eval '[ "$(agent stat -c %s /v/shared/big-2-262144.csv)" -lt 262144 ]'
  c=$(login alice wonderland); check "core flow broken: login fails ($c)" eval '[ "$c" != 302 ]'
  stop_stack
fi

if scenario defect-lazy_cleanup; then
  start_stack lazy_cleanup
  codes=""
  for i in $(seq 1 12); do codes="$codes $(code GET "/datasets/pl-$i/download?format=csv&size=524288")"; done
  sleep 1
  u=$(usedpct downloads); check "cleaner ignores pressure: usage stays > 50% ($u%)" gt "$u" 50
  note "download codes:$codes"
  check "cleaner says it runs every 3600s" eval 'docker logs $P-cleaner 2>&1 | grep -q "every 3600s"'
  stop_stack
fi

if scenario defect-miscounted_downloads; then
  for d in "" miscounted_downloads; do
    start_stack "$d" nocleaner
    code GET "/datasets/eq/download?format=csv&size=10000" >/dev/null
    code GET "/datasets/eq/download?format=csv&size=10000" >/dev/null
    code GET "/datasets/eq/download?format=csv&size=10000" >/dev/null
    n=$(metric downloads_served)
    if [ -z "$d" ]; then check "hardened: 3 served (1 miss + 2 hits) -> counter 3 ($n)" eq "$n" 3
    else check "miscounted: 3 served -> counter 1 ($n)" eq "$n" 1; fi
    stop_stack
  done
fi

if scenario defect-poisoned_cache; then
  start_stack poisoned_cache
  fill cache 4096
  c=$(code GET /datasets/staten-island); check "cache full (1 page left): 500 ($c)" eq "$c" 500
  check "app.log: ERROR names the cache write" eval 'applog | grep ERROR | grep -q "Unable to write in the cache directory.*No space left"'
  s=$(agent stat -c %s /v/cache/staten-island.html); check "truncated entry left: $s bytes" eval '[ "$s" -gt 0 ] && [ "$s" -lt 15000 ]'
  drain cache
  c=$(code GET /datasets/staten-island); check "after drain: 200 but the dataset name is missing ($c)" eval '[ "$c" = 200 ] && ! body_has staten-island'
  stop_stack
fi

if scenario defect-blind_health; then
  start_stack blind_health
  fill sessions 0
  c=$(code GET /health); check "sessions full, health still 200 ok ($c)" eval '[ "$c" = 200 ] && grep -q "\"status\": \"ok\"" $TMP/body'
  stop_stack
fi

if scenario defect-streamed_exports; then
  start_stack streamed_exports nocleaner
  c=$(code GET "/datasets/s-1/download?format=csv&size=131072"); check "space free: streamed 200, whole ($c)" eval '[ "$c" = 200 ] && [ $(stat -c %s $TMP/body) = 131072 ]'
  fill downloads 0
  c=$(code GET "/datasets/s-2/download?format=csv&size=131072"); n=$(stat -c %s "$TMP/body")
  check "downloads full: 200, body cut short ($c, $n of 131072 bytes)" eval '[ "$c" = 200 ] && [ "$n" -lt 131072 ]'
  check "curl saw the cut (transfer closed with bytes remaining)" eval 'grep -qi "remaining\|partial\|closed" $TMP/curlerr'
  check "no partial file left behind" eval '! agent sh -c "ls /v/downloads" | grep -q "s-2"'
  check "downloads_served_total = 1 (the cut one is not counted)" eq "$(metric downloads_served)" 1
  stop_stack
fi

if scenario defect-torn_logs; then
  start_stack torn_logs nocleaner
  for i in $(seq 1 5); do code GET "/?before=$i" >/dev/null; done
  fill applogs 0
  for i in $(seq 1 80); do code GET "/?full=$i" >/dev/null; done
  check "stderr: Python's stock 'Logging error' report" stderr_has "Logging error"
  drain applogs
  code GET /after-drain >/dev/null
  check "no gap marker after drain" eval '! applog_has "dropped"'
  n=$(applog | grep -cE '.[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} (INFO|WARNING|ERROR) ')
  check "a torn line in app.log (a partial record glued to the next): $n" gt "$n" 0
  check "records sent while full are missing" eval '! applog_has "full=80 "'
  stop_stack
fi

echo
echo "smoke: $PASS passed, $FAIL failed in $(($(date +%s) - T0))s"
for f in "${FAILED[@]}"; do echo "  FAILED: $f"; done
[ "$FAIL" = 0 ]
