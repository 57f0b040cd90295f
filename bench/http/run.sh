#!/usr/bin/env bash
# HTTPS binary delivery and the 1 GiB upload: otad measured side by side with nginx on
# this machine, over loopback only. Prints one report (markdown tables) at the end.
#
#   bench/http/run.sh
#
# Knobs (environment): DURATION (s per wrk run, 15), WARMUP (s per server, 3), SEED (1),
# OTAD_BIN (use this otad instead of `cargo build --release`), WAIT_IDLE (wait up to this
# many seconds for a quiet machine before measuring, 0; when set, also up to ROW_WAIT, 120,
# before each workload, within the deadline), MAX_SECONDS (deadline for the measurement
# phase, 600), KEEP=1 (keep the work directory with logs and wrk output), WORK_PARENT
# (where the work directory goes, $TMPDIR or /tmp).
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
MAX_SECONDS=${MAX_SECONDS:-600}
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-${TMPDIR:-/tmp}}
THREADS=2
FILE_BYTES=$((256 * 1024 * 1024))
UPLOAD_BYTES=$((1024 * 1024 * 1024))
NEED_FREE_KIB=$((4 * 1024 * 1024)) # 256 MiB + 1 GiB files, otad's database, logs
# Workloads: "range-size connections".
ROWS=("4096 64" "4096 256" "16384 64" "16384 256" "1048576 64")
GOAL_INGEST_MBS=300
GOAL_RSS_MIB=64

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
fi
[[ -x $OTAD_BIN ]] || die "no otad binary at $OTAD_BIN"

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
FILE_SHA=$(sha256sum "$FILE" | cut -d' ' -f1)

# ---------------------------------------------------------------- otad
DATA="$WORK/otad-data"
cat >"$WORK/otad.toml" <<EOF
[storage]
max_binary_size = 2147483648
EOF
say "starting otad ($OTAD_BIN)"
"$OTAD_BIN" serve --data-dir "$DATA" --api-listen 127.0.0.1:0 --config "$WORK/otad.toml" \
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

# -- 1 GiB upload, on the fresh server
need_time 330 "1 GiB upload"
say "generating the 1 GiB file"
BIG="$WORK/file1g"
det_bytes "$UPLOAD_BYTES" "$(printf '%032x' 2)" "$BIG"
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
echo 5 >"/proc/$OTAD_PID/clear_refs" 2>/dev/null || true # VmHWM := VmRSS (Linux >= 4.0)
RSS_BEFORE=$(rss_kib "$OTAD_PID" VmRSS)
HWM_BEFORE=$(rss_kib "$OTAD_PID" VmHWM)
touch "$WORK/sampling"
(
	for ((n = 0; n < 6000; n++)); do # 50 ms steps, 300 s at most
		[[ -e $WORK/sampling ]] || break
		awk '$1 == "VmRSS:" {print $2}' "/proc/$OTAD_PID/status" 2>/dev/null || break
		sleep 0.05
	done
) >"$WORK/rss.samples" &
SAMPLER_PID=$!
say "uploading 1 GiB to otad"
t0=$EPOCHREALTIME
up=$(curl -sS --max-time 300 --cacert "$CA" "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
	-X POST -T "$BIG" -o "$WORK/upload1g.json" -w '%{http_code} %{time_total}' \
	"$OTAD/v1/ota/partners/$PARTNER/binaries") || up="curl-failed ${up:-0}"
