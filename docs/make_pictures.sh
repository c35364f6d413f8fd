#!/usr/bin/env bash
# Regenerate the README's pictures through a running service (`make up`): usage KEY [BASE_URL]
set -euo pipefail
KEY=$1; BASE=${2:-http://127.0.0.1:8000}
here=$(dirname "$0")
make_picture() {  # $1 = output file, $2 = params JSON
  id=$(curl -s -X POST "$BASE/api?api_key=$KEY" -H 'Content-Type: application/json' \
       -d "{\"type\": \"jpeg\", \"params\": $2}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/$id?api_key=$KEY")" = 303 ]; do sleep 1; done
  curl -sL -o "$here/$1" "$BASE/api/$id?api_key=$KEY"
}
make_picture true-colour.png '{"view_id": "S2/18/S/VG/2020/6/15/0", "bm_type": "B04,B03,B02", "format": "png", "px_size": 80}'
make_picture ndvi.png '{"view_id": "S2/18/S/VG/2020/6/15/0", "bm_type": "NDVI", "format": "png", "px_size": 80, "colormap": "RdYlGn", "levels": "-0.2,0.8"}'
