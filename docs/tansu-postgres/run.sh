#!/bin/sh
# Two Tansu brokers on one PostgreSQL behind haproxy, then `vallee bench ingest` through
# them (docs/deploy.md). Needs Debian's postgresql and haproxy, and internet access for
# Tansu's schema. Run as root from this folder; stop with `pkill tansu-postgres; pkill haproxy`.
set -eu
PG_BIN=/usr/lib/postgresql/15/bin
DATA=${DATA:-/tmp/tansu-pgdata}
cargo build --release --target-dir target
BROKER=target/release/tansu-postgres-broker
mkdir -p "$DATA" && chown postgres "$DATA"
su postgres -s /bin/sh -c "$PG_BIN/initdb -D $DATA -U postgres --auth=trust >/dev/null && \
  $PG_BIN/pg_ctl -D $DATA -o '-p 5433 -k /tmp -c listen_addresses=127.0.0.1' -l $DATA.log start"
psql -h 127.0.0.1 -p 5433 -U postgres -c 'create database tansu'
# Tansu 0.6.0 does not create its PostgreSQL tables: its repository's schema at the tag.
curl -fsSL https://raw.githubusercontent.com/tansu-io/tansu/v0.6.0/etc/initdb.d/010-schema.sql |
  psql -q -h 127.0.0.1 -p 5433 -U postgres -d tansu
PG=postgres://postgres:postgres@127.0.0.1:5433/tansu
"$BROKER" 1 127.0.0.1:9201 127.0.0.1:9300 "$PG" &
"$BROKER" 1 127.0.0.1:9202 127.0.0.1:9300 "$PG" &
"$BROKER" 1 127.0.0.1:9203 127.0.0.1:9203 "$PG" &
haproxy -D -f haproxy.cfg
sleep 3
echo "one broker:  vallee bench ingest --events 100000 --kafka-brokers 127.0.0.1:9203"
echo "two brokers: vallee bench ingest --events 100000 --kafka-brokers 127.0.0.1:9300 [--membership group --members 2]"
