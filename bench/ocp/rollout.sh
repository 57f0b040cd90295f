#!/usr/bin/env bash
# What rollout bookkeeping costs the device protocol: OCP/1 verified-chunk throughput and
# the CHECK/REPORT throughput of a simulated fleet, each with and without a rollout, side
# by side in one run of one otad, over loopback only. Prints one report (markdown) at the
# end.
#
#   bench/ocp/rollout.sh
#
# Without a rollout the image is associated with the device type (released); with one, a
# rollout of one group (100 %) holds it, so every CHECK, REPORT and confirming CHECK also
# updates the device's outcome and the group counters in the same transaction. The two
# variants alternate (without, with, without, with, ...) REPEATS times; the report gives
# the median and min–max of each, the median of the per-pair overheads, and otad's CPU
# time per chunk and per device.
#
# Knobs (environment): REPEATS (pairs of each workload, 3), DURATION (s per chunk window,
# 15), WARMUP (s before it, 3), CONNS (devices of the chunk runs, 64), INFLIGHT (GETs in
# flight per device, 8), IMAGE_MIB (chunk-run image, 16), FLEET (devices per fleet run,
# 2000), FLEET_CONCURRENCY (200), FLEET_IMAGE_KIB (fleet-run image, 64), OTAD_BIN (use this
# otad instead of `cargo build --release`), OTAD_COMMIT (the commit OTAD_BIN was built
# from), WAIT_IDLE (wait up to this many seconds for a quiet machine first, 0), KEEP=1
# (keep the work directory), WORK_PARENT ($TMPDIR or /tmp), SEED (1).
#
# The process, CPU and waiting helpers are those of bench/ocp/run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
INFLIGHT=${INFLIGHT:-8}
IMAGE_MIB=${IMAGE_MIB:-16}
FLEET=${FLEET:-2000}
FLEET_CONCURRENCY=${FLEET_CONCURRENCY:-200}
FLEET_IMAGE_KIB=${FLEET_IMAGE_KIB:-64}
OTAD_BIN=${OTAD_BIN:-}
OTAD_COMMIT=${OTAD_COMMIT:-}
WAIT_IDLE=${WAIT_IDLE:-0}
KEEP=${KEEP:-0}
WORK_PARENT=${WORK_PARENT:-${TMPDIR:-/tmp}}
SEED=${SEED:-1}
FW_TYPE=3
GOAL_OVERHEAD_PCT=10

say() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
for v in REPEATS DURATION WARMUP CONNS INFLIGHT IMAGE_MIB FLEET FLEET_CONCURRENCY FLEET_IMAGE_KIB; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number"
done
for tool in curl jq openssl ss pgrep sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "missing $tool"
done

# ---------------------------------------------------------------- processes and cleanup
WORK=""
OTAD_PID=""
SIM_PID=""

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
	stop_pid "$SIM_PID" TERM 5
	stop_pid "$OTAD_PID" TERM 20
	wait 2>/dev/null || true
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ $KEEP == 1 ]]; then
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

# Each fleet device is one socket in otad and one in the simulator while it runs.
NEED_FDS=$((FLEET_CONCURRENCY + CONNS + 1024))
if (($(ulimit -n) < NEED_FDS)); then
	ulimit -n "$NEED_FDS" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
(($(ulimit -n) >= NEED_FDS)) || die "the open-files limit is $(ulimit -n); $NEED_FDS needed"

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
IDLE_NOTE="did not wait for a quiet machine (WAIT_IDLE=0)"
if ((WAIT_IDLE > 0)); then
	say "waiting up to ${WAIT_IDLE}s for 5 quiet seconds"
	if wait_quiet "$WAIT_IDLE" 5; then
		IDLE_NOTE="waited ${WAITED}s for a quiet machine before starting"
	else
		IDLE_NOTE="machine still busy after waiting ${WAIT_IDLE}s"
	fi
