#!/usr/bin/env bash
# Builds the Debian package and checks it as an operator would use it, on this machine (as
# root; CI runs it in a container without systemd as PID 1): the package installs with
# dpkg, systemd-analyze accepts the unit, and the installed binary, started by hand as the
# otad user with the packaged configuration, answers on /v1 and stops cleanly on SIGTERM.
# Then the package is purged again; /var/lib/otad is removed only if this script made it.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs the package)"
if dpkg -s otad >/dev/null 2>&1; then
  fail "an otad package is installed already; this check would replace it"
fi
fresh_state=1
[ -e /var/lib/otad ] && fresh_state=0

cargo deb --locked --output target/debian/
deb=$(ls -t target/debian/otad_*.deb | head -1)
echo "check-deb: built $deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"

server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -KILL "$server" || true; fi
  dpkg --purge otad >/dev/null 2>&1 || true
  if [ "$fresh_state" = 1 ]; then rm -rf /var/lib/otad; fi
}
trap cleanup EXIT

dpkg -i "$deb" || fail "dpkg -i failed"
getent passwd otad >/dev/null || fail "no otad user after install"
[ "$(stat -c %U /var/lib/otad)" = otad ] || fail "/var/lib/otad is not owned by otad"
[ "$(stat -c '%a %U:%G' /etc/otad/otad.toml)" = "640 root:otad" ] ||
  fail "/etc/otad/otad.toml is $(stat -c '%a %U:%G' /etc/otad/otad.toml), want 640 root:otad"
unit=/lib/systemd/system/otad.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/otad.service
[ -f "$unit" ] || fail "the unit file is not installed"
[ -L /etc/systemd/system/multi-user.target.wants/otad.service ] ||
  fail "the unit is not enabled (no multi-user.target.wants link)"
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify rejects $unit: $verify"
# It also only warns about unknown or misplaced keys: those are mistakes too.
if grep -F "$unit" <<<"$verify"; then fail "systemd-analyze verify warns about $unit"; fi
echo "check-deb: installed; unit $unit verified and enabled"

# Where systemd runs, dpkg started the service; stop it so the port is free for the run by
# hand below (which is what a container without systemd has to do anyway).
if [ -d /run/systemd/system ]; then systemctl stop otad.service; fi

# Started by hand as the unit would (its user, its working directory, its command line).
log=$(mktemp)
cd /var/lib/otad
setpriv --reuid otad --regid otad --init-groups -- \
  /usr/bin/otad serve --config /etc/otad/otad.toml >"$log" 2>&1 &
server=$!
cd - >/dev/null
for _ in $(seq 300); do
  [ -s /var/lib/otad/listen.json ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; fail "otad serve exited before listening"; }
  sleep 0.1
done
[ -s /var/lib/otad/listen.json ] || { cat "$log"; fail "no /var/lib/otad/listen.json after 30 s"; }
ca=/var/lib/otad/tls/cert.pem
[ "$(stat -c %U /var/lib/otad/otad.redb)" = otad ] || fail "the database is not owned by otad"
[ "$(stat -c %a /var/lib/otad/initial-credentials.json)" = 600 ] ||
  fail "initial-credentials.json is not 0600"
health=$(curl -sS --cacert "$ca" https://127.0.0.1:8443/healthz)
[ "$health" = '{"status":"ok"}' ] || fail "/healthz answered $health"
code=$(curl -sS --cacert "$ca" -o /tmp/otad-check-deb-me.json -w '%{http_code}' https://127.0.0.1:8443/v1/me)
[ "$code" = 401 ] || fail "/v1/me without a token answered $code, want 401"
grep -q '"error"' /tmp/otad-check-deb-me.json || fail "/v1/me 401 has no error body"
python3 - "$ca" <<'PY' || fail "the first admin cannot sign in"
import json, ssl, sys, urllib.parse, urllib.request, base64
creds = json.load(open("/var/lib/otad/initial-credentials.json"))
ctx = ssl.create_default_context(cafile=sys.argv[1])
basic = base64.b64encode(f"{creds['clientId']}:{creds['clientSecret']}".encode()).decode()
form = urllib.parse.urlencode({"grant_type": "password", "username": creds["username"],
                               "password": creds["password"]}).encode()
req = urllib.request.Request("https://127.0.0.1:8443/oauth/token", data=form,
                             headers={"Authorization": "Basic " + basic})
token = json.load(urllib.request.urlopen(req, context=ctx))["access_token"]
req = urllib.request.Request("https://127.0.0.1:8443/v1/me",
                             headers={"Authorization": "Bearer " + token})
me = json.load(urllib.request.urlopen(req, context=ctx))
assert me.get("username") == "admin", me
PY
echo "check-deb: the packaged otad serves /v1 as the otad user"

kill -TERM "$server"
for _ in $(seq 300); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server" 2>/dev/null; then fail "otad did not stop within 30 s of SIGTERM"; fi
status=0; wait "$server" || status=$?
server=""
[ "$status" = 0 ] || { cat "$log"; fail "otad exited $status after SIGTERM"; }
rm -f "$log" /tmp/otad-check-deb-me.json
echo "check-deb: ok"
