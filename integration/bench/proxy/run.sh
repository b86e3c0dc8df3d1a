#!/usr/bin/env bash
# Proxy benchmark: nodemesh proxy side by side with the backend called
# directly, HAProxy, nginx and Go reverse proxies, with the method of
# shared/notes/anchors.md (see docs/benchmarks.md):
#   core 0 (taskset -c 0): the backend and the proxy under test, every Go
#          program with GOMAXPROCS=1, HAProxy nbthread 1, nginx
#          worker_processes 1;
#   core 1 (taskset -c 1): the load generators only.
# Throughput: wrk -t1 -c50, 3 s warm-up, 10 s measured. Latency: openloop at
# 2,000 req/s over 16 keep-alive connections, with every configuration
# running at once and measured in turns of 1 s. RSS: VmRSS after the
# throughput run. CPU: utime+stime of the proxy during the measured run.
# Repetitions are interleaved (A B C ... A B C ...).
#
# Traffic goes to 127.0.0.1 only; every load run is bounded in time.
#
# Environment: BENCH_REPS (3), BENCH_LATENCY_REPS (6), BENCH_DURATION (10,
# seconds), BENCH_WARMUP (3), BENCH_LATENCY_BLOCK (1, seconds),
# BENCH_CONFIGS (all HTTP configurations), BENCH_TCP_CONFIGS (direct
# nodemesh haproxy haproxy-splice), BENCH_LARGE (1: measure the large
# table), BENCH_THROUGHPUT (1; 0 skips the HTTP throughput stage),
# BENCH_IDLE_CONFIGS (nodemesh haproxy nginx oxy-pool),
# BENCH_IDLE_CONNS (2000 idle keep-alive clients over the first 500),
# BENCH_LARGE_RELOADS (5 reloads of the large table per repetition, at most 99),
# BENCH_OUT (integration/bench/results), BENCH_KEEP (1: keep logs in /tmp),
# BENCH_COMMIT (the commit named in the result),
# NODEMESH_BIN (built here if unset).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
REPS=${BENCH_REPS:-3}
# The latency stage's repetitions: its verdict, a ratio of medians of
# differences of p99s, needs more than three (1.59 over three, 1.24 and
# 1.37 over 12 and 20 on the same code, 2026-12-07).
LAT_REPS=${BENCH_LATENCY_REPS:-6}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
LAT_BLOCK=${BENCH_LATENCY_BLOCK:-1} # seconds of each configuration's turn in the latency stage
CONFIGS=${BENCH_CONFIGS:-"direct nodemesh nodemesh-nogc nodemesh-gc64 haproxy nginx httputil httputil-pool oxy-pool"}
TCP_CONFIGS=${BENCH_TCP_CONFIGS-"direct nodemesh haproxy haproxy-splice"} # set and empty: no TCP runs
LARGE=${BENCH_LARGE:-1}
THROUGHPUT=${BENCH_THROUGHPUT:-1} # 0: the HTTP configurations' latency stage only
IDLE_CONFIGS=${BENCH_IDLE_CONFIGS-"nodemesh haproxy nginx oxy-pool"} # set and empty: no idle runs
IDLE_CONNS=${BENCH_IDLE_CONNS:-2000}
IDLE_WARM=500
OUT=${BENCH_OUT:-$ROOT/integration/bench/results}
WORK=$(mktemp -d /tmp/nodemesh-bench.XXXXXX)
RAW=$WORK/raw.tsv
BIN=$WORK/bin
LOGS=$WORK/logs
mkdir -p "$BIN" "$LOGS" "$OUT"
: >"$RAW"
TCK=$(getconf CLK_TCK)

# Ports, all on 127.0.0.1.
BACKEND_HTTP=18080 BACKEND_TCP=18081
NM_HTTP=18100 NM_ADMIN=18101 NM_TCP=18102
HA_HTTP=18110 HA_TCP=18111
NGINX_HTTP=18120
GO_HTTP=18130
SLOT_BASE=18200 # the latency stage's nodemesh and Go proxies: 18200, 18210, ...

PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

ensure_tools() {
	local missing=()
	command -v wrk >/dev/null || missing+=(wrk)
	command -v haproxy >/dev/null || missing+=(haproxy)
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
	command -v taskset >/dev/null || missing+=(util-linux)
	command -v curl >/dev/null || missing+=(curl)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]} from Debian packages"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

