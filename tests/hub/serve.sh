#!/usr/bin/env bash
# Serves a hub-shaped tree with lighttpd on 127.0.0.1, the way the Hugging Face hub
# and GitHub serve the model files: HTTP Range, and per file the digest headers the
# hub sends (large "LFS" files: X-Linked-Etag / ETag = SHA-256 and X-Linked-Size;
# other files: ETag = git blob id). /slow/... serves the same tree throttled;
# /lfs/... redirects to it (302), the redirect carrying those headers, as the hub
# redirects large files to its storage. Files of a hub repository's default branch
# (hub/<repo>/resolve/main/...) also carry X-Repo-Commit: $MAIN_COMMIT, as the hub names
# the commit a branch points to. /entry404/... answers 404 with X-Error-Code:
# EntryNotFound, as the hub does for a file missing from an existing revision.
#
#   serve.sh TREE PORT STATE_DIR [SLOW_KBPS]
#
# Writes STATE_DIR/lighttpd.conf, logs requests to STATE_DIR/access.log
# ("METHOD STATUS BYTES URL RANGE"), and runs lighttpd in the foreground.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
tree=$(cd "$1" && pwd)
port=$2
state=$(mkdir -p "$3" && cd "$3" && pwd)
slow=${4:-256}
conf=$state/lighttpd.conf
MAIN_COMMIT=5a1e0c0ffee5a1e0c0ffee5a1e0c0ffee5a1e0c0

{
  cat <<CONF
server.document-root = "$tree"
server.bind = "127.0.0.1"
server.port = $port
server.modules = ("mod_setenv", "mod_accesslog", "mod_alias", "mod_redirect")
server.errorlog = "$state/error.log"
server.pid-file = "$state/lighttpd.pid"
static-file.etags = "disable"
mimetype.assign = ("" => "application/octet-stream")
# a piped logger: lighttpd writes each line at once (a file is flushed every few s)
accesslog.filename = "|/bin/cat >> $state/access.log"
accesslog.format = "%m %s %b %U %{Range}i"
alias.url = ("/slow/" => "$tree/")
\$HTTP["url"] =~ "^/slow/" { connection.kbytes-per-second = $slow }
\$HTTP["url"] =~ "^/lfs/" { url.redirect = ("^/lfs/(.*)\$" => "/\$1") url.redirect-code = 302 }
\$HTTP["url"] =~ "^/entry404/" { setenv.set-response-header = ("X-Error-Code" => "EntryNotFound") }
CONF
  (cd "$tree" && find . -type f | sort) | while read -r rel; do
    rel=${rel#./}
    f=$tree/$rel
    size=$(stat -c %s "$f")
    case "$rel" in
      *.safetensors|*.bin|*.pth|*.pt)
        sha=$(sha256sum "$f" | cut -d' ' -f1)
        hdr="\"X-Linked-Etag\" => \"\\\"$sha\\\"\", \"X-Linked-Size\" => \"$size\", \"ETag\" => \"\\\"$sha\\\"\""
        ;;
      *)
        oid=$( { printf 'blob %d\0' "$size"; cat "$f"; } | sha1sum | cut -d' ' -f1)
        hdr="\"ETag\" => \"\\\"$oid\\\"\""
        ;;
    esac
    case "$rel" in
      hub/*/resolve/main/*) hdr="$hdr, \"X-Repo-Commit\" => \"$MAIN_COMMIT\"" ;;
    esac
    # (a '.' in the name matches itself among others: the names here are plain)
    printf '$HTTP["url"] =~ "^(/slow|/lfs)?/%s$" { setenv.set-response-header = (%s) }\n' "$rel" "$hdr"
  done
} >"$conf"

lighttpd -tt -f "$conf" >/dev/null
exec lighttpd -D -f "$conf"
