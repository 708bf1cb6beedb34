#!/usr/bin/env bash
# Run a full Temporal server (frontend, history, matching and worker services
# in one process) on the local PostgreSQL, for production-shaped benchmarks.
# `make temporal-postgres` builds the binaries and runs this script.
#
# 1. creates the databases <prefix> and <prefix>_visibility if missing;
# 2. installs or upgrades their schemas with temporal-sql-tool (the schema
#    files are embedded in the tool, so they match the pinned server version);
# 3. starts the server; once it is SERVING, registers the namespace and the
#    Stepcast search attributes; then stays in the foreground until Ctrl-C
#    (or SIGTERM), which stops the server gracefully.
#
# Environment (defaults in brackets):
#   TEMPORAL_PG_BIN          folder with temporal-server, temporal-sql-tool
#                            and the temporal CLI [<repo>/bin]
#   TEMPORAL_PG_PORT         frontend gRPC port [7243]; the server also uses
#                            the next 9 ports (see config/development-postgres.yaml)
#   TEMPORAL_PG_DB_PREFIX    database names: <prefix>, <prefix>_visibility [temporal]
#   TEMPORAL_PG_DB_ADDR      PostgreSQL host:port [127.0.0.1:5432]
#   TEMPORAL_PG_DB_USER      [postgres]   TEMPORAL_PG_DB_PASSWORD [empty]
#   TEMPORAL_PG_NAMESPACE    namespace to register [default]
#   TEMPORAL_PG_RETENTION    its retention for closed workflows [72h]
#   TEMPORAL_PG_SHARDS       history shards, fixed at first start [4]
#   TEMPORAL_PG_LOG_LEVEL    server log level [warn]
#
# Drop the databases (after stopping the server) with:
#   bin/temporal-sql-tool --plugin postgres12 --ep 127.0.0.1 -p 5432 -u postgres \
#     --db temporal drop-database --defaultdb postgres --force   (and temporal_visibility)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${TEMPORAL_PG_BIN:-$root/bin}

export TEMPORAL_PG_PORT=${TEMPORAL_PG_PORT:-7243}
export TEMPORAL_PG_DB_PREFIX=${TEMPORAL_PG_DB_PREFIX:-temporal}
export TEMPORAL_PG_DB_ADDR=${TEMPORAL_PG_DB_ADDR:-127.0.0.1:5432}
export TEMPORAL_PG_DB_USER=${TEMPORAL_PG_DB_USER:-postgres}
export TEMPORAL_PG_DB_PASSWORD=${TEMPORAL_PG_DB_PASSWORD:-}
export TEMPORAL_PG_SHARDS=${TEMPORAL_PG_SHARDS:-4}
export TEMPORAL_PG_LOG_LEVEL=${TEMPORAL_PG_LOG_LEVEL:-warn}
export TEMPORAL_PG_DYNAMIC_CONFIG=${TEMPORAL_PG_DYNAMIC_CONFIG:-$here/config/dynamicconfig.yaml}
namespace=${TEMPORAL_PG_NAMESPACE:-default}
retention=${TEMPORAL_PG_RETENTION:-72h}
config=$here/config/development-postgres.yaml
address=127.0.0.1:$TEMPORAL_PG_PORT
search_attributes=(StepcastChannel StepcastScenario StepcastFriend StepcastNode)

say() { echo "temporal-postgres: $*" >&2; }
die() { say "$*"; exit 1; }

for b in temporal-server temporal-sql-tool temporal; do
	[ -x "$bin/$b" ] || die "$bin/$b is missing: run \`make temporal-postgres-build tools\`"
done
case $TEMPORAL_PG_PORT in '' | *[!0-9]*) die "TEMPORAL_PG_PORT=$TEMPORAL_PG_PORT is not a port" ;; esac
case $TEMPORAL_PG_DB_PREFIX in '' | *[!a-z0-9_]*) die "TEMPORAL_PG_DB_PREFIX must be lower-case letters, digits and _" ;; esac
if (exec 3<>"/dev/tcp/127.0.0.1/$TEMPORAL_PG_PORT") 2>/dev/null; then
	die "127.0.0.1:$TEMPORAL_PG_PORT is already in use (another Temporal server?); set TEMPORAL_PG_PORT"
