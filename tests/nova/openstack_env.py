#!/usr/bin/python3
"""A real Keystone and a real Nova API on loopback, for spicegate's token tests.

Both run from Debian 12's library packages (python3-keystone, python3-nova,
python3-keystonemiddleware; tests/nova/setup.sh installs them), under Debian's
/usr/bin/python3, with all state (sqlite databases, fernet keys, configs, logs)
in one directory. Library and CLI:

  openstack_env.py start --dir D [--keystone-token-expiration S]
                                 [--token-cache-time S]
  openstack_env.py mint --dir D --host H --port P [--ttl S]
                        [--type spice-html5|novnc] [--instance UUID] [--json]
  openstack_env.py revoke --dir D [--instance UUID]
  openstack_env.py count-lookups --dir D [--token T] [--status N]
  openstack_env.py count-requests --dir D --service keystone|nova
                        [--method M] [--path-contains S] [--status N]
  openstack_env.py signal --dir D --service keystone|nova --signal STOP|CONT|KILL
  openstack_env.py restart --dir D --service keystone|nova
  openstack_env.py status --dir D
  openstack_env.py stop --dir D

`start` writes D/env.json (see README). Every server listens on 127.0.0.1 on
a port the kernel chose: this process binds the listening sockets (port 0)
and hands them to the servers as inherited file descriptors, so there is no
window in which another process could take a port.

Access logs: D/keystone-api.log and D/nova-api.log get one line per request,
written when the application sets the response status, i.e. before the
client can have read any of the response; counting them right after a
response arrived is therefore race-free.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEBIAN_PYTHON = "/usr/bin/python3"
THIS = os.path.abspath(__file__)
MARKER = ".openstack_env"
REGION = "RegionOne"
DOMAIN = "Default"

ADMIN = {"username": "admin", "password": "admin-secret",
         "project_name": "admin"}
NOVA_USER = {"username": "nova", "password": "nova-secret",
             "project_name": "service"}
SERVICE_USER = {"username": "spicegate", "password": "spicegate-secret",
                "project_name": "service"}
NONADMIN_USER = {"username": "demo", "password": "demo-secret",
                 "project_name": "demo"}
APP_CRED_NAME = "spicegate-console-check"
INSTANCE_UUID = "5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f"
ACCESS_URL_BASE = {
    "spice-html5": "http://127.0.0.1:6082/spice_auto.html",
    "novnc": "http://127.0.0.1:6080/vnc_lite.html",
}


class EnvError(Exception):
    pass


# ---------------------------------------------------------------- helpers

def _path(d, *names):
    return os.path.join(os.path.abspath(d), *names)


def _write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def http(method, url, body=None, headers=None, timeout=300):
    """Returns (status, headers dict with lower-case names, parsed body)."""
    data = None
    hdrs = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, rh, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, rh, raw = e.code, e.headers, e.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in rh.items()}, parsed


def _expect(what, got, status):
    if got[0] != status:
        raise EnvError("%s: HTTP %s (expected %s): %s"
                       % (what, got[0], status, got[2]))
    return got


def _listen_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    s.set_inheritable(True)
    return s


def _pid_alive(pid, d):
    """True if pid runs this script for directory d (guards against reuse)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return (THIS.encode() in argv
            and os.path.abspath(d).encode() in argv)


