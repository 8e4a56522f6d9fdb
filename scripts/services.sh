#!/usr/bin/env bash
# Make sure the test databases answer on 127.0.0.1, starting them if they are down.
#
#   scripts/services.sh postgres   # PostgreSQL on :5432, user postgres (trust auth)
#   scripts/services.sh mariadb    # MariaDB on :3306, user root (no password)
#   scripts/services.sh redis      # Redis on :6379 (Celery's broker in tests/test_fleet.py)
#   scripts/services.sh rabbitmq   # RabbitMQ on :5672, guest/guest (the other broker there)
#
# Also creates the `dts` database the DATABASE_URLs name. The test runner itself works in
# test_dts, but management commands run against DATABASE_URL need the real one to exist.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

# wait_until SECONDS COMMAND...: poll until the command succeeds.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
}

ensure_postgres() {
    if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
        # Containers have no systemd: drive the Debian cluster directly.
        local version
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
        say "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_until 60 pg_isready -h 127.0.0.1 -p 5432 -q ||
            { echo "error: PostgreSQL did not come up" >&2; return 1; }
    fi
    if [[ -z $(psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dts'") ]]; then
        createdb -h 127.0.0.1 -U postgres dts
    fi
    say "PostgreSQL up: $(psql -h 127.0.0.1 -U postgres -tAc 'SHOW server_version')"
}

mariadb_sql() { mysql -h 127.0.0.1 -P 3306 -u root --batch --skip-column-names "$@"; }

ensure_mariadb() {
    if ! mysqladmin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then
        say "starting MariaDB"
        # /run is a tmpfs: after a reboot the socket directory is gone and mariadbd won't start.
        install -d -o mysql -g mysql /run/mysqld
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        wait_until 60 mysqladmin -h 127.0.0.1 -P 3306 -u root ping ||
            { echo "error: MariaDB did not come up" >&2; return 1; }
    fi
    mariadb_sql -e "CREATE DATABASE IF NOT EXISTS dts CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    # Django's date lookups and truncations in a time zone use CONVERT_TZ(), which returns NULL
    # until the server's time zone tables are loaded.
    if [[ $(mariadb_sql -e "SELECT COUNT(*) FROM mysql.time_zone_name") == 0 ]]; then
        say "loading MariaDB time zone tables"
        mysql_tzinfo_to_sql /usr/share/zoneinfo 2>/dev/null | mariadb_sql mysql
    fi
    say "MariaDB up: $(mariadb_sql -e 'SELECT VERSION()')"
}

ensure_redis() {
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        say "starting Redis"
        redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no
        wait_until 30 redis-cli -h 127.0.0.1 -p 6379 ping ||
            { echo "error: Redis did not come up" >&2; return 1; }
    fi
    say "Redis up: $(redis-cli -h 127.0.0.1 -p 6379 info server | tr -d '\r' | grep '^redis_version:')"
}

ensure_rabbitmq() {
    if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        say "starting RabbitMQ"
        rabbitmq-server -detached
        wait_until 120 rabbitmq-diagnostics -q ping ||
            { echo "error: RabbitMQ did not come up" >&2; return 1; }
    fi
    say "RabbitMQ up"
}

if (($# == 0)); then
    set -- postgres mariadb redis rabbitmq
fi
for service in "$@"; do
    case $service in
        postgres | mariadb | redis | rabbitmq) "ensure_$service" ;;
        *) echo "usage: $0 [postgres] [mariadb] [redis] [rabbitmq]" >&2; exit 2 ;;
    esac
done