build() {
	log "building"
	if [ -n "${NODEMESH_BIN:-}" ]; then
		cp "$NODEMESH_BIN" "$BIN/nodemesh"
	else
		CGO_ENABLED=0 go build -trimpath -o "$BIN/nodemesh" ./cmd/nodemesh
	fi
	go build -o "$BIN/" ./integration/bench/proxy/{backend,openloop,goproxy,tcpload,gentable,idleconns,report}
}

# start NAME CMD...: runs CMD on core 0 in the background; sets STARTED.
start() {
	local name=$1
	shift
	taskset -c 0 env GOMAXPROCS=1 "$@" >"$LOGS/$name.log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
}

stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# wait_port PORT: up to 10 s for a listener.
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	log "nothing listens on port $1"
	return 1
}

# cpu_ticks PID: utime+stime in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# core_busy N: busy ticks of core N (everything but idle and iowait).
core_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }

write_configs() {
	"$BIN/gentable" -http-port $NM_HTTP -tcp-proxy-port $NM_TCP \
		-http-backend 127.0.0.1:$BACKEND_HTTP -tcp-backend 127.0.0.1:$BACKEND_TCP >"$WORK/small.json"
	cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend http
    mode http
    bind 127.0.0.1:$HA_HTTP
    default_backend http
backend http
    mode http
    server s1 127.0.0.1:$BACKEND_HTTP
frontend tcp
    mode tcp
    bind 127.0.0.1:$HA_TCP
    default_backend tcp
backend tcp
    mode tcp
    server s1 127.0.0.1:$BACKEND_TCP
EOF
	# HAProxy can splice too, but only when asked: measure it both ways.
	sed 's/^    mode tcp$/    mode tcp\n    option splice-auto/' "$WORK/haproxy.cfg" >"$WORK/haproxy-splice.cfg"
	cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # nginx closes a keep-alive connection after 1,000 requests by
    # default; the other proxies never do, and wrk would pay reconnects.
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx-tmp;
    proxy_temp_path $WORK/nginx-tmp;
    upstream backend { server 127.0.0.1:$BACKEND_HTTP; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_HTTP;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	mkdir -p "$WORK/nginx-tmp"
}

# start_proxy CONFIG [SLOT]: starts the proxy under test; sets PROXY_PID
# (empty for direct), PROXY_PORT and PROXY_ADMIN (nodemesh's admin port).
# With SLOT, for the latency stage, where every configuration runs at once,
# the nodemesh and Go proxies listen on ports of their own: SLOT_BASE +
# 10 * SLOT, and nodemesh's admin port one above.
start_proxy() {
	local cfg=$1 slot=${2:-} name=$1 table=$WORK/small.json nm_http=$NM_HTTP go_http=$GO_HTTP
	PROXY_PID=""
	PROXY_ADMIN=$NM_ADMIN
	if [ -n "$slot" ]; then
		name=$cfg-latency
		nm_http=$((SLOT_BASE + 10 * slot)) go_http=$((SLOT_BASE + 10 * slot))
		PROXY_ADMIN=$((nm_http + 1))
		table=$WORK/small-$slot.json
	fi
	case $cfg in
	direct) PROXY_PORT=$BACKEND_HTTP; return ;;
	nodemesh | nodemesh-nogc | nodemesh-gc64)
		local extra=()
		# nodemesh-nogc is a diagnostic, not a way to run it: the same
		# proxy with the Go collector off, so the run shows how much of
		# nodemesh's latency and CPU the collector costs. The heap only
		# grows: about 1 GiB by the end of one repetition (2026-12-06).
		[ "$cfg" = nodemesh-nogc ] && extra=(--gc-headroom=0 --gc-percent=-1)
		# nodemesh-gc64 is the other diagnostic: collections about a
		# sixteenth as often (64 MiB of headroom, about 46 MiB of RSS,
		# over the proxy's budget), on a heap that stops growing after
		# the throughput run, so unlike nodemesh-nogc it takes no page
		# faults for fresh heap during the latency run.
		[ "$cfg" = nodemesh-gc64 ] && extra=(--gc-headroom=64)
		# A slot's table routes its own port, and has no TCP listener to
		# clash with another instance's.
		[ -n "$slot" ] && "$BIN/gentable" -http-port "$nm_http" -http-backend 127.0.0.1:$BACKEND_HTTP >"$table"
		start "$name" "$BIN/nodemesh" proxy --table-file="$table" --listen-address=127.0.0.1 \
			--http-port="$nm_http" --admin-port="$PROXY_ADMIN" --node=bench "${extra[@]}"
		PROXY_PORT=$nm_http ;;
	haproxy)
		start "$name" haproxy -db -f "$WORK/haproxy.cfg"
		PROXY_PORT=$HA_HTTP ;;
	nginx)
		start "$name" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$WORK/nginx.conf"
		PROXY_PORT=$NGINX_HTTP ;;
	httputil | httputil-pool | oxy-pool)
		local mode=${cfg#httputil-}
		[ "$cfg" = httputil ] && mode=bare
		start "$name" "$BIN/goproxy" -mode "$mode" -listen 127.0.0.1:"$go_http" -backend http://127.0.0.1:$BACKEND_HTTP
		PROXY_PORT=$go_http ;;
	*) log "unknown config $cfg"; return 1 ;;
	esac
	PROXY_PID=$STARTED
	wait_port "$PROXY_PORT"
	# One request must succeed end to end before we measure.
	curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$PROXY_PORT/"
}