def load_env(d):
    with open(_path(d, "env.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- configs

def _keystone_conf(d, kport, expiration):
    return """[DEFAULT]
log_file = {d}/keystone.log
debug = false
[database]
connection = sqlite:///{d}/keystone.sqlite
sqlite_synchronous = false
[token]
provider = fernet
expiration = {exp}
[fernet_tokens]
key_repository = {d}/fernet-keys
[fernet_receipts]
key_repository = {d}/fernet-keys
[credential]
key_repository = {d}/credential-keys
[identity]
# bcrypt's minimum work factor: password checks in a few ms instead of ~0.3 s
password_hash_rounds = 4
[cache]
# in-process cache (Keystone runs as one process, so it stays coherent,
# revocations included); without it every token validation costs ~400
# SQL queries
enabled = true
backend = dogpile.cache.memory
[oslo_policy]
policy_file = {d}/keystone-policy-absent.yaml
""".format(d=os.path.abspath(d), exp=expiration)


def _nova_conf(d, kport, cache_time):
    d = os.path.abspath(d)
    return """[DEFAULT]
host = spicegate-test
state_path = {d}
log_file = {d}/nova.log
debug = false
transport_url = fake://
enabled_apis = osapi_compute
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = {d}/api-paste.ini
[api_database]
connection = sqlite:///{d}/nova_api.sqlite
sqlite_synchronous = false
[database]
connection = sqlite:///{d}/nova_cell1.sqlite
sqlite_synchronous = false
[oslo_concurrency]
lock_path = {d}/lock
[oslo_policy]
policy_file = {d}/nova-policy-absent.yaml
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:{kp}/v3
auth_url = http://127.0.0.1:{kp}/v3
auth_type = password
username = {nu}
password = {npw}
project_name = service
user_domain_name = {dom}
project_domain_name = {dom}
region_name = {region}
token_cache_time = {cache}
[keystone]
region_name = {region}
[placement]
region_name = {region}
""".format(d=d, kp=kport, nu=NOVA_USER["username"],
           npw=NOVA_USER["password"], dom=DOMAIN, region=REGION,
           cache=cache_time)


# The Zed (26.x) api-paste.ini as shipped by nova-common, compute API only.
API_PASTE = """[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: oscomputeversion_v2
/v2.1/+: openstack_compute_api_v21

[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = cors http_proxy_to_wsgi compute_req_id faultwrap request_log sizelimit osprofiler authtoken keystonecontext osapi_compute_app_v21

[filter:request_log]
paste.filter_factory = nova.api.openstack.requestlog:RequestLog.factory

[filter:compute_req_id]
paste.filter_factory = nova.api.compute_req_id:ComputeReqIdMiddleware.factory

[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory

[filter:osprofiler]
paste.filter_factory = nova.profiler:WsgiMiddleware.factory

[filter:sizelimit]
paste.filter_factory = oslo_middleware:RequestBodySizeLimiter.factory

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory

[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory

[pipeline:oscomputeversions]
pipeline = cors faultwrap request_log http_proxy_to_wsgi oscomputeversionapp

[pipeline:oscomputeversion_v2]
pipeline = cors compute_req_id faultwrap request_log http_proxy_to_wsgi oscomputeversionapp_v2

[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory

[app:oscomputeversionapp_v2]
paste.app_factory = nova.api.openstack.compute.versions:VersionsV2.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = nova

[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
"""


# ---------------------------------------------------------------- setup steps

def _wal(dbfile):
    import sqlite3
    con = sqlite3.connect(dbfile)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _token_password(kurl, user, project=None, domain=DOMAIN):
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": user["username"], "domain": {"name": domain},
        "password": user["password"]}}}}
    if project is not False:
        auth["scope"] = {"project": {
            "name": project or user["project_name"],
            "domain": {"name": domain}}}
    st, h, body = _expect("token for %s" % user["username"], http(
        "POST", kurl + "/v3/auth/tokens", {"auth": auth}), 201)
    return h["x-subject-token"], body


def _setup_keystone_objects(kurl, nova_url):
    """Projects, users, roles, compute endpoints, application credential."""
    tok, body = _token_password(kurl, ADMIN)
    H = {"X-Auth-Token": tok}

    def get_id(coll, name, key):
        st, _, b = _expect("list " + coll, http(
            "GET", "%s/v3/%s?name=%s" % (kurl, coll, name), headers=H), 200)
        return b[key][0]["id"] if b[key] else None

    def create(coll, key, obj):
        return _expect("create " + key, http(
            "POST", "%s/v3/%s" % (kurl, coll), {key: obj}, H), 201)[2][key]

    domain_id = get_id("domains", DOMAIN, "domains")
    roles = {}
    for r in ("admin", "member", "reader", "service"):
        roles[r] = get_id("roles", r, "roles") or create(
            "roles", "role", {"name": r})["id"]
    projects = {ADMIN["project_name"]: get_id("projects", "admin", "projects")}
    for p in ("service", "demo"):
        projects[p] = create("projects", "project", {
            "name": p, "domain_id": domain_id,
            "description": "spicegate test"})["id"]
    users = {}
    for u in (NOVA_USER, SERVICE_USER, NONADMIN_USER):
        users[u["username"]] = create("users", "user", {
            "name": u["username"], "password": u["password"],
            "domain_id": domain_id, "default_project_id":
            projects[u["project_name"]]})["id"]

    def grant(user, project, role):
        _expect("grant %s" % role, http(
            "PUT", "%s/v3/projects/%s/users/%s/roles/%s"
            % (kurl, projects[project], users[user], roles[role]),
            headers=H), 204)

    grant("nova", "service", "admin")
    grant("nova", "service", "service")
    grant("spicegate", "service", "admin")
    grant("demo", "demo", "member")

    svc = create("services", "service", {
        "type": "compute", "name": "nova",
        "description": "OpenStack Compute"})
    for iface in ("public", "internal", "admin"):
        create("endpoints", "endpoint", {
            "service_id": svc["id"], "interface": iface,
            "region_id": REGION, "url": nova_url})

    stok, _ = _token_password(kurl, SERVICE_USER)
    ac = _expect("create application credential", http(
        "POST", "%s/v3/users/%s/application_credentials"
        % (kurl, users["spicegate"]),
        {"application_credential": {
            "name": APP_CRED_NAME,
            "description": "spicegate console-token checks"}},
        {"X-Auth-Token": stok}), 201)[2]["application_credential"]
    return {"domain_id": domain_id, "projects": projects, "users": users,
            "roles": roles, "app_cred": ac, "admin_token": tok}


