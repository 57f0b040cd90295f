#!/usr/bin/env bash
# HTTPS binary delivery and the 1 GiB upload: otad measured side by side with nginx on
# this machine, over loopback only. Prints one report (markdown tables) at the end.
#
#   bench/http/run.sh
#
# Knobs (environment): DURATION (s per wrk run, 15), WARMUP (s per server, 3), SEED (1),
# REPEATS (measured runs per row and server, interleaved ABAB, 3), ROWS (workloads as
# "size:connections ...", the five of the report by default), OTAD_BIN (use this otad
# instead of `cargo build --release`), OTAD_COMMIT (the commit OTAD_BIN was built from, for
# the report; read from the checkout when the script builds), WAIT_IDLE (wait up to this
# many seconds for a quiet machine before measuring, 0; when set, also up to ROW_WAIT, 120,
# before each workload, within the deadline), MAX_SECONDS (deadline for the measurement
# phase, 1800), DROP_CACHES=1 (as root: drop the page cache before each first-read pair),
# KEEP=1 (keep the work directory with logs and wrk output), WORK_PARENT
# (where the work directory goes, $TMPDIR or /tmp), DDI (1: also the hawkBit DDI rows, the
# artifact download beside every range row and base polls of DDI_DEVICES (10000) distinct
# devices at 64 and 256 connections; 0 leaves them out).
# See bench/http/README.md for what is measured and how to read the report.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LUA="$HERE/range.lua"

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
SEED=${SEED:-1}
OTAD_BIN=${OTAD_BIN:-}
WAIT_IDLE=${WAIT_IDLE:-0}
ROW_WAIT=${ROW_WAIT:-120}
IDLE_NOTE="did not wait for a quiet machine (WAIT_IDLE=0)"
MAX_SECONDS=${MAX_SECONDS:-1800}
REPEATS=${REPEATS:-3}
OTAD_COMMIT=${OTAD_COMMIT:-}
DROP_CACHES=${DROP_CACHES:-0}
DDI=${DDI:-1}
DDI_DEVICES=${DDI_DEVICES:-10000}
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-${TMPDIR:-/tmp}}
THREADS=2
FILE_BYTES=$((256 * 1024 * 1024))
UPLOAD_BYTES=$((1024 * 1024 * 1024))
# Workloads: "range-size connections".
read -r -a ROW_SPECS <<<"${ROWS:-4096:64 4096:256 16384:64 16384:256 1048576:64}"
ROWS=()
for spec in "${ROW_SPECS[@]}"; do
	[[ $spec =~ ^[0-9]+:[0-9]+$ ]] || { echo "ROWS: '$spec' is not size:connections" >&2; exit 2; }
	ROWS+=("${spec%:*} ${spec#*:}")
done
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || { echo "REPEATS must be a positive integer, not '$REPEATS'" >&2; exit 2; }
# The 256 MiB file + one per repeat for the first-read rows, a 1 GiB file at a time, and
# otad's database holding all of them.
NEED_FREE_KIB=$(((2 * (REPEATS + 1) * 256 + 2 * 1024 + REPEATS * 1024) * 1024))
GOAL_INGEST_MBS=400
GOAL_RSS_MIB=64
GOAL_RANGES=1.2
GOAL_WHOLE=1.0
# DDI: polls/s ≥ half of nginx's 4 KiB ranges/s; artifact downloads within 10 % of otad's
# own download path.
GOAL_POLL=0.5
GOAL_DDI=0.9
[[ $DDI == 0 || $DDI == 1 ]] || { echo "DDI must be 0 or 1, not '$DDI'" >&2; exit 2; }
[[ $DDI_DEVICES =~ ^[1-9][0-9]*$ ]] || { echo "DDI_DEVICES must be a positive integer" >&2; exit 2; }

say() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# ---------------------------------------------------------------- processes and cleanup
WORK=""
OTAD_PID=""
NGINX_PID=""
NGINX_WORKERS=""
SAMPLER_PID=""

alive() { # PID: running and not a zombie
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $state && $state != Z* ]]
}

stop_pid() { # PID SIGNAL SECONDS: signal, wait up to SECONDS, then SIGKILL
	local pid=$1 sig=$2 secs=$3 i
	[[ -n $pid ]] || return 0
	alive "$pid" || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	say "pid $pid still running after SIG$sig and ${secs}s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n $WORK ]] && rm -f "$WORK/sampling"
	stop_pid "$SAMPLER_PID" TERM 2
	if [[ -n $NGINX_PID ]]; then
		NGINX_WORKERS="$NGINX_WORKERS $(pgrep -P "$NGINX_PID" 2>/dev/null | tr '\n' ' ' || true)"
		stop_pid "$NGINX_PID" TERM 10
		local w
		for w in $NGINX_WORKERS; do stop_pid "$w" TERM 2; done
	fi
	stop_pid "$OTAD_PID" TERM 20
	wait 2>/dev/null || true
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ $KEEP == 1 ]]; then
			rm -f "$WORK/file1g"
			say "work directory kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
need_install=()
for tool in nginx:nginx wrk:wrk curl:curl jq:jq openssl:openssl ps:procps pgrep:procps \
	sha256sum:coreutils ss:iproute2 timeout:coreutils; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need_install+=("${tool#*:}")