# run_http CONFIG REP: throughput, CPU and RSS.
run_http() {
	local cfg=$1 rep=$2 out before after requests rps
	start_proxy "$cfg"
	log "http $cfg rep $rep"
	timeout $((WARMUP + 30)) taskset -c 1 wrk -t1 -c50 -d"${WARMUP}s" "http://127.0.0.1:$PROXY_PORT/" >/dev/null
	[ -n "$PROXY_PID" ] && before=$(cpu_ticks "$PROXY_PID")
	local core0=$(core_busy 0) backend0=$(cpu_ticks "$BACKEND_PID") proxy0=${before:-0}
	out=$(timeout $((DURATION + 30)) taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" --latency "http://127.0.0.1:$PROXY_PORT/")
	# Work on the node core that was neither the backend nor the proxy:
	# other tenants of the machine, and kernel work not charged to a process.
	local proxy1=0
	[ -n "$PROXY_PID" ] && proxy1=$(cpu_ticks "$PROXY_PID")
	record "$cfg" "$rep" other_core0_pct "$(awk -v b=$(($(core_busy 0) - core0 - ($(cpu_ticks "$BACKEND_PID") - backend0) - (proxy1 - proxy0))) -v k="$TCK" -v d="$DURATION" 'BEGIN {printf "%.1f", 100 * b / k / d}')"
	echo "$out" >"$LOGS/wrk-$cfg-$rep.txt"
	if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
		log "wrk saw errors for $cfg:"; echo "$out" >&2
		record "$cfg" "$rep" wrk_errors 1
	fi
	requests=$(echo "$out" | awk '/requests in/ {print $1}')
	rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
	record "$cfg" "$rep" rps "$rps"
	if [ -n "$PROXY_PID" ]; then
		after=$(cpu_ticks "$PROXY_PID")
		record "$cfg" "$rep" cpu_ms_per_1k "$(awk -v t=$((after - before)) -v k="$TCK" -v n="$requests" 'BEGIN {printf "%.2f", t * 1000 / k / (n / 1000)}')"
		record "$cfg" "$rep" rss_mib "$(rss_mib "$PROXY_PID")"
	fi
	[ -n "$PROXY_PID" ] && stop "$PROXY_PID"
	return 0
}

# run_latency REP: latency at 2,000 req/s of every configuration at once.
# All of them run side by side on core 0, each warmed by wrk as in the
# throughput stage, and openloop measures them in turns of LAT_BLOCK
# seconds until each has had DURATION: the configurations are compared
# under the same state of the machine, which drifts over tens of seconds on
# a shared VM (docs/benchmarks.md). An idle proxy waits in epoll, next to
# no cost to the one measured.
run_latency() {
	local rep=$1 cfg slot=0 addrs="" out line pids=() admins=() ports=()
	for cfg in $CONFIGS; do
		start_proxy "$cfg" "$slot"
		pids+=("$PROXY_PID") ports+=("$PROXY_PORT") admins+=("")
		case $cfg in nodemesh*) admins[slot]=$PROXY_ADMIN ;; esac
		timeout $((WARMUP + 30)) taskset -c 1 wrk -t1 -c50 -d"${WARMUP}s" "http://127.0.0.1:$PROXY_PORT/" >/dev/null
		addrs+=${addrs:+,}127.0.0.1:$PROXY_PORT
		slot=$((slot + 1))
	done
	log "latency rep $rep"
	# The collections during the latency run (warm-up included), for
	# nodemesh: each one's mark holds the shared core (docs/benchmarks.md).
	local gc0=()
	slot=0
	for cfg in $CONFIGS; do
		gc0+=("${admins[slot]:+$(metric go_gc_duration_seconds_count "${admins[slot]}")}")
		slot=$((slot + 1))
	done
	out=$(timeout $(($(echo $CONFIGS | wc -w) * (DURATION + LAT_BLOCK) + 30)) taskset -c 1 env GOMAXPROCS=1 GOGC=off \
		"$BIN/openloop" -addr "$addrs" -block "${LAT_BLOCK}s" -rate 2000 -conns 16 -warmup "${LAT_BLOCK}s" -duration "${DURATION}s") || true
	echo "$out" >"$LOGS/openloop-$rep.json"
	slot=0
	for cfg in $CONFIGS; do
		line=$(echo "$out" | grep -F "\"addr\":\"127.0.0.1:${ports[slot]}\"" || true)
		if [ -n "$line" ] && echo "$line" | grep -q '"errors":0,"late":0,'; then
			[ -n "${admins[slot]}" ] && record "$cfg" "$rep" gc_cycles_latency "$(($(metric go_gc_duration_seconds_count "${admins[slot]}") - gc0[slot]))"
			for m in p50_us p99_us p999_us; do
				record "$cfg" "$rep" "$m" "$(echo "$line" | sed -n "s/.*\"$m\":\([0-9.]*\).*/\1/p")"
			done
		else
			# Failed or unsent requests: no latency figure for this run.
			log "latency run failed for $cfg rep $rep: ${line:-no result}"
			record "$cfg" "$rep" latency_failed 1
		fi
		slot=$((slot + 1))
	done
	for pid in "${pids[@]}"; do [ -n "$pid" ] && stop "$pid"; done
	return 0
}