# ---------------------------------------------------------------- start/stop

def _spawn(d, role, fds, extra=()):
    """Starts a server in its own session (so stop can signal its group),
    handing it the listening sockets as inherited descriptors."""
    out = open(_path(d, "%s.out" % role), "ab")
    argv = [DEBIAN_PYTHON, THIS, "_serve-" + role, "--dir", d]
    for opt, fd in fds:
        argv += [opt, str(fd)]
    argv += list(extra)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT,
                         pass_fds=[fd for _, fd in fds],
                         start_new_session=True, cwd=d)
    out.close()
    return p


def start(d, keystone_token_expiration=3600, token_cache_time=300,
          quiet=False):
    """Brings up Keystone and the Nova API; returns the env.json dict."""
    t0 = time.monotonic()
    d = os.path.abspath(d)
    if os.path.exists(_path(d, "env.json")):
        try:
            old = load_env(d)
        except (OSError, ValueError):
            old = {}
        if any(_pid_alive(p, d) for p in old.get("pids", {}).values()):
            raise EnvError("an environment is already running in %s "
                           "(stop it first)" % d)
    if os.path.isdir(d) and os.listdir(d):
        if not os.path.exists(_path(d, MARKER)):
            raise EnvError("%s is not empty and not an openstack_env "
                           "directory; refusing to clear it" % d)
        for name in os.listdir(d):
            p = _path(d, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
    os.makedirs(d, exist_ok=True)
    _write(_path(d, MARKER), "tests/nova/openstack_env.py state\n", 0o644)
    os.makedirs(_path(d, "lock"), exist_ok=True)

    ksock, nsock, csock = _listen_socket(), _listen_socket(), _listen_socket()
    kport, nport = ksock.getsockname()[1], nsock.getsockname()[1]
    cport = csock.getsockname()[1]
    kurl = "http://127.0.0.1:%d" % kport
    nova_url = "http://127.0.0.1:%d/v2.1" % nport

    _write(_path(d, "keystone.conf"),
           _keystone_conf(d, kport, keystone_token_expiration))
    _write(_path(d, "nova.conf"), _nova_conf(d, kport, token_cache_time))
    _write(_path(d, "api-paste.ini"), API_PASTE, 0o644)

    procs = {}
    try:
        # Both servers first build their databases (Keystone: db_sync,
        # fernet_setup, credential_setup, bootstrap; Nova: api_db sync,
        # map_cell0, create_cell, db sync), in parallel, then serve. Until
        # then the kernel queues our connections on the listening sockets.
        procs["keystone"] = _spawn(d, "keystone", [("--fd", ksock.fileno())])
        procs["nova"] = _spawn(d, "nova", [("--fd", nsock.fileno()),
                                           ("--control-fd", csock.fileno())])
        # The children hold the listening sockets now; closing ours means a
        # dead child shows up as "connection refused", not as a hang.
        for s in (ksock, nsock, csock):
            s.close()

        objs = _setup_keystone_objects(kurl, nova_url)
        t_keystone = time.monotonic() - t0

        # Warm up Nova (paste pipeline, keystonemiddleware discovery and its
        # own service token) with an authenticated request that is not a
        # console-token lookup, so count-lookups starts at 0.
        st = http("GET", nova_url + "/flavors",
                   headers={"X-Auth-Token": objs["admin_token"]})
        _expect("nova warm-up GET /flavors", st, 200)
        _control({"control_port": cport}, {"op": "ping"})

        env = {
            "dir": d,
            "keystone_url": kurl,
            "auth_url": kurl + "/v3",
            "nova_url": nova_url,
            "region": REGION,
            "admin": dict(ADMIN, user_domain_name=DOMAIN,
                          project_domain_name=DOMAIN),
            "service_user": dict(
                SERVICE_USER, user_domain_name=DOMAIN,
                project_domain_name=DOMAIN,
                user_id=objs["users"]["spicegate"],
                project_id=objs["projects"]["service"], roles=["admin"]),
            "nonadmin_user": dict(
                NONADMIN_USER, user_domain_name=DOMAIN,
                project_domain_name=DOMAIN,
                user_id=objs["users"]["demo"],
                project_id=objs["projects"]["demo"], roles=["member"]),
            "nova_service_user": dict(NOVA_USER, user_domain_name=DOMAIN,
                                      project_domain_name=DOMAIN),
            "application_credential": {
                "id": objs["app_cred"]["id"],
                "secret": objs["app_cred"]["secret"],
                "name": APP_CRED_NAME,
                "user_id": objs["users"]["spicegate"],
                "project_id": objs["projects"]["service"]},
            "instance_uuid": INSTANCE_UUID,
            "keystone_token_expiration": keystone_token_expiration,
            "token_cache_time": token_cache_time,
            "control_port": cport,
            "pids": {k: p.pid for k, p in procs.items()},
            "logs": {
                "nova_access": _path(d, "nova-api.log"),
                "keystone_access": _path(d, "keystone-api.log"),
                "nova": _path(d, "nova.log"),
                "keystone": _path(d, "keystone.log"),
                "keystone_server": _path(d, "keystone.out"),
                "nova_server": _path(d, "nova.out")},
            "startup_seconds": {
                "keystone_ready": round(t_keystone, 2),
                "total": round(time.monotonic() - t0, 2)},
        }
        tmp = _path(d, "env.json.tmp")
        _write(tmp, json.dumps(env, indent=2) + "\n")
        os.rename(tmp, _path(d, "env.json"))
        if not quiet:
            sys.stderr.write("openstack_env: Keystone %s, Nova %s, up in "
                             "%.1f s; %s\n" % (kurl, nova_url,
                                               env["startup_seconds"]["total"],
                                               _path(d, "env.json")))
        return env
    except BaseException:
        for p in procs.values():
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for name in ("keystone.out", "nova.out", "keystone.log",
                     "nova.log"):
            p = _path(d, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.read()[-3000:]
                sys.stderr.write("---- %s (tail)\n%s\n" % (p, tail))
        raise


def _terminate(pids, d, timeout):
    """SIGTERM (and SIGCONT, in case it was paused) to each server's process
    group, SIGKILL after timeout seconds. Returns the pids signalled."""
    signalled = []
    for pid in pids:
        if not _pid_alive(pid, d):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)   # own session: see _spawn
            os.killpg(pid, signal.SIGCONT)
        except ProcessLookupError:
            continue
        signalled.append(pid)
    deadline = time.monotonic() + timeout
    for pid in signalled:
        while _pid_alive(pid, d) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid, d):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, 0)     # reap it if it is our child (library use)
        except ChildProcessError:
            pass
    return signalled