t1=$EPOCHREALTIME
rm -f "$WORK/sampling"
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
rm -f "$BIG"
UP_CODE=${up%% *}
UP_CURL_S=${up##* }
UP_WALL_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
UP_SHA=$(jq -r '.value // empty' "$WORK/upload1g.json" 2>/dev/null || true)
HWM_AFTER=$(rss_kib "$OTAD_PID" VmHWM)
RSS_AFTER=$(rss_kib "$OTAD_PID" VmRSS)
RSS_MAX=$(sort -n "$WORK/rss.samples" | tail -1)
RSS_MAX=${RSS_MAX:-$RSS_AFTER}
say "upload: status $UP_CODE, ${UP_CURL_S}s (curl), ${UP_WALL_S}s (wall)"

# -- the 256 MiB file: upload and publish
say "uploading and publishing the 256 MiB file"
sha=$("${CURL[@]}" --max-time 120 "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
	-X POST -T "$FILE" "$OTAD/v1/ota/partners/$PARTNER/binaries" | jq -er .value) ||
	die "upload of the 256 MiB file failed"
[[ $sha == "$FILE_SHA" ]] || die "otad answered sha256 $sha for a file whose sha256 is $FILE_SHA"
OTAD_URL=$("${CURL[@]}" "${AUTH[@]}" -H 'Content-Type: application/json' \
	-d "{\"value\":\"$sha\"}" "$OTAD/v1/ota/partners/$PARTNER/binaries/moveToRepository" | jq -er .value) ||
	die "moveToRepository failed"
[[ $OTAD_URL == "$OTAD/"* ]] || die "moveToRepository answered $OTAD_URL, not under $OTAD"

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
	for name in nginx otad; do
		url=$NGINX_URL
		[[ $name == otad ]] && url=$OTAD_URL
		code=$(curl -sS --max-time 30 --cacert "$CA" "${AUTH[@]}" -r "$range" -o "$WORK/got" \
			-D "$WORK/got.headers" -w '%{http_code}' "$url")
		[[ $code == 206 ]] || die "$name answered $code to Range: bytes=$range"
		cmp -s "$WORK/expect" "$WORK/got" || die "$name sent wrong bytes for Range: bytes=$range"
		grep -qi "^content-range: bytes $range/$FILE_BYTES" "$WORK/got.headers" ||
			die "$name sent a wrong Content-Range for bytes=$range"
	done
done

# Whole file once from each (warms the page cache; reported as an extra row).
declare -A WHOLE
for name in nginx otad; do
	url=$NGINX_URL
	[[ $name == otad ]] && url=$OTAD_URL
	WHOLE[$name]=$(curl -sS --max-time 120 --cacert "$CA" "${AUTH[@]}" -o /dev/null \
		-w '%{http_code} %{size_download} %{time_total}' "$url")
done

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

# ---------------------------------------------------------------- wrk runs
declare -A R # R[name,row,key]
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

run_wrk() { # NAME ROW SIZE CONNS SECONDS
	local name=$1 row=$2 size=$3 conns=$4 dur=$5 url hostport path out
	url=$NGINX_URL
	hostport="127.0.0.1:$NGINX_PORT"
	[[ $name == otad ]] && { url=$OTAD_URL; hostport=$OTAD_ADDR; }
	path="/${url#https://*/}"
	out="$WORK/out/$name-$row.txt"
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
	timeout $((dur + 60)) wrk -t"$THREADS" -c"$conns" -d"${dur}s" --timeout 10s -s "$LUA" "$url" \
		-- "$size" "$FILE_BYTES" "$TOKEN" "$hostport" "$path" "$SEED" >"$out" 2>&1 || true
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

runs=$((${#ROWS[@]} * 2))
need_time $((2 * (WARMUP + 5) + runs * (DURATION + 5) + 20)) "the wrk runs"
say "warm-up: ${WARMUP}s per server"
run_wrk nginx warmup 16384 64 "$WARMUP"
run_wrk otad warmup 16384 64 "$WARMUP"
OTAD_RSS_BEFORE_RUNS=$(rss_kib "$OTAD_PID" VmRSS)

i=0
for row in "${ROWS[@]}"; do
	read -r size conns <<<"$row"
	key="$size-$conns"
	# Alternate who goes first, so a drift in the machine's load hits both alike.
	if ((i % 2 == 0)); then order="nginx otad"; else order="otad nginx"; fi
	if ((WAIT_IDLE > 0)); then
		# Wait for a quiet machine again, within what the deadline leaves after the rows to come.
		budget=$((DEADLINE - SECONDS - (${#ROWS[@]} - i) * 2 * (DURATION + 5) - 15))
		((budget > ROW_WAIT)) && budget=$ROW_WAIT
		if ((budget > 0)) && ! wait_quiet "$budget" 3; then
			say "machine still busy after ${budget}s: measuring $key anyway"
		fi
	fi
	for name in $order; do
		need_time $((DURATION + 5)) "wrk $name $key"
		run_wrk "$name" "$key" "$size" "$conns" "$DURATION"
	done
	i=$((i + 1))
done
OTAD_RSS_AFTER_RUNS=$(rss_kib "$OTAD_PID" VmRSS)
OTAD_HWM_END=$(rss_kib "$OTAD_PID" VmHWM)
OTAD_THREADS=$(rss_kib "$OTAD_PID" Threads)
alive "$OTAD_PID" && OTAD_ALIVE=yes || OTAD_ALIVE="NO (crashed: see its log)"

# otad's request log: statuses of the download route, and warnings/errors.
OTAD_STATUSES=$(grep -o 'route="\?/v1/ota/partners/{partnerId}/binaries/{sha256}"\? status=[0-9]*' "$WORK/otad.log" |
	sed 's/.*status=//' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep = ", "}' || true)
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
{
	echo
	echo "## otad vs nginx: HTTPS delivery and 1 GiB upload"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: nproc=$(nproc), CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
	echo "- otad: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] && echo ' + uncommitted changes in src/'), binary $OTAD_BIN; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'); $(openssl version | awk '{print $1, $2}') (client)"
	echo "- TLS negotiated (same ECDSA P-256 certificate for both): nginx $TLS_NGINX; otad $TLS_OTAD"
	echo "- machine load: $IDLE_NOTE; the \"other CPU %\" column is what else ran during each run"
	echo "- wrk: $THREADS threads, ${DURATION}s per run, random single ranges aligned to their size within one 256 MiB file, Authorization: Bearer on every request; body MB/s = 206 answers/s × range size / 10^6"
	echo
	echo "| workload | conns | nginx req/s | nginx MB/s | otad req/s | otad MB/s | otad/nginx | goal ≥ 1.0× | p99 ms nginx / otad | server CPU % nginx / otad | server CPU µs/req nginx / otad | wrk CPU % nginx / otad | softirq % nginx / otad | other CPU % nginx / otad | non-206 or socket errors nginx / otad |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
	for row in "${ROWS[@]}"; do
		read -r size conns <<<"$row"
		key="$size-$conns"
		if [[ ${R[nginx,$key,ok]:-0} != 1 || ${R[otad,$key,ok]:-0} != 1 ]]; then
			echo "| $(human_size "$size") ranges | $conns | ${R[nginx,$key,rps]:-FAILED} | ${R[nginx,$key,mbs]:--} | ${R[otad,$key,rps]:-FAILED} | ${R[otad,$key,mbs]:--} | - | **run failed** | | | | | | | |"
			continue
		fi
		ratio=$(awk -v a="${R[otad,$key,rps]}" -v b="${R[nginx,$key,rps]}" 'BEGIN {printf "%.2f", a / b}')
		goal=$(awk -v r="$ratio" 'BEGIN {print (r >= 1.0) ? "met" : "**not met**"}')
		errs=""
		for name in nginx otad; do
			e=${R[$name,$key,errs]}
			if ((e > 0)); then
				errs+="${errs:+ / }**$name: $e** (non-206 ${R[$name,$key,non206]}, first status ${R[$name,$key,first_bad]}, connect ${R[$name,$key,err_connect]}, read ${R[$name,$key,err_read]}, write ${R[$name,$key,err_write]}, timeout ${R[$name,$key,err_timeout]})"
			fi
		done
		if [[ -n $errs ]]; then
			ratio="$ratio ⚠"
			goal="**ERRORS**"
		else
			errs="0 / 0"
		fi
		if ((${R[nginx,$key,other]} > 10 || ${R[otad,$key,other]} > 10)); then
			other="${R[nginx,$key,other]} / ${R[otad,$key,other]} ⚠ disturbed"
		else
			other="${R[nginx,$key,other]} / ${R[otad,$key,other]}"
		fi
		[[ ${R[nginx,$key,rustc]} == yes || ${R[otad,$key,rustc]} == yes ]] && other+=" (rustc running)"
		p99=$(awk -v a="${R[nginx,$key,p99_us]}" -v b="${R[otad,$key,p99_us]}" 'BEGIN {printf "%.1f / %.1f", a / 1000, b / 1000}')
		echo "| $(human_size "$size") ranges | $conns | ${R[nginx,$key,rps]} | ${R[nginx,$key,mbs]} | ${R[otad,$key,rps]} | ${R[otad,$key,mbs]} | $ratio | $goal | $p99 | ${R[nginx,$key,cpu]} / ${R[otad,$key,cpu]} | ${R[nginx,$key,us]} / ${R[otad,$key,us]} | ${R[nginx,$key,wrk]} / ${R[otad,$key,wrk]} | ${R[nginx,$key,irq]} / ${R[otad,$key,irq]} | $other | $errs |"
	done
	read -r nc ns nt <<<"${WHOLE[nginx]}"
	read -r oc os ot <<<"${WHOLE[otad]}"
	echo
	echo "Whole 256 MiB file, one curl connection (warm-up, informative): nginx $nc, $(awk -v s="$ns" -v t="$nt" 'BEGIN {printf "%.0f", s / t / 1e6}') MB/s; otad $oc, $(awk -v s="$os" -v t="$ot" 'BEGIN {printf "%.0f", s / t / 1e6}') MB/s."
	echo
	echo "| 1 GiB upload to otad (curl -X POST -T file, octet-stream, streamed) | value | goal | |"
	echo "|---|---:|---:|---|"
	if [[ $UP_CODE == 200 && $UP_SHA == "$BIG_SHA" ]]; then up_ok="200, sha256 matches"; else up_ok="**status $UP_CODE, sha256 ${UP_SHA:-none} (expected $BIG_SHA)**"; fi
	ingest=$(awk -v t="$UP_CURL_S" -v n="$UPLOAD_BYTES" 'BEGIN {if (t > 0) printf "%.0f", n / t / 1e6; else print 0}')
	growth_kib=$((HWM_AFTER - RSS_BEFORE))
	sampled_kib=$((RSS_MAX - RSS_BEFORE))
	echo "| answer | $up_ok | 200 | $([[ $up_ok == 200* ]] && echo ok || echo '**failed**') |"
	echo "| time (curl time_total; wall ${UP_WALL_S} s) | ${UP_CURL_S} s | | |"
	echo "| ingest rate | $ingest MB/s | ≥ $GOAL_INGEST_MBS MB/s | $(((ingest >= GOAL_INGEST_MBS)) && echo met || echo '**not met**') |"
	echo "| otad RSS growth: VmHWM after − VmRSS before ($(kib_to_mib "$RSS_BEFORE") MiB) | $(kib_to_mib "$growth_kib") MiB | ≤ $GOAL_RSS_MIB MiB | $(((growth_kib <= GOAL_RSS_MIB * 1024)) && echo met || echo '**not met**') |"
	echo "| otad RSS growth, highest 50 ms sample | $(kib_to_mib "$sampled_kib") MiB | | |"
	echo "| otad VmRSS just after the upload | $(kib_to_mib "$RSS_AFTER") MiB | | |"
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
	echo "Server CPU % is the server's user+system time over the run (200 % = both cores), wrk CPU % the load generator's; CPU µs/req is server CPU time per completed request; softirq % is the machine's interrupt and softirq time (mostly the loopback network stack; on this kernel it overlaps the processes' system time, so the columns can add up to more than 200 %); other CPU % is the user+system time of every other process on the machine (other engineers' builds and tests; about 0 on an idle machine); a row where it passed 10 % is marked disturbed."
} | tee "$WORK/report.md"
say "done in ${SECONDS}s"
