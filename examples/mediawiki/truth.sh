#!/usr/bin/env bash
# Ground truth for the MediaWiki target, measured by hand (docker + curl, no fulldisk):
# SQLite folder, uploads and cache each on a tmpfs disk owned by www-data; the SQLite
# disk is filled with dd as www-data, then edits (16 KiB of fresh text each, through
# api.php with the edit token) are tried while full, the disk is freed, and every
# acknowledged edit is read back with action=raw. Apache's logs are read where they are.
NAME=mediawiki IMAGE=fulldisk/corpus-mediawiki:bookworm
source "$(dirname "$0")/../truthlib.sh"
build_image
mkvol db 4m 33:33; seed db /var/lib/mediawiki-db
mkvol uploads 1m 33:33; seed uploads /var/lib/mediawiki/images
mkvol cache 4m 33:33; seed cache /var/cache/mediawiki
C=$(docker run -d "${LABELS[@]}" -p 127.0.0.1::80 -v "$RUN-db:/var/lib/mediawiki-db" \
      -v "$RUN-uploads:/var/lib/mediawiki/images" -v "$RUN-cache:/var/cache/mediawiki" "$IMAGE")
P=$(port_of "$C" 80); U="http://127.0.0.1:$P/mediawiki"
wait_for 60 curl -sf --noproxy '*' -o /dev/null "$U/api.php"
edit() {  # edit PHASE TITLE: token, then an edit of 16 KiB of fresh text, then action=raw
  local nonce text
  nonce=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
  text="probe $nonce $(head -c 12288 /dev/urandom | base64 -w 100)"
  printf '%s' "$text" > "$BODY.text"
  event "$1" sent "$(jq -n --arg n "$2" --arg sha "$(sha256sum < "$BODY.text" | cut -d' ' -f1)" \
    --arg nonce "$nonce" --argjson bytes "${#text}" \
    '{label: ("text of " + $n), nonce: $nonce, bytes: $bytes, sha256: $sha}')"
  http "$1" "token" "$U/api.php?action=query&meta=tokens&format=xml"
  http "$1" "edit $2" -X POST "$U/api.php" --data-urlencode action=edit \
    --data-urlencode "title=$2" --data-urlencode "text@$BODY.text" \
    --data-urlencode 'token=+\' --data-urlencode format=json
  http "$1" "raw $2" "$U/index.php?title=$2&action=raw"
  rm -f "$BODY.text"
}
http steady "view Main_Page (gzip)" --compressed "$U/index.php?title=Main_Page"
edit steady Probe_steady
fill db 33:33
for i in 1 2 3; do edit full "Probe_full_$i"; done
http full "view Main_Page (gzip)" --compressed "$U/index.php?title=Main_Page"
http full "raw Probe_steady (edited before the fill)" "$U/index.php?title=Probe_steady&action=raw"
logs_json full "$C" /var/log/apache2/error.log /var/log/apache2/access.log
free db
edit after_free Probe_after
for i in 1 2 3; do http after_free "raw Probe_full_$i (edited while full)" "$U/index.php?title=Probe_full_$i&action=raw"; done
http after_free "view Main_Page (gzip)" --compressed "$U/index.php?title=Main_Page"
# Second case: the uploads disk (bulk data) full. Core flows (page view, edit) must not care.
fill uploads 33:33
http uploads_full "view Main_Page (gzip)" --compressed "$U/index.php?title=Main_Page"
edit uploads_full Probe_uploads_full
logs_json uploads_full "$C" /var/log/apache2/error.log
free uploads
edit uploads_after_free Probe_uploads_after
http uploads_after_free "raw Probe_uploads_full (edited while uploads full)" "$U/index.php?title=Probe_uploads_full&action=raw"
event after_free container "$(jq -n --arg r "$(restarts "$C")" '{restart_count_status_exit: $r}')"
logs_json after_free "$C" /var/log/apache2/error.log /var/log/apache2/access.log
finish '{"volumes": {"db": {"size": "4MiB", "owner": "33:33", "mount": "/var/lib/mediawiki-db", "filled": true}, "uploads": {"size": "1MiB", "mount": "/var/lib/mediawiki/images"}, "cache": {"size": "4MiB", "mount": "/var/cache/mediawiki"}}, "edit_text_bytes": "16 KiB + nonce"}'