def stop(d, timeout=15):
    """Stops the servers started for D (only those). Returns their pids."""
    try:
        env = load_env(d)
    except OSError:
        return []
    return _terminate(env.get("pids", {}).values(), d, timeout)


def signal_service(d, service, signame):
    """Sends a signal (e.g. "STOP" to make a server hang, "CONT" to resume
    it, "KILL" to make it vanish) to the keystone or nova server of D."""
    env = load_env(d)
    pid = env["pids"][service]
    if not _pid_alive(pid, d):
        raise EnvError("%s (pid %d) is not running" % (service, pid))
    name = signame.upper()
    sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name,
                  None)
    if not isinstance(sig, signal.Signals):
        raise EnvError("unknown signal %r" % signame)
    os.killpg(pid, sig)


def restart(d, service, timeout=15):
    """Stops (if running) and starts again one server on its old port,
    with its databases as they are; returns the new pid."""
    env = load_env(d)
    _terminate([env["pids"][service]], d, timeout)
    url = env["keystone_url"] if service == "keystone" else env["nova_url"]
    port = int(url.split(":")[2].split("/")[0])
    socks = []
    try:
        for p in [port] + ([env["control_port"]] if service == "nova"
                           else []):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            s.listen(128)
            s.set_inheritable(True)
        fds = [("--fd", socks[0].fileno())]
        if service == "nova":
            fds.append(("--control-fd", socks[1].fileno()))
        proc = _spawn(d, service, fds, ["--no-setup"])
    finally:
        for s in socks:
            s.close()
    if service == "keystone":
        _expect("keystone after restart",
                http("GET", env["keystone_url"] + "/v3"), 200)
    else:
        _expect("nova after restart", http(
            "GET", "http://127.0.0.1:%d/" % port), 200)
        _control(env, {"op": "ping"})
    env["pids"][service] = proc.pid
    tmp = _path(d, "env.json.tmp")
    _write(tmp, json.dumps(env, indent=2) + "\n")
    os.rename(tmp, _path(d, "env.json"))
    return proc.pid


