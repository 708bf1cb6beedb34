#!/bin/bash
# Creates the roles and databases of the Stepcast stack. The postgres image
# runs this once, on first start with an empty data volume; later password
# changes in .env are NOT applied (use ALTER ROLE ... PASSWORD for that).
#
#   temporal  owns  temporal, temporal_visibility   (Temporal persistence + visibility)
#   stepcast  owns  stepcast                        (the application)
#
# deploy/compose_test.go parses the CREATE ROLE / CREATE DATABASE statements
# below to check the DSNs in docker-compose.yml.
set -e

: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}"
: "${STEPCAST_DB_PASSWORD:?STEPCAST_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 \
	--username "${POSTGRES_USER:-postgres}" \
	--dbname "${POSTGRES_DB:-postgres}" \
	-v temporal_password="$TEMPORAL_DB_PASSWORD" \
	-v stepcast_password="$STEPCAST_DB_PASSWORD" <<-'EOSQL'
	CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
	CREATE DATABASE temporal OWNER temporal;
	CREATE DATABASE temporal_visibility OWNER temporal;
	REVOKE ALL ON DATABASE temporal FROM PUBLIC;
	REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC;

	CREATE ROLE stepcast LOGIN PASSWORD :'stepcast_password';
	CREATE DATABASE stepcast OWNER stepcast;
	REVOKE ALL ON DATABASE stepcast FROM PUBLIC;
EOSQL