# run_tcp CONFIG REP: 1 MiB per connection through the proxy.
run_tcp() {
	local cfg=$1 rep=$2 port pid="" out before after
	case $cfg in
	direct) port=$BACKEND_TCP ;;
	nodemesh)
		start nodemesh-tcp "$BIN/nodemesh" proxy --table-file="$WORK/small.json" --listen-address=127.0.0.1 \
			--http-port=$NM_HTTP --admin-port=$NM_ADMIN --node=bench
		pid=$STARTED port=$NM_TCP ;;
	haproxy)
		start haproxy-tcp haproxy -db -f "$WORK/haproxy.cfg"
		pid=$STARTED port=$HA_TCP ;;
	haproxy-splice)
		start haproxy-tcp haproxy -db -f "$WORK/haproxy-splice.cfg"
		pid=$STARTED port=$HA_TCP ;;
	esac
	wait_port "$port"
	log "tcp $cfg rep $rep"
	timeout $((DURATION + 30)) taskset -c 1 env GOMAXPROCS=1 "$BIN/tcpload" -addr "127.0.0.1:$port" \
		-c 8 -warmup 2s -duration "${DURATION}s" >"$WORK/tcpload.out" &
	local load=$!
	sleep 2 # tcpload's warm-up
	[ -n "$pid" ] && before=$(cpu_ticks "$pid")
	wait "$load"
	[ -n "$pid" ] && after=$(cpu_ticks "$pid")
	out=$(cat "$WORK/tcpload.out")
	local mibps conns completed
	mibps=$(echo "$out" | sed -n 's/.*"mib_per_sec":\([0-9.]*\).*/\1/p')
	conns=$(echo "$out" | sed -n 's/.*"conns_per_sec":\([0-9.]*\).*/\1/p')
	completed=$(echo "$out" | sed -n 's/.*"completed":\([0-9]*\).*/\1/p')
	record "tcp-$cfg" "$rep" mib_per_sec "$mibps"
	record "tcp-$cfg" "$rep" conns_per_sec "$conns"
	if [ -n "$pid" ]; then
		record "tcp-$cfg" "$rep" cpu_ms_per_conn "$(awk -v t=$((after - before)) -v k="$TCK" -v n="$completed" 'BEGIN {printf "%.3f", t * 1000 / k / n}')"
		stop "$pid"
	fi
}

# metric NAME [ADMIN_PORT]: the value of an unlabelled metric of the
# nodemesh proxy.
metric() {
	curl -sf --max-time 5 "http://127.0.0.1:${2:-$NM_ADMIN}/metrics" | scraped - "$1"
}

# scraped FILE NAME: the value of metric NAME in a saved scrape (- for stdin).
scraped() { awk -v n="$2" '$1 == n {print $2}' "$1"; }