# ---------------------------------------------------------------- mint etc.

def _control(env, req, timeout=60):
    with socket.create_connection(("127.0.0.1", env["control_port"]),
                                  timeout=timeout) as s:
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    resp = json.loads(buf)
    if "error" in resp:
        raise EnvError("nova control: %s" % resp["error"])
    return resp


def mint(d, host, port, ttl=600, console_type="spice-html5",
         instance_uuid=None, internal_access_path=None, access_url_base=None):
    """Stores a console token in Nova's cell database (as nova-compute does)
    and returns {"token", "instance_uuid", "expires", "access_url", ...}."""
    env = load_env(d)
    return _control(env, {
        "op": "mint", "host": host, "port": int(port), "ttl": int(ttl),
        "console_type": console_type,
        "instance_uuid": instance_uuid or env["instance_uuid"],
        "internal_access_path": internal_access_path,
        "access_url_base": access_url_base or ACCESS_URL_BASE.get(
            console_type, ACCESS_URL_BASE["spice-html5"])})


def revoke(d, instance_uuid=None):
    """Deletes every console token of the instance (as Nova does when an
    instance is deleted, rebooted or migrated). Returns nothing useful."""
    env = load_env(d)
    return _control(env, {"op": "revoke", "instance_uuid":
                          instance_uuid or env["instance_uuid"]})


def create_server(d, instance_uuid):
    """Makes @instance_uuid a server Nova's API knows (GET /servers/{id}
    answers 200, status ACTIVE): an Instance in cell1 with a flavor and an
    InstanceMapping to cell1, as the conductor leaves them for a booted
    instance (no hypervisor behind it). mint's default instance has no
    mapping: GET /servers says 404 for it."""
    env = load_env(d)
    return _control(env, {"op": "create_server", "instance_uuid": instance_uuid})


def delete_server(d, instance_uuid):
    """Deletes the server as nova-compute's delete ends: its console tokens
    deleted, the instance row soft-deleted (GET /servers/{id}: 404)."""
    env = load_env(d)
    return _control(env, {"op": "delete_server", "instance_uuid": instance_uuid})


_ACCESS_RE = re.compile(
    r'^\S+ \S+ "(?P<method>\S+) (?P<path>[^" ]+)" status: (?P<status>\d+)')


def count_requests(d, service="nova", method=None, path_contains=None,
                   status=None, path_regex=None):
    n = 0
    path = _path(d, "%s-api.log" % service)
    try:
        f = open(path)
    except FileNotFoundError:
        return 0
    with f:
        for line in f:
            m = _ACCESS_RE.match(line)
            if not m:
                continue
            if method and m["method"] != method:
                continue
            if path_contains and path_contains not in m["path"]:
                continue
            if path_regex and not re.search(path_regex, m["path"]):
                continue
            if status is not None and int(m["status"]) != int(status):
                continue
            n += 1
    return n


def count_lookups(d, token=None, status=None):
    """GET .../os-console-auth-tokens/... requests Nova has answered."""
    rx = r"/os-console-auth-tokens/"
    if token is not None:
        rx += re.escape(token) + r"(\?|$)"
    return count_requests(d, "nova", "GET", status=status, path_regex=rx)


# ---------------------------------------------------------------- servers

class _AccessLog(object):
    """Outermost WSGI middleware: one line per request, written from
    start_response, i.e. before the server sends anything to the client."""

    def __init__(self, app, path):
        self.app = app
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, environ, start_response):
        t0 = time.monotonic()
        done = []
        uri = (environ.get("REQUEST_URI") or environ.get("RAW_PATH_INFO")
               or (environ.get("SCRIPT_NAME", "") + environ.get(
                   "PATH_INFO", "")))
        if "?" not in uri and environ.get("QUERY_STRING"):
            uri += "?" + environ["QUERY_STRING"]
        mv = (environ.get("HTTP_OPENSTACK_API_VERSION")
              or environ.get("HTTP_X_OPENSTACK_NOVA_API_VERSION") or "-")

        def sr(status, headers, exc_info=None):
            if not done:
                done.append(1)
                # (no protocol version: eventlet reports HTTP/1.0 always)
                line = '%s %s "%s %s" status: %s microversion: "%s" ' \
                       'time: %.6f\n' % (
                           time.strftime("%Y-%m-%dT%H:%M:%S"),
                           environ.get("REMOTE_ADDR", "-"),
                           environ.get("REQUEST_METHOD"), uri,
                           status.split(" ", 1)[0], mv,
                           time.monotonic() - t0)
                os.write(self.fd, line.encode())
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)
        return self.app(environ, sr)