fi
RUN_START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- work directory, otad
mkdir -p "$WORK_PARENT"
WORK=$(mktemp -d "$WORK_PARENT/otad-rollout-bench.XXXXXX")
mkdir "$WORK/out"

# Deterministic pseudo-random bytes: AES-256-CTR keystream over zeros (fixed key per seed).
det_bytes() { # BYTES IV_HEX OUT
	local key
	key=$(printf '%064x' "$SEED")
	{ openssl enc -aes-256-ctr -nosalt -K "$key" -iv "$2" </dev/zero 2>/dev/null || true; } |
		head -c "$1" >"$3"
	[[ $(stat -c %s "$3") -eq $1 ]] || die "could not write $3"
}
det_bytes $((IMAGE_MIB * 1024 * 1024)) "$(printf '%032x' 1)" "$WORK/chunks.bin"
det_bytes $((FLEET_IMAGE_KIB * 1024)) "$(printf '%032x' 2)" "$WORK/fleet.bin"

DATA="$WORK/otad-data"
OTAD_LOG="$WORK/otad.log"
say "starting otad ($OTAD_BIN) on loopback, ports chosen by the kernel"
"$OTAD_BIN" serve --data-dir "$DATA" --api-listen 127.0.0.1:0 --device-listen 127.0.0.1:0 \
	>>"$OTAD_LOG" 2>&1 &
OTAD_PID=$!
for ((i = 0; i < 600; i++)); do
	[[ -s $DATA/listen.json && -s $DATA/initial-credentials.json ]] && break
	alive "$OTAD_PID" || die "otad exited during start-up: $(tail -5 "$OTAD_LOG")"
	sleep 0.1
done
[[ -s $DATA/listen.json ]] || die "otad did not write listen.json within 60 s"
OTAD="https://$(jq -er .api "$DATA/listen.json")"
CURL=(curl -sS --fail-with-body --max-time 120 --cacert "$DATA/tls/cert.pem")

creds="$DATA/initial-credentials.json"
ADMIN_TOKEN=$("${CURL[@]}" -u "$(jq -er .clientId "$creds"):$(jq -er .clientSecret "$creds")" \
	--data-urlencode grant_type=password --data-urlencode username=admin \
	--data-urlencode "password=$(jq -er .password "$creds")" "$OTAD/oauth/token" | jq -er .access_token) ||
	die "admin token refused"
