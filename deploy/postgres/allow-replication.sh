#!/bin/sh
# Run once by the postgres image when it initialises the primary's data directory
# (/docker-entrypoint-initdb.d): let the read replica stream WAL over the compose network,
# with the same password as every other connection. The image's default pg_hba.conf allows
# replication from localhost only.
set -e
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