def _timed(label, fn, *args, **kw):
    t0 = time.monotonic()
    r = fn(*args, **kw)
    print("setup: %s %.1f s" % (label, time.monotonic() - t0), flush=True)
    return r


def _serve_keystone(d, fd, setup=True):
    """keystone-manage db_sync/fernet_setup/credential_setup/bootstrap
    (unless setup is false: a restart) and then the Keystone WSGI app, all in
    this one interpreter (each fresh interpreter costs seconds of imports)."""
    import grp
    import pwd
    sys.argv = [sys.argv[0]]          # oslo.config parses sys.argv
    from keystone.cmd import cli
    from keystone.common import provider_api
    from keystone.server.flask import core
    conf = _path(d, "keystone.conf")
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    with socket.socket(fileno=os.dup(fd)) as s:
        kport = s.getsockname()[1]
    url = "http://127.0.0.1:%d/v3" % kport
    owner = ["--keystone-user", user, "--keystone-group", group]
    steps = [["db_sync"], ["fernet_setup"] + owner,
             ["credential_setup"] + owner,
             ["bootstrap", "--bootstrap-password", ADMIN["password"],
              "--bootstrap-username", ADMIN["username"],
              "--bootstrap-project-name", ADMIN["project_name"],
              "--bootstrap-role-name", "admin",
              "--bootstrap-service-name", "keystone",
              "--bootstrap-region-id", REGION,
              "--bootstrap-admin-url", url,
              "--bootstrap-public-url", url,
              "--bootstrap-internal-url", url]]
    for args in steps if setup else []:
        # keystone-manage's main, once per command; CONF.clear() lets the
        # next call parse its own command line
        _timed("keystone-manage " + args[0], cli.main,
               argv=["keystone-manage", "--config-file", conf] + args)
        cli.CONF.clear()
    if setup:
        cli.CONF.unregister_opt(cli.command_opt)
        provider_api.ProviderAPIs._clear_registry_instances()
        _wal(_path(d, "keystone.sqlite"))
    app = _timed("keystone app", core.initialize_application,
                 name="public", config_files=[conf])
    from werkzeug import serving
    srv = serving.make_server("127.0.0.1", 0, _AccessLog(
        app, _path(d, "keystone-api.log")), threaded=True, fd=fd)
    os.close(fd)                      # make_server dup()ed it
    print("serving on 127.0.0.1:%d" % kport, flush=True)
    srv.serve_forever()


def _serve_nova(d, fd, control_fd, setup=True):
    """nova-manage api_db sync / cell_v2 map_cell0 / cell_v2 create_cell /
    db sync (unless setup is false: a restart), then the osapi_compute WSGI
    app under eventlet.wsgi (as nova-api runs it), all in this one
    interpreter."""
    # nova.api.openstack monkey-patches with eventlet on import: it must come
    # before anything that creates sockets or threads, or the first
    # authenticated request hangs.
    import nova.api.openstack  # noqa: F401
    import eventlet
    import eventlet.wsgi
    sys.argv = [sys.argv[0]]          # oslo.config parses sys.argv
    os.environ["OS_NOVA_CONFIG_DIR"] = d
    os.environ["OS_NOVA_CONFIG_FILES"] = "api-paste.ini;nova.conf"
    from nova.api.openstack import wsgi_app
    from nova.cmd import manage
    from oslo_config import cfg
    conf = cfg.CONF
    # parses the config files, sets up logging, rpc (fake://) and the DB
    # engines; init_application's own call is then skipped (run_once)
    _timed("nova config", wsgi_app.init_global_data,
           wsgi_app._get_config_files(), "osapi_compute")
    if setup:
        _setup_nova_db(d, manage)
    app = _timed("nova app", wsgi_app.init_application, "osapi_compute")

    lsock = socket.socket(fileno=fd)            # green (monkey-patched)
    csock = socket.socket(fileno=control_fd)
    eventlet.spawn_n(_control_server, csock)
    print("serving on 127.0.0.1:%d" % lsock.getsockname()[1], flush=True)
    eventlet.wsgi.server(
        lsock, _AccessLog(app, _path(d, "nova-api.log")),
        custom_pool=eventlet.GreenPool(conf.wsgi.default_pool_size),
        log_output=False, debug=False, keepalive=conf.wsgi.keep_alive,
        socket_timeout=conf.wsgi.client_socket_timeout)


