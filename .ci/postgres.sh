#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the store tests (internal/store/postgres and
# every test that reads ORGKMS_TEST_POSTGRES_URL).
#
#   eval "$(bash .ci/postgres.sh)"   start it, or reuse the one already
#                                    running, and export the test URL
#   bash .ci/postgres.sh stop        stop it and delete its data
#
# It uses Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin; run as root it
# installs the postgresql package when missing), runs initdb as the postgres
# user (as the calling user when not root) into ORGKMS_POSTGRES_DIR (default
# $TMPDIR/orgkms-postgres), listens on 127.0.0.1 only, on a free port, and
# creates a role and a database "orgkms" whose password is random. Only the
# export line goes to stdout; progress and errors go to stderr. Running it
# again while the server is up prints the same line and changes nothing.
set -euo pipefail

pgbin=/usr/lib/postgresql/15/bin
dir=${ORGKMS_POSTGRES_DIR:-${TMPDIR:-/tmp}/orgkms-postgres}
data=$dir/data

say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

root=
[ "$(id -u)" = 0 ] && root=1

# as_pg runs a command as the user that owns the cluster.
as_pg() {
	if [ -n "$root" ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

running() { [ -s "$data/PG_VERSION" ] && as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

if [ "${1:-start}" = stop ]; then
	if running; then
		say "stopping the server in $dir"
		as_pg "$pgbin/pg_ctl" -D "$data" -m fast -w -t 300 stop >&2
	else
		say "no server is running in $dir"
	fi
	rm -rf "$dir"
	exit 0
fi
[ "${1:-start}" = start ] || die "usage: bash .ci/postgres.sh [start|stop]"

install() {
	[ -n "$root" ] || die "PostgreSQL 15 is not installed ($pgbin is missing): install Debian's postgresql package (apt-get install postgresql) or run this script as root"
	say "installing Debian's postgresql package"
	# The package would create and start a cluster of its own on port 5432:
	# this script needs only the binaries.
	mkdir -p /etc/postgresql-common
	if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
		echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold postgresql >/dev/null
	[ -x "$pgbin/initdb" ] || die "apt-get install postgresql did not provide $pgbin (PostgreSQL 15 is expected, as on Debian 12)"
}
[ -x "$pgbin/initdb" ] || install

if [ -n "$root" ] && ! id postgres >/dev/null 2>&1; then
	die "the postgres user does not exist: reinstall Debian's postgresql package"
fi

mkdir -p "$dir"
chmod 700 "$dir"
[ -n "$root" ] && chown postgres: "$dir"
as_pg test -w "$dir" || die "$dir is not writable by the postgres user: set ORGKMS_POSTGRES_DIR to a directory it can use"

if [ ! -s "$data/PG_VERSION" ]; then
	say "initializing a new cluster in $data"
	rm -rf "$data"
	as_pg "$pgbin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 -N >"$dir/initdb.log" 2>&1 ||
		die "initdb failed; see $dir/initdb.log"
	rm -f "$dir/port" "$dir/password"
fi

if [ ! -s "$dir/password" ]; then
	(umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/password")
fi
password=$(cat "$dir/password")

# port_free succeeds if nothing listens on 127.0.0.1:$1.
port_free() {
	if command -v ss >/dev/null 2>&1; then
		! ss -Htln "sport = :$1" | grep -q .
	else
		! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# ready waits until the server accepts connections, for up to 2 minutes.
ready() {
	local port=$1 i
	for i in $(seq 1 600); do
		if "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5; then
			return 0
		fi
		running || return 1
		sleep 0.2
	done
	return 1
}

if running; then
	port=$(cat "$dir/port")
	ready "$port" || die "the server in $dir does not accept connections; see $dir/server.log"
else
	port=
	for attempt in $(seq 1 20); do
		candidate=$(cat "$dir/port" 2>/dev/null || true)
		if [ -z "$candidate" ] || [ "$attempt" -gt 1 ]; then
			candidate=$((20000 + RANDOM % 40000))
		fi
		port_free "$candidate" || continue
		say "starting the server on 127.0.0.1:$candidate"
		echo "$candidate" >"$dir/port"
		[ -n "$root" ] && chown postgres: "$dir/port"
		if as_pg "$pgbin/pg_ctl" -D "$data" -l "$dir/server.log" -W -o "-c listen_addresses=127.0.0.1 -p $candidate -k $dir \
			-c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >&2 &&
			ready "$candidate"; then
			port=$candidate
			break
		fi
		say "the server did not start on port $candidate (taken meanwhile?); trying another"
		as_pg "$pgbin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
	done
	[ -n "$port" ] || die "could not start PostgreSQL; see $dir/server.log"
fi

# The role and database of the tests; the role creates one database per
# test package run.
as_pg "$pgbin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt >/dev/null <<SQL || die "could not create the orgkms role and database; see $dir/server.log"
SELECT 'CREATE ROLE orgkms' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orgkms') \gexec
ALTER ROLE orgkms LOGIN CREATEDB PASSWORD '$password';
SELECT 'CREATE DATABASE orgkms OWNER orgkms' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'orgkms') \gexec
SQL

say "PostgreSQL is ready on 127.0.0.1:$port (stop it with: bash .ci/postgres.sh stop)"
echo "export ORGKMS_TEST_POSTGRES_URL='postgres://orgkms:$password@127.0.0.1:$port/orgkms?sslmode=disable'"
