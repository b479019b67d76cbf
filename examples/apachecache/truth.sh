#!/usr/bin/env bash
# Ground truth for the Apache cache target, measured by hand (docker + curl, no fulldisk).
# 1. Scenario `cache`: mod_cache_disk's CacheRoot on an 8 MiB tmpfs disk owned by www-data,
#    shared with htcacheclean (-d1 -n -t -l 4M, as www-data); filled with dd as www-data.
#    While full: the stored page, new pages (cache misses), a download, three marked
#    requests; freed; every page asked while full asked again, new pages stored again.
# 2. Scenario `cleanup-under-load`: a fresh disk and fresh containers; downloads (64, 128 or
#    256 KiB, each a new URL) at 20/s for 4 s while the disk's usage is sampled every 0.1 s,
#    then the disk watched (at most 75 s) until htcacheclean brings it back under its limit.
# Apache's logs are read where Debian puts them, /var/log/apache2.
NAME=apachecache IMAGE=fulldisk/corpus-apachecache:bookworm
source "$(dirname "$0")/../truthlib.sh"
build_image
ROOT=/var/cache/apache2/mod_cache_disk
CLEANER='htcacheclean -d1 -n -t -p /var/cache/apache2/mod_cache_disk -l 4M -P /tmp/htcacheclean.pid && for i in $(seq 50); do [ -s /tmp/htcacheclean.pid ] && break; sleep 0.1; done && echo "htcacheclean running, pid $(cat /tmp/htcacheclean.pid)" && exec tail --pid="$(cat /tmp/htcacheclean.pid)" -f /dev/null'
start() {  # start VOLUME: the web and cleaner containers on the volume -> $WEB $CL $U
  CL=$(docker run -d "${LABELS[@]}" --user 33:33 -v "$RUN-$1:$ROOT" "$IMAGE" sh -c "$CLEANER")
  WEB=$(docker run -d "${LABELS[@]}" -p 127.0.0.1::80 -v "$RUN-$1:$ROOT" "$IMAGE")
  U="http://127.0.0.1:$(port_of "$WEB" 80)"
  wait_for 30 curl -sf --noproxy '*' -o /dev/null "$U/page.html?ready"
  wait_for 30 sh -c "docker logs '$CL' | grep -q 'htcacheclean running'"
}
get() {  # get PHASE LABEL PATH: one GET with the cache's own header (X-Cache: HIT/MISS)
  local w rc
  set +e
  w=$(curl -sS --noproxy '*' --max-time 20 -o "$BODY" -D "$BODY.h" \
        -w '{"status": %{http_code}, "seconds": %{time_total}, "bytes_received": %{size_download}}' "$U$3" 2>"$BODY.e")
  rc=$?
  set -e
  event "$1" http "$(jq -n --argjson w "${w:-{\}}" --argjson rc "$rc" --arg lbl "$2" --arg path "$3" \
     --arg xc "$(grep -i '^x-cache:' "$BODY.h" | cut -d' ' -f2- | tr -d '\r' || true)" \
     --arg len "$(grep -i '^content-length:' "$BODY.h" | cut -d' ' -f2- | tr -d '\r' || true)" \
     --argjson whole "$(grep -q 'end of page' "$BODY" && echo true || echo false)" \
     --arg sha "$(sha256sum < "$BODY" | cut -d' ' -f1)" --arg err "$(cat "$BODY.e")" \
     '$w + {label: $lbl, path: $path, curl_exit: $rc, curl_error: $err, x_cache: $xc,
            content_length: $len, has_end_of_page: $whole, body_sha256: $sha}')"
  rm -f "$BODY.h" "$BODY.e"
}
nonce() { head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
usage() {  # usage VOLUME -> {"bytes_free":..,"bytes_total":..} through the web container
  docker exec "$WEB" stat -f -c '{"bytes_free": %a, "block": %S, "blocks": %b}' "$ROOT" \
    | jq -c '{bytes_free: (.bytes_free * .block), bytes_total: (.blocks * .block)}'
}
LOGS=(/var/log/apache2/error.log /var/log/apache2/access.log)

# --- 1. scenario `cache`: the cache's disk full -------------------------------------------
mkvol cache 8m 33:33; seed cache "$ROOT"
start cache
get steady "page (first: a miss)" /page.html
get steady "page (again: a hit)" /page.html
S1=$(nonce); get steady "new page $S1" "/page.html?v=$S1"
get steady "download 256 KiB" "/files/262144.bin?seq=1"
fill cache 33:33
get full "page (stored before the fill)" /page.html
F=()
for i in 1 2 3; do F+=("$(nonce)"); get full "new page ${F[-1]}" "/page.html?v=${F[-1]}"; done
get full "download 256 KiB (new)" "/files/262144.bin?seq=2"
get full "download 256 KiB (stored before the fill)" "/files/262144.bin?seq=1"
for i in 1 2 3; do get full "mark $i" "/fulldisk-mark-truth-$i"; done
event full disk "$(jq -n --argjson df "$(df_json cache)" '{volume: "cache", disk: $df}')"
logs_json full "$WEB" "${LOGS[@]}"
free cache
for n in "${F[@]}"; do get after_free "page asked while full, again: $n" "/page.html?v=$n"; done
for n in "${F[@]}"; do get after_free "page asked while full, third time: $n" "/page.html?v=$n"; done
A=$(nonce); get after_free "new page $A" "/page.html?v=$A"; get after_free "new page $A (again)" "/page.html?v=$A"
get after_free "download asked while full, again" "/files/262144.bin?seq=2"
get after_free "page" /page.html
event after_free container "$(jq -n --arg w "$(restarts "$WEB")" --arg c "$(restarts "$CL")" '{web_restart_count_status_exit: $w, cleaner_restart_count_status_exit: $c}')"
logs_json after_free "$WEB" "${LOGS[@]}"
logs_json after_free "$CL"
docker rm -f "$WEB" "$CL" >/dev/null

# --- 2. scenario `cleanup-under-load`: downloads at 20/s for 4 s, htcacheclean running -----
mkvol load 8m 33:33; seed load "$ROOT"
start load
get load_steady "page" /page.html
# The load runs as fast as the machine allows: curl alone in the loop, one line per download
# (recorded as one event afterwards); usage sampled every 0.1 s inside the web container.
LOAD=$(mktemp)
docker exec "$WEB" sh -c "end=\$((\$(date +%s) + 7)); while [ \$(date +%s) -lt \$end ]; do echo \"\$(date +%s.%N) \$(stat -f -c '%a %S %b' $ROOT)\"; sleep 0.1; done" > "$LOAD.usage" &
SAMPLER=$!
SIZES=(65536 131072 262144)
t0=${EPOCHREALTIME/./}
for i in $(seq 0 80); do  # 20/s for 4 s: 81 downloads, download i due at t0 + i/20 s
  wait_us=$(( t0 + i * 50000 - ${EPOCHREALTIME/./} ))
  [ "$wait_us" -gt 0 ] && sleep "$(printf '0.%06d' "$wait_us")"  # pacing a rate
  s=$EPOCHREALTIME
  curl -sS --noproxy '*' --max-time 20 -o /dev/null -w "$s $i %{http_code} %{size_download} %{time_total} %header{x-cache}\n" \
    "$U/files/${SIZES[RANDOM % 3]}.bin?seq=load$i" >> "$LOAD" 2>&1 || true
done
t1=${EPOCHREALTIME/./}
wait "$SAMPLER"
T0US=$(python3 -c "print(int($T0 * 1e6))")
event load downloads "$(jq -R -s --argjson t0 "$T0US" --argjson took "$(( t1 - t0 ))" '
  split("\n") | map(select(length > 0) | split(" ")
    | {t: (((.[0] | sub("\\."; "") | tonumber) - $t0) / 1e6), n: (.[1]|tonumber), status: (.[2]|tonumber),
       bytes: (.[3]|tonumber), seconds: (.[4]|tonumber), x_cache: (.[5:] | join(" "))})
  | {label: "81 downloads due at 20/s", took_seconds: ($took / 1e6), served: (map(select(.status == 200)) | length),
     bytes_served: (map(.bytes) | add), downloads: .}' "$LOAD")"
event load samples "$(jq -R -s --argjson t0 "$T0US" '
  split("\n") | map(select(length > 0) | split(" ")
    | {t: (((.[0] | sub("\\."; "") | .[0:16] | tonumber) - $t0) / 1e6), bytes_free: ((.[1]|tonumber) * (.[2]|tonumber)),
       bytes_total: ((.[3]|tonumber) * (.[2]|tonumber))}
    | . + {used_pct: (1000 * (1 - .bytes_free / .bytes_total) | floor / 10)})
  | {label: "usage of the cache disk every 0.1 s (sampled in the web container)", peak_used_pct: (map(.used_pct) | max),
     full_samples: (map(select(.bytes_free == 0)) | length), samples: .}' "$LOAD.usage")"
rm -f "$LOAD" "$LOAD.usage"
# When does the cleaner do its work? Usage every second (at most 75 s) until it drops by 1 MiB.
end=$(( $(date +%s) + 75 )); prev=""; dropped=null; series=()
until [ "$(date +%s)" -ge "$end" ]; do
  used=$(usage | jq '.bytes_total - .bytes_free'); series+=("[$(now),$used]")
  if [ -n "$prev" ] && [ "$used" -le $(( prev - 1048576 )) ]; then dropped=$(now); break; fi
  prev=$used
  sleep 1  # poll interval of a deadline-bounded wait
done
event after_load cleaner_ran "$(jq -n --argjson at "$dropped" --argjson s "[$(IFS=,; echo "${series[*]}")]" --argjson df "$(usage)" \
  '{label: "first drop of usage by >= 1 MiB after the load (htcacheclean at work; polled, bound 75 s)", at: $at, used_bytes_series: $s, disk: $df}')"
get after_load "page" /page.html
event after_load container "$(jq -n --arg w "$(restarts "$WEB")" --arg c "$(restarts "$CL")" '{web_restart_count_status_exit: $w, cleaner_restart_count_status_exit: $c}')"
logs_json after_load "$WEB" /var/log/apache2/error.log

finish "$(jq -n '{volumes: {cache: {size: "8MiB", owner: "33:33", mount: "/var/cache/apache2/mod_cache_disk", role: "bulk", filled: true},
                  load: {size: "8MiB", owner: "33:33", mount: "/var/cache/apache2/mod_cache_disk", note: "a fresh disk for the cleanup-under-load measurement"}},
                  cleaner: "htcacheclean -d1 -n -t -l 4M (every minute, the shortest -d interval)",
                  load: "81 downloads at 20/s for 4 s, sizes 64/128/256 KiB, each a new URL"}')"
