#!/bin/bash
# Checks, with curl, that the Keystone + Nova API of openstack_env.py answer the
# console-token lookup the way spicegate's Nova backend expects.
#
#   tests/nova/smoke.sh [DIR]
#
# With DIR holding a running environment (openstack_env.py start --dir DIR) it
# uses that one; otherwise it starts one in a fresh temporary directory with a
# 12-second Keystone token lifetime and keystonemiddleware caching off, and
# stops it at the end. Prints "ok"/"not ok" lines and "N passed, N failed".
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
ENVPY="$HERE/openstack_env.py"
pass=0
fail=0
own=""

ok()  { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok "$1 ($3)"; else bad "$1: expected '$2', got '$3'"; fi
}
# jget FILE PYTHON-EXPRESSION-ON-d
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

cleanup() {
    if [ -n "$own" ]; then
        "$PY" "$ENVPY" stop --dir "$own" >/dev/null
        rm -rf "$own"
    fi
    rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap cleanup EXIT

if [ $# -ge 1 ] && "$PY" "$ENVPY" status --dir "$1" >/dev/null 2>&1; then
    D=$1
else
    own=$(mktemp -d /tmp/spicegate-nova-smoke.XXXXXX)
    D=$own
    t0=$(date +%s%N)
    if ! "$PY" "$ENVPY" start --dir "$D" --keystone-token-expiration 12 \
            --token-cache-time -1 >/dev/null; then
        bad "openstack_env.py start"
        echo "0 passed, 1 failed"
        exit 1
    fi
    ok "environment started in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
fi
E="$D/env.json"
AUTH=$(jget "$E" 'd["auth_url"]')
NOVA=$(jget "$E" 'd["nova_url"]')
MV="OpenStack-API-Version: compute 2.31"

# token NAME BODY -> sets code (HTTP status) and TOK (X-Subject-Token),
# writes the body to $TMP/NAME.json
token() {
    code=$(curl -s -D "$TMP/$1.h" -o "$TMP/$1.json" -w '%{http_code}' \
        -H 'Content-Type: application/json' -d "$2" "$AUTH/auth/tokens")
    TOK=$(awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' "$TMP/$1.h" | tr -d '\r')
}
pw_body() { # user password project
    printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"%s","domain":{"name":"Default"},"password":"%s"}}},"scope":{"project":{"name":"%s","domain":{"name":"Default"}}}}}' "$1" "$2" "$3"
}
# lookup TOKEN CONSOLE-TOKEN [extra curl args] -> "STATUS", body in $TMP/body
lookup() {
    local t=$1 ct=$2
    shift 2
    curl -s -o "$TMP/body" -w '%{http_code}' -H "X-Auth-Token: $t" "$@" \
        "$NOVA/os-console-auth-tokens/$ct"
}
mint() { "$PY" "$ENVPY" mint --dir "$D" "$@"; }

lookups0=$("$PY" "$ENVPY" count-lookups --dir "$D")
nlook=0

# 1. service token (password) and the compute endpoint from its catalog
token svc "$(pw_body "$(jget "$E" 'd["service_user"]["username"]')" \
    "$(jget "$E" 'd["service_user"]["password"]')" \
    "$(jget "$E" 'd["service_user"]["project_name"]')")"
check "service user password token" 201 "$code"
T=$TOK
[ -n "$T" ] && ok "X-Subject-Token present" || bad "X-Subject-Token missing"
CAT=$(jget "$TMP/svc.json" '[e["url"] for s in d["token"]["catalog"] if s["type"]=="compute" for e in s["endpoints"] if e["interface"]=="internal" and e["region_id"]=="RegionOne"][0]')
check "catalog compute endpoint (internal, RegionOne)" "$NOVA" "$CAT"

# 2. mint + lookup
CT=$(mint --host 127.0.0.1 --port 5930)
code=$(lookup "$T" "$CT" -H "$MV"); nlook=$((nlook + 1))
check "lookup of a fresh token" 200 "$code"
check "lookup body" \
    "{'console': {'instance_uuid': '$(jget "$E" 'd["instance_uuid"]')', 'host': '127.0.0.1', 'port': 5930, 'internal_access_path': None}}" \
    "$(jget "$TMP/body" 'd')"
CT6=$(mint --host ::1 --port 5901 --type novnc)
code=$(lookup "$T" "$CT6" -H "$MV"); nlook=$((nlook + 1))
check "novnc token, IPv6 host" "200 ::1 5901" "$code $(jget "$TMP/body" 'd["console"]["host"]') $(jget "$TMP/body" 'd["console"]["port"]')"

# 3. unknown token
code=$(lookup "$T" 00000000-0000-0000-0000-000000000000 -H "$MV"); nlook=$((nlook + 1))
check "unknown token" "404 Token not found" "$code $(jget "$TMP/body" 'd["itemNotFound"]["message"]')"

# 4. microversions
code=$(lookup "$T" "$CT"); nlook=$((nlook + 1))
check "no microversion header (Zed: 401, not 400)" \
    "401 The requested console type details are not accessible" \
    "$code $(jget "$TMP/body" 'd["unauthorized"]["message"]')"