def _setup_nova_db(d, manage):
    _timed("nova-manage api_db sync", manage.ApiDbCommands().sync)
    _timed("nova-manage cell_v2 map_cell0", manage.CellV2Commands().map_cell0,
           database_connection="sqlite:///" + _path(d, "nova_cell0.sqlite"))
    rc = _timed("nova-manage cell_v2 create_cell",
                manage.CellV2Commands().create_cell, name="cell1",
                database_connection="sqlite:///" + _path(
                    d, "nova_cell1.sqlite"),
                transport_url="fake://")
    if rc not in (None, 0):
        raise EnvError("nova-manage cell_v2 create_cell: exit %s" % rc)
    _timed("nova-manage db sync", manage.DbCommands().sync)
    for f in ("nova_api.sqlite", "nova_cell0.sqlite", "nova_cell1.sqlite"):
        _wal(_path(d, f))


def _ensure_instance(ctx, instance_uuid, created=set()):
    from nova import exception
    from nova import objects
    if instance_uuid in created:
        return
    try:
        objects.Instance.get_by_uuid(ctx, instance_uuid)
    except exception.InstanceNotFound:
        inst = objects.Instance(
            context=ctx, uuid=instance_uuid, project_id="spicegate-test",
            user_id="spicegate-test", display_name="spicegate-test-vm",
            host="spicegate-test", node="spicegate-test",
            vm_state="active", power_state=1, task_state=None,
            instance_type_id=None, memory_mb=64, vcpus=1, root_gb=1,
            ephemeral_gb=0)
        inst.create()
    created.add(instance_uuid)


def _create_server(ctx, instance_uuid):
    from nova import objects
    from nova.network import model as network_model
    cell = [c for c in objects.CellMappingList.get_all(ctx)
            if c.name == "cell1"][0]
    flavor = objects.Flavor(
        id=1, flavorid="1", name="spicegate-test", memory_mb=64, vcpus=1,
        root_gb=1, ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0,
        disabled=False, is_public=True, extra_specs={}, description=None)
    inst = objects.Instance(
        context=ctx, uuid=instance_uuid, project_id="spicegate-test",
        user_id="spicegate-test", display_name="spicegate-test-server",
        host="spicegate-test", node="spicegate-test", vm_state="active",
        power_state=1, task_state=None, instance_type_id=1, memory_mb=64,
        vcpus=1, root_gb=1, ephemeral_gb=0, flavor=flavor, old_flavor=None,
        new_flavor=None, image_ref="", launched_at=None,
        info_cache=objects.InstanceInfoCache(
            network_info=network_model.NetworkInfo([])))
    inst.create()
    objects.InstanceMapping(
        context=ctx, instance_uuid=instance_uuid, cell_mapping=cell,
        project_id="spicegate-test", user_id="spicegate-test").create()


def _control_request(req):
    from nova import context
    from nova import objects
    ctx = context.get_admin_context()
    op = req.get("op")
    if op == "ping":
        return {"ok": True}
    if op == "mint":
        _ensure_instance(ctx, req["instance_uuid"])
        obj = objects.ConsoleAuthToken(
            context=ctx, console_type=req["console_type"],
            host=req["host"], port=req["port"],
            internal_access_path=req.get("internal_access_path"),
            instance_uuid=req["instance_uuid"],
            access_url_base=req["access_url_base"])
        token = obj.authorize(req["ttl"])
        from nova.db.main import api as db
        from nova import utils
        row = db.console_auth_token_get_valid(ctx, utils.get_sha256_str(token))
        return {"token": token, "instance_uuid": req["instance_uuid"],
                "console_type": req["console_type"], "host": req["host"],
                "port": req["port"], "expires": row["expires"],
                "access_url": obj.access_url}
    if op == "revoke":
        objects.ConsoleAuthToken.clean_console_auths_for_instance(
            ctx, req["instance_uuid"])
        return {"ok": True}
    if op == "create_server":
        _create_server(ctx, req["instance_uuid"])
        return {"ok": True}
    if op == "delete_server":
        inst = objects.Instance.get_by_uuid(ctx, req["instance_uuid"])
        objects.ConsoleAuthToken.clean_console_auths_for_instance(
            ctx, req["instance_uuid"])
        inst.destroy()
        return {"ok": True}
    return {"error": "unknown op %r" % op}


