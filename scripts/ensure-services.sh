#!/usr/bin/env bash
# Install (Debian) and start the services the test suite talks to, if they are missing or down:
# PostgreSQL 15 with PostGIS 3 on 127.0.0.1:5432 (trust auth), Mosquitto on 127.0.0.1:1883
# and NATS with JetStream on 127.0.0.1:4222; Debian's Chromium for the browser tests.
# Idempotent: does nothing when everything is already up.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_pkgs=()
pg_ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
if [ -z "$pg_ver" ]; then need_pkgs+=(postgresql postgresql-contrib); pg_ver=15; fi
dpkg -s "postgresql-${pg_ver}-postgis-3" >/dev/null 2>&1 || need_pkgs+=("postgresql-${pg_ver}-postgis-3")
command -v mosquitto >/dev/null 2>&1 || need_pkgs+=(mosquitto mosquitto-clients)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || need_pkgs+=(nats-server)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)  # the dashboard's browser tests (Playwright drives it)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  pg_ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  echo "starting PostgreSQL ${pg_ver}"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main start || true
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
fi
port_open 5432 || { echo "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }

if ! port_open 1883; then
  echo "starting Mosquitto"
  $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf || $SUDO mosquitto -d
  for _ in $(seq 1 20); do port_open 1883 && break; sleep 0.5; done
fi
port_open 1883 || { echo "Mosquitto did not come up on 127.0.0.1:1883"; exit 1; }

if ! port_open 4222; then
  echo "starting NATS (JetStream)"
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  $SUDO mkdir -p /var/lib/nats-server /var/log
  $SUDO start-stop-daemon --start --oknodo --background --exec "$nats_bin" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 1 20); do port_open 4222 && break; sleep 0.5; done
fi
port_open 4222 || { echo "NATS did not come up on 127.0.0.1:4222"; exit 1; }

# the test database (PostGIS is enabled by our migrations)
psql_cmd=(psql -h 127.0.0.1 -U postgres -d postgres -tAc)
if ! "${psql_cmd[@]}" "SELECT 1 FROM pg_database WHERE datname='rescity_test'" | grep -q 1; then
  "${psql_cmd[@]}" "CREATE DATABASE rescity_test" >/dev/null
fi
echo "services ready: PostgreSQL ${pg_ver} + PostGIS, Mosquitto, NATS JetStream"
