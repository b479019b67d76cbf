#!/usr/bin/env bash
# Ground truth for the InfluxDB target, measured by hand (docker + curl, no fulldisk):
# /var/lib/influxdb (meta, shards, series files, write-ahead log) on an 8 MiB tmpfs disk owned
# by influxdb, filled with dd as influxdb. While full: POST /write of one point holding 16 KiB
# of fresh content, each read back from /query, until the server refuses (bounded by 8 MiB of
# fresh content and 20 s: the slack), then a few more. Freed; writes polled for 10 s (the
# recovery bound), then every 5 s for 30 s more; every acknowledged write read back. Durability
# (not a verdict input): restart on the same held disk, read everything back, write again.
NAME=influxdb IMAGE=fulldisk/corpus-influxdb:bookworm
source "$(dirname "$0")/../truthlib.sh"
build_image
mkvol data 8m 100:101; seed data /var/lib/influxdb
C=$(docker run -d "${LABELS[@]}" -p 127.0.0.1::8086 -v "$RUN-data:/var/lib/influxdb" "$IMAGE")
P=$(port_of "$C" 8086); U="http://127.0.0.1:$P"
wait_for 30 docker exec "$C" curl -sf -o /dev/null http://127.0.0.1:8086/ping
declare -A SHA
ACKED=()
body() {  # body NONCE: 16 KiB of fresh content, lines naming the nonce (as fulldisk's probes)
  python3 - "$1" <<'PY'
import hashlib, sys
n = sys.argv[1]; out = []; total = 0; i = 0
while total < 16384:
    line = f"fulldisk {n} {i:07d} " + hashlib.sha256(f"{n}:{i}".encode()).hexdigest() + "\n"
    out.append(line); total += len(line); i += 1
d = "".join(out)[:16384]
sys.stdout.write(d[:-1] + "x" if d[-1] in "\n " else d)
PY
}
write() {  # write PHASE KEY: POST /write (curl in the container), 204 = acknowledged
  local b; b=$(body "$2")
  SHA[$2]=$(printf '%s' "$b" | sha256sum | cut -d' ' -f1)
  event "$1" sent "$(jq -n --arg k "$2" --arg sha "${SHA[$2]}" --argjson bytes "${#b}" '{label: ("point " + $k), bytes: $bytes, sha256: $sha}')"
  execp "$1" "POST /write $2" "$C" sh -c "printf %s '$b' | tr '\n' '~' | sed 's/^/probe run=\"$2\",v=\"/; s/\$/\"/' | curl -sS --fail-with-body -w '%{http_code}' --data-binary @- 'http://127.0.0.1:8086/write?db=probe'"
  WROTE=$(jq -r '.exit' <<<"$(tail -n1 "$EVENTS")")
  [ "$WROTE" = 0 ] && grep -q 204 <<<"$LAST_OUT" && ACKED+=("$2")
  readback "$1" "$2"
}
readback() {  # readback PHASE KEY: the point's content from /query, as a digest
  execp "$1" "GET /query $2 | sha256sum" "$C" sh -c "curl -sS --fail-with-body -G 'http://127.0.0.1:8086/query?db=probe' --data-urlencode \"q=SELECT v FROM probe WHERE run='$2'\" | jq -j '.results[0].series[0].values[0][1]' | tr '~' '\n' | sha256sum | cut -d' ' -f1"
  local same=false; [ "$LAST_OUT" = "${SHA[$2]}" ] && same=true
  event "$1" readback "$(jq -n --arg k "$2" --argjson same "$same" '{label: ("point " + $k), same_as_sent: $same}')"
}
write steady steady1
write steady steady2
http steady "GET /ping" "$U/ping"
fill data 100:101
# Write pressure until refused: at most 8 MiB of fresh content (the volume) and 20 s.
end=$(( $(date +%s) + 20 )); sent=0; i=0; first_refusal=""
while [ "$sent" -lt $((8 * 1024 * 1024)) ] && [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1)); n=${#ACKED[@]}
  write full "full$i"; sent=$((sent + 16384))
  if [ "${#ACKED[@]}" -eq "$n" ]; then first_refusal=$i; break; fi
done
acked_full=$(( i - (first_refusal ? 1 : 0) ))
event full slack "$(jq -n --argjson acked "$acked_full" --argjson first "${first_refusal:-null}" \
  --argjson df "$(df_json data)" \
  '{label: "acknowledged after the volume reported 0 bytes free, before the first refusal", writes: $acked, fresh_bytes: ($acked * 16384), first_refused_write: $first, disk: $df}')"
for j in 1 2; do write full "fullmore$j"; done
readback full steady1
http full "GET /ping" "$U/ping"
http full "GET /query (count)" -G "$U/query?db=probe" --data-urlencode 'q=SELECT count(v) FROM probe'
logs_json full "$C"
free data
# Poll (at most 10 s, the recovery bound) for a write acknowledged again.
end=$(( $(date +%s) + 10 )); k=0; recovered=false
while [ "$(date +%s)" -lt "$end" ]; do
  k=$((k + 1)); n=${#ACKED[@]}
  write after_free "after$k"
  if [ "${#ACKED[@]}" -gt "$n" ]; then recovered=true; break; fi
done
event after_free recovered "$(jq -n --argjson ok "$recovered" --argjson tries "$k" '{label: "a write acknowledged again within 10 s of the free", acknowledged: $ok, tries: $tries}')"
for key in steady1 steady2; do readback after_free "$key"; done
http after_free "GET /ping" "$U/ping"
# Still refusing long after the bound? One write every 5 s for 30 s more (pacing, not waiting).
late_ok=false
for k in 1 2 3 4 5 6; do
  sleep 5
  n=${#ACKED[@]}; write after_free "late$k"
  if [ "${#ACKED[@]}" -gt "$n" ]; then late_ok=true; break; fi
done
event after_free late "$(jq -n --argjson ok "$late_ok" --argjson tries "$k" '{label: "a write acknowledged between 10 s and 40 s after the free", acknowledged: $ok, tries: $tries}')"
event after_free container "$(jq -n --arg r "$(restarts "$C")" --argjson df "$(df_json data)" '{restart_count_status_exit: $r, disk: $df}')"
logs_json after_free "$C"
# Durability, not a verdict input: restart on the same (held) disk, read back, write again.
docker restart "$C" >/dev/null
wait_for 30 docker exec "$C" curl -sf -o /dev/null http://127.0.0.1:8086/ping
for key in steady1 steady2 full1 late1; do readback after_restart "$key"; done
write after_restart restarted
logs_json after_restart "$C"
finish "$(jq -n --arg acked "${ACKED[*]}" \
  '{volume: {name: "data", size: "8MiB", owner: "100:101", mount: "/var/lib/influxdb"},
    point_bytes: "16 KiB of fresh content in one string field (newlines sent as ~)",
    acknowledged: ($acked | split(" "))}')"