partner=$("${CURL[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"rollout-bench"}' "$OTAD/v1/admin/partners") || die "partner creation failed: $partner"
PARTNER=$(jq -er .partnerId <<<"$partner")
TOKEN=$("${CURL[@]}" -u "$PARTNER:$(jq -er .clientSecret <<<"$partner")" \
	-d grant_type=client_credentials "$OTAD/oauth/token" | jq -er .access_token) ||
	die "partner token refused"
AUTH=(-H "Authorization: Bearer $TOKEN")
P="$OTAD/v1/ota/partners/$PARTNER"
post_json() { # URL JSON
	"${CURL[@]}" "${AUTH[@]}" -H 'Content-Type: application/json' -d "$2" "$1"
}
publish() { # FILE -> image URL
	local sha
	sha=$("${CURL[@]}" "${AUTH[@]}" -H 'Content-Type: application/octet-stream' -X POST -T "$1" \
		"$P/binaries" | jq -er .value) || die "upload of $1 failed"
	post_json "$P/binaries/moveToRepository" "{\"value\":\"$sha\"}" | jq -er .value ||
		die "moveToRepository of $1 failed"
}
CHUNKS_URL=$(publish "$WORK/chunks.bin")
FLEET_URL=$(publish "$WORK/fleet.bin")

VERSION=0
# setup_type NAME URL DEVICES VARIANT: a new device type of DEVICES devices and a new image
# of URL; VARIANT plain associates the image, rollout starts a rollout of it. Sets
# TYPE_FILE (the simulator's devices file) and LAST_ROLLOUT (the rollout id, or "").
setup_type() {
	local name=$1 url=$2 n=$3 variant=$4 dt record rid i
	VERSION=$((VERSION + 1))
	dt=$(post_json "$P/deviceTypes" "{\"name\":\"$name\",\"description\":\"bench/ocp/rollout.sh\"}" |
		jq -er .id) || die "device type $name"
	{
		echo "deviceId,deviceTypeId"
		for ((i = 0; i < n; i++)); do printf '%s-%05d,%s\n' "$name" "$i" "$dt"; done
	} >"$WORK/$name.import.csv"
	"${CURL[@]}" --max-time 300 "${AUTH[@]}" -H 'Content-Type: text/csv' \
		--data-binary @"$WORK/$name.import.csv" -o "$WORK/$name.csv" "$P/devices/import" ||
		die "device import for $name failed: $(head -c 300 "$WORK/$name.csv")"
	(($(grep -c . "$WORK/$name.csv") - 1 == n)) || die "the import for $name answered the wrong count"
	record=$(post_json "$P/pool" "{\"name\":\"bench-$name\",\"type\":$FW_TYPE,\"version\":\"1.0.$VERSION\",\"url\":\"$url\"}") ||
		die "pool record for $name failed: $record"
	LAST_ROLLOUT=""
	if [[ $variant == plain ]]; then
		post_json "$P/deviceTypes/$dt/firmwareImages" "$record" >/dev/null ||
			die "associating the image of $name failed"
	else
		# One group of every device; the rollout completes only when all confirmed, so it
		# is running (and its bookkeeping busy) through the whole measured run.
		rid=$(post_json "$P/rollouts" "{\"deviceTypeId\":\"$dt\",\"firmwareImageId\":$(jq .id <<<"$record"),\"name\":\"$name\",\"groups\":[{\"percent\":100}],\"successThreshold\":1.0,\"errorThreshold\":1.0}" |
			jq -er .id) || die "rollout creation for $name failed"
		LAST_ROLLOUT=$rid
	fi
	TYPE_FILE="$WORK/$name.csv"
}

# ---------------------------------------------------------------- CPU accounting
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # PID -> utime+stime of all its threads (ticks)
	local f
	read -r -a f <"/proc/$1/stat" 2>/dev/null || {
		echo 0
		return 0
	}
	echo $((f[13] + f[14]))
}
sys_task() { # all CPUs, user+nice+system ticks
	local _c u n s _rest
	read -r _c u n s _rest </proc/stat
	echo $((u + n + s))
}
wait_line() { # FILE TEXT SECONDS PID: 0 once FILE has a line with TEXT
	local file=$1 text=$2 limit=$(($3 * 20)) pid=$4 i
	for ((i = 0; i < limit; i++)); do
		grep -qF "$text" "$file" 2>/dev/null && return 0
		alive "$pid" || {
			grep -qF "$text" "$file" 2>/dev/null && return 0
			return 1
		}
		sleep 0.05
	done
	return 1
}
sim_cpu_ticks() { # FILE TEXT: the simulator's CPU time on its line with TEXT, in ticks
	grep -m1 -F "$2" "$1" | sed -n 's/.*process CPU \([0-9.]*\) s.*/\1/p' |
		awk -v hz="$CLK_TCK" '{printf "%d", $1 * hz} END {if (NR == 0) print 0}'
}
pct() { awk -v t="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN {if (t < 0) t = 0; printf "%.0f", 100 * t / hz / s}'; }

declare -A R # R[row,key]

# run_chunks ROW DEVICES_FILE: CONNS devices download the image over and over (verified
# 16 KiB chunks); otad's CPU is sampled at the simulator's window lines.
run_chunks() {
	local row=$1 file=$2 out="$WORK/out/$1" s0 s1 b0 b1 t0 t1 c0 c1 secs
	alive "$OTAD_PID" || die "otad is not running any more"
	"$OTAD_BIN" --data-dir "$DATA" device simulate --devices-file "$file" --type "$FW_TYPE" \
		--devices "$CONNS" --concurrency "$CONNS" --max-inflight "$INFLIGHT" --chunk-log 4 \
		--skip-image-hash --timeout 30 --warmup-seconds "$WARMUP" --repeat-seconds "$DURATION" \
		--json >"$out.json" 2>"$out.err" &
	SIM_PID=$!
	wait_line "$out.err" "window started" $((WARMUP + 60)) "$SIM_PID" ||
		die "$row: the simulator's window did not start: $(tail -3 "$out.err")"
	s0=$(proc_ticks "$OTAD_PID")
	b0=$(sys_task)
	t0=$EPOCHREALTIME
	wait_line "$out.err" "window ended" $((DURATION + 30)) "$SIM_PID" ||
		die "$row: the simulator's window did not end: $(tail -3 "$out.err")"
	s1=$(proc_ticks "$OTAD_PID")
	b1=$(sys_task)
	t1=$EPOCHREALTIME
	wait "$SIM_PID" || die "$row: the simulator failed: $(head -c 300 "$out.json")"
	SIM_PID=""
	[[ $(jq -r .failed "$out.json") == 0 ]] || die "$row: devices failed: $(head -c 300 "$out.json")"
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
	c0=$(sim_cpu_ticks "$out.err" "window started")
	c1=$(sim_cpu_ticks "$out.err" "window ended")
	R[$row,rate]=$(jq -r '.chunksPerSecond | round' "$out.json")
	R[$row,cpu]=$(pct $((s1 - s0)) "$secs")
	R[$row,other]=$(pct $((b1 - b0 - (s1 - s0) - (c1 - c0))) "$secs")
	R[$row,unit]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v s="$secs" -v r="${R[$row,rate]}" \
		'BEGIN {printf "%.2f", (r > 0) ? 1e6 * t / hz / (r * s) : 0}')
	say "$row: ${R[$row,rate]} verified chunks/s, otad CPU ${R[$row,cpu]} % (${R[$row,unit]} µs per chunk), other CPU ${R[$row,other]} %"
}

