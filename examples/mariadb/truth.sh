#!/usr/bin/env bash
# Ground truth for the MariaDB target, measured by hand (docker + the mariadb client, no
# fulldisk): the datadir on a 32 MiB tmpfs disk owned by mysql, filled with dd as mysql;
# while full, INSERT ... COMMIT of 64 KiB rows (fresh content each) through `mariadb` in the
# container, every command bounded by `timeout 20` (a hang is recorded, never waited out);
# freed; then every committed row is read back with SELECT.
NAME=mariadb IMAGE=fulldisk/corpus-mariadb:bookworm
source "$(dirname "$0")/../truthlib.sh"
build_image
mkvol data 32m 100:101; seed data /var/lib/mysql
C=$(docker run -d "${LABELS[@]}" -v "$RUN-data:/var/lib/mysql" "$IMAGE")
wait_for 60 docker exec "$C" mariadb -e 'select 1'
write() {  # write PHASE KEY: INSERT a 64 KiB row tagged KEY-nonce and COMMIT; then SELECT it
  local tag; tag="$2-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  eval "TAG_$2=$tag"
  execp "$1" "insert+commit $2" "$C" mariadb -e \
    "START TRANSACTION; INSERT INTO probe.t (v) VALUES (CONCAT('$tag:', REPEAT(SHA2('$tag', 256), 1024))); COMMIT;"
  execp "$1" "select $2" "$C" mariadb -N -e "SELECT LENGTH(v), LEFT(v, 40) FROM probe.t WHERE v LIKE '$tag:%'"
}
readback() {  # readback PHASE KEY: SELECT a row written earlier
  local v="TAG_$2"
  execp "$1" "select $2 (written earlier)" "$C" mariadb -N -e "SELECT LENGTH(v), LEFT(v, 40) FROM probe.t WHERE v LIKE '${!v}:%'"
}
write steady steady
fill data 100:101
for i in 1 2 3; do write full "full$i"; done
readback full steady
execp full "select 1 (server answers)" "$C" mariadb -N -e 'select 1'
logs_json full "$C"
free data
write after_free after
for i in 1 2 3; do readback after_free "full$i"; done
readback after_free steady
event after_free container "$(jq -n --arg r "$(restarts "$C")" '{restart_count_status_exit: $r}')"
logs_json after_free "$C"
# Not part of any verdict's "no restart" rule, but of durability: start the same container
# again on the same (held) disk and read back every row that was committed.
docker start "$C" >/dev/null
wait_for 60 docker exec "$C" mariadb -e 'select 1' || true
for k in steady full1 full2 full3 after; do readback after_restart "$k"; done
event after_restart container "$(jq -n --arg r "$(restarts "$C")" '{restart_count_status_exit: $r}')"
logs_json after_restart "$C"
finish '{"volume": {"name": "data", "size": "32MiB", "owner": "100:101", "mount": "/var/lib/mysql"}, "row_bytes": 65536, "exec_bound_seconds": 20}'
