#!/usr/bin/env bash
# Ground truth for the Redis target, measured by hand (docker + redis-cli, no fulldisk):
# /var/lib/redis (the append-only file) on a 2 MiB tmpfs disk owned by redis, filled with
# dd as redis; while full, SETs of 16 KiB of fresh content through redis-cli in the
# container (each bounded by `timeout 20`), freed, then every acknowledged SET is read back
# (also after a restart, to see what the append-only file really kept). Redis's log file
# is read where Debian puts it, /var/log/redis/redis-server.log.
NAME=redis IMAGE=fulldisk/corpus-redis:bookworm
source "$(dirname "$0")/../truthlib.sh"
build_image
mkvol data 2m 100:101; seed data /var/lib/redis
C=$(docker run -d "${LABELS[@]}" -v "$RUN-data:/var/lib/redis" "$IMAGE")
wait_for 30 docker exec "$C" redis-cli ping
LOG=/var/log/redis/redis-server.log
write() {  # write PHASE KEY: SET KEY to 16 KiB of fresh content, then read its digest back
  local v; v="$2-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')-$(head -c 12288 /dev/urandom | base64 -w0)"
  eval "SHA_$2=$(printf '%s' "$v" | sha256sum | cut -d' ' -f1)"
  local sha="SHA_$2"
  event "$1" sent "$(jq -n --arg k "$2" --arg sha "${!sha}" --argjson bytes "${#v}" '{label: ("value of " + $k), bytes: $bytes, sha256: $sha}')"
  execp "$1" "SET $2" "$C" sh -c "printf '%s' '$v' | redis-cli -x SET $2"
  readback "$1" "$2"
}
readback() {  # readback PHASE KEY: the stored value's digest (compare with the sent one)
  execp "$1" "GET $2 | sha256sum" "$C" sh -c "redis-cli --no-raw GET $2 >/dev/null && printf '%s' \"\$(redis-cli GET $2)\" | sha256sum | cut -d' ' -f1"
}
write steady steady
fill data 100:101
for i in 1 2 3; do write full "full$i"; done
readback full steady
execp full "INFO persistence" "$C" sh -c "redis-cli INFO persistence | grep -E 'aof_last_write_status|aof_last_bgrewrite_status|rdb_last_bgsave_status'"
logs_json full "$C" "$LOG"
free data
# Poll (at most 10 s, the recovery bound) until a SET is accepted again, then the real write.
end=$(( $(date +%s) + 10 ))
until docker exec "$C" redis-cli SET recovered yes | grep -qx OK || [ "$(date +%s)" -ge "$end" ]; do sleep 0.1; done
event after_free recovered "$(jq -n '{label: "first SET accepted after the free (polled, bound 10 s)"}')"
write after_free after
for i in 1 2 3; do readback after_free "full$i"; done
readback after_free steady
execp after_free "INFO persistence" "$C" sh -c "redis-cli INFO persistence | grep -E 'aof_last_write_status|aof_last_bgrewrite_status|rdb_last_bgsave_status'"
event after_free container "$(jq -n --arg r "$(restarts "$C")" '{restart_count_status_exit: $r}')"
logs_json after_free "$C" "$LOG"
# Durability, not a verdict input: restart on the same (held) disk, read everything back.
docker restart "$C" >/dev/null
wait_for 30 docker exec "$C" redis-cli ping
for k in steady full1 full2 full3 after; do readback after_restart "$k"; done
logs_json after_restart "$C" "$LOG"
finish "$(jq -n --arg s "$SHA_steady" --arg f1 "$SHA_full1" --arg f2 "$SHA_full2" --arg f3 "$SHA_full3" --arg a "$SHA_after" \
  '{volume: {name: "data", size: "2MiB", owner: "100:101", mount: "/var/lib/redis"}, value_bytes: "16 KiB + key and nonce", sent_sha256: {steady: $s, full1: $f1, full2: $f2, full3: $f3, after: $a}}')"
