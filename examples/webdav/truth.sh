#!/usr/bin/env bash
# Ground truth for the WebDAV target, measured by hand (docker + curl, no fulldisk):
# a 1 MiB tmpfs disk at /srv/dav owned by www-data, filled with dd as www-data, PUTs of
# 64 KiB (16 pages) while full, freed, then every acknowledged PUT is read back.
NAME=webdav IMAGE=fulldisk/corpus-webdav:bookworm
source "$(dirname "$0")/../truthlib.sh"
build_image
mkvol dav 1m 33:33
seed dav /srv/dav
C=$(docker run -d "${LABELS[@]}" -p 127.0.0.1::80 -v "$RUN-dav:/srv/dav" "$IMAGE")
P=$(port_of "$C" 80); U="http://127.0.0.1:$P"
wait_for 30 curl -s --noproxy '*' -o /dev/null "$U/"  # any answer (403: no listing)
put_get() {  # put_get PHASE NAME: PUT 64 KiB of fresh content, then GET it back
  head -c 65536 /dev/urandom > "$BODY.put"
  event "$1" sent "$(jq -n --arg n "$2" --arg sha "$(sha256sum < "$BODY.put" | cut -d' ' -f1)" \
    '{label: ("content of " + $n), bytes: 65536, sha256: $sha}')"
  http "$1" "PUT $2" -X PUT --data-binary "@$BODY.put" "$U/$2"
  http "$1" "GET $2" "$U/$2"
  rm -f "$BODY.put"
}
put_get steady steady.bin
fill dav 33:33
for i in 1 2 3; do put_get full "full-$i.bin"; done
http full "GET steady.bin (written before the fill)" "$U/steady.bin"
logs_json full "$C" /var/log/lighttpd/error.log
free dav
put_get after_free after.bin
for i in 1 2 3; do http after_free "GET full-$i.bin (PUT while full)" "$U/full-$i.bin"; done
http after_free "GET steady.bin" "$U/steady.bin"
event after_free container "$(jq -n --arg r "$(restarts "$C")" '{restart_count_status_exit: $r}')"
logs_json after_free "$C" /var/log/lighttpd/error.log /var/log/lighttpd/access.log
finish '{"volume": {"name": "dav", "size": "1MiB", "owner": "33:33", "mount": "/srv/dav"}, "put_bytes": 65536}'
