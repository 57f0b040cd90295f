#!/usr/bin/env bash
# OCP/1 device delivery, measured in the same run as nginx on this machine, over loopback
# only: verified 16 KiB chunks/s against nginx's 16 KiB HTTPS Range requests/s, raw 64 KiB
# chunks MB/s against nginx's 1 MiB bodies, otad's memory with 10,000 idle authenticated
# devices, and the in-process CHECK → OFFER latency bench. Prints one report (markdown) at
# the end.
#
#   bench/ocp/run.sh
#
# Knobs (environment): DURATION (s per measured run, 15), WARMUP (s, 3), REPEATS (runs of
# each workload, alternating who goes first, 3), CONNS (64), OTAD_COMMIT (the commit
# OTAD_BIN was built from, for the report; read from the checkout when the script builds),
# INFLIGHT (8), IDLE_DEVICES (10000), HOLD (s the idle devices stay after the last one
# connected, 20), SEED (1), OTAD_BIN (use this otad instead of `cargo build --release`),
# CHECK_LATENCY (1; 0 skips `cargo bench --bench check_latency`), PERF (0; 1 records
# perf profiles of otad during the two simulator windows), WAIT_IDLE (wait up to this many
# seconds for a quiet machine before measuring, 0; when set, also up to ROW_WAIT, 120,
# before each workload, within the deadline), MAX_SECONDS (deadline after the build, 900),
# KEEP=1 (keep the work directory), WORK_PARENT (where the work directory goes, $TMPDIR or
# /tmp). See bench/ocp/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LUA="$ROOT/bench/http/range.lua"

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
REPEATS=${REPEATS:-3}
OTAD_COMMIT=${OTAD_COMMIT:-}
CONNS=${CONNS:-64}
INFLIGHT=${INFLIGHT:-8}
IDLE_DEVICES=${IDLE_DEVICES:-10000}
HOLD=${HOLD:-20}
SEED=${SEED:-1}
OTAD_BIN=${OTAD_BIN:-}
CHECK_LATENCY=${CHECK_LATENCY:-1}
PERF=${PERF:-0}
WAIT_IDLE=${WAIT_IDLE:-0}
ROW_WAIT=${ROW_WAIT:-120}
IDLE_NOTE="did not wait for a quiet machine (WAIT_IDLE=0)"
MAX_SECONDS=${MAX_SECONDS:-900}
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-${TMPDIR:-/tmp}}
THREADS=2
FILE_BYTES=$((256 * 1024 * 1024))
# The 256 MiB file and three more per repeat (the one-device rows), each twice (nginx's
# copy and otad's database), logs.
NEED_FREE_KIB=$(((2 * (1 + 3 * REPEATS) * 256 + 512) * 1024))
FW_TYPE=3
GOAL_CHUNK_RATIO=2.0
GOAL_IDLE_RSS_MIB=400
GOAL_SINGLE_RATIO=1.0

say() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

[[ $IDLE_DEVICES =~ ^[0-9]+$ && $IDLE_DEVICES -ge $CONNS ]] || die "IDLE_DEVICES must be a number ≥ CONNS ($CONNS)"
[[ $REPEATS =~ ^[1-9]$ ]] || die "REPEATS must be 1-9"

# ---------------------------------------------------------------- processes and cleanup
WORK=""
OTAD_PID=""
NGINX_PID=""
NGINX_WORKERS=""
SIM_PID=""
PERF_PID=""

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
	stop_pid "$PERF_PID" INT 10
	stop_pid "$SIM_PID" TERM 5
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
			rm -f "$WORK/www/firmware.bin"
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

# ---------------------------------------------------------------- tools and limits
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
[[ -f $LUA ]] || die "missing $LUA (the wrk script of bench/http)"
if [[ $PERF == 1 ]]; then
	command -v perf >/dev/null 2>&1 || die "PERF=1 needs perf (apt-get install linux-perf)"
fi

# Every idle device is one socket in the simulator and one in otad (both inherit this
# shell's limit); each also needs its own files, listeners and threads.
NEED_FDS=$((IDLE_DEVICES + 1024))
if (($(ulimit -n) < NEED_FDS)); then
	ulimit -n "$NEED_FDS" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
(($(ulimit -n) >= NEED_FDS)) ||
	die "the open-files limit is $(ulimit -n) (hard $(ulimit -Hn)); $IDLE_DEVICES idle devices need $NEED_FDS in otad and in the simulator (raise the hard limit, or lower IDLE_DEVICES)"
FD_LIMIT=$(ulimit -n)

# ---------------------------------------------------------------- build
if [[ -z $OTAD_BIN ]]; then
	say "building otad (cargo build --release --locked)"
	(cd "$ROOT" && timeout 1800 cargo build --release --locked --quiet) || die "cargo build failed"
	OTAD_BIN="$ROOT/target/release/otad"
	if [[ -z $OTAD_COMMIT ]]; then
		OTAD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
		[[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null || true) ]] &&
			OTAD_COMMIT+=" + uncommitted changes in src/"
	fi
fi
[[ -x $OTAD_BIN ]] || die "no otad binary at $OTAD_BIN"
# What was measured: the commit (given or read from the checkout the script built) and the
# binary itself, so a report cannot name the checkout's commit for another binary.
OTAD_ID="${OTAD_COMMIT:-commit not given (set OTAD_COMMIT)}; binary $OTAD_BIN, sha256 $(sha256sum "$OTAD_BIN" | cut -c1-12), built $(date -u -r "$OTAD_BIN" '+%Y-%m-%d %H:%M UTC')"
if [[ $CHECK_LATENCY == 1 ]]; then
	say "building the check_latency bench (cargo bench --no-run)"
	(cd "$ROOT" && timeout 1800 cargo bench --locked --bench check_latency --no-run --quiet 2>/dev/null) ||
		die "cargo bench --bench check_latency --no-run failed"
fi