# run_idle CONFIG REP: what idle keep-alive clients cost the proxy. A
# first IDLE_WARM clients, each idle after one request, then IDLE_CONNS
# more: the RSS difference over the second group is the cost of a further
# idle connection, without what serving the first requests costs once
# (code paged back in, pools, the runtime's own growth). The clients run
# on core 1 and hold their connections until killed (at most 60 s).
run_idle() {
	local cfg=$1 rep=$2 warm_rss idle_rss
	start_proxy "$cfg"
	log "idle connections $cfg rep $rep"
	# nodemesh drops its start-up pages 2 s after it starts (pkg/memtrim).
	sleep 3
	idle_open "$cfg-$rep-warm" "$IDLE_WARM" && warm_rss=$(rss_mib "$PROXY_PID") &&
		idle_open "$cfg-$rep" "$IDLE_CONNS" && idle_rss=$(rss_mib "$PROXY_PID") || {
		# Logged and left out of the table, not fatal to the whole run.
		idle_close
		stop "$PROXY_PID"
		return 0
	}
	record "idle-$cfg" "$rep" warm_conns "$IDLE_WARM"
	record "idle-$cfg" "$rep" conns "$IDLE_CONNS"
	record "idle-$cfg" "$rep" rss_warm_mib "$warm_rss"
	record "idle-$cfg" "$rep" rss_idle_mib "$idle_rss"
	record "idle-$cfg" "$rep" kib_per_conn "$(awk -v a="$warm_rss" -v b="$idle_rss" -v n="$IDLE_CONNS" 'BEGIN {printf "%.2f", (b - a) * 1024 / n}')"
	idle_close
	stop "$PROXY_PID"
}

# idle_open NAME N: N more idle clients of the proxy under test, then a
# second for them to settle (nodemesh's connections shed their buffers at
# once; a collection may be under way).
IDLE_PIDS=()
idle_open() {
	local out=$LOGS/idle-$1.out pid
	taskset -c 1 "$BIN/idleconns" -addr "127.0.0.1:$PROXY_PORT" -n "$2" -hold 60s >"$out" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	IDLE_PIDS+=("$pid")
	for _ in $(seq 300); do
		grep -q '"open"' "$out" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '"open"' "$out"; then
		log "idle clients of $1 failed:"; cat "$out" >&2
		return 1
	fi
	sleep 1
}

idle_close() {
	for pid in "${IDLE_PIDS[@]}"; do stop "$pid"; done
	IDLE_PIDS=()
}