fi

# --- databases and schemas -------------------------------------------------
sql_tool() {
	local db=$1
	shift
	"$bin/temporal-sql-tool" --plugin postgres12 \
		--ep "${TEMPORAL_PG_DB_ADDR%:*}" -p "${TEMPORAL_PG_DB_ADDR##*:}" \
		-u "$TEMPORAL_PG_DB_USER" --pw "$TEMPORAL_PG_DB_PASSWORD" --db "$db" "$@"
}
schema_log=$(mktemp "${TMPDIR:-/tmp}/temporal-postgres-schema.XXXXXX")
for pair in "$TEMPORAL_PG_DB_PREFIX:postgresql/v12/temporal" \
	"${TEMPORAL_PG_DB_PREFIX}_visibility:postgresql/v12/visibility"; do
	db=${pair%%:*} schema=${pair#*:}
	say "database $db: create if missing, schema $schema"
	# All three are idempotent: setup-schema only creates the version tables
	# on a fresh database, update-schema applies the versions not yet applied.
	if ! { sql_tool "$db" create-database --defaultdb postgres &&
		sql_tool "$db" setup-schema -v 0.0 &&
		sql_tool "$db" update-schema --schema-name "$schema"; } >"$schema_log" 2>&1; then
		cat "$schema_log" >&2
		rm -f "$schema_log"
		die "schema setup of $db failed"
	fi
done
rm -f "$schema_log"

# --- server ----------------------------------------------------------------
pid=
stop_server() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		say "stopping the server (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap stop_server EXIT
trap 'exit 0' INT TERM

say "starting Temporal server $("$bin/temporal-server" --version 2>/dev/null | awk '{print $NF}') at $address (databases $TEMPORAL_PG_DB_PREFIX, ${TEMPORAL_PG_DB_PREFIX}_visibility on $TEMPORAL_PG_DB_ADDR)"
"$bin/temporal-server" --config-file "$config" --allow-no-auth \
	start --service frontend --service history --service matching --service worker &
pid=$!

cli() { "$bin/temporal" --address "$address" --color never "$@"; }

deadline=$((SECONDS + 120))
until cli operator cluster health 2>/dev/null | grep -q SERVING; do
	kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; pid=; die "the server exited during startup"; }
	((SECONDS < deadline)) || die "the server is not SERVING after 120s"
	sleep 1
done

# Right after SERVING the frontend may still be joining the ring: retry.
retry() {
	local i
	for i in $(seq 30); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 1
	done
	"$@" # once more, showing the error
}
if ! cli operator namespace describe -n "$namespace" >/dev/null 2>&1; then
	say "registering namespace $namespace (retention $retention)"
	retry cli operator namespace create -n "$namespace" --retention "$retention"
fi
for sa in "${search_attributes[@]}"; do
	retry cli operator search-attribute create -n "$namespace" --name "$sa" --type Keyword
done
# The services read the namespace's search attributes from their namespace
# caches, which refresh every 2s (system.namespaceCacheRefreshInterval), so
# right after registration a query or a workflow start that uses them fails
# with "invalid search attribute". Wait until the frontend accepts a query
# over all of them, then one more refresh for history and matching, so a
# workflow started as soon as we say "ready" may use them.
query=
for sa in "${search_attributes[@]}"; do
	query="${query:+$query AND }$sa = 'ready-check'"
done
attributes_usable() { cli workflow count -n "$namespace" --query "$query"; }
if ! attributes_usable >/dev/null 2>&1; then
	retry attributes_usable
	sleep 3
fi

say "ready: $address, namespace $namespace, search attributes ${search_attributes[*]}; Ctrl-C stops"
set +e
wait "$pid"
rc=$?
pid=
exit "$rc"