busy_ticks() { # all CPUs, non-idle ticks since boot
	local _c u n s idle iow irq sirq steal _rest
	read -r _c u n s idle iow irq sirq steal _rest </proc/stat
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
RUN_START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

DEADLINE=$((SECONDS + MAX_SECONDS))
need_time() { # SECONDS WHAT
	((SECONDS + $1 <= DEADLINE)) || die "the run would pass its ${MAX_SECONDS}s deadline at: $2"
}
# row_quiet LEFT: with WAIT_IDLE, wait (bounded) for a quiet machine, keeping LEFT seconds
# for what follows.
row_quiet() {
	((WAIT_IDLE > 0)) || return 0
	local budget=$((DEADLINE - SECONDS - $1))
	((budget > ROW_WAIT)) && budget=$ROW_WAIT
	if ((budget > 0)) && ! wait_quiet "$budget" 3; then
		say "machine still busy after ${budget}s: measuring anyway"
	fi
}

# ---------------------------------------------------------------- work directory and file
mkdir -p "$WORK_PARENT"
WORK=$(mktemp -d "$WORK_PARENT/otad-ocp-bench.XXXXXX")
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
FILE_SHA=$(sha256sum "$FILE" | cut -d' ' -f1)

# ---------------------------------------------------------------- otad
DATA="$WORK/otad-data"
OTAD_LOG="$WORK/otad.log"
start_otad() { # sets OTAD_PID, OTAD_ADDR, DEVICE_ADDR, DEVICE_PORT
	rm -f "$DATA/listen.json"
	"$OTAD_BIN" serve --data-dir "$DATA" --api-listen 127.0.0.1:0 --device-listen 127.0.0.1:0 \
		>>"$OTAD_LOG" 2>&1 &
	OTAD_PID=$!
	local i
	for ((i = 0; i < 600; i++)); do
		[[ -s $DATA/listen.json && -s $DATA/initial-credentials.json ]] && break
		alive "$OTAD_PID" || die "otad exited during start-up: $(tail -5 "$OTAD_LOG")"
		sleep 0.1
	done
	[[ -s $DATA/listen.json ]] || die "otad did not write listen.json within 60 s"
	OTAD_ADDR=$(jq -er .api "$DATA/listen.json")
	DEVICE_ADDR=$(jq -er .device "$DATA/listen.json")
	[[ $OTAD_ADDR == 127.* && $DEVICE_ADDR == 127.* ]] || die "otad listens on $OTAD_ADDR / $DEVICE_ADDR, not loopback"
	DEVICE_PORT=${DEVICE_ADDR##*:}
	OTAD="https://$OTAD_ADDR"
}
say "starting otad ($OTAD_BIN), open-files limit $FD_LIMIT"
start_otad
CA="$DATA/tls/cert.pem"
CURL=(curl -sS --fail-with-body --max-time 60 --cacert "$CA")

creds="$DATA/initial-credentials.json"
ADMIN_TOKEN=$("${CURL[@]}" -u "$(jq -er .clientId "$creds"):$(jq -er .clientSecret "$creds")" \
	--data-urlencode grant_type=password --data-urlencode username=admin \
	--data-urlencode "password=$(jq -er .password "$creds")" "$OTAD/oauth/token" | jq -er .access_token) ||
	die "admin token refused"
partner=$("${CURL[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"ocp-bench"}' "$OTAD/v1/admin/partners") || die "partner creation failed: $partner"
PARTNER=$(jq -er .partnerId <<<"$partner")
TOKEN=$("${CURL[@]}" -u "$PARTNER:$(jq -er .clientSecret <<<"$partner")" \
	-d grant_type=client_credentials "$OTAD/oauth/token" | jq -er .access_token) ||
	die "partner token refused"
AUTH=(-H "Authorization: Bearer $TOKEN")
P="$OTAD/v1/ota/partners/$PARTNER"
post_json() { # URL JSON
	"${CURL[@]}" "${AUTH[@]}" -H 'Content-Type: application/json' -d "$2" "$1"
}

say "uploading and publishing the 256 MiB image"
sha=$("${CURL[@]}" --max-time 120 "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
	-X POST -T "$FILE" "$P/binaries" | jq -er .value) || die "upload of the 256 MiB file failed"
[[ $sha == "$FILE_SHA" ]] || die "otad answered sha256 $sha for a file whose sha256 is $FILE_SHA"
IMAGE_URL=$(post_json "$P/binaries/moveToRepository" "{\"value\":\"$sha\"}" | jq -er .value) ||
	die "moveToRepository failed"
DEVICE_TYPE=$(post_json "$P/deviceTypes" '{"name":"ocp-bench","description":"bench/ocp devices"}' |
	jq -er .id) || die "device type creation failed"
record=$(post_json "$P/pool" "{\"name\":\"ocp-bench-fw\",\"type\":$FW_TYPE,\"version\":\"1.0.0\",\"url\":\"$IMAGE_URL\"}") ||
	die "pool record creation failed: $record"
post_json "$P/deviceTypes/$DEVICE_TYPE/firmwareImages" "$record" >/dev/null ||
	die "associating the image with the device type failed"

say "importing $IDLE_DEVICES devices"
{
	echo "deviceId,deviceTypeId"
	for ((i = 0; i < IDLE_DEVICES; i++)); do printf 'ocp-%05d,%s\n' "$i" "$DEVICE_TYPE"; done
} >"$WORK/import.csv"
FLEET="$WORK/fleet.csv"
"${CURL[@]}" --max-time 300 "${AUTH[@]}" -H 'Content-Type: text/csv' --data-binary @"$WORK/import.csv" \
	-o "$FLEET" "$P/devices/import" || die "device import failed: $(head -c 300 "$FLEET")"
imported=$(($(grep -c . "$FLEET") - 1))
((imported == IDLE_DEVICES)) || die "the import answered $imported devices, expected $IDLE_DEVICES"
OTAD_RSS_SETUP=""

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
NGINX_URL="https://127.0.0.1:$NGINX_PORT/files/firmware.bin"
for ((i = 0; i < 100; i++)); do
	curl -s -o /dev/null --max-time 2 --cacert "$CA" -r 0-0 "$NGINX_URL" && break
	alive "$NGINX_PID" || die "nginx exited: $(tail -5 "$NG/error.log")"
	sleep 0.1
done
curl -sf -o /dev/null --max-time 2 --cacert "$CA" -r 0-0 "$NGINX_URL" || die "nginx not ready within 10 s"
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')

# ---------------------------------------------------------------- checks before measuring
tls_of() { # HOST:PORT [ALPN] -> "TLSv1.3 TLS_AES_256_GCM_SHA384"
	local alpn=()
	[[ -n ${2:-} ]] && alpn=(-alpn "$2")
	timeout 10 openssl s_client -connect "$1" -servername 127.0.0.1 -brief "${alpn[@]}" </dev/null 2>&1 |
		awk -F': ' '/^Protocol version/ {p = $2} /^Ciphersuite/ {c = $2} END {print p, c}'
}
TLS_NGINX=$(tls_of "127.0.0.1:$NGINX_PORT")
TLS_OTAD=$(tls_of "$DEVICE_ADDR" ocp/1)

# nginx serves the file's bytes.
dd if="$FILE" of="$WORK/expect" bs=16384 skip=100 count=1 status=none
code=$(curl -sS --max-time 30 --cacert "$CA" -r "$((100 * 16384))-$((101 * 16384 - 1))" -o "$WORK/got" \
	-w '%{http_code}' "$NGINX_URL")
[[ $code == 206 ]] && cmp -s "$WORK/expect" "$WORK/got" || die "nginx sent a wrong 16 KiB range (status $code)"

SIM=("$OTAD_BIN" --data-dir "$DATA" device simulate --devices-file "$FLEET" --type "$FW_TYPE")
# One device of each kind downloads the whole image once, every chunk verified (or, raw,
# the whole image hashed) and both hashes compared: the bytes are right before anything is
# timed. This also puts the image in the page cache and otad's redb cache.
say "correctness: one verified 16 KiB download and one raw 64 KiB download of the whole image"
for kind in proof raw; do
	extra=(--chunk-log 4 --max-inflight "$INFLIGHT")
	[[ $kind == raw ]] && extra=(--chunk-log 6 --raw --get-size 65536 --max-inflight "$INFLIGHT")
	"${SIM[@]}" --devices 1 --timeout 120 "${extra[@]}" --json >"$WORK/out/check-$kind.json" \
		2>"$WORK/out/check-$kind.err" || die "the $kind download failed: $(cat "$WORK/out/check-$kind.json" "$WORK/out/check-$kind.err")"
	[[ $(jq -r '.ok == 1 and .bytes == '"$FILE_BYTES" "$WORK/out/check-$kind.json") == true ]] ||
		die "the $kind download did not deliver the image: $(cat "$WORK/out/check-$kind.json")"
done
curl -sS --max-time 120 --cacert "$CA" -o /dev/null "$NGINX_URL" || die "nginx whole-file read failed"
OTAD_RSS_SETUP=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$OTAD_PID/status")

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
	local _c u n s idle iow irq sirq steal _rest
	read -r _c u n s idle iow irq sirq steal _rest </proc/stat
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
server_pids() {
	if [[ $1 == nginx ]]; then echo "$NGINX_PID $NGINX_WORKERS"; else echo "$OTAD_PID"; fi
}
pct() { awk -v t="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN {if (t < 0) t = 0; printf "%.0f", 100 * t / hz / s}'; }

declare -A R # R[row,key]
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# run_wrk ROW SIZE SECONDS: nginx, random single ranges of SIZE bytes, CONNS connections.
run_wrk() {
	local row=$1 size=$2 dur=$3 out="$WORK/out/$1.txt"
	local s0 b0 q0 c0 s1 b1 q1 c1 rustc=no pids
	pids=$(server_pids nginx)
	alive "$NGINX_PID" || die "nginx is not running any more"
	pgrep -x rustc >/dev/null && rustc=yes
	# shellcheck disable=SC2086
	s0=$(proc_ticks $pids)
	b0=$(sys_task)
	q0=$(sys_irq)
	children_ticks
	c0=$CT
	timeout $((dur + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 10s -s "$LUA" "$NGINX_URL" \
		-- "$size" "$FILE_BYTES" "-" "127.0.0.1:$NGINX_PORT" "/files/firmware.bin" "$SEED" >"$out" 2>&1 || true
	# shellcheck disable=SC2086
	s1=$(proc_ticks $pids)
	b1=$(sys_task)
	q1=$(sys_irq)
	children_ticks
	c1=$CT
	pgrep -x rustc >/dev/null && rustc=yes
	local line k
	line=$(grep '^RESULT ' "$out" || true)
	if [[ -z $line ]]; then
		say "wrk printed no result: $(tail -3 "$out" | tr '\n' ' ')"
		R[$row,ok]=0
		return 0
	fi
	R[$row,ok]=1
	for k in requests duration_us non206 err_connect err_read err_write err_timeout p50_us p99_us first_bad; do
		R[$row,$k]=$(field "$k" "$line")
	done
	local secs
	secs=$(awk -v d="${R[$row,duration_us]}" 'BEGIN {print d / 1e6}')
	R[$row,secs]=$secs
	R[$row,n]=$((${R[$row,requests]} - ${R[$row,non206]}))
	R[$row,rate]=$(awk -v n="${R[$row,requests]}" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
	R[$row,mbs]=$(awk -v n="${R[$row,n]}" -v s="$secs" -v z="$size" 'BEGIN {printf "%.0f", n * z / s / 1e6}')
	R[$row,cpu]=$(pct $((s1 - s0)) "$secs")
	R[$row,client]=$(pct $((c1 - c0)) "$secs")
	R[$row,irq]=$(pct $((q1 - q0)) "$secs")
	R[$row,other]=$(pct $((b1 - b0 - (s1 - s0) - (c1 - c0))) "$secs")
	R[$row,us]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v n="${R[$row,requests]}" \
		'BEGIN {printf "%.0f", (n > 0) ? 1e6 * t / hz / n : 0}')
	R[$row,p50]=$(awk -v u="${R[$row,p50_us]}" 'BEGIN {printf "%.1f", u / 1000}')
	R[$row,p99]=$(awk -v u="${R[$row,p99_us]}" 'BEGIN {printf "%.1f", u / 1000}')
	R[$row,errs]=$((${R[$row,non206]} + ${R[$row,err_connect]} + ${R[$row,err_read]} + ${R[$row,err_write]} + ${R[$row,err_timeout]}))
	R[$row,err_text]="non-206 ${R[$row,non206]} (first ${R[$row,first_bad]}), connect ${R[$row,err_connect]}, read ${R[$row,err_read]}, write ${R[$row,err_write]}, timeout ${R[$row,err_timeout]}"
	R[$row,rustc]=$rustc
	say "nginx $row: ${R[$row,rate]} req/s, ${R[$row,mbs]} MB/s, server CPU ${R[$row,cpu]}%, wrk CPU ${R[$row,client]}%, other CPU ${R[$row,other]}%, errors ${R[$row,errs]}"
}

# wait_line FILE TEXT SECONDS PID: 0 once FILE has a line with TEXT; 1 when PID ended or
# SECONDS passed first.
wait_line() {
	local file=$1 text=$2 limit=$(($3 * 20)) pid=$4 i
	for ((i = 0; i < limit; i++)); do
		grep -qF "$text" "$file" 2>/dev/null && return 0
		alive "$pid" || { grep -qF "$text" "$file" 2>/dev/null && return 0; return 1; }
		sleep 0.05
	done
	return 1
}

# wait_exit PID SECONDS: waits for a background child; its status in WAIT_RC (124 = timeout).
wait_exit() {
	local pid=$1 i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		stop_pid "$pid" TERM 5
		wait "$pid" 2>/dev/null || true
		WAIT_RC=124
		return 0
	fi
	WAIT_RC=0
	wait "$pid" 2>/dev/null || WAIT_RC=$?
}

# sim_cpu_ticks FILE TEXT: the simulator's CPU time on its line with TEXT, in ticks.
sim_cpu_ticks() {
	grep -m1 -F "$2" "$1" | sed -n 's/.*process CPU \([0-9.]*\) s.*/\1/p' |
		awk -v hz="$CLK_TCK" '{printf "%d", $1 * hz} END {if (NR == 0) print 0}'
}

# run_sim ROW ARGS...: otad's devices in repeat mode; CPU sampled at the window's ends.
run_sim() {
	local row=$1 out="$WORK/out/$1"
	shift
	local s0 b0 q0 c0 s1 b1 q1 c1 t0 t1 rustc=no
	alive "$OTAD_PID" || die "otad is not running any more"
	pgrep -x rustc >/dev/null && rustc=yes
	"${SIM[@]}" --devices "$CONNS" --concurrency "$CONNS" --max-inflight "$INFLIGHT" \
		--skip-image-hash --timeout 30 --warmup-seconds "$WARMUP" --repeat-seconds "$DURATION" \
		"$@" --json >"$out.json" 2>"$out.err" &
	SIM_PID=$!
	R[$row,ok]=0
	if wait_line "$out.err" "window started" $((WARMUP + 60)) "$SIM_PID"; then
		s0=$(proc_ticks "$OTAD_PID")
		b0=$(sys_task)
		q0=$(sys_irq)
		t0=$EPOCHREALTIME
		if [[ $PERF == 1 ]]; then
			perf record -F 499 -g -p "$OTAD_PID" -o "$WORK/perf-$row.data" -- sleep "$DURATION" \
				>"$WORK/perf-$row.log" 2>&1 &
			PERF_PID=$!
		fi
		sleep "$(awk -v d="$DURATION" 'BEGIN {print (d > 1) ? d - 0.5 : 0}')"
		if wait_line "$out.err" "window ended" 30 "$SIM_PID"; then
			s1=$(proc_ticks "$OTAD_PID")
			b1=$(sys_task)
			q1=$(sys_irq)
			t1=$EPOCHREALTIME
			R[$row,ok]=1
		fi
	fi
	wait_exit "$SIM_PID" 60
	R[$row,rc]=$WAIT_RC
	SIM_PID=""
	if [[ -n $PERF_PID ]]; then
		wait_exit "$PERF_PID" 30
		PERF_PID=""
	fi
	pgrep -x rustc >/dev/null && rustc=yes
	R[$row,rustc]=$rustc
	if [[ ${R[$row,ok]} != 1 ]] || ! jq -e .chunks "$out.json" >/dev/null 2>&1; then
		say "the simulator ($row) did not finish its window: $(tail -3 "$out.err" | tr '\n' ' ') $(head -c 300 "$out.json")"
		R[$row,ok]=0
		return 0
	fi
	local secs j
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
	j="$out.json"
	# The simulator prints its own CPU time on the window's lines: exact for its window.
	c0=$(sim_cpu_ticks "$out.err" "window started")
	c1=$(sim_cpu_ticks "$out.err" "window ended")
	R[$row,secs]=$secs
	R[$row,n]=$(jq -r .chunks "$j")
	R[$row,rate]=$(jq -r '.chunksPerSecond | round' "$j")
	R[$row,mbs]=$(jq -r '.mbPerSecond | round' "$j")
	R[$row,p50]=$(jq -r '.latencyMs.chunk.p50 * 10 | round / 10' "$j")
	R[$row,p99]=$(jq -r '.latencyMs.chunk.p99 * 10 | round / 10' "$j")
	R[$row,cpu]=$(pct $((s1 - s0)) "$secs")
	R[$row,client]=$(pct $((c1 - c0)) "$secs")
	R[$row,irq]=$(pct $((q1 - q0)) "$secs")
	R[$row,other]=$(pct $((b1 - b0 - (s1 - s0) - (c1 - c0))) "$secs")
	R[$row,us]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v s="$secs" -v r="${R[$row,rate]}" \
		'BEGIN {printf "%.0f", (r > 0) ? 1e6 * t / hz / (r * s) : 0}')
	R[$row,errs]=$(jq -r .failed "$j")
	R[$row,err_text]="failed devices $(jq -r .failed "$j") of $(jq -r .devices "$j"): $(jq -r '[.errors[] | "\(.deviceId) (\(.stage)): \(.error)"] | first // ""' "$j")"
	[[ ${R[$row,rc]} == 0 || ${R[$row,errs]} -gt 0 ]] || R[$row,errs]=1
	say "otad $row: ${R[$row,rate]} chunks/s, ${R[$row,mbs]} MB/s, server CPU ${R[$row,cpu]}%, simulator CPU ${R[$row,client]}%, other CPU ${R[$row,other]}%, failed ${R[$row,errs]}"
}

# ---------------------------------------------------------------- throughput rows
ROW_SECS=$((DURATION + WARMUP + 20))
need_time $((REPEATS * 4 * ROW_SECS + WARMUP + 5)) "the throughput runs"
say "warm-up: ${WARMUP}s of nginx (otad's runs have their own warm-up)"
run_wrk warmup 16384 "$WARMUP"

# Each workload pair REPEATS times; who goes first alternates, so a drift in the machine's
# load hits both alike.
for ((rep = 1; rep <= REPEATS; rep++)); do
	row_quiet $(((REPEATS - rep + 1) * 4 * ROW_SECS + 2 * HOLD + 300))
	if ((rep % 2)); then
		run_wrk "nginx16.$rep" 16384 "$DURATION"
		run_sim "proof.$rep" --chunk-log 4
	else
		run_sim "proof.$rep" --chunk-log 4
		run_wrk "nginx16.$rep" 16384 "$DURATION"
	fi
	row_quiet $(((REPEATS - rep) * 4 * ROW_SECS + 2 * ROW_SECS + 2 * HOLD + 300))
	if ((rep % 2)); then
		run_sim "raw.$rep" --chunk-log 6 --raw --get-size 65536
		run_wrk "nginx1m.$rep" 1048576 "$DURATION"
	else
		run_wrk "nginx1m.$rep" 1048576 "$DURATION"
		run_sim "raw.$rep" --chunk-log 6 --raw --get-size 65536
	fi
done

# stats VALUES... -> "median min max n" (median of an even count: mean of the middle two)
stats() {
	printf '%s\n' "$@" | sort -g | awk 'NF {v[++n] = $1}
		END {
			if (n == 0) { print "- - - 0"; exit }
			m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			printf "%.0f %s %s %d\n", m, v[1], v[n], n
		}'
}
# agg WORKLOAD KEY: over the repeats that succeeded, "median min max n" of R[WORKLOAD.i,KEY].
agg() {
	local w=$1 k=$2 i vals=""
	for ((i = 1; i <= REPEATS; i++)); do
		[[ ${R[$w.$i,ok]:-0} == 1 ]] && vals+=" ${R[$w.$i,$k]}"
	done
	# shellcheck disable=SC2086
	stats $vals
}
# ratio_stat A B: "median min max" of the per-repeat ratios R[A.i]/R[B.i] of KEY (2 decimals)
ratio_stat() {
	local a=$1 b=$2 k=$3 i vals=""
	for ((i = 1; i <= REPEATS; i++)); do
		[[ ${R[$a.$i,ok]:-0} == 1 && ${R[$b.$i,ok]:-0} == 1 ]] &&
			vals+=" $(awk -v x="${R[$a.$i,$k]}" -v y="${R[$b.$i,$k]}" 'BEGIN {printf "%.3f", (y > 0) ? x / y : 0}')"
	done
	# shellcheck disable=SC2086
	printf '%s\n' $vals | sort -g | awk 'NF {v[++n] = $1}
		END {
			if (n == 0) { print "- - -"; exit }
			m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			printf "%.2f %.2f %.2f\n", m, v[1], v[n]
		}'
}
# all_ok WORKLOAD: every repeat finished
all_ok() {
	local i
	for ((i = 1; i <= REPEATS; i++)); do [[ ${R[$1.$i,ok]:-0} == 1 ]] || return 1; done
}

# ---------------------------------------------------------------- one device, whole image
# Each repeat publishes new images (their own bytes) and one device downloads each whole:
# the first read after the upload (what the first device of a fleet meets), then twice
# more, of which the second counts (warm). nginx reads a new file of its own the same way
# with one curl GET. The newest associated image is the one offered, so each new record
# makes the next download read new bytes. Who goes first alternates per repeat.
declare -A S # S[nginx|proof|raw,rep,cold|warm] MB/s
new_image() { # REP KIND: a new 256 MiB image, published, recorded and associated
	local f="$WORK/single.bin" seed sha url record
	seed=$((3000 + 10 * $1))
	[[ $2 == raw ]] && seed=$((seed + 1))
	det_bytes "$FILE_BYTES" "$(printf '%032x' "$seed")" "$f"
	sha=$("${CURL[@]}" --max-time 120 "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
		-X POST -T "$f" "$P/binaries" | jq -er .value) || die "upload of a one-device image failed"
	rm -f "$f"
	url=$(post_json "$P/binaries/moveToRepository" "{\"value\":\"$sha\"}" | jq -er .value) ||
		die "moveToRepository failed"
	record=$(post_json "$P/pool" "{\"name\":\"ocp-bench-fw\",\"type\":$FW_TYPE,\"version\":\"single-$2-$1\",\"url\":\"$url\"}") ||
		die "pool record creation failed: $record"
	post_json "$P/deviceTypes/$DEVICE_TYPE/firmwareImages" "$record" >/dev/null ||
		die "associating a one-device image failed"
}
sim_once() { # KIND -> MB/s of one device downloading the offered image whole
	local out="$WORK/out/single-$1" extra=(--chunk-log 4 --max-inflight "$INFLIGHT")
	[[ $1 == raw ]] && extra=(--chunk-log 6 --raw --get-size 65536 --max-inflight "$INFLIGHT")
	"${SIM[@]}" --devices 1 --timeout 120 --skip-image-hash "${extra[@]}" --json >"$out.json" 2>"$out.err" ||
		die "the one-device $1 download failed: $(cat "$out.json" "$out.err")"
	[[ $(jq -r '.ok == 1 and .bytes == '"$FILE_BYTES" "$out.json") == true ]] ||
		die "the one-device $1 download did not deliver the image: $(cat "$out.json")"
	jq -r '.mbPerSecond | round' "$out.json"
}
curl_once() { # URL -> MB/s of one whole GET
	local out code size t
	out=$(curl -sS --max-time 120 --cacert "$CA" -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1") ||
		die "nginx whole-file GET failed"
	read -r code size t <<<"$out"
	[[ $code == 200 && $size == "$FILE_BYTES" ]] || die "nginx whole-file GET: status $code, $size bytes"
	awk -v s="$size" -v t="$t" 'BEGIN {printf "%.0f", s / t / 1e6}'
}
single_nginx() { # REP
	local f="$WORK/www/single-$1.bin"
	det_bytes "$FILE_BYTES" "$(printf '%032x' $((3000 + 10 * $1 + 2)))" "$f"
	chmod 644 "$f"
	S[nginx,$1,cold]=$(curl_once "https://127.0.0.1:$NGINX_PORT/files/single-$1.bin")
	curl_once "https://127.0.0.1:$NGINX_PORT/files/single-$1.bin" >/dev/null
	S[nginx,$1,warm]=$(curl_once "https://127.0.0.1:$NGINX_PORT/files/single-$1.bin")
	rm -f "$f"
}
single_otad() { # REP KIND
	new_image "$1" "$2"
	S[$2,$1,cold]=$(sim_once "$2")
	sim_once "$2" >/dev/null
	S[$2,$1,warm]=$(sim_once "$2")
}
need_time $((REPEATS * 60)) "the one-device rows"
for ((rep = 1; rep <= REPEATS; rep++)); do
	if ((rep % 2)); then
		single_nginx "$rep"
		single_otad "$rep" proof
		single_otad "$rep" raw
	else
		single_otad "$rep" raw
		single_otad "$rep" proof
		single_nginx "$rep"
	fi
	say "one device, repeat $rep: nginx ${S[nginx,$rep,cold]} / ${S[nginx,$rep,warm]} MB/s, otad verified ${S[proof,$rep,cold]} / ${S[proof,$rep,warm]}, raw ${S[raw,$rep,cold]} / ${S[raw,$rep,warm]} (first read / warm)"
done

# ---------------------------------------------------------------- idle devices
metric() { # NAME -> value from otad's /metrics
	"${CURL[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" "$OTAD/metrics" 2>/dev/null |
		awk -v n="$1" '$1 == n {print $2; exit}'
}
rss_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$OTAD_PID/status"; }
declare -A I # I[tag,key]
# idle_run TAG: IDLE_DEVICES devices connect (256 at a time), CHECK and stay, PINGing every
# 30 s, for HOLD seconds after the last one connected; otad's VmRSS sampled every 0.5 s.
idle_run() {
	local tag=$1 out="$WORK/out/idle-$1" i r
	say "idle ($tag): $IDLE_DEVICES devices connect, CHECK and stay (PING every 30 s) for ${HOLD}s after the last one"
	I[$tag,before]=$(rss_kib VmRSS)
	I[$tag,threads_before]=$(rss_kib Threads)
	echo 5 >"/proc/$OTAD_PID/clear_refs" 2>/dev/null || true # VmHWM := VmRSS (Linux >= 4.0)
	"${SIM[@]}" --devices "$IDLE_DEVICES" --concurrency 256 --timeout 60 --hold "$HOLD" --ping-every 30 \
		--json >"$out.json" 2>"$out.err" &
	SIM_PID=$!
	I[$tag,ok]=0
	I[$tag,max]=0
	I[$tag,last]=0
	if wait_line "$out.err" "all connected" 180 "$SIM_PID"; then
		I[$tag,ok]=1
		sleep 2 # let the last CHECK commits settle
		I[$tag,connected]=$(metric otad_connected_devices || true)
		I[$tag,sockets]=$(ss -Htn state established "( sport = :$DEVICE_PORT )" 2>/dev/null | wc -l)
		I[$tag,threads]=$(rss_kib Threads)
		for ((i = 0; i < (HOLD - 4) * 2; i++)); do
			alive "$SIM_PID" || break
			r=$(rss_kib VmRSS)
			((r > ${I[$tag,max]})) && I[$tag,max]=$r
			I[$tag,last]=$r
			sleep 0.5
		done
	fi
	I[$tag,hwm]=$(rss_kib VmHWM)
	wait_exit "$SIM_PID" $((HOLD + 60))
	I[$tag,rc]=$WAIT_RC
	SIM_PID=""
	sleep 3
	I[$tag,after]=$(rss_kib VmRSS)
	((${I[$tag,max]} > 0)) || I[$tag,ok]=0
	I[$tag,failed]=$(jq -r '.failed // "?"' "$out.json" 2>/dev/null || echo "?")
	I[$tag,held]=$(jq -r '.held // "?"' "$out.json" 2>/dev/null || echo "?")
	I[$tag,sim]=$(jq -r '"\(.ok) ok, \(.failed) failed, \(.held) held, \(.pings) PINGs answered; connect+HELLO p50 \(.latencyMs.connect.p50) ms p99 \(.latencyMs.connect.p99) ms; CHECK p50 \(.latencyMs.check.p50) ms p99 \(.latencyMs.check.p99) ms"' "$out.json" 2>/dev/null || echo "no result (exit ${I[$tag,rc]})")
	I[$tag,sim]+="; all connected after $(sed -n 's/.*all connected: .* after \([0-9.]*\) s .*/\1/p' "$out.err" | head -1) s"
	say "idle ($tag): highest VmRSS $((${I[$tag,max]} / 1024)) MiB (from $((${I[$tag,before]} / 1024)) MiB), held ${I[$tag,held]}, failed ${I[$tag,failed]}"
}
need_time $((2 * HOLD + 240)) "the idle devices"
row_quiet $((2 * HOLD + 300))
# First on the server that just served the throughput runs (what a busy server has
# allocated and kept), then on a freshly started one.
idle_run used
alive "$OTAD_PID" || die "otad crashed during the idle devices"
stop_pid "$OTAD_PID" TERM 20
start_otad
row_quiet $((HOLD + 150))
idle_run fresh

alive "$OTAD_PID" && OTAD_ALIVE=yes || OTAD_ALIVE="NO (crashed: see its log)"
OTAD_WARNINGS=$(grep -cE ' (WARN|ERROR) ' "$OTAD_LOG" || true)
grep -E ' (WARN|ERROR) ' "$OTAD_LOG" | head -20 >"$WORK/otad.warnings" || true
NGINX_ERRORS=$(grep -cE '\[(error|crit|alert|emerg)\]' "$NG/error.log" || true)
# Servers off before the in-process bench: it should have the machine to itself.
if [[ -n $NGINX_PID ]]; then
	NGINX_WORKERS="$NGINX_WORKERS $(pgrep -P "$NGINX_PID" 2>/dev/null | tr '\n' ' ' || true)"
	stop_pid "$NGINX_PID" TERM 10
	for w in $NGINX_WORKERS; do stop_pid "$w" TERM 2; done
	NGINX_PID=""
fi
stop_pid "$OTAD_PID" TERM 20
OTAD_PID=""

# ---------------------------------------------------------------- CHECK → OFFER
CL_OUT="$WORK/out/check_latency.txt"
CL_NOTE="not run (CHECK_LATENCY=0)"
if [[ $CHECK_LATENCY == 1 ]]; then
	need_time 60 "cargo bench --bench check_latency"
	row_quiet 60
	say "cargo bench --bench check_latency (1,000,000 devices, 10,000 images)"
	left=$((DEADLINE - SECONDS))
	if (cd "$ROOT" && timeout "$left" cargo bench --locked --bench check_latency) >"$CL_OUT" 2>"$CL_OUT.err"; then
		CL_NOTE="ok"
	else
		CL_NOTE="**failed or passed the deadline** (exit $?): $(tail -3 "$CL_OUT.err" | tr '\n' ' ')"
	fi
fi
cl_field() { # LINE-PREFIX pNN -> milliseconds
	grep -m1 "^$1" "$CL_OUT" 2>/dev/null | sed -n "s/.* $2 \([0-9.]*\) ms.*/\1/p"
}

# ---------------------------------------------------------------- report
kib_to_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
row_ok() { [[ ${R[$1,ok]:-0} == 1 ]]; }
clean() { # ROW -> "" or a warning for the status column
	local w=""
	((${R[$1,errs]:-0} > 0)) && w+=" ⚠ errors"
	((${R[$1,other]:-0} > 10)) && w+=" ⚠ disturbed (other CPU ${R[$1,other]} %)"
	[[ ${R[$1,rustc]:-no} == yes ]] && w+=" (rustc running)"
	echo "$w"
}
{
	echo
	echo "## OCP/1 device delivery vs nginx (bench/ocp/run.sh)"
	echo
	echo "- date: $RUN_START; host: nproc=$(nproc), CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
	echo "- otad: $OTAD_ID"
	echo "- nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'); open-files limit $FD_LIMIT (otad and the simulator)"
	echo "- TLS negotiated (same ECDSA P-256 certificate): nginx $TLS_NGINX; otad device listener (ALPN ocp/1) $TLS_OTAD"
	echo "- machine load: $IDLE_NOTE; \"other CPU\" below is what else ran during each run"
	echo "- image: 256 MiB of pseudo-random bytes, the same file for both; ${CONNS} connections, ${DURATION}s per measured run (otad: after ${WARMUP}s of warm-up)"
	echo
	echo "| # | measure | nginx | otad | otad / nginx | goal | status |"
	echo "|---|---|---:|---:|---:|---|---|"
	for pair in "nginx16 proof rate" "nginx1m raw mbs"; do
		read -r ng ot key <<<"$pair"
		read -r ng_med ng_lo ng_hi _ <<<"$(agg "$ng" "$key")"
		read -r ot_med ot_lo ot_hi _ <<<"$(agg "$ot" "$key")"
		w=""
		for ((i = 1; i <= REPEATS; i++)); do w+="$(clean "$ng.$i")$(clean "$ot.$i")"; done
		if [[ $key == rate ]]; then
			num=1
			what="16 KiB per second: otad verified chunks (chunk_log 4, proofs, $CONNS devices × max_inflight $INFLIGHT) vs nginx HTTPS Range requests ($CONNS conns)"
		else
			num=2
			what="MB/s: otad raw 64 KiB chunks (chunk_log 6, no proof, $CONNS devices × max_inflight $INFLIGHT) vs nginx 1 MiB Range bodies ($CONNS conns)"
		fi
		if all_ok "$ng" && all_ok "$ot"; then
			read -r r r_lo r_hi <<<"$(ratio_stat "$ot" "$ng" "$key")"
			rr=""
			((REPEATS > 1)) && rr=" ($r_lo–$r_hi)"
			if ((num == 1)); then
				st=$(awk -v r="$r" -v g="$GOAL_CHUNK_RATIO" 'BEGIN {print (r >= g) ? "met" : "**not met**"}')
				goal="≥ ${GOAL_CHUNK_RATIO}×"
			else
				st="-"
				goal="report"
			fi
			echo "| $num | $what; median of $REPEATS runs (min–max), ratio = median of the per-run ratios | $ng_med ($ng_lo–$ng_hi) | $ot_med ($ot_lo–$ot_hi) | **$r**$rr | $goal | $st$w |"
		else
			echo "| $num | $what | $ng_med | $ot_med | - | | **run failed**$w |"
		fi
	done
	for tag in used fresh; do
		if [[ ${I[$tag,ok]:-0} == 1 && ${I[$tag,failed]} == 0 && ${I[$tag,held]} == "$IDLE_DEVICES" ]]; then
			st=$(awk -v k="${I[$tag,max]}" -v g="$GOAL_IDLE_RSS_MIB" 'BEGIN {print (k / 1024 <= g) ? "met" : "**not met**"}')
		else
			st="**run failed** (held ${I[$tag,held]:-?}, failed ${I[$tag,failed]:-?})"
		fi
		if [[ $tag == used ]]; then
			echo "| 3 | otad VmRSS with $IDLE_DEVICES idle authenticated devices (highest 0.5 s sample), on the otad that served the runs above | - | $(kib_to_mib "${I[$tag,max]:-0}") MiB | - | ≤ $GOAL_IDLE_RSS_MIB MiB | $st |"
		else
			echo "| 3b | the same on a freshly started otad (same data directory) | - | $(kib_to_mib "${I[$tag,max]:-0}") MiB | - | ≤ $GOAL_IDLE_RSS_MIB MiB | $st |"
		fi
	done
	n=5
	for kind in proof raw; do
		for when in cold warm; do
			ng="" ot="" rs=""
			for ((i = 1; i <= REPEATS; i++)); do
				[[ -n ${S[nginx,$i,$when]:-} && -n ${S[$kind,$i,$when]:-} ]] || continue
				ng+=" ${S[nginx,$i,$when]}"
				ot+=" ${S[$kind,$i,$when]}"
				rs+=" $(awk -v x="${S[$kind,$i,$when]}" -v y="${S[nginx,$i,$when]}" 'BEGIN {printf "%.3f", x / y}')"
			done
			[[ $kind == proof ]] && how="verified 16 KiB chunks (chunk_log 4, proofs)" || how="raw 64 KiB chunks (chunk_log 6, no proofs)"
			[[ $when == cold ]] && read_="first read after the upload" || read_="warm (third read)"
			if [[ -z $ot ]]; then
				echo "| $n | one device, whole 256 MiB image, $how, $read_, vs one nginx GET | - | - | - | ≥ ${GOAL_SINGLE_RATIO}× | **run failed** |"
			else
				# shellcheck disable=SC2086
				{
					read -r ngm ngl ngh _ <<<"$(stats $ng)"
					read -r otm otl oth _ <<<"$(stats $ot)"
					rm_=$(printf '%s\n' $rs | sort -g | awk 'NF {v[++n] = $1} END {m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; printf "%.2f (%.2f–%.2f)", m, v[1], v[n]}')
				}
				st=$(awk -v r="${rm_%% *}" -v g="$GOAL_SINGLE_RATIO" 'BEGIN {print (r >= g) ? "met" : "**not met**"}')
				echo "| $n | one device, whole 256 MiB image, $how, $read_, vs one nginx GET of a new file; MB/s, median (min–max) | $ngm ($ngl–$ngh) | $otm ($otl–$oth) | **$rm_** | ≥ ${GOAL_SINGLE_RATIO}× | $st |"
			fi
			n=$((n + 1))
		done
	done
	if [[ $CL_NOTE == ok ]]; then
		echo "| 4 | CHECK → OFFER in the server (1,000,000 devices, 10,000 images; check_latency, 1 thread) p50 / p99 | - | $(cl_field 'CHECK→OFFER, 1 thread' p50) / $(cl_field 'CHECK→OFFER, 1 thread' p99) ms | - | report | - |"
	else
		echo "| 4 | CHECK → OFFER (check_latency) | - | - | - | report | $CL_NOTE |"
	fi
	echo
	echo "Throughput runs in detail (server CPU % is user+system time of nginx's master and workers or of otad, 200 % = both cores; client is wrk or the simulator; softirq is the machine's irq+softirq time, mostly the loopback network stack, and overlaps the processes' system time; other is every other process):"
	echo
	echo "| run | server | client | per second | MB/s | latency p50 / p99 ms | server CPU % | server CPU µs per request/chunk | client CPU % | softirq % | other CPU % | errors |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	desc_nginx16="16 KiB ranges"
	desc_proof="16 KiB verified chunks (chunk_log 4, proof)"
	desc_raw="64 KiB raw chunks (chunk_log 6)"
	desc_nginx1m="1 MiB ranges"
	for ((rep = 1; rep <= REPEATS; rep++)); do for row in nginx16.$rep proof.$rep raw.$rep nginx1m.$rep; do
		case $row in
		nginx*) srv=nginx cli="wrk, $CONNS conns" ;;
		*) srv=otad cli="simulator, $CONNS devices × $INFLIGHT in flight" ;;
		esac
		d="desc_${row%.*}"
		if ! row_ok "$row"; then
			echo "| ${!d} (run $rep) | $srv | $cli | **failed** | | | | | | | | see the work directory (KEEP=1) |"
			continue
		fi
		errs="0"
		((${R[$row,errs]} > 0)) && errs="**${R[$row,err_text]}**"
		echo "| ${!d} (run $rep) | $srv | $cli | ${R[$row,rate]} | ${R[$row,mbs]} | ${R[$row,p50]} / ${R[$row,p99]} | ${R[$row,cpu]} | ${R[$row,us]} | ${R[$row,client]} | ${R[$row,irq]} | ${R[$row,other]}$([[ ${R[$row,rustc]} == yes ]] && echo ' (rustc)') | $errs |"
	done; done
	echo
	for tag in used fresh; do
		[[ $tag == used ]] && what="on the otad that served the throughput runs (VmRSS $(kib_to_mib "$OTAD_RSS_SETUP") MiB after setup)" || what="on a freshly started otad"
		g=$(awk -v a="${I[$tag,max]:-0}" -v b="${I[$tag,before]:-0}" -v n="$IDLE_DEVICES" 'BEGIN {printf "%.1f", (a - b) / n}')
		echo "Idle devices $what: ${I[$tag,sim]:-not run}. While held: otad_connected_devices ${I[$tag,connected]:-?}, established sockets on the device port ${I[$tag,sockets]:-?}, otad threads ${I[$tag,threads]:-?} (${I[$tag,threads_before]:-?} before). otad VmRSS $(kib_to_mib "${I[$tag,before]:-0}") MiB before the devices, highest $(kib_to_mib "${I[$tag,max]:-0}") MiB and last $(kib_to_mib "${I[$tag,last]:-0}") MiB while held (VmHWM $(kib_to_mib "${I[$tag,hwm]:-0}") MiB, reset before they connected), $(kib_to_mib "${I[$tag,after]:-0}") MiB 3 s after they left: **$g KiB per held device**."
		echo
	done
	echo "otad alive at the end: $OTAD_ALIVE; WARN/ERROR lines in its log: $OTAD_WARNINGS; nginx error-log errors: $NGINX_ERRORS. Before timing, one device downloaded the whole image verified (16 KiB) and one raw (64 KiB), both matching BLAKE3 and SHA-256; the measured runs skip the whole-image hashes (--skip-image-hash), the verified run still checks every chunk against the BLAKE3 tree."
	if [[ -s $WORK/otad.warnings ]]; then
		echo
		echo "First otad warnings/errors:"
		echo '```'
		cat "$WORK/otad.warnings"
		echo '```'
	fi
	if [[ $CHECK_LATENCY == 1 ]]; then
		echo
		echo "\`cargo bench --bench check_latency\` ($CL_NOTE):"
		echo
		echo '```'
		cat "$CL_OUT" 2>/dev/null || true
		echo '```'
	fi
	for row in proof raw; do
		[[ $PERF == 1 && -s $WORK/perf-$row.data ]] || continue
		echo
		echo "perf, otad during the $row window (self time, top symbols):"
		echo
		echo '```'
		perf report -i "$WORK/perf-$row.data" --no-children --sort symbol --stdio 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -30 || true
		echo '```'
	done
} | tee "$WORK/report.md"
say "done in ${SECONDS}s"