def _control_server(csock):
    import eventlet

    def handle(conn):
        try:
            f = conn.makefile("rb")
            req = json.loads(f.readline())
            try:
                resp = _control_request(req)
            except Exception as e:
                resp = {"error": "%s: %s" % (type(e).__name__, e)}
            conn.sendall(json.dumps(resp).encode() + b"\n")
        finally:
            conn.close()
    while True:
        conn, _ = csock.accept()
        eventlet.spawn_n(handle, conn)


# ---------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Real Keystone + Nova API on loopback for spicegate tests")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("start", help="bring up Keystone and the Nova API")
    p.add_argument("--dir", required=True)
    p.add_argument("--keystone-token-expiration", type=int, default=3600,
                   metavar="SECONDS", help="Keystone [token] expiration")
    p.add_argument("--token-cache-time", type=int, default=300,
                   metavar="SECONDS", help="keystonemiddleware cache of "
                   "validated tokens in Nova (-1 disables)")
    p = sub.add_parser("stop", help="stop the servers started for --dir")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("status", help="exit 0 if both servers run")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("mint", help="print a new console token")
    p.add_argument("--dir", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--ttl", type=int, default=600, metavar="SECONDS")
    p.add_argument("--type", default="spice-html5",
                   choices=["spice-html5", "novnc", "serial", "mks",
                            "spice-direct"])
    p.add_argument("--instance", metavar="UUID")
    p.add_argument("--internal-access-path")
    p.add_argument("--count", type=int, default=1,
                   help="mint this many tokens, one per line")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object per token, not the bare token")
    p = sub.add_parser("revoke", help="delete the instance's console tokens")
    p.add_argument("--dir", required=True)
    p.add_argument("--instance", metavar="UUID")
    p = sub.add_parser("count-lookups",
                       help="GET os-console-auth-tokens requests Nova served")
    p.add_argument("--dir", required=True)
    p.add_argument("--token")
    p.add_argument("--status", type=int)
    p = sub.add_parser("count-requests", help="requests a server answered")
    p.add_argument("--dir", required=True)
    p.add_argument("--service", choices=["keystone", "nova"], required=True)
    p.add_argument("--method")
    p.add_argument("--path-contains")
    p.add_argument("--status", type=int)
    p = sub.add_parser("signal", help="signal a server (STOP/CONT/KILL...)")
    p.add_argument("--dir", required=True)
    p.add_argument("--service", choices=["keystone", "nova"], required=True)
    p.add_argument("--signal", required=True, metavar="NAME",
                   help="STOP (hang), CONT (resume), KILL, TERM, ...")
    p = sub.add_parser("restart", help="restart a server on its old port")
    p.add_argument("--dir", required=True)
    p.add_argument("--service", choices=["keystone", "nova"], required=True)
    for name in ("_serve-keystone", "_serve-nova"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--fd", type=int, required=True)
        p.add_argument("--control-fd", type=int)
        p.add_argument("--no-setup", action="store_true")

    a = ap.parse_args(argv)
    try:
        if a.cmd == "start":
            start(a.dir, a.keystone_token_expiration, a.token_cache_time)
            print(_path(a.dir, "env.json"))
        elif a.cmd == "stop":
            pids = stop(a.dir)
            print("stopped %s" % (" ".join(map(str, pids)) or "nothing"))
        elif a.cmd == "status":
            env = load_env(a.dir)
            alive = {k: _pid_alive(v, a.dir) for k, v in env["pids"].items()}
            print(json.dumps(alive))
            return 0 if all(alive.values()) else 1
        elif a.cmd == "mint":
            for _ in range(a.count):
                r = mint(a.dir, a.host, a.port, a.ttl, a.type, a.instance,
                         a.internal_access_path)
                print(json.dumps(r) if a.json else r["token"])
        elif a.cmd == "revoke":
            revoke(a.dir, a.instance)
        elif a.cmd == "count-lookups":
            print(count_lookups(a.dir, a.token, a.status))
        elif a.cmd == "count-requests":
            print(count_requests(a.dir, a.service, a.method,
                                 a.path_contains, a.status))
        elif a.cmd == "signal":
            signal_service(a.dir, a.service, a.signal)
        elif a.cmd == "restart":
            print(restart(a.dir, a.service))
        elif a.cmd == "_serve-keystone":
            _serve_keystone(os.path.abspath(a.dir), a.fd, not a.no_setup)
        elif a.cmd == "_serve-nova":
            _serve_nova(os.path.abspath(a.dir), a.fd, a.control_fd,
                        not a.no_setup)
    except (EnvError, OSError) as e:
        sys.stderr.write("openstack_env: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