# run_large REP: RSS with 1,000 HTTP services and 10,000 endpoints loaded
# (idle, then after a throughput run as for the small table), and the time of
# LARGE_RELOADS reloads in each of which every endpoint changed: the
# proxy's own nodemesh_proxy_table_decode_duration_seconds (decoding the
# file) and nodemesh_proxy_reload_duration_seconds (validate + apply) for
# each. A reload's record has the key REP*100+i, so that each reload is one
# sample of the figure.
LARGE_RELOADS=${BENCH_LARGE_RELOADS:-5}
run_large() {
	local rep=$1 pid a0 a1 d0 d1 c0 c1 i v
	"$BIN/gentable" -http-port $NM_HTTP -http-backend 127.0.0.1:$BACKEND_HTTP \
		-services 1000 -endpoints-per-service 10 -version 1 >"$WORK/large.json"
	start nodemesh-large "$BIN/nodemesh" proxy --table-file="$WORK/large.json" --listen-address=127.0.0.1 \
		--http-port=$NM_HTTP --admin-port=$NM_ADMIN --node=bench --table-poll-interval=100ms
	pid=$STARTED
	log "large table rep $rep"
	for _ in $(seq 300); do
		curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$NM_ADMIN/ready" && break
		sleep 0.1
	done
	curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$NM_HTTP/"
	# After the proxy's start-up page trim (2 s after start, --trim-startup-pages).
	sleep 3
	record large "$rep" rss_idle_mib "$(rss_mib "$pid")"
	# The same throughput run as the small table's RSS figure.
	timeout $((DURATION + 30)) taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" "http://127.0.0.1:$NM_HTTP/" >/dev/null
	record large "$rep" rss_mib "$(rss_mib "$pid")"
	for i in $(seq "$LARGE_RELOADS"); do
		v=$((i + 1))
		# One scrape before and one after, none while the reload runs: the
		# wait below watches the proxy's log, so that it costs the proxy
		# nothing (a scrape of this table costs it 8-10 ms of its core).
		curl -sf --max-time 5 "http://127.0.0.1:$NM_ADMIN/metrics" >"$WORK/m0"
		a0=$(scraped "$WORK/m0" nodemesh_proxy_reload_duration_seconds_sum)
		c0=$(scraped "$WORK/m0" nodemesh_proxy_reload_duration_seconds_count)
		d0=$(scraped "$WORK/m0" nodemesh_proxy_table_decode_duration_seconds_sum)
		sleep 1
		# Every endpoint moves: offsets alternate 1, 0, 1, ...
		"$BIN/gentable" -http-port $NM_HTTP -http-backend 127.0.0.1:$BACKEND_HTTP \
			-services 1000 -endpoints-per-service 10 -endpoint-offset $((i % 2)) -version "$v" >"$WORK/large.json.new"
		mv "$WORK/large.json.new" "$WORK/large.json"
		for _ in $(seq 200); do
			grep -q "routing table applied\" version=$v " "$LOGS/nodemesh-large.log" && break
			sleep 0.05
		done
		curl -sf --max-time 5 "http://127.0.0.1:$NM_ADMIN/metrics" >"$WORK/m1"
		a1=$(scraped "$WORK/m1" nodemesh_proxy_reload_duration_seconds_sum)
		c1=$(scraped "$WORK/m1" nodemesh_proxy_reload_duration_seconds_count)
		d1=$(scraped "$WORK/m1" nodemesh_proxy_table_decode_duration_seconds_sum)
		if [ "$c1" = "$((c0 + 1))" ]; then
			record large "$((rep * 100 + i))" reload_ms "$(awk -v a="$a0" -v b="$a1" 'BEGIN {printf "%.2f", (b - a) * 1000}')"
			record large "$((rep * 100 + i))" decode_ms "$(awk -v a="$d0" -v b="$d1" 'BEGIN {printf "%.2f", (b - a) * 1000}')"
			record large "$((rep * 100 + i))" reload_total_ms "$(awk -v a0="$a0" -v a1="$a1" -v d0="$d0" -v d1="$d1" 'BEGIN {printf "%.2f", (a1 - a0 + d1 - d0) * 1000}')"
		else
			log "large table: reload $i: $((c1 - c0)) reloads seen, want 1"
		fi
		sleep 1
	done
	record large "$rep" rss_after_reload_mib "$(rss_mib "$pid")"
	stop "$pid"
}

main() {
	ensure_tools
	build
	write_configs
	local load_start
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)

	start backend "$BIN/backend" -http 127.0.0.1:$BACKEND_HTTP -tcp 127.0.0.1:$BACKEND_TCP
	BACKEND_PID=$STARTED
	wait_port $BACKEND_HTTP
	wait_port $BACKEND_TCP

	if [ "$THROUGHPUT" = 1 ]; then
		for rep in $(seq "$REPS"); do
			for cfg in $CONFIGS; do run_http "$cfg" "$rep"; done
		done
	fi
	for rep in $(seq "$LAT_REPS"); do run_latency "$rep"; done
	for rep in $(seq "$REPS"); do
		for cfg in $IDLE_CONFIGS; do run_idle "$cfg" "$rep"; done
	done
	for rep in $(seq "$REPS"); do
		for cfg in $TCP_CONFIGS; do run_tcp "$cfg" "$rep"; done
	done
	if [ "$LARGE" = 1 ]; then
		for rep in $(seq "$REPS"); do run_large "$rep"; done
	fi

	local date meta
	date=$(date +%F)
	meta=$WORK/meta.md
	{
		echo "# Proxy benchmark, $date"
		echo
		echo "- Commit: ${BENCH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}; $(go version | cut -d' ' -f3); $(haproxy -v | head -1 | cut -d' ' -f1-3); $("$(command -v nginx || echo /usr/sbin/nginx)" -v 2>&1 | cut -d' ' -f3)"
		echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)"
		echo "- Load average (1, 5, 15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "- Settings: $REPS interleaved repetitions ($LAT_REPS for latency); wrk ${WARMUP} s warm-up + ${DURATION} s; latency ${LAT_BLOCK} s warm-up + ${DURATION} s at 2,000 req/s over 16 connections, every configuration in turns of ${LAT_BLOCK} s; TCP 8 connections, 2 s warm-up + ${DURATION} s"
		echo "- Method: docs/benchmarks.md (core 0: backend + proxy; core 1: load)."
	} >"$meta"
	"$BIN/report" -in "$RAW" -meta "$meta" | tee "$OUT/proxy-$date.md"
	cp "$RAW" "$OUT/proxy-$date.tsv"
	log "saved $OUT/proxy-$date.md"
}

main "$@"
