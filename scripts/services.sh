#!/usr/bin/env bash
# Start the PostgreSQL and MariaDB servers the store tests use, if they are down (loopback only).
set -uo pipefail
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
my_up() { mariadb-admin -h 127.0.0.1 -uroot --connect-timeout=2 ping >/dev/null 2>&1; }
if ! pg_up && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! my_up && [ -x /usr/sbin/mariadbd ]; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 60); do
  if pg_up && my_up; then exit 0; fi
  sleep 1
done
pg_up || echo "warning: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
my_up || echo "warning: MariaDB is not reachable on 127.0.0.1:3306" >&2
exit 0