done
if ((${#need_install[@]})); then
	[[ $EUID -eq 0 ]] || die "missing packages: ${need_install[*]} (install them, or run as root)"
	say "installing ${need_install[*]} with apt-get"
	timeout 600 apt-get update -qq
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
		"${need_install[@]}" >/dev/null
fi
[[ -f $LUA ]] || die "missing $LUA"

if [[ -z $OTAD_BIN ]]; then
	say "building otad (cargo build --release --locked)"
	(cd "$ROOT" && timeout 1800 cargo build --release --locked --quiet) || die "cargo build failed"
	OTAD_BIN="$ROOT/target/release/otad"
	if [[ -z $OTAD_COMMIT ]]; then
		OTAD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
		[[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] &&
			OTAD_COMMIT+=" + uncommitted changes in src/"
	fi
fi
[[ -x $OTAD_BIN ]] || die "no otad binary at $OTAD_BIN"
# What was measured: the commit (given or read from the checkout the script built), and
# the binary itself, so a report cannot name the checkout's commit for another binary.
OTAD_ID="${OTAD_COMMIT:-commit not given (set OTAD_COMMIT)}; binary $OTAD_BIN, sha256 $(sha256sum "$OTAD_BIN" | cut -c1-12), built $(date -u -r "$OTAD_BIN" '+%Y-%m-%d %H:%M UTC')"

busy_ticks() { # all CPUs, non-idle ticks since boot
	local _c u n s _idle _iow irq sirq steal _rest
	read -r _c u n s _idle _iow irq sirq steal _rest </proc/stat
	echo $((u + n + s + irq + sirq + steal))
}
# wait_quiet MAX NEED: 0 after NEED quiet seconds in a row (no rustc process, the whole
# machine under 20 % of one core busy), 1 after MAX seconds; WAITED = seconds waited.
wait_quiet() {
	local max=$1 need=$2 quiet=0 prev now hz
	hz=$(getconf CLK_TCK)
	prev=$(busy_ticks)
	for ((WAITED = 0; WAITED < max && quiet < need; WAITED++)); do
		sleep 1
		now=$(busy_ticks)
		if ! pgrep -x rustc >/dev/null && ((now - prev < hz / 5)); then
			quiet=$((quiet + 1))
		else
			quiet=0
		fi
		prev=$now
	done
	((quiet >= need))
}
if ((WAIT_IDLE > 0)); then
	say "waiting up to ${WAIT_IDLE}s for 5 quiet seconds (no rustc, machine under 20 % of one core busy)"
	if wait_quiet "$WAIT_IDLE" 5; then
		say "machine quiet after ${WAITED}s: starting"
		IDLE_NOTE="waited ${WAITED}s for a quiet machine before starting, and up to ${ROW_WAIT}s before each workload"
	else
		say "machine still busy after ${WAIT_IDLE}s: starting anyway"
		IDLE_NOTE="machine still busy after waiting ${WAIT_IDLE}s"
	fi
fi

DEADLINE=$((SECONDS + MAX_SECONDS))
need_time() { # SECONDS WHAT
	((SECONDS + $1 <= DEADLINE)) || die "the run would pass its ${MAX_SECONDS}s deadline at: $2"
}

# ---------------------------------------------------------------- work directory and files
mkdir -p "$WORK_PARENT"
WORK=$(mktemp -d "$WORK_PARENT/otad-http-bench.XXXXXX")
avail_kib=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
if ((avail_kib < NEED_FREE_KIB)); then
	die "not enough disk space in $WORK: $((avail_kib / 1024)) MiB free, $((NEED_FREE_KIB / 1024)) MiB needed (set WORK_PARENT to a roomier place)"
fi
# Workers of an nginx started as root run as nobody: they need to reach the served file.
chmod 711 "$WORK"
mkdir -m 755 "$WORK/www" "$WORK/nginx" "$WORK/out"

# Deterministic pseudo-random bytes: AES-256-CTR keystream over zeros (fixed key per seed).
det_bytes() { # BYTES IV_HEX OUT
	local key
	key=$(printf '%064x' "$SEED")
	{ openssl enc -aes-256-ctr -nosalt -K "$key" -iv "$2" </dev/zero 2>/dev/null || true; } |
		head -c "$1" >"$3"
	[[ $(stat -c %s "$3") -eq $1 ]] || die "could not write $3"
}

FILE="$WORK/www/firmware.bin"
say "generating the 256 MiB file"
det_bytes "$FILE_BYTES" "$(printf '%032x' 1)" "$FILE"
chmod 644 "$FILE"


# ---------------------------------------------------------------- otad
DATA="$WORK/otad-data"
cat >"$WORK/otad.toml" <<EOF
[storage]
max_binary_size = 2147483648
EOF
say "starting otad ($OTAD_BIN)"
"$OTAD_BIN" serve --data-dir "$DATA" --api-listen 127.0.0.1:0 --device-listen 127.0.0.1:0 --config "$WORK/otad.toml" \
	>"$WORK/otad.log" 2>&1 &
OTAD_PID=$!
for ((i = 0; i < 600; i++)); do
	[[ -s $DATA/listen.json && -s $DATA/initial-credentials.json ]] && break
	alive "$OTAD_PID" || die "otad exited during start-up: $(tail -5 "$WORK/otad.log")"
	sleep 0.1
done
[[ -s $DATA/listen.json ]] || die "otad did not write listen.json within 60 s"
OTAD_ADDR=$(jq -er .api "$DATA/listen.json")
[[ $OTAD_ADDR == 127.* ]] || die "otad listens on $OTAD_ADDR, not loopback"
CA="$DATA/tls/cert.pem"
OTAD="https://$OTAD_ADDR"
CURL=(curl -sS --fail-with-body --max-time 60 --cacert "$CA")

creds="$DATA/initial-credentials.json"
ADMIN_TOKEN=$("${CURL[@]}" -u "$(jq -er .clientId "$creds"):$(jq -er .clientSecret "$creds")" \
	--data-urlencode grant_type=password --data-urlencode username=admin \
	--data-urlencode "password=$(jq -er .password "$creds")" "$OTAD/oauth/token" | jq -er .access_token) ||
	die "admin token refused"
partner=$("${CURL[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"bench"}' "$OTAD/v1/admin/partners") || die "partner creation failed: $partner"
PARTNER=$(jq -er .partnerId <<<"$partner")
TOKEN=$("${CURL[@]}" -u "$PARTNER:$(jq -er .clientSecret <<<"$partner")" \
	-d grant_type=client_credentials "$OTAD/oauth/token" | jq -er .access_token) ||
	die "partner token refused"
AUTH=(-H "Authorization: Bearer $TOKEN")

rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# -- 1 GiB uploads: REPEATS distinct files (the first on the fresh server), each also hashed
# by sha256sum for the ratio to plain hashing.
declare -A UP # UP[rep,key]
upload_1g() { # REP
	local rep=$1 big="$WORK/file1g" t0 t1 up n
	need_time 330 "1 GiB upload $rep"
	say "generating 1 GiB file $rep"
	det_bytes "$UPLOAD_BYTES" "$(printf '%032x' $((1000 + rep)))" "$big"
	t0=$EPOCHREALTIME
	UP[$rep,sha]=$(sha256sum "$big" | cut -d' ' -f1)
	t1=$EPOCHREALTIME
	UP[$rep,sha256sum_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	echo 5 >"/proc/$OTAD_PID/clear_refs" 2>/dev/null || true # VmHWM := VmRSS (Linux >= 4.0)
	UP[$rep,rss_before]=$(rss_kib "$OTAD_PID" VmRSS)
	touch "$WORK/sampling"
	(
		for ((n = 0; n < 6000; n++)); do # 50 ms steps, 300 s at most
			[[ -e $WORK/sampling ]] || break
			awk '$1 == "VmRSS:" {print $2}' "/proc/$OTAD_PID/status" 2>/dev/null || break
			sleep 0.05
		done
	) >"$WORK/rss.samples" &
	SAMPLER_PID=$!
	say "uploading 1 GiB file $rep to otad"
	t0=$EPOCHREALTIME
	up=$(curl -sS --max-time 300 --cacert "$CA" "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
		-X POST -T "$big" -o "$WORK/upload1g.json" -w '%{http_code} %{time_total}' \
		"$OTAD/v1/ota/partners/$PARTNER/binaries") || up="curl-failed ${up:-0}"
	t1=$EPOCHREALTIME
	rm -f "$WORK/sampling"
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=""
	rm -f "$big"
	UP[$rep,code]=${up%% *}
	UP[$rep,curl_s]=${up##* }
	UP[$rep,wall_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
	UP[$rep,answer]=$(jq -r '.value // empty' "$WORK/upload1g.json" 2>/dev/null || true)
	UP[$rep,hwm_after]=$(rss_kib "$OTAD_PID" VmHWM)
	UP[$rep,rss_after]=$(rss_kib "$OTAD_PID" VmRSS)
	local max
	max=$(sort -n "$WORK/rss.samples" | tail -1)
	UP[$rep,rss_max]=${max:-${UP[$rep,rss_after]}}
	UP[$rep,mbs]=$(awk -v t="${UP[$rep,curl_s]}" -v n="$UPLOAD_BYTES" 'BEGIN {if (t > 0) printf "%.0f", n / t / 1e6; else print 0}')
	UP[$rep,sha256sum_mbs]=$(awk -v t="${UP[$rep,sha256sum_s]}" -v n="$UPLOAD_BYTES" 'BEGIN {if (t > 0) printf "%.0f", n / t / 1e6; else print 0}')
	say "upload $rep: status ${UP[$rep,code]}, ${UP[$rep,curl_s]}s (curl), ${UP[$rep,mbs]} MB/s; sha256sum ${UP[$rep,sha256sum_mbs]} MB/s"
}
for ((rep = 1; rep <= REPEATS; rep++)); do upload_1g "$rep"; done

# -- a 256 MiB file: upload, check the answered digest, publish; prints the download URL.
publish() { # FILE
	local sha want url
	want=$(sha256sum "$1" | cut -d' ' -f1)
	sha=$("${CURL[@]}" --max-time 120 "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
		-X POST -T "$1" "$OTAD/v1/ota/partners/$PARTNER/binaries" | jq -er .value) ||
		die "upload of $1 failed"
	[[ $sha == "$want" ]] || die "otad answered sha256 $sha for $1 whose sha256 is $want"
	url=$("${CURL[@]}" "${AUTH[@]}" -H 'Content-Type: application/json' \
		-d "{\"value\":\"$sha\"}" "$OTAD/v1/ota/partners/$PARTNER/binaries/moveToRepository" | jq -er .value) ||
		die "moveToRepository failed for $1"
	[[ $url == "$OTAD/"* ]] || die "moveToRepository answered $url, not under $OTAD"
	echo "$url"
}
say "uploading and publishing the 256 MiB file"
OTAD_URL=$(publish "$FILE")

# ---------------------------------------------------------------- DDI devices
# The 256 MiB file becomes an image of a device type with one DDI device, whose deployment
# names the artifact URL an agent downloads; DDI_DEVICES more devices of a type without
# images poll with nothing to do. The tenant is the partner id (the default).
if [[ $DDI == 1 ]]; then
	JSON=(-H 'Content-Type: application/json')
	P="$OTAD/v1/ota/partners/$PARTNER"
	"${CURL[@]}" "${AUTH[@]}" "${JSON[@]}" -d '{"name":"ROOTFS","type":120,"description":"bench"}' \
		"$P/types" >/dev/null || die "firmware type creation failed"
	record=$("${CURL[@]}" "${AUTH[@]}" "${JSON[@]}" \
		-d "{\"name\":\"rootfs\",\"type\":120,\"version\":\"1.0.0\",\"url\":\"$OTAD_URL\"}" "$P/pool") ||
		die "pool record creation failed"
	dt_of() { # NAME -> device type id
		"${CURL[@]}" "${AUTH[@]}" "${JSON[@]}" -d "{\"name\":\"$1\",\"description\":\"bench\"}" \
			"$P/deviceTypes" | jq -er .id
	}
	DT_DL=$(dt_of bench-download) || die "device type creation failed"
	DT_IDLE=$(dt_of bench-idle) || die "device type creation failed"
	"${CURL[@]}" "${AUTH[@]}" "${JSON[@]}" -d "$record" "$P/deviceTypes/$DT_DL/firmwareImages" >/dev/null ||
		die "association failed"
	import() { # OUT LINES... : imports the CSV lines, writes the deviceId,token answer to OUT
		local out=$1
		shift
		printf '%s\n' "$@" | "${CURL[@]}" "${AUTH[@]}" -H 'Content-Type: text/csv' --data-binary @- \
			-o "$out" "$P/devices/import" || die "device import failed: $(head -c 300 "$out")"
	}
	import "$WORK/ddi-download.csv" "ddi-dl-1,$DT_DL"
	DDI_TOKEN=$(awk -F, '$1 == "ddi-dl-1" {print $2}' "$WORK/ddi-download.csv")
	[[ -n $DDI_TOKEN ]] || die "the import answered no token for ddi-dl-1"
	mapfile -t lines < <(seq -f "ddi-idle-%06g,$DT_IDLE" 1 "$DDI_DEVICES")
	say "importing $DDI_DEVICES idle DDI devices"
	import "$WORK/ddi-idle.csv" "${lines[@]}"
	unset lines
	(($(grep -c '^ddi-idle-' "$WORK/ddi-idle.csv") == DDI_DEVICES)) || die "the import answered too few tokens"
	DDI_BASE="$OTAD/$PARTNER/controller/v1/ddi-dl-1"
	DCURL=("${CURL[@]}" -H "Authorization: TargetToken $DDI_TOKEN" -H 'Accept: application/hal+json')
	deployment=$("${DCURL[@]}" "$DDI_BASE" | jq -er '._links.deploymentBase.href') ||
		die "the download device's poll advertised no deployment"
	DDI_URL=$("${DCURL[@]}" "$deployment" | jq -er '.deployment.chunks[0].artifacts[0]._links.download.href') ||
		die "the deployment named no artifact"
	[[ $DDI_URL == "$OTAD/"* ]] || die "the artifact URL $DDI_URL is not under $OTAD"
fi

# ---------------------------------------------------------------- nginx (same cert and key)
NG="$WORK/nginx"
free_port() {
	local p
	for ((p = 20000 + RANDOM % 20000, n = 0; n < 200; p++, n++)); do
		[[ -z $(ss -Htln "sport = :$p") ]] && { echo "$p"; return 0; }
	done
	return 1
}
NGINX_PORT=$(free_port) || die "no free loopback port for nginx"
user_line=""
if [[ $EUID -eq 0 ]]; then
	grp=nogroup
	getent group nogroup >/dev/null || grp=nobody
	user_line="user nobody $grp;"
fi
cat >"$NG/nginx.conf" <<EOF
$user_line
worker_processes 2;
worker_rlimit_nofile 8192;
pid $NG/nginx.pid;
lock_file $NG/nginx.lock;
error_log $NG/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log $NG/access.log;
    client_body_temp_path $NG/body;
    proxy_temp_path $NG/proxy;
    fastcgi_temp_path $NG/fastcgi;
    uwsgi_temp_path $NG/uwsgi;
    scgi_temp_path $NG/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $DATA/tls/cert.pem;
        ssl_certificate_key $DATA/tls/key.pem;
        ssl_protocols TLSv1.3;
        location /files/ {
            alias $WORK/www/;
        }
    }
}
EOF
openssl pkey -in "$DATA/tls/key.pem" -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256' ||
	die "otad's key is not ECDSA P-256"
say "starting nginx on 127.0.0.1:$NGINX_PORT"
nginx -t -q -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" 2>"$NG/test.err" ||
	die "nginx rejected its configuration: $(cat "$NG/test.err")"
nginx -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$NG/stdout.log" 2>&1 &
NGINX_PID=$!
NGINX="https://127.0.0.1:$NGINX_PORT"
NGINX_URL="$NGINX/files/firmware.bin"
for ((i = 0; i < 100; i++)); do
	curl -s -o /dev/null --max-time 2 --cacert "$CA" -r 0-0 "$NGINX_URL" && break
	alive "$NGINX_PID" || die "nginx exited: $(tail -5 "$NG/error.log")"
	sleep 0.1
done
curl -sf -o /dev/null --max-time 2 --cacert "$CA" -r 0-0 "$NGINX_URL" || die "nginx not ready within 10 s"
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')

# ---------------------------------------------------------------- checks before measuring
tls_of() { # HOST:PORT -> "TLSv1.3 TLS_AES_256_GCM_SHA384"
	timeout 10 openssl s_client -connect "$1" -servername 127.0.0.1 -brief </dev/null 2>&1 |
		awk -F': ' '/^Protocol version/ {p = $2} /^Ciphersuite/ {c = $2} END {print p, c}'
}
TLS_NGINX=$(tls_of "127.0.0.1:$NGINX_PORT")
TLS_OTAD=$(tls_of "$OTAD_ADDR")

# The same bytes come back from both, as 206 with the right Content-Range.
for range in "0-4095" "$((FILE_BYTES - 16384))-$((FILE_BYTES - 1))" "1048576-2097151"; do
	a=${range%-*}
	b=${range#*-}
	dd if="$FILE" of="$WORK/expect" bs=4096 skip=$((a / 4096)) count=$(((b - a + 1) / 4096)) status=none
	names="nginx otad"
	[[ $DDI == 1 ]] && names+=" ddi"
	for name in $names; do
		url=$NGINX_URL
		auth=("${AUTH[@]}")
		[[ $name == otad ]] && url=$OTAD_URL
		[[ $name == ddi ]] && { url=$DDI_URL; auth=(-H "Authorization: TargetToken $DDI_TOKEN"); }
		code=$(curl -sS --max-time 30 --cacert "$CA" "${auth[@]}" -r "$range" -o "$WORK/got" \
			-D "$WORK/got.headers" -w '%{http_code}' "$url")
		[[ $code == 206 ]] || die "$name answered $code to Range: bytes=$range"
		cmp -s "$WORK/expect" "$WORK/got" || die "$name sent wrong bytes for Range: bytes=$range"
		grep -qi "^content-range: bytes $range/$FILE_BYTES" "$WORK/got.headers" ||
			die "$name sent a wrong Content-Range for bytes=$range"
	done
done

# ---------------------------------------------------------------- whole file, one connection
# Each repeat publishes a new 256 MiB file (its own bytes) to both servers and reads it
# whole over one connection: the first read after the upload ("cold": what the first device
# or CDN edge meets), then twice more, of which the second counts ("warm"). Who reads first
# alternates. DROP_CACHES=1 (root) also empties the page cache before each first-read pair.
declare -A W # W[name,rep,cold|warm] MB/s
whole_mbs() { # URL -> MB/s of one whole GET; dies on a wrong status or length
	local out code size t
	out=$(curl -sS --max-time 120 --cacert "$CA" "${AUTH[@]}" -o /dev/null \
		-w '%{http_code} %{size_download} %{time_total}' "$1") || die "whole-file GET of $1 failed"
	read -r code size t <<<"$out"
	[[ $code == 200 && $size == "$FILE_BYTES" ]] || die "whole-file GET of $1: status $code, $size bytes"
	awk -v s="$size" -v t="$t" 'BEGIN {printf "%.0f", s / t / 1e6}'
}
WHOLE_NOTE="first read right after the upload, with the page cache as the upload left it"
if [[ $DROP_CACHES == 1 ]]; then
	[[ $EUID -eq 0 ]] || die "DROP_CACHES=1 needs root"
	WHOLE_NOTE="page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before each first-read pair"
fi
for ((rep = 1; rep <= REPEATS; rep++)); do
	need_time 120 "whole-file reads $rep"
	f="$WORK/www/first-$rep.bin"
	det_bytes "$FILE_BYTES" "$(printf '%032x' $((2000 + rep)))" "$f"
	chmod 644 "$f"
	declare -A URL=([nginx]="$NGINX/files/first-$rep.bin" [otad]="$(publish "$f")")
	if [[ $DROP_CACHES == 1 ]]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	if ((rep % 2 == 1)); then order="nginx otad"; else order="otad nginx"; fi
	for name in $order; do W[$name,$rep,cold]=$(whole_mbs "${URL[$name]}"); done
	for name in $order; do
		whole_mbs "${URL[$name]}" >/dev/null
		W[$name,$rep,warm]=$(whole_mbs "${URL[$name]}")
	done
	say "whole file $rep: first read nginx ${W[nginx,$rep,cold]} / otad ${W[otad,$rep,cold]} MB/s; warm nginx ${W[nginx,$rep,warm]} / otad ${W[otad,$rep,warm]} MB/s"
done
# The range rows read the first file: bring it into both servers' caches.
whole_mbs "$NGINX_URL" >/dev/null
whole_mbs "$OTAD_URL" >/dev/null

# ---------------------------------------------------------------- CPU accounting
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # PIDS... -> utime+stime summed (ticks)
	local t=0 pid f
	for pid in "$@"; do
		if read -r -a f <"/proc/$pid/stat" 2>/dev/null; then
			t=$((t + f[13] + f[14]))
		fi
	done
	echo "$t"
}
sys_task() { # all CPUs, user+nice+system ticks (what processes run)
	local _c u n s _rest
	read -r _c u n s _rest </proc/stat
	echo $((u + n + s))
}
sys_irq() { # all CPUs, irq+softirq+steal ticks (the loopback network stack runs largely here)
	local _c u n s _idle _iow irq sirq steal _rest
	read -r _c u n s _idle _iow irq sirq steal _rest </proc/stat
	echo $((irq + sirq + steal))
}
children_ticks() { # sets CT: CPU ticks of this shell's finished children (wrk's once it ends)
	# `times` must run in this shell, not in a $(...) subshell, to see this shell's children.
	times >"$WORK/times"
	CT=$(awk -v hz="$CLK_TCK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, m, "m"); sub("s", "", m[2]); t += m[1] * 60 + m[2] }
		printf "%d", t * hz
	}' "$WORK/times")
}
server_pids() { # NAME: nginx, or otad for otad, ddi and poll
	if [[ $1 == nginx ]]; then echo "$NGINX_PID $NGINX_WORKERS"; else echo "$OTAD_PID"; fi
}

# ---------------------------------------------------------------- wrk runs
declare -A R # R[name,row,key]
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

run_wrk() { # NAME ROW SIZE CONNS SECONDS (NAME: nginx, otad, ddi = the DDI artifact, poll = DDI polls)
	local name=$1 row=$2 size=$3 conns=$4 dur=$5 url hostport path out args
	url=$NGINX_URL
	hostport="127.0.0.1:$NGINX_PORT"
	[[ $name != nginx ]] && hostport=$OTAD_ADDR
	case $name in
	otad) url=$OTAD_URL ;;
	ddi) url=$DDI_URL ;;
	poll) url=$OTAD ;;
	esac
	path="/${url#https://*/}"
	out="$WORK/out/$name-$row.txt"
	case $name in
	poll) args=("$HERE/ddi_poll.lua" "$url" -- "$WORK/ddi-idle.csv" "$hostport" "$PARTNER") ;;
	ddi) args=("$LUA" "$url" -- "$size" "$FILE_BYTES" "$DDI_TOKEN" "$hostport" "$path" "$SEED" TargetToken) ;;
	*) args=("$LUA" "$url" -- "$size" "$FILE_BYTES" "$TOKEN" "$hostport" "$path" "$SEED") ;;
	esac
	alive "$(server_pids "$name" | cut -d' ' -f1)" || die "$name is not running any more"
	local pids s0 b0 q0 c0 s1 b1 q1 c1 rustc="no"
	pids=$(server_pids "$name")
	pgrep -x rustc >/dev/null && rustc=yes
	# shellcheck disable=SC2086
	s0=$(proc_ticks $pids)
	b0=$(sys_task)
	q0=$(sys_irq)
	children_ticks
	c0=$CT
	timeout $((dur + 60)) wrk -t"$THREADS" -c"$conns" -d"${dur}s" --timeout 10s -s "${args[@]}" >"$out" 2>&1 || true
	# shellcheck disable=SC2086
	s1=$(proc_ticks $pids)
	b1=$(sys_task)
	q1=$(sys_irq)
	children_ticks
	c1=$CT
	pgrep -x rustc >/dev/null && rustc=yes
	local line
	line=$(grep '^RESULT ' "$out" || true)
	if [[ -z $line ]]; then
		say "wrk against $name printed no result: $(tail -3 "$out" | tr '\n' ' ')"
		R[$name,$row,ok]=0
		return 0
	fi
	R[$name,$row,ok]=1
	local k
	for k in requests duration_us non206 err_connect err_read err_write err_status err_timeout p99_us first_bad; do
		R[$name,$row,$k]=$(field "$k" "$line")
	done
	R[$name,$row,rps]=$(awk -v n="${R[$name,$row,requests]}" -v d="${R[$name,$row,duration_us]}" \
		'BEGIN {printf "%.0f", n / (d / 1e6)}')
	# Body MB/s counts 206 answers only: an error answer carries no range.
	R[$name,$row,mbs]=$(awk -v n="${R[$name,$row,requests]}" -v bad="${R[$name,$row,non206]}" \
		-v d="${R[$name,$row,duration_us]}" -v s="$size" 'BEGIN {printf "%.0f", (n - bad) * s / (d / 1e6) / 1e6}')
	local secs
	secs=$(awk -v d="${R[$name,$row,duration_us]}" 'BEGIN {print d / 1e6}')
	R[$name,$row,cpu]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
	R[$name,$row,other]=$(awk -v t=$((b1 - b0 - (s1 - s0) - (c1 - c0))) -v hz="$CLK_TCK" -v s="$secs" \
		'BEGIN {if (t < 0) t = 0; printf "%.0f", 100 * t / hz / s}')
	R[$name,$row,wrk]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
	R[$name,$row,irq]=$(awk -v t=$((q1 - q0)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN {printf "%.0f", 100 * t / hz / s}')
	R[$name,$row,us]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v n="${R[$name,$row,requests]}" \
		'BEGIN {printf "%.0f", (n > 0) ? 1e6 * t / hz / n : 0}')
	R[$name,$row,rustc]=$rustc
	local errs=0
	for k in non206 err_connect err_read err_write err_timeout; do
		errs=$((errs + ${R[$name,$row,$k]}))
	done
	R[$name,$row,errs]=$errs
	say "$name $row: ${R[$name,$row,rps]} req/s, ${R[$name,$row,mbs]} MB/s, non-206 ${R[$name,$row,non206]}, server CPU ${R[$name,$row,cpu]}%, wrk CPU ${R[$name,$row,wrk]}%, softirq ${R[$name,$row,irq]}%, other CPU ${R[$name,$row,other]}%"
}

NAMES="nginx otad"
POLL_CONNS=()
if [[ $DDI == 1 ]]; then
	NAMES+=" ddi"
	POLL_CONNS=(64 256)
fi
read -r -a NAME_LIST <<<"$NAMES"
runs=$(((${#ROWS[@]} * ${#NAME_LIST[@]} + ${#POLL_CONNS[@]}) * REPEATS))
need_time $((2 * (WARMUP + 5) + runs * (DURATION + 5) + 20)) "the wrk runs"
say "warm-up: ${WARMUP}s per server"
run_wrk nginx warmup 16384 64 "$WARMUP"
run_wrk otad warmup 16384 64 "$WARMUP"
OTAD_RSS_BEFORE_RUNS=$(rss_kib "$OTAD_PID" VmRSS)

# quiet_before KEY: with WAIT_IDLE, wait for a quiet machine again, within what the deadline
# leaves after the runs to come.
quiet_before() {
	((WAIT_IDLE > 0)) || return 0
	local budget=$((DEADLINE - SECONDS - (runs - done_runs) * (DURATION + 5) - 15))
	((budget > ROW_WAIT)) && budget=$ROW_WAIT
	if ((budget > 0)) && ! wait_quiet "$budget" 3; then
		say "machine still busy after ${budget}s: measuring $1 anyway"
	fi
}

# Every row once per repeat, repeats outermost: a drift in the machine's load over the run
# spreads over every row instead of spoiling one. Who goes first rotates from row to row
# (ABAB with two servers); the DDI polls follow each repeat's rows.
i=0
done_runs=0
for ((rep = 1; rep <= REPEATS; rep++)); do
	for row in "${ROWS[@]}"; do
		read -r size conns <<<"$row"
		key="$size-$conns#$rep"
		n=${#NAME_LIST[@]}
		order="${NAME_LIST[*]:i % n} ${NAME_LIST[*]:0:i % n}"
		quiet_before "$key"
		for name in $order; do
			need_time $((DURATION + 5)) "wrk $name $key"
			run_wrk "$name" "$key" "$size" "$conns" "$DURATION"
			done_runs=$((done_runs + 1))
		done
		i=$((i + 1))
	done
	for conns in "${POLL_CONNS[@]}"; do
		key="poll-$conns#$rep"
		quiet_before "$key"
		need_time $((DURATION + 5)) "wrk poll $key"
		run_wrk poll "$key" 0 "$conns" "$DURATION"
		done_runs=$((done_runs + 1))
	done
done
OTAD_RSS_AFTER_RUNS=$(rss_kib "$OTAD_PID" VmRSS)
OTAD_HWM_END=$(rss_kib "$OTAD_PID" VmHWM)
OTAD_THREADS=$(rss_kib "$OTAD_PID" Threads)
alive "$OTAD_PID" && OTAD_ALIVE=yes || OTAD_ALIVE="NO (crashed: see its log)"

# otad's request log: statuses of the download route, and warnings/errors.
OTAD_STATUSES=$(grep -o 'route="\?/v1/ota/partners/{partnerId}/binaries/{sha256}"\? status=[0-9]*' "$WORK/otad.log" |
	sed 's/.*status=//' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep = ", "}' || true)
statuses_of() { # ROUTE-TEMPLATE -> "206×n, ..." from otad's request log
	grep -o "route=\"\?$1\"\? status=[0-9]*" "$WORK/otad.log" |
		sed 's/.*status=//' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep = ", "}' || true
}
DDI_STATUSES=$(statuses_of '/{tenant}/controller/v1/{controllerId}/softwaremodules/{moduleId}/artifacts/{filename}')
POLL_STATUSES=$(statuses_of '/{tenant}/controller/v1/{controllerId}')
OTAD_WARNINGS=$(grep -cE ' (WARN|ERROR) ' "$WORK/otad.log" || true)
grep -E ' (WARN|ERROR) ' "$WORK/otad.log" | head -20 >"$WORK/otad.warnings" || true
NGINX_ERRORS=$(grep -cE '\[(error|crit|alert|emerg)\]' "$NG/error.log" || true)

# ---------------------------------------------------------------- report
human_size() {
	case $1 in
	4096) echo "4 KiB" ;; 16384) echo "16 KiB" ;; 1048576) echo "1 MiB" ;; *) echo "$1 B" ;;
	esac
}
kib_to_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
# stats VALUES... -> "median min max" (median of an even count: mean of the middle two)
stats() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
		END {
			if (NR == 0) { print "- - -"; exit }
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m, v[1], v[NR]
		}'
}
# spread FORMAT VALUES... -> "median (min–max)", or just the value for one repeat
spread() {
	local fmt=$1 m lo hi
	shift
	read -r m lo hi <<<"$(stats "$@")"
	if (($# == 1)); then
		awk -v m="$m" -v f="$fmt" 'BEGIN {printf f, m}'
	else
		awk -v m="$m" -v lo="$lo" -v hi="$hi" -v f="$fmt" 'BEGIN {printf f " (" f "–" f ")", m, lo, hi}'
	fi
}
median() { read -r m _ <<<"$(stats "$@")"; echo "$m"; }
verdict() { # VALUE GOAL -> met / **not met**
	awk -v v="$1" -v g="$2" 'BEGIN {print (v >= g) ? "met" : "**not met**"}'
}
{
	echo
	echo "## otad vs nginx: HTTPS delivery and 1 GiB upload"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: nproc=$(nproc), CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
	echo "- otad: $OTAD_ID"
	echo "- nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'); $(openssl version | awk '{print $1, $2}') (client)"
	echo "- TLS negotiated (same ECDSA P-256 certificate for both): nginx $TLS_NGINX; otad $TLS_OTAD"
	echo "- machine load: $IDLE_NOTE; the \"other CPU %\" column is what else ran during each run"
	echo "- $REPEATS repeats per row, interleaved: every row once per repeat, who goes first alternating (ABAB); figures are median (min–max) over the repeats, the ratio the median of the per-repeat ratios"
	echo "- wrk: $THREADS threads, ${DURATION}s per run, random single ranges aligned to their size within one 256 MiB file, Authorization: Bearer on every request; body MB/s = 206 answers/s × range size / 10^6"
	echo
	echo "| workload | conns | nginx req/s | otad req/s | otad/nginx | goal ≥ $GOAL_RANGES× | otad MB/s | p99 ms nginx / otad | server CPU µs/req nginx / otad | server CPU % nginx / otad | wrk CPU % nginx / otad | other CPU % (max) nginx / otad | non-206 or socket errors nginx / otad |"
	echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
	for row in "${ROWS[@]}"; do
		read -r size conns <<<"$row"
		declare -A V=()
		failed=0
		for ((rep = 1; rep <= REPEATS; rep++)); do
			key="$size-$conns#$rep"
			if [[ ${R[nginx,$key,ok]:-0} != 1 || ${R[otad,$key,ok]:-0} != 1 ]]; then
				failed=$((failed + 1))
				continue
			fi
			V[ratio]+=" $(awk -v a="${R[otad,$key,rps]}" -v b="${R[nginx,$key,rps]}" 'BEGIN {printf "%.3f", a / b}')"
			for name in nginx otad; do
				for k in rps mbs p99_us us cpu wrk other errs; do
					V[$name,$k]+=" ${R[$name,$key,$k]}"
				done
				[[ ${R[$name,$key,rustc]} == yes ]] && V[rustc]=yes
			done
		done
		if [[ -z ${V[ratio]:-} ]]; then
			echo "| $(human_size "$size") ranges | $conns | FAILED | FAILED | - | **run failed** | | | | | | | |"
			continue
		fi
		# shellcheck disable=SC2086
		{
			ratio_m=$(median ${V[ratio]})
			ratio=$(spread "%.2f" ${V[ratio]})
			errs_n=$(printf '%s\n' ${V[nginx,errs]} | awk '{t += $1} END {print t + 0}')
			errs_o=$(printf '%s\n' ${V[otad,errs]} | awk '{t += $1} END {print t + 0}')
			other_n=$(stats ${V[nginx,other]} | cut -d' ' -f3)
			other_o=$(stats ${V[otad,other]} | cut -d' ' -f3)
			cells="$(spread "%.0f" ${V[nginx,rps]}) | $(spread "%.0f" ${V[otad,rps]})"
			p99="$(awk -v a="$(median ${V[nginx,p99_us]})" -v b="$(median ${V[otad,p99_us]})" 'BEGIN {printf "%.1f / %.1f", a / 1000, b / 1000}')"
			us="$(median ${V[nginx,us]}) / $(median ${V[otad,us]})"
			cpu="$(median ${V[nginx,cpu]}) / $(median ${V[otad,cpu]})"
			wrkc="$(median ${V[nginx,wrk]}) / $(median ${V[otad,wrk]})"
			mbs=$(spread "%.0f" ${V[otad,mbs]})
		}
		goal=$(verdict "$ratio_m" "$GOAL_RANGES")
		if ((errs_n + errs_o > 0)); then
			ratio="$ratio ⚠"
			goal="**ERRORS**"
		fi
		((failed > 0)) && goal+=" ($failed of $REPEATS repeats failed)"
		other="$other_n / $other_o"
		((other_n > 10 || other_o > 10)) && other+=" ⚠ disturbed"
		[[ ${V[rustc]:-} == yes ]] && other+=" (rustc running)"
		echo "| $(human_size "$size") ranges | $conns | $cells | $ratio | $goal | $mbs | $p99 | $us | $cpu | $wrkc | $other | $errs_n / $errs_o |"
	done
	if [[ $DDI == 1 ]]; then
		echo
		echo "hawkBit DDI, same run: the artifact download (TargetToken, the URL of the device's deployment) against otad's own download path of the same file, and base polls of $DDI_DEVICES distinct devices with nothing to do (each its own TargetToken, keep-alive) against nginx's 4 KiB ranges at the same connection count:"
		echo
		echo "| workload | conns | otad download req/s | DDI artifact req/s | DDI/download | goal ≥ $GOAL_DDI× | p99 ms download / DDI | otad CPU µs/req download / DDI | non-206 or socket errors DDI |"
		echo "|---|---:|---:|---:|---:|---|---:|---:|---|"
		for row in "${ROWS[@]}"; do
			read -r size conns <<<"$row"
			a="" b="" r="" pa="" pb="" ua="" ub="" errs=0
			for ((rep = 1; rep <= REPEATS; rep++)); do
				key="$size-$conns#$rep"
				[[ ${R[otad,$key,ok]:-0} == 1 && ${R[ddi,$key,ok]:-0} == 1 ]] || continue
				a+=" ${R[otad,$key,rps]}" b+=" ${R[ddi,$key,rps]}"
				r+=" $(awk -v x="${R[ddi,$key,rps]}" -v y="${R[otad,$key,rps]}" 'BEGIN {printf "%.3f", x / y}')"
				pa+=" ${R[otad,$key,p99_us]}" pb+=" ${R[ddi,$key,p99_us]}"
				ua+=" ${R[otad,$key,us]}" ub+=" ${R[ddi,$key,us]}"
				errs=$((errs + ${R[ddi,$key,errs]}))
			done
			if [[ -z $r ]]; then
				echo "| $(human_size "$size") ranges | $conns | FAILED | FAILED | - | **run failed** | | | |"
				continue
			fi
			# shellcheck disable=SC2086
			{
				goal=$(verdict "$(median $r)" "$GOAL_DDI")
				((errs > 0)) && goal="**ERRORS**"
				echo "| $(human_size "$size") ranges | $conns | $(spread "%.0f" $a) | $(spread "%.0f" $b) | $(spread "%.2f" $r) | $goal | $(awk -v x="$(median $pa)" -v y="$(median $pb)" 'BEGIN {printf "%.1f / %.1f", x / 1000, y / 1000}') | $(median $ua) / $(median $ub) | $errs |"
			}
		done
		echo
		echo "| DDI polls | conns | nginx 4 KiB req/s | polls/s | polls / nginx | goal ≥ $GOAL_POLL× | p99 ms polls | otad CPU µs/poll | otad CPU % | other CPU % (max) | non-200 or socket errors |"
		echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"
		for conns in "${POLL_CONNS[@]}"; do
			n="" p="" r="" p99="" us="" cpu="" other="" errs=0
			for ((rep = 1; rep <= REPEATS; rep++)); do
				key="poll-$conns#$rep"
				[[ ${R[poll,$key,ok]:-0} == 1 ]] || continue
				p+=" ${R[poll,$key,rps]}" p99+=" ${R[poll,$key,p99_us]}" us+=" ${R[poll,$key,us]}"
				cpu+=" ${R[poll,$key,cpu]}" other+=" ${R[poll,$key,other]}"
				errs=$((errs + ${R[poll,$key,errs]}))
				nk="4096-$conns#$rep"
				if [[ ${R[nginx,$nk,ok]:-0} == 1 ]]; then
					n+=" ${R[nginx,$nk,rps]}"
					r+=" $(awk -v x="${R[poll,$key,rps]}" -v y="${R[nginx,$nk,rps]}" 'BEGIN {printf "%.3f", x / y}')"
				fi
			done
			if [[ -z $p ]]; then
				echo "| base poll | $conns | | FAILED | - | **run failed** | | | | | |"
				continue
			fi
			# shellcheck disable=SC2086
			{
				if [[ -n $r ]]; then
					ratio=$(spread "%.2f" $r)
					goal=$(verdict "$(median $r)" "$GOAL_POLL")
					ncell=$(spread "%.0f" $n)
				else
					ratio="-" goal="no 4 KiB row at $conns connections in ROWS" ncell="-"
				fi
				((errs > 0)) && goal="**ERRORS**"
				o=$(stats $other | cut -d' ' -f3)
				((o > 10)) && o+=" ⚠ disturbed"
				echo "| base poll | $conns | $ncell | $(spread "%.0f" $p) | $ratio | $goal | $(awk -v x="$(median $p99)" 'BEGIN {printf "%.1f", x / 1000}') | $(median $us) | $(median $cpu) | $o | $errs |"
			}
		done
		echo
		echo "otad request log, DDI statuses: artifact ${DDI_STATUSES:-none}; poll ${POLL_STATUSES:-none}."
	fi
	echo
	echo "Whole 256 MiB file, one curl connection, a new file per repeat ($WHOLE_NOTE; warm = the third read):"
	echo
	echo "| read | nginx MB/s | otad MB/s | otad/nginx | goal ≥ $GOAL_WHOLE× |"
	echo "|---|---:|---:|---:|---|"
	for kind in cold warm; do
		n="" o="" r=""
		for ((rep = 1; rep <= REPEATS; rep++)); do
			n+=" ${W[nginx,$rep,$kind]}"
			o+=" ${W[otad,$rep,$kind]}"
			r+=" $(awk -v a="${W[otad,$rep,$kind]}" -v b="${W[nginx,$rep,$kind]}" 'BEGIN {printf "%.3f", a / b}')"
		done
		label="first read after upload"
		[[ $kind == warm ]] && label="warm"
		# shellcheck disable=SC2086
		echo "| $label | $(spread "%.0f" $n) | $(spread "%.0f" $o) | $(spread "%.2f" $r) | $(verdict "$(median $r)" "$GOAL_WHOLE") |"
	done
	echo
	echo "| 1 GiB upload to otad (curl -X POST -T file, octet-stream, streamed), $REPEATS distinct files | value | goal | |"
	echo "|---|---:|---:|---|"
	ok_all=1 mbs="" ratio="" growth="" sampled="" curl_s="" after=""
	for ((rep = 1; rep <= REPEATS; rep++)); do
		[[ ${UP[$rep,code]} == 200 && ${UP[$rep,answer]} == "${UP[$rep,sha]}" ]] || ok_all=0
		mbs+=" ${UP[$rep,mbs]}"
		curl_s+=" ${UP[$rep,curl_s]}"
		ratio+=" $(awk -v a="${UP[$rep,mbs]}" -v b="${UP[$rep,sha256sum_mbs]}" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')"
		growth+=" $((UP[$rep,hwm_after] - UP[$rep,rss_before]))"
		sampled+=" $((UP[$rep,rss_max] - UP[$rep,rss_before]))"
		after+=" ${UP[$rep,rss_after]}"
	done
	# shellcheck disable=SC2086
	{
		growth_max=$(stats $growth | cut -d' ' -f3)
		sha_mbs=""
		for ((rep = 1; rep <= REPEATS; rep++)); do sha_mbs+=" ${UP[$rep,sha256sum_mbs]}"; done
		echo "| answers | $( ((ok_all)) && echo "200, sha256 matches ($REPEATS of $REPEATS)" || echo "**a wrong status or sha256: see the log**") | 200 | $( ((ok_all)) && echo ok || echo '**failed**') |"
		echo "| time (curl time_total) | $(spread "%.2f" $curl_s) s | | |"
		echo "| ingest rate | $(spread "%.0f" $mbs) MB/s | ≥ $GOAL_INGEST_MBS MB/s | $(verdict "$(median $mbs)" "$GOAL_INGEST_MBS") |"
		echo "| sha256sum of the same file (page cache) | $(spread "%.0f" $sha_mbs) MB/s | | |"
		echo "| ingest / sha256sum | $(spread "%.2f" $ratio) | | |"
		echo "| otad RSS growth: VmHWM after − VmRSS before, largest of the repeats | $(kib_to_mib "$growth_max") MiB | ≤ $GOAL_RSS_MIB MiB | $( ((growth_max <= GOAL_RSS_MIB * 1024)) && echo met || echo '**not met**') |"
		echo "| otad RSS growth, highest 50 ms sample, largest | $(kib_to_mib "$(stats $sampled | cut -d' ' -f3)") MiB | | |"
		echo "| otad VmRSS just after the last upload | $(kib_to_mib "${UP[$REPEATS,rss_after]}") MiB | | |"
	}
	echo
	echo "otad during the wrk runs: VmRSS $(kib_to_mib "$OTAD_RSS_BEFORE_RUNS") MiB before, $(kib_to_mib "$OTAD_RSS_AFTER_RUNS") MiB after, VmHWM $(kib_to_mib "$OTAD_HWM_END") MiB, $OTAD_THREADS threads; alive at the end: $OTAD_ALIVE."
	echo "otad request log, download route statuses: ${OTAD_STATUSES:-none}; WARN/ERROR lines: $OTAD_WARNINGS. nginx error-log errors: $NGINX_ERRORS."
	if [[ -s $WORK/otad.warnings ]]; then
		echo
		echo "First otad warnings/errors:"
		echo '```'
		cat "$WORK/otad.warnings"
		echo '```'
	fi
	echo
	echo "Server CPU % is the server's user+system time over the run (200 % = both cores), wrk CPU % the load generator's; CPU µs/req is server CPU time per completed request; other CPU % is the user+system time of every other process on the machine (other work; about 0 on an idle machine), the largest of the repeats; a row where it passed 10 % is marked disturbed."
	echo
	echo "Every run (req/s nginx / otad, other CPU % nginx / otad):"
	echo
	echo "| repeat | workload | conns | nginx req/s | otad req/s | ratio | other CPU % |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	for ((rep = 1; rep <= REPEATS; rep++)); do
		for row in "${ROWS[@]}"; do
			read -r size conns <<<"$row"
			key="$size-$conns#$rep"
			[[ ${R[nginx,$key,ok]:-0} == 1 && ${R[otad,$key,ok]:-0} == 1 ]] || { echo "| $rep | $(human_size "$size") | $conns | failed | failed | - | - |"; continue; }
			echo "| $rep | $(human_size "$size") | $conns | ${R[nginx,$key,rps]} | ${R[otad,$key,rps]} | $(awk -v a="${R[otad,$key,rps]}" -v b="${R[nginx,$key,rps]}" 'BEGIN {printf "%.2f", a / b}') | ${R[nginx,$key,other]} / ${R[otad,$key,other]} |"
		done
	done
} | tee "$WORK/report.md"
say "done in ${SECONDS}s"
