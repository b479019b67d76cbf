# Sourced by ctk-job.sh and floor-job.sh: start http.server serving a folder on a 16 MiB
# tmpfs (port on 127.0.0.1) as container "$name" labelled fulldisk.bench=$1, removed at
# exit (also on failure); wait until it answers (bounded); set $url to its home page.
# Needs $name and $image.
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" --label "fulldisk.bench=$1" --user 1000:1000 \
  --mount type=tmpfs,destination=/srv/www,tmpfs-size=16m,tmpfs-mode=1777 \
  -p 127.0.0.1::8000 "$image" python3 -m http.server 8000 --directory /srv/www >/dev/null
port=$(docker port "$name" 8000/tcp | head -1 | sed 's/.*://')
url="http://127.0.0.1:$port"
for _ in $(seq 300); do  # at most 300 tries, 10 ms apart: 3 s and more under load
  curl -fs -o /dev/null --max-time 1 "$url/" && break
  sleep 0.01
done