# run_fleet ROW DEVICES_FILE ROLLOUT: FLEET devices, FLEET_CONCURRENCY at a time, each
# connects, CHECKs, downloads (verified), REPORTs, installs, reconnects and confirms with a
# CHECK; otad's CPU over the simulator's whole run.
run_fleet() {
	local row=$1 file=$2 rid=$3 out="$WORK/out/$1" s0 s1 b0 b1 t0 t1 c secs r
	alive "$OTAD_PID" || die "otad is not running any more"
	s0=$(proc_ticks "$OTAD_PID")
	b0=$(sys_task)
	t0=$EPOCHREALTIME
	"$OTAD_BIN" --data-dir "$DATA" device simulate --devices-file "$file" --type "$FW_TYPE" \
		--devices "$FLEET" --concurrency "$FLEET_CONCURRENCY" --install --timeout 120 \
		--json >"$out.json" 2>"$out.err" || die "$row: the simulator failed: $(head -c 300 "$out.json")"
	t1=$EPOCHREALTIME
	s1=$(proc_ticks "$OTAD_PID")
	b1=$(sys_task)
	[[ $(jq -r '.ok' "$out.json") == "$FLEET" && $(jq -r '.failed' "$out.json") == 0 ]] ||
		die "$row: not every device updated: $(head -c 300 "$out.json")"
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
	c=$(jq -r '.install.confirmed // 0' "$out.json")
	R[$row,rate]=$(jq -r '.devicesPerSecond' "$out.json")
	R[$row,cpu]=$(pct $((s1 - s0)) "$secs")
	R[$row,other]=$(pct $((b1 - b0 - (s1 - s0))) "$secs")
	R[$row,unit]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$FLEET" 'BEGIN {printf "%.3f", 1e3 * t / hz / n}')
	R[$row,note]="$c confirmed"
	if [[ -n $rid ]]; then
		# The bookkeeping ran: every device counted confirmed, the rollout completed.
		r=$("${CURL[@]}" "${AUTH[@]}" "$P/rollouts/$rid") || die "$row: reading rollout $rid failed"
		R[$row,note]+="; rollout $(jq -r .state <<<"$r"), $(jq -r '[.groups[].confirmed] | add' <<<"$r") of $(jq -r '[.groups[].size] | add' <<<"$r") confirmed in it"
		[[ $(jq -r .state <<<"$r") == completed ]] || die "$row: rollout $rid is $(jq -r .state <<<"$r"), not completed"
	fi
	say "$row: ${R[$row,rate]} devices/s, otad CPU ${R[$row,cpu]} % (${R[$row,unit]} ms per device; the simulator's and loopback's CPU in 'other' ${R[$row,other]} %), ${R[$row,note]}"
}