code=$(lookup "$T" "$CT" -H "X-OpenStack-Nova-API-Version: 2.31"); nlook=$((nlook + 1))
check "legacy X-OpenStack-Nova-API-Version: 2.31" 200 "$code"
code=$(lookup "$T" "$CT" -H "OpenStack-API-Version: compute 2.99"); nlook=$((nlook + 1))
check "microversion 2.99 above Zed's 2.93" 406 "$code"

# 5. authentication and policy failures
code=$(lookup "" "$CT" -H "$MV"); nlook=$((nlook + 1))
check "no X-Auth-Token" 401 "$code"
code=$(lookup "not-a-token" "$CT" -H "$MV"); nlook=$((nlook + 1))
check "invalid X-Auth-Token" 401 "$code"
token demo "$(pw_body "$(jget "$E" 'd["nonadmin_user"]["username"]')" \
    "$(jget "$E" 'd["nonadmin_user"]["password"]')" \
    "$(jget "$E" 'd["nonadmin_user"]["project_name"]')")"
check "non-admin password token" 201 "$code"
code=$(lookup "$TOK" "$CT" -H "$MV"); nlook=$((nlook + 1))
check "non-admin lookup" 403 "$code"
token bad "$(pw_body spicegate wrong-password service)"
check "wrong password" 401 "$code"

# 6. application credential
ACID=$(jget "$E" 'd["application_credential"]["id"]')
ACS=$(jget "$E" 'd["application_credential"]["secret"]')
token ac "{\"auth\":{\"identity\":{\"methods\":[\"application_credential\"],\"application_credential\":{\"id\":\"$ACID\",\"secret\":\"$ACS\"}}}}"
check "application credential token" 201 "$code"
TA=$TOK
code=$(lookup "$TA" "$CT" -H "$MV"); nlook=$((nlook + 1))
check "lookup with application-credential token" 200 "$code"
token acbad "{\"auth\":{\"identity\":{\"methods\":[\"application_credential\"],\"application_credential\":{\"id\":\"$ACID\",\"secret\":\"wrong\"}}}}"
check "application credential, wrong secret" 401 "$code"

# Keystone tokens may be short-lived here (12 s when smoke.sh starts its own
# environment): get a fresh service token for each later section.
svc_token() { token svc "$(pw_body spicegate spicegate-secret service)"; T=$TOK; }

# 7. console-token expiry and revocation
svc_token
CTX=$(mint --host 127.0.0.1 --port 5930 --ttl 2 --json)
exp=$(echo "$CTX" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["expires"])')
CTX=$(echo "$CTX" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
code=$(lookup "$T" "$CTX" -H "$MV"); nlook=$((nlook + 1))
check "ttl=2 token before expiry" 200 "$code"
# Nova keeps a token while expires > now (whole seconds): wait out the TTL
for _ in $(seq 50); do [ "$(date +%s)" -gt "$exp" ] && break; sleep 0.1; done
code=$(lookup "$T" "$CTX" -H "$MV"); nlook=$((nlook + 1))
check "ttl=2 token after expiry" 404 "$code"
CTR=$(mint --host 127.0.0.1 --port 5930)
"$PY" "$ENVPY" revoke --dir "$D"
code=$(lookup "$T" "$CTR" -H "$MV"); nlook=$((nlook + 1))
check "token after revoke (instance's tokens deleted)" 404 "$code"

# 8. request accounting
check "count-lookups delta" "$nlook" "$(( $("$PY" "$ENVPY" count-lookups --dir "$D") - lookups0 ))"
check "count-lookups --token" 8 "$("$PY" "$ENVPY" count-lookups --dir "$D" --token "$CT")"

# 9. Keystone token revocation and expiry, as Nova sees them
svc_token
cache=$(jget "$E" 'd["token_cache_time"]')
kexp=$(jget "$E" 'd["keystone_token_expiration"]')
CT=$(mint --host 127.0.0.1 --port 5930)
token rev "$(pw_body spicegate spicegate-secret service)"
TR=$TOK
code=$(lookup "$TR" "$CT" -H "$MV")
check "lookup before Keystone revocation" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "X-Auth-Token: $T" \
    -H "X-Subject-Token: $TR" "$AUTH/auth/tokens")
check "DELETE /v3/auth/tokens" 204 "$code"
code=$(lookup "$TR" "$CT" -H "$MV")
if [ "$cache" = -1 ]; then
    check "revoked Keystone token, token_cache_time=-1" 401 "$code"
else
    check "revoked Keystone token, still cached (token_cache_time=$cache)" 200 "$code"
fi
if [ "$kexp" -le 30 ]; then
    token exp "$(pw_body spicegate spicegate-secret service)"
    TE=$TOK
    until_ts=$(jget "$TMP/exp.json" 'int(__import__("datetime").datetime.strptime(d["token"]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp())')
    code=$(lookup "$TE" "$CT" -H "$MV")
    check "lookup with fresh ${kexp}s Keystone token" 200 "$code"
    for _ in $(seq $(( (kexp + 5) * 10 ))); do [ "$(date +%s)" -ge "$until_ts" ] && break; sleep 0.1; done
    code=$(lookup "$TE" "$CT" -H "$MV")
    check "lookup with expired Keystone token" 401 "$code"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