# ---------------------------------------------------------------- measure (ABAB)
say "chunk runs: two device types of $CONNS devices with an image of $IMAGE_MIB MiB, plain and in a rollout"
setup_type chunks-plain "$CHUNKS_URL" "$CONNS" plain
CHUNKS_PLAIN=$TYPE_FILE
setup_type chunks-rollout "$CHUNKS_URL" "$CONNS" rollout
CHUNKS_ROLLOUT=$TYPE_FILE
# Warm-up: both types once (page cache, delivery cache, the rollout's first offers).
for f in "$CHUNKS_PLAIN" "$CHUNKS_ROLLOUT"; do
	"$OTAD_BIN" --data-dir "$DATA" device simulate --devices-file "$f" --type "$FW_TYPE" --devices 1 \
		--chunk-log 4 --timeout 60 --json >"$WORK/out/warmup.json" 2>&1 ||
		die "warm-up download failed: $(head -c 300 "$WORK/out/warmup.json")"
done
for ((rep = 1; rep <= REPEATS; rep++)); do
	run_chunks "chunks.plain.$rep" "$CHUNKS_PLAIN"
	run_chunks "chunks.rollout.$rep" "$CHUNKS_ROLLOUT"
done
say "fleet runs: $FLEET new devices per run, an image of $FLEET_IMAGE_KIB KiB"
for ((rep = 1; rep <= REPEATS; rep++)); do
	setup_type "fleet-plain-$rep" "$FLEET_URL" "$FLEET" plain
	run_fleet "fleet.plain.$rep" "$TYPE_FILE" ""
	setup_type "fleet-rollout-$rep" "$FLEET_URL" "$FLEET" rollout
	run_fleet "fleet.rollout.$rep" "$TYPE_FILE" "$LAST_ROLLOUT"
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
alive "$OTAD_PID" && OTAD_ALIVE=yes || OTAD_ALIVE="NO (crashed: see its log)"
OTAD_WARNINGS=$(grep -cE ' (WARN|ERROR) ' "$OTAD_LOG" || true)

# ---------------------------------------------------------------- report
# med: the values on stdin, one a line -> "median min max"
med() {
	sort -g | awk 'NF {v[++n] = $1}
		END { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print m, v[1], v[n] }'
}
col() { # WORKLOAD VARIANT KEY -> "median min max" of the repeats
	local i
	for ((i = 1; i <= REPEATS; i++)); do echo "${R[$1.$2.$i,$3]}"; done | med
}
fmt() { # "median min max" DECIMALS -> "median (min–max)"
	local m lo hi
	read -r m lo hi <<<"$1"
	printf "%.${2}f (%.${2}f–%.${2}f)" "$m" "$lo" "$hi"
}
# overhead WORKLOAD KEY SENSE: per pair, the extra cost with the rollout in percent: for a
# rate (SENSE rate) without/with − 1, for a cost per unit (SENSE cost) with/without − 1.
overhead() {
	local i a b out=()
	for ((i = 1; i <= REPEATS; i++)); do
		a=${R[$1.plain.$i,$2]}
		b=${R[$1.rollout.$i,$2]}
		if [[ $3 == rate ]]; then
			out+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (b > 0) ? 100 * (a / b - 1) : 0}')")
		else
			out+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (a > 0) ? 100 * (b / a - 1) : 0}')")
		fi
	done
	printf '%s\n' "${out[@]}" | med
}
verdict() { awk -v x="$1" -v g="$GOAL_OVERHEAD_PCT" 'BEGIN {print (x <= g) ? "met" : "**not met**"}'; }
{
	echo
	echo "## Rollout bookkeeping: OCP/1 chunks and the simulator fleet, with and without a rollout (bench/ocp/rollout.sh)"
	echo
	echo "- date: $RUN_START; host: nproc=$(nproc), CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
	echo "- otad: $OTAD_ID"
	echo "- load average (1/5/15 min): $LOAD_START at the start, $LOAD_END at the end; $IDLE_NOTE"
	echo "- order: without, with, repeated $REPEATS times (ABAB) for each workload; median (min–max) over the repeats; the overhead is the median of the per-pair figures"
	echo "- chunks: $CONNS devices × $INFLIGHT GETs in flight, verified 16 KiB chunks (chunk_log 4) of a $IMAGE_MIB MiB image, ${DURATION}s window after ${WARMUP}s warm-up"
	echo "- fleet: $FLEET new devices per run, $FLEET_CONCURRENCY at a time, each: connect, CHECK, verified download of a $FLEET_IMAGE_KIB KiB image, REPORTs, install, reconnect, confirming CHECK; with a rollout of one group (100 %) holding the image"
	echo
	echo "| measure | without rollout | with rollout | rollout adds (median of pairs, min–max) | goal | status |"
	echo "|---|---:|---:|---:|---|---|"
	read -r o olo ohi <<<"$(overhead chunks rate rate)"
	echo "| verified 16 KiB chunks per second | $(fmt "$(col chunks plain rate)" 0) | $(fmt "$(col chunks rollout rate)" 0) | $o % ($olo – $ohi) | ≤ $GOAL_OVERHEAD_PCT % | $(verdict "$o") |"
	read -r o olo ohi <<<"$(overhead chunks unit cost)"
	echo "| otad CPU µs per verified chunk | $(fmt "$(col chunks plain unit)" 2) | $(fmt "$(col chunks rollout unit)" 2) | $o % ($olo – $ohi) | report | - |"
	read -r o olo ohi <<<"$(overhead fleet rate rate)"
	echo "| fleet devices per second (CHECK, REPORTs, confirming CHECK each) | $(fmt "$(col fleet plain rate)" 1) | $(fmt "$(col fleet rollout rate)" 1) | $o % ($olo – $ohi) | ≤ $GOAL_OVERHEAD_PCT % | $(verdict "$o") |"
	read -r o olo ohi <<<"$(overhead fleet unit cost)"
	echo "| otad CPU ms per fleet device | $(fmt "$(col fleet plain unit)" 3) | $(fmt "$(col fleet rollout unit)" 3) | $o % ($olo – $ohi) | report | - |"
	echo
	echo "| run | per second | otad CPU % | otad CPU per chunk (µs) / per device (ms) | other CPU % | note |"
	echo "|---|---:|---:|---:|---:|---|"
	for w in chunks fleet; do
		for ((rep = 1; rep <= REPEATS; rep++)); do
			for v in plain rollout; do
				row="$w.$v.$rep"
				echo "| $row | ${R[$row,rate]} | ${R[$row,cpu]} | ${R[$row,unit]} | ${R[$row,other]} | ${R[$row,note]:-} |"
			done
		done
	done
	echo
	echo "\"other CPU\" is every process but otad (in the chunk rows also not the simulator, whose own CPU time it reports); in the fleet rows it includes the simulator. otad alive at the end: $OTAD_ALIVE; WARN/ERROR lines in its log: $OTAD_WARNINGS."
} | tee "$WORK/report.md"
say "done in ${SECONDS}s"
