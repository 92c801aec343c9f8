// SPDX-License-Identifier: Apache-2.0
//
// End to end: the real spice-html5 client in real browsers, through
// spicegate, to QEMU's real SPICE server. This is what an OpenStack user
// gets when Horizon opens Nova's console URL, so nothing here is faked.
//
// The same tests run in every combination of
//   browser: Debian's Chromium (over CDP) and Firefox ESR (over WebDriver
//            BiDi), both driven by puppeteer-core, which never downloads a
//            browser of its own;
//   scheme:  http (page over HTTP/1.1, channels over ws) and https (page
//            over HTTP/2, negotiated with ALPN h2 as spicegate offers it,
//            channels over wss), against a spicegate with a certificate
//            made for this run (openssl, in the temp dir, never kept) and
//            `ssl_only = true`. The browsers accept the self-signed
//            certificate (acceptInsecureCerts); HTTP/2 stays on, and the
//            tests check that the page and every file it loaded came over
//            h2.
//
// The guest is SeaBIOS alone. Booted with `-boot menu=on,splash-time=60000`
// it prints "Press ESC for boot menu." and waits; an Escape typed in the
// browser brings up "Select boot device:". That change of the guest's screen
// is our proof that a keystroke crossed the whole path. Each console test
// starts a new QEMU first (on the same SPICE port), so that the prompt is
// back and its 60 seconds start again.
//
// Run through run.sh (which `make check` calls). Environment:
//   SPICEGATE     the daemon under test
//   top_srcdir    for web/ (spicegate's own pages)
//   E2E_OUT_DIR   where the screenshots go (default: out/ beside this file):
//                 console-BROWSER-SCHEME.png on success, and
//                 FAILED-<test name>.png of the page when a test fails
//   E2E_BROWSERS  the browsers to test, from "chromium firefox" (default:
//                 both; one that is not installed is skipped, saying so)
//   E2E_PROXY     "websockify" runs the same checks against Debian's
//                 websockify instead of spicegate (to check the test itself);
//                 the spicegate-only checks (log lines, close codes, h2) are
//                 then skipped.
//   E2E_KEEP_LOGS  print spicegate's and QEMU's output even on success
//                 (on failure they are always printed).
//
// Nothing waits for a fixed time: every wait polls a condition under a
// deadline and fails with what it last saw.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// CommonJS resolution so that run.sh can point NODE_PATH at a node_modules
// installed outside a read-only srcdir (ESM imports ignore NODE_PATH).
const require = createRequire(import.meta.url);
const puppeteer = require('puppeteer-core');

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SPICE_HTML5 = '/usr/share/spice-html5';
const PROXY = process.env.E2E_PROXY ?? 'spicegate';
const STANDIN = PROXY === 'websockify';
const OUT_DIR = process.env.E2E_OUT_DIR ?? path.join(HERE, 'out');

// The browsers, as Debian installs them. Chromium runs as root here (CI),
// hence --no-sandbox.
const BROWSERS = {
    chromium: {
        executablePath: '/usr/bin/chromium',
        package: 'chromium',
        launch: {
            browser: 'chrome',
            protocol: 'cdp',
            args: [
                '--window-size=1024,640',
                '--no-sandbox', '--disable-gpu', '--disable-quic',
                '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync',
            ],
        },
    },
    firefox: {
        executablePath: '/usr/bin/firefox-esr',
        package: 'firefox-esr',
        launch: { browser: 'firefox', protocol: 'webDriverBiDi', args: ['-width', '1024', '-height', '640'] },
    },
};
const WANTED = (process.env.E2E_BROWSERS ?? 'chromium firefox').split(/[\s,]+/).filter(Boolean);
for (const name of WANTED)
    assert.ok(name in BROWSERS, `E2E_BROWSERS: unknown browser ${name}`);
const SCHEMES = ['http', 'https'];

// QEMU's numbering of SPICE channel types (spice-protocol's SpiceChannelType),
// as `query-spice` reports them in "channel-type".
const CHANNEL = { main: 1, display: 2, inputs: 3, cursor: 4 };

// Deadlines. TCG without KVM is slow, and CI may run under sanitizers.
const START_MS = 20_000;      // a process is up (socket, port file)
const SCREEN_MS = 30_000;     // the browser shows the guest's screen
const KEY_MS = 15_000;        // the guest reacts to a keystroke
const POLL_MS = 50;           // how often a condition is re-checked
// SeaBIOS gives up waiting for Escape after splash-time; our keystroke must
// land well before that or the screen changes for another reason.
const SPLASH_MS = 60_000;
const SPLASH_MARGIN_MS = 10_000;

// Every child we start, so that after() and an abrupt exit can stop them.
const children = new Set();

// --- small helpers ---------------------------------------------------------

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Thrown by a probe when waiting longer cannot help (a process died).
class Hopeless extends Error {}

// Poll @probe until it returns a truthy value, and return that value. A
// probe that throws is asked again (the page may be navigating), unless it
// throws Hopeless. On timeout throw, naming @what and the last value seen.
async function waitFor(what, probe, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            last = await probe();
            if (last)
                return last;
        } catch (e) {
            if (e instanceof Hopeless)
                throw e;
            last = e;
        }
        if (Date.now() >= deadline) {
            const seen = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${seen}`);
        }
        await delay(POLL_MS);
    }
}

// A port the kernel just gave us and took back. Whoever binds it next may
// lose a race with another process, so callers retry on a failed bind.
function pickPort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// A port nothing can listen on while the tests run: bound, never listened
// on, by a child the after() hook stops. (A port pickPort() found free may
// be handed out again, to a server of a later test, and then answer.)
async function holdDeadPort() {
    const holder = startChild('dead-port', ['/usr/bin/python3', '-c',
        'import signal, socket\n' +
        's = socket.socket()\n' +
        's.bind(("127.0.0.1", 0))\n' +
        'print(s.getsockname()[1], flush=True)\n' +
        'signal.pause()\n']);
    const line = await waitFor('the dead port holder to bind', () => /^\d+\n/.test(holder.output) && holder.output,
                               START_MS);
    return Number(line.trim());
}

function canConnect(opts) {
    return new Promise((resolve) => {
        const sock = net.connect(opts);
        sock.once('connect', () => { sock.destroy(); resolve(true); });
        sock.once('error', () => resolve(false));
    });
}

// Spawn @argv and keep its output in memory for assertions and post-mortems.
function startChild(name, argv) {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.name = name;
    child.output = '';
    child.exit = null;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s) => { child.output += s; });
    child.stderr.on('data', (s) => { child.output += s; });
    child.exited = new Promise((resolve) => {
        child.once('exit', (code, signal) => {
            child.exit = { code, signal };
            children.delete(child);
            resolve(child.exit);
        });
        child.once('error', (err) => {
            child.exit = { code: null, signal: null, error: err.message };
            children.delete(child);
            resolve(child.exit);
        });
    });
    children.add(child);
    return child;
}

// SIGTERM, then SIGKILL if the child is still there after @graceMs: by
// default what systemd gives spicegate (TimeoutStopSec=15), since a test
// that asserts a clean exit must not kill a stop that is slow only because
// the machine is loaded (spicegate's own shutdown_timeout is 3 s).
async function stopChild(child, graceMs = 15_000) {
    if (!child || child.exit)
        return child?.exit ?? null;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const status = await child.exited;
    clearTimeout(timer);
    return status;
}

// Last resort if node itself is told to go (make check timeout, ^C): take
// the children with us rather than leave a QEMU running.
function killAllNow() {
    for (const child of children)
        child.kill('SIGKILL');
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => { killAllNow(); process.exit(128 + os.constants.signals[sig]); });
}

// The tag spicegate logs instead of a token (CONTRACTS: log lines).
const tokenTag = (token) => createHash('sha256').update(token).digest('hex').slice(0, 8);

// spicegate's per-session log lines (CONTRACTS: log lines), e.g.
//   [s:1] open client=127.0.0.1:5000 tok:1a2b3c4d target=10.0.0.5:5900 channel=main
// parsed into { sid, event, tok, fields }, field order free, quotes removed.
function sessionLogLines(output) {
    const lines = [];
    for (const line of output.split('\n')) {
        const m = /\[s:([0-9a-f]+)\] (\w+) (.*)$/.exec(line);
        if (!m)
            continue;
        const entry = { sid: m[1], event: m[2], tok: null, fields: {}, line };
        for (const f of m[3].matchAll(/(\w+)=("[^"]*"|\S+)|tok:([0-9a-f]+)/g)) {
            if (f[3])
                entry.tok = f[3];
            else
                entry.fields[f[1]] = f[2].replace(/^"(.*)"$/, '$1');
        }
        lines.push(entry);
    }
    return lines;
}

// --- QMP: QEMU's JSON control protocol, just enough for query-spice ----------

class Qmp {
    constructor(sockPath) {
        this.sockPath = sockPath;
        this.buf = '';
        this.events = [];      // asynchronous events, in arrival order
        this.waiting = [];     // resolvers for replies, in command order
        this.chain = Promise.resolve();
    }

    async connect() {
        this.sock = await new Promise((resolve, reject) => {
            const s = net.connect(this.sockPath);
            s.once('connect', () => resolve(s));
            s.once('error', reject);
        });
        this.sock.setEncoding('utf8');
        this.sock.on('error', () => {});
        this.sock.on('data', (s) => this.onData(s));
        this.sock.on('close', () => {
            for (const w of this.waiting.splice(0))
                w.reject(new Error('QMP connection closed'));
        });
        const greeting = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
        await greeting;
        await this.execute('qmp_capabilities');
    }

    onData(s) {
        this.buf += s;
        let nl;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
            const line = this.buf.slice(0, nl).trim();
            this.buf = this.buf.slice(nl + 1);
            if (!line)
                continue;
            const msg = JSON.parse(line);
            if ('event' in msg) {
                this.events.push(msg);   // RESET etc., for the Ctrl-Alt-Del test
                continue;
            }
            const w = this.waiting.shift();
            if (!w)
                continue;
            if ('error' in msg)
                w.reject(new Error(`QMP: ${msg.error.class}: ${msg.error.desc}`));
            else
                w.resolve(msg.return ?? msg.QMP);
        }
    }

    // One command at a time, so that replies pair with their commands.
    execute(command, args) {
        const run = () => new Promise((resolve, reject) => {
            this.waiting.push({ resolve, reject });
            const msg = args ? { execute: command, arguments: args } : { execute: command };
            this.sock.write(JSON.stringify(msg) + '\n');
        });
        const result = this.chain.then(run, run);
        this.chain = result.catch(() => {});
        return result;
    }

    close() {
        this.sock?.destroy();
    }
}

// --- the fixture: QEMU, the proxies under test, the browsers ------------------

const fx = {
    dir: null,          // temp dir: QMP socket, token file, port files, TLS key
    qemu: null,
    qemuStartedAt: 0,   // when the guest last started (QEMU start or reset)
    qmp: null,
    spicePort: 0,
    servers: {},        // scheme -> { proxy, port }: spicegate (or websockify)
    token: randomUUID(),
    deadToken: randomUUID(),   // its target is a port nothing listens on
    tokenFile: null,
    extraProxies: [],   // spicegates of single tests (stopped by the tests)
    browsers: {},       // name -> a promise of the launched browser
    page: null,         // the page of the running test, for dumpState()
    failed: false,      // any test failed: after() prints the children's output
};

// One combination of browser and scheme, e.g. { browser: 'firefox',
// scheme: 'https', label: 'firefox-https' }.
const combos = [];
for (const browser of WANTED)
    for (const scheme of SCHEMES)
        combos.push({ browser, scheme, label: `${browser}-${scheme}` });

const wsScheme = (combo) => (combo.scheme === 'https' ? 'wss' : 'ws');
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);

// Wrap a test body so that after() knows whether to print logs, and keep a
// picture of the page as it was when the test failed.
const tracked = (fn) => async (t) => {
    try {
        await fn(t);
    } catch (e) {
        fx.failed = true;
        await screenshotFailure(`FAILED-${slug(t?.name ?? 'setup')}.png`);
        await dumpState();
        throw e;
    }
};

async function screenshotFailure(name) {
    if (!fx.page || fx.page.isClosed())
        return;
    try {
        fs.mkdirSync(OUT_DIR, { recursive: true });
        await fx.page.screenshot({ path: path.join(OUT_DIR, name) });
        console.error(`# failure screenshot: ${path.join(OUT_DIR, name)}`);
    } catch (err) {
        console.error(`# no failure screenshot: ${err.message}`);
    }
}

// On failure: what the page and QEMU last showed, for the log.
async function dumpState() {
    const lines = [];
    if (fx.page && !fx.page.isClosed()) {
        const page = fx.page;
        const state = await page.evaluate(() => ({
            url: location.href,
            status: document.getElementById('status')?.textContent.trim(),
            notice: document.getElementById('notice')?.hidden === false
                ? document.getElementById('notice').innerText : null,
            messages: [...document.querySelectorAll('#message-div p')].map((p) => p.textContent),
            violations: window.__e2eViolations,
            sockets: window.__e2eSockets,
            closes: window.__e2eCloses,
        })).catch((err) => ({ error: err.message }));
        lines.push(`page state: ${JSON.stringify(state)}`);
        lines.push(...page.e2eConsole.map((m) => `page console: ${m}`));
    }
    if (fx.qmp) {
        const spice = await fx.qmp.execute('query-spice').catch((err) => ({ error: err.message }));
        lines.push(`query-spice: ${JSON.stringify(spice)}`);
    }
    for (const line of lines)
        console.error(`# ${line}`);
}

// QEMU on @fixedPort, or else on a picked port. A picked port can be
// taken before QEMU binds it: then QEMU exits, and we try again with another.
async function startQemu(fixedPort) {
    const qmpPath = path.join(fx.dir, 'qmp.sock');
    let lastError;
    for (let attempt = 1; attempt <= (fixedPort ? 1 : 5); attempt++) {
        const port = fixedPort ?? await pickPort();
        fs.rmSync(qmpPath, { force: true });
        const qemu = startChild('qemu', [
            'qemu-system-x86_64',
            '-machine', 'pc,accel=tcg', '-m', '128', '-vga', 'qxl',
            '-display', 'none', '-nodefaults',
            '-spice', `port=${port},addr=127.0.0.1,disable-ticketing=on`,
            '-qmp', `unix:${qmpPath},server=on,wait=off`,
            '-boot', `menu=on,splash-time=${SPLASH_MS}`,
            // One line per key event QEMU's input layer gets ("key qcode
            // f2, down 1"): the Keys menu's evidence.
            '-trace', 'input_event_key_qcode',
        ]);
        const startedAt = Date.now();
        try {
            await waitFor('QEMU QMP socket', async () => {
                if (qemu.exit)
                    throw new Hopeless(`QEMU exited ${JSON.stringify(qemu.exit)}: ${qemu.output}`);
                return fs.existsSync(qmpPath) && canConnect({ path: qmpPath });
            }, START_MS);
            const qmp = new Qmp(qmpPath);
            await qmp.connect();
            const spice = await qmp.execute('query-spice');
            assert.equal(spice.enabled, true, 'QEMU reports SPICE disabled');
            assert.equal(spice.port, port, 'QEMU listens on another SPICE port');
            fx.qemu = qemu;
            fx.qemuStartedAt = startedAt;
            fx.qmp = qmp;
            fx.spicePort = port;
            return;
        } catch (e) {
            lastError = e;
            await stopChild(qemu);
        }
    }
    throw new Error(`could not start QEMU: ${lastError?.message}`);
}

// A new QEMU on the same SPICE port (the one the token file names), so
// that SeaBIOS's "Press ESC" prompt is on screen and its 60 seconds start
// now. Not QMP's system_reset: QEMU's VGA text mode then redraws only the
// character cells that changed, and a page that connects after the reset
// may never be sent the lines that read as before (seen in both browsers).
// QEMU binds with SO_REUSEADDR, so the port is free again once it exits.
async function restartGuest() {
    const port = fx.spicePort;
    fx.qmp?.close();
    fx.qmp = null;
    await stopChild(fx.qemu);
    fx.qemu = null;
    await startQemu(port);
}

// A certificate for 127.0.0.1 made for this run only, in the temp dir.
function makeCertificate() {
    const cert = path.join(fx.dir, 'cert.pem');
    const key = path.join(fx.dir, 'key.pem');
    execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { cert, key };
}

// spicegate on an ephemeral port. For https: TLS with the test certificate
// and ssl_only, so that nothing on that port can be plain http or ws.
async function startSpicegate(scheme, tokenFile, tls) {
    const exe = process.env.SPICEGATE;
    assert.ok(exe, 'SPICEGATE is not set (run through run.sh or make check)');
    const srcdir = process.env.top_srcdir ?? path.resolve(HERE, '..', '..');
    const portFile = path.join(fx.dir, `port-${scheme}`);
    // Our own --config (empty for http), so that an installed
    // spicegate.conf cannot change what we test.
    const config = path.join(fx.dir, `spicegate-${scheme}.conf`);
    fs.writeFileSync(config, tls
        ? `[tls]\ncert = ${tls.cert}\nkey = ${tls.key}\nssl_only = true\n`
        : '');
    const proxy = startChild(`spicegate (${scheme})`, [
        exe,
        '--config', config,
        '--listen', '127.0.0.1:0',
        '--port-file', portFile,
        '--token-file', tokenFile,
        '--web', SPICE_HTML5,
        '--pages', path.join(srcdir, 'web'),
    ]);
    fx.servers[scheme] = { proxy, port: 0 };   // from now on after() stops it
    const text = await waitFor(`spicegate (${scheme}) port file`, () => {
        if (proxy.exit)
            throw new Hopeless(`spicegate exited ${JSON.stringify(proxy.exit)}: ${proxy.output}`);
        const s = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8') : '';
        return /^\d+\n$/.test(s) && s;    // written whole, newline last
    }, START_MS);
    fx.servers[scheme].port = Number(text);
}

// Development stand-in: websockify reads the token from the URL only, and
// cannot listen on port 0, so it gets a picked port and retries.
async function startWebsockify(scheme, tokenFile, tls) {
    for (let attempt = 1; attempt <= 5; attempt++) {
        const port = await pickPort();
        const proxy = startChild(`websockify (${scheme})`, [
            'websockify', '--web', SPICE_HTML5,
            '--token-plugin', 'TokenFile', '--token-source', tokenFile,
            ...(tls ? ['--cert', tls.cert, '--key', tls.key, '--ssl-only'] : []),
            `127.0.0.1:${port}`,
        ]);
        try {
            await waitFor('websockify listening', () => {
                if (proxy.exit)
                    throw new Hopeless(`websockify exited: ${proxy.output}`);
                return canConnect({ host: '127.0.0.1', port });
            }, START_MS);
            fx.servers[scheme] = { proxy, port };
            return;
        } catch (e) {
            await stopChild(proxy);
        }
    }
    throw new Error('could not start websockify');
}

// The browser @name, launched on first use and kept for the other tests.
// puppeteer gives it a fresh temporary profile and deletes it on close;
// each test also gets its own browser context, so no cookie carries over
// from one test to the next. Both accept the test's self-signed
// certificate; neither has HTTP/2 turned off.
function browserFor(name) {
    fx.browsers[name] ??= puppeteer.launch({
        ...BROWSERS[name].launch,
        executablePath: BROWSERS[name].executablePath,
        headless: true,
        acceptInsecureCerts: true,
        // The window's size, not an emulated viewport: Firefox ESR 140's
        // BiDi lacks the screen orientation override that setViewport() sends.
        defaultViewport: null,
        timeout: START_MS,
    });
    return fx.browsers[name];
}

const installed = (name) => fs.existsSync(BROWSERS[name].executablePath);
const notInstalled = (name) =>
    !installed(name) && `${BROWSERS[name].executablePath} not installed (apt-get install ${BROWSERS[name].package})`;

before(tracked(async () => {
    fx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spicegate-e2e-'));
    const tls = makeCertificate();
    await startQemu();
    const tokenFile = path.join(fx.dir, 'tokens');
    fx.tokenFile = tokenFile;
    fs.writeFileSync(tokenFile, `# written by console.test.mjs\n${fx.token}: 127.0.0.1:${fx.spicePort}\n` +
                                `${fx.deadToken}: 127.0.0.1:${await holdDeadPort()}\n`);
    for (const scheme of SCHEMES) {
        const certs = scheme === 'https' ? tls : null;
        if (STANDIN)
            await startWebsockify(scheme, tokenFile, certs);
        else
            await startSpicegate(scheme, tokenFile, certs);
    }
}), { timeout: 4 * START_MS });

after(async () => {
    // Each step on its own, so one failure cannot leave a process behind.
    for (const launched of Object.values(fx.browsers))
        await launched.then((b) => b.close()).catch(() => {});
    fx.qmp?.close();
    const proxyExits = {};
    for (const [scheme, { proxy }] of Object.entries(fx.servers))
        proxyExits[scheme] = await stopChild(proxy);
    await stopChild(fx.qemu);
    for (const child of children)
        await stopChild(child);
    if (process.env.E2E_KEEP_LOGS || fx.failed) {
        for (const child of [...Object.values(fx.servers).map((s) => s.proxy), ...fx.extraProxies, fx.qemu])
            if (child)
                console.error(`# --- ${child.name} output ---\n${child.output.replace(/^/gm, '# ')}`);
    }
    if (fx.dir)
        fs.rmSync(fx.dir, { recursive: true, force: true });

    // CONTRACTS: SIGTERM closes the sessions and exits 0.
    if (!STANDIN && !fx.failed)
        for (const [scheme, status] of Object.entries(proxyExits))
            assert.deepEqual(status, { code: 0, signal: null }, `spicegate (${scheme}) did not exit 0 on SIGTERM`);
});

// --- the page ----------------------------------------------------------------

// Nova's URL shape for spice-html5 (nova.conf [spice] html5proxy_base_url
// plus ?token=), with the title Horizon appends.
function consoleUrl(combo, token) {
    const { port } = fx.servers[combo.scheme];
    let url = `${combo.scheme}://127.0.0.1:${port}/spice_auto.html?token=${token}` +
              `&title=demo(${randomUUID()})`;
    if (STANDIN)
        url += `&path=${encodeURIComponent(`websockify?token=${token}`)}`;
    return url;
}

// Record the URL of every websocket the page opens and how each closes.
// spice-html5 shows only "Unexpected protocol mismatch." and drops
// spicegate's close code and reason; this wrapper keeps them for the
// assertions and changes nothing.
function recordWebSockets() {
    const Native = window.WebSocket;
    window.__e2eSockets = [];
    window.__e2eProtocols = [];
    window.__e2eCloses = [];
    // Every Content-Security-Policy violation the page reports.
    window.__e2eViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
        window.__e2eViolations.push({ directive: e.effectiveDirective || e.violatedDirective,
                                      blocked: e.blockedURI, sample: e.sample });
    });
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            window.__e2eSockets.push(this.url);
            window.__e2eProtocols.push(String(args[1]));
            this.addEventListener('close', (e) => {
                window.__e2eCloses.push({ url: this.url, code: e.code, reason: e.reason });
            });
        }
    };
}

async function openConsole(combo, token, url = consoleUrl(combo, token)) {
    const browser = await browserFor(combo.browser);
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.e2eConsole = [];
    page.on('console', (msg) => page.e2eConsole.push(msg.text()));
    page.on('pageerror', (err) => page.e2eConsole.push(`uncaught: ${err.message}`));
    fx.page = page;
    await page.evaluateOnNewDocument(recordWebSockets);
    const response = await page.goto(url, { timeout: START_MS, waitUntil: 'load' });
    assert.equal(response?.status(), 200, `${url}: HTTP ${response?.status()}`);
    return { context, page, response };
}

const pageSockets = (page) => page.evaluate(() => window.__e2eSockets);

// --- our console page -------------------------------------------------------------

// The policy spicegate sends with every page (src/http_response.c): scripts
// and styles from its own origin only, no plugin, no <base>, websockets to
// its own host, and the frame_ancestors setting (default *).
function checkCsp(response, frameAncestors = '*') {
    const csp = response.headers()['content-security-policy'];
    assert.ok(csp, `no Content-Security-Policy on ${response.url()}`);
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/))
        .map(([name, ...values]) => [name, values.join(' ')]));
    assert.equal(directives.get('script-src'), "'self'", csp);
    assert.equal(directives.get('style-src'), "'self'", csp);
    assert.equal(directives.get('object-src'), "'none'", csp);
    assert.equal(directives.get('base-uri'), "'none'", csp);
    assert.equal(directives.get('connect-src'), "'self'", csp);
    assert.equal(directives.get('frame-ancestors'), frameAncestors, csp);
}

// No violation of the policy, as a securitypolicyviolation event or as the
// browser's console message about one.
async function checkNoViolation(page) {
    const violations = await page.evaluate(() => window.__e2eViolations);
    assert.deepEqual(violations, [], 'the page reported CSP violations');
    const said = page.e2eConsole.filter((m) => /content.security.policy|\bCSP\b/i.test(m));
    assert.deepEqual(said, [], 'the browser console reported CSP violations');
}

const statusText = (page) => page.$eval('#status', (e) => e.textContent.trim());

// The page's visible text (innerText: what a person reads, not the hidden
// debug log) once it contains @headline; returns the notice's text.
async function waitForNotice(page, headline, timeoutMs = SCREEN_MS) {
    return waitFor(`the page to say "${headline}"`, async () => {
        const seen = await page.evaluate(() => ({
            body: document.body.innerText,
            notice: document.getElementById('notice').hidden ? '' : document.getElementById('notice').innerText,
        }));
        if (!seen.body.includes(headline))
            throw new Error(`page text: ${JSON.stringify(seen.body.slice(0, 400))}`);
        return seen.notice;
    }, timeoutMs);
}

async function keepScreenshot(pageOrFrameOwner, name) {
    fs.mkdirSync(OUT_DIR, { recursive: true });
    await pageOrFrameOwner.screenshot({ path: path.join(OUT_DIR, name) });
}

// Fit to the window: the screen is as large as the stage allows, inside
// it (nothing clipped), with the guest's aspect ratio, and the canvas is
// drawn exactly there (the transform applied). @where names the window.
async function checkFits(frame, where) {
    const m = await frame.evaluate(() => {
        const rect = (e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; };
        const canvas = document.getElementById('spice_surface_0');
        return {
            viewport: { w: window.innerWidth, h: window.innerHeight },
            stage: rect(document.getElementById('stage')),
            canvas: rect(canvas),
            native: { w: canvas.width, h: canvas.height },
        };
    });
    const { stage, canvas, native } = m;
    const info = `${where}: ${JSON.stringify(m)}`;
    assert.ok(canvas.x >= stage.x - 1 && canvas.y >= stage.y - 1 &&
              canvas.x + canvas.w <= stage.x + stage.w + 1 &&
              canvas.y + canvas.h <= stage.y + stage.h + 1, `clipped: ${info}`);
    assert.ok(Math.abs(canvas.w - stage.w) <= 1.5 || Math.abs(canvas.h - stage.h) <= 1.5,
              `does not fill the window: ${info}`);
    assert.ok(Math.abs(canvas.w / canvas.h - native.w / native.h) < 0.01, `aspect ratio changed: ${info}`);
    return m;
}

// The protocol that carried the page and every file it loaded from the
// proxy, as the page itself saw it (Resource Timing's nextHopProtocol, the
// same in Chromium and Firefox). Over https spicegate offers h2 by ALPN and
// the browsers take it: the files must have come over HTTP/2.
async function checkProtocols(t, page, combo) {
    const seen = await page.evaluate(() => ({
        page: performance.getEntriesByType('navigation')[0]?.nextHopProtocol,
        files: performance.getEntriesByType('resource')
            .filter((r) => new URL(r.name).origin === location.origin)
            .map((r) => ({ url: new URL(r.name).pathname, protocol: r.nextHopProtocol })),
    }));
    const want = combo.scheme === 'https' ? 'h2' : 'http/1.1';
    t.diagnostic(`page over ${seen.page}, ${seen.files.length} files from the proxy over ` +
                 `${[...new Set(seen.files.map((f) => f.protocol))].join(', ')}`);
    if (STANDIN)
        return;
    assert.equal(seen.page, want, 'the protocol of the page itself');
    // spice_auto.html loads spice-html5's modules (main.js and what it imports).
    assert.ok(seen.files.some((f) => f.url.endsWith('/main.js')), `files: ${JSON.stringify(seen.files)}`);
    for (const f of seen.files)
        assert.equal(f.protocol, want, `${f.url} came over ${f.protocol}`);
}

// What the primary surface shows, read back with getImageData as a person's
// eyes would: its size, a hash of its pixels, how many distinct colours, how
// many pixels differ from the top-left one (the background), and how many
// lines of text it holds. The guest is in VGA text mode, 25 lines of cells;
// a line counts when it has more lit pixels than a cursor (an underscore of
// a cell's width, 18 pixels at 720x400).
function readScreen() {
    const canvas = document.querySelector('#spice-screen canvas#spice_surface_0');
    if (!canvas)
        return null;
    const { width, height } = canvas;
    const px = canvas.getContext('2d').getImageData(0, 0, width, height).data;
    const cellHeight = Math.floor(height / 25);
    const litPerLine = new Array(25).fill(0);
    const colours = new Set();
    let hash = 0x811c9dc5;            // FNV-1a over RGB
    let lit = 0;
    const bg = (px[0] << 16) | (px[1] << 8) | px[2];
    for (let i = 0; i < px.length; i += 4) {
        const rgb = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
        colours.add(rgb);
        if (rgb !== bg) {
            lit++;
            const y = Math.floor(i / 4 / width);
            litPerLine[Math.min(24, Math.floor(y / cellHeight))]++;
        }
        hash = Math.imul(hash ^ rgb, 0x01000193) >>> 0;
    }
    const lines = litPerLine.filter((n) => n > 2 * width / 80).length;
    return { width, height, hash, colours: colours.size, lit, lines };
}

// One SPICE channel connection as QEMU lists it.
const channelKey = (c) => `${c['connection-id']}/${c['channel-type']}/${c['channel-id']}/${c.port}`;

async function spiceChannels() {
    const spice = await fx.qmp.execute('query-spice');
    return spice.channels ?? [];
}

// --- the tests, one body for every browser and scheme -------------------------

async function consoleShowsGuestAndTakesKeys(t, combo) {
    const server = fx.servers[combo.scheme];
    await browserFor(combo.browser);    // launched before the guest's clock starts
    await restartGuest();
    const earlier = new Set((await spiceChannels()).map(channelKey));
    const logMark = server.proxy.output.length;
    const { context, page, response } = await openConsole(combo, fx.token);
    t.after(() => context.close().catch(() => {}));

    await checkProtocols(t, page, combo);
    if (!STANDIN)
        checkCsp(response);

    // Our console page shows the part of the title before "(", as
    // spice_auto.html did, and says where it is.
    if (!STANDIN) {
        assert.equal(await page.$eval('#vm-name', (e) => e.textContent), 'demo');
        assert.equal(await page.title(), 'demo – Console');
        // The token left the address bar, and so the history; the rest stayed.
        const shown = new URL(page.url());
        assert.equal(shown.searchParams.has('token'), false,
                     `the address bar still holds the token: ${shown.search}`);
        assert.equal(shown.searchParams.has('title'), true, `the title went too: ${shown.search}`);
    }

    // The display canvas appears, then shows SeaBIOS's text: its banner,
    // then "Press ESC for boot menu." VGA text mode is two colours here, so
    // "non-uniform" means two colours or more and lines of text. Wait for
    // the second line: SeaBIOS throws away keys typed before that prompt.
    const first = await waitFor('SeaBIOS\'s "Press ESC" prompt on the canvas', async () => {
        const s = await page.evaluate(readScreen);
        return s && s.colours >= 2 && s.lines >= 2 && s;
    }, SCREEN_MS);
    assert.ok(first.width >= 640 && first.height >= 350, `odd screen size ${first.width}x${first.height}`);
    t.diagnostic(`screen ${first.width}x${first.height} shown ${Date.now() - fx.qemuStartedAt} ms after the guest started`);

    // QEMU sees the four channels spice-html5 opens, all from this page.
    const mine = await waitFor('main, display, inputs and cursor channels in query-spice', async () => {
        const chans = (await spiceChannels()).filter((c) => !earlier.has(channelKey(c)));
        const types = new Set(chans.map((c) => c['channel-type']));
        if (!Object.values(CHANNEL).every((ty) => types.has(ty)))
            throw new Error(`new channel types so far: ${[...types]}`);
        return chans;
    }, SCREEN_MS);
    for (const c of mine)
        assert.equal(c.host, '127.0.0.1', `channel from an unexpected peer: ${JSON.stringify(c)}`);

    // The token went in the cookie, as nova-spicehtml5proxy expects, and in
    // every websocket's URL, for browsers that drop the cookie of a framed
    // page; each asked for the "binary" subprotocol.
    if (!STANDIN) {
        const sockets = await pageSockets(page);
        assert.ok(sockets.length >= 4, `only ${sockets.length} websockets: ${sockets}`);
        for (const url of sockets)
            assert.equal(url, `${wsScheme(combo)}://127.0.0.1:${server.port}/websockify?token=${fx.token}`);
        const protocols = await page.evaluate(() => window.__e2eProtocols);
        assert.ok(protocols.length >= 4 && protocols.every((p) => p === 'binary'), `subprotocols: ${protocols}`);
        const cookies = await context.cookies();
        assert.ok(cookies.some((c) => c.name === 'token' && c.value === fx.token),
                  'the console page did not set the token cookie');
        assert.equal(await statusText(page), 'Connected');
        await checkFits(page, 'the 1024x640 window');
    }

    // Keystroke: the canvas takes the key events (display.js hook_events),
    // and spice-html5 drops them until its inputs channel is "ready".
    await waitFor('the inputs channel to be ready', () => page.evaluate(() => {
        const canvas = document.getElementById('spice_surface_0');
        return canvas?.sc?.inputs?.state === 'ready';
    }), SCREEN_MS);
    const still = await page.evaluate(readScreen);
    const elapsed = Date.now() - fx.qemuStartedAt;
    assert.ok(elapsed < SPLASH_MS - SPLASH_MARGIN_MS,
              `too slow: ${elapsed} ms since the guest started, SeaBIOS's boot menu prompt ends at ${SPLASH_MS} ms`);
    await page.click('#spice_surface_0');
    await page.keyboard.press('Escape');
    t.diagnostic(`Escape pressed ${elapsed} ms after the guest started`);

    // "Select boot device:" and its list add lines of text. (A blinking
    // cursor would change the hash, but not the count of lines.)
    const menu = await waitFor('the boot menu after Escape', async () => {
        const s = await page.evaluate(readScreen);
        return s && s.hash !== still.hash && s.lines >= still.lines + 2 && s;
    }, KEY_MS);
    assert.ok(menu.colours >= 2);
    t.diagnostic(`lines of text: ${still.lines} before Escape, ${menu.lines} after`);

    fs.mkdirSync(OUT_DIR, { recursive: true });
    const shot = path.join(OUT_DIR, `console-${combo.label}.png`);
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}`);

    if (STANDIN)
        return;

    // A whole session under the Content-Security-Policy, and the browser
    // reported no violation of it, neither as an event nor on its console.
    await checkNoViolation(page);

    // spicegate logged one "open" line per channel of this page, with the
    // token's tag only, never the token itself.
    const log = () => sessionLogLines(server.proxy.output.slice(logMark));
    const tag = tokenTag(fx.token);
    const channels = ['main', 'display', 'inputs', 'cursor'];
    const opened = await waitFor('spicegate "open" log lines for all four channels', () => {
        const found = log().filter((l) => l.event === 'open');
        const names = new Set(found.map((l) => l.fields.channel));
        return channels.every((n) => names.has(n)) && found;
    }, KEY_MS);
    assert.equal(opened.length, channels.length, `open lines:\n${opened.map((l) => l.line).join('\n')}`);
    for (const l of opened) {
        assert.equal(l.tok, tag, l.line);
        assert.match(l.fields.client, /^127\.0\.0\.1:\d+$/, l.line);
        assert.equal(l.fields.target, `127.0.0.1:${fx.spicePort}`, l.line);
    }
    assert.ok(!server.proxy.output.includes(fx.token), 'spicegate logged a token in full');
    // One console, one id: every channel's line says console=N, the
    // connection id QEMU lists for this page's channels (a signed 32-bit
    // number in query-spice).
    const consoleIds = new Set(opened.map((l) => l.fields.console));
    assert.equal(consoleIds.size, 1, `console ids:\n${opened.map((l) => l.line).join('\n')}`);
    const qemuIds = new Set(mine.map((c) => String(c['connection-id'] >>> 0)));
    assert.deepEqual([...consoleIds], [...qemuIds], 'console= is QEMU\'s connection id');

    // Closing the page ends every session: QEMU drops the channels, and
    // spicegate writes one "close" line for each "open" line.
    await context.close();
    await waitFor('QEMU to drop the page\'s channels', async () => {
        const now = new Set((await spiceChannels()).map(channelKey));
        return mine.every((c) => !now.has(channelKey(c)));
    }, KEY_MS);
    const closed = await waitFor('spicegate "close" log lines for every session', () => {
        const found = log().filter((l) => l.event === 'close');
        return opened.every((o) => found.some((c) => c.sid === o.sid)) && found;
    }, KEY_MS);
    for (const o of opened) {
        const c = closed.find((l) => l.sid === o.sid);
        assert.equal(c.fields.client, o.fields.client, c.line);
        assert.equal(c.fields.target, o.fields.target, c.line);
        assert.equal(c.fields.channel, o.fields.channel, c.line);
        assert.match(c.fields.duration ?? '', /^\d+(\.\d+)?s$/, c.line);
        assert.match(c.fields.up ?? '', /^\d+$/, c.line);
        assert.match(c.fields.down ?? '', /^\d+$/, c.line);
        assert.ok(c.fields.reason, `no reason: ${c.line}`);
    }
    // The display channel carried the guest's screen to the browser.
    const display = closed.find((l) => l.sid === opened.find((o) => o.fields.channel === 'display').sid);
    assert.ok(Number(display.fields.down) > 1000, display.line);
}

async function wrongTokenIsRefused(t, combo) {
    const server = fx.servers[combo.scheme];
    const earlier = new Set((await spiceChannels()).map(channelKey));
    const wrong = randomUUID();
    const { context, page } = await openConsole(combo, wrong);
    t.after(() => context.close().catch(() => {}));

    // No screen: no display canvas, or at most one that was never drawn.
    if (STANDIN) {
        await waitFor('an error in spice-html5\'s message area', () => page.evaluate(() =>
            document.querySelectorAll('#message-div .spice-message-error').length > 0), SCREEN_MS);
    } else {
        // The page says so in words, with the way out.
        const notice = await waitForNotice(page, 'This console link is invalid or has expired');
        assert.match(notice, /Open the console again from the dashboard/);
        assert.match(notice, /close code 4404/);
        assert.equal(await statusText(page), 'Disconnected');
    }
    const screen = await page.evaluate(readScreen);
    assert.ok(screen === null || screen.colours < 2, `a screen appeared: ${JSON.stringify(screen)}`);

    // Nothing reached QEMU: no channel that was not there before.
    const fresh = (await spiceChannels()).filter((c) =>
        !earlier.has(channelKey(c)));
    assert.deepEqual(fresh, [], 'QEMU reports a channel for a wrong token');

    await keepScreenshot(page, `console-refused-${combo.label}.png`);

    if (STANDIN)
        return;

    // spicegate refused after the upgrade, with the code the contract gives.
    // (The page tries a first attempt lost without a close code once more:
    // such a 1006 is reported, and the answer after it must be the 4404.)
    const closes = await waitFor('the websocket close event', () =>
        page.evaluate(() => window.__e2eCloses).then((c) => c.length > 0 && c), KEY_MS);
    const lost = closes.slice(0, -1);
    if (lost.length > 0)
        t.diagnostic(`closes before the refusal: ${JSON.stringify(lost)}`);
    assert.ok(lost.length <= 1 && lost.every((c) => c.code === 1006), JSON.stringify(closes));
    assert.deepEqual(closes.slice(-1).map(({ url, code, reason }) => ({ url, code, reason })),
                     [{ url: `${wsScheme(combo)}://127.0.0.1:${server.port}/websockify?token=${wrong}`,
                        code: 4404, reason: 'console token invalid or expired' }]);

    const tag = tokenTag(wrong);
    const refused = await waitFor('spicegate "refused" log line', () =>
        sessionLogLines(server.proxy.output).find((l) => l.event === 'refused' && l.tok === tag), KEY_MS);
    assert.match(refused.fields.client, /^127\.0\.0\.1(:\d+)?$/, refused.line);
    assert.equal(refused.fields.reason, 'console token invalid or expired', refused.line);
    assert.ok(!server.proxy.output.includes(wrong), 'spicegate logged a token in full');
}

async function tokenInWebSocketUrl(t, combo) {
    const server = fx.servers[combo.scheme];
    // Without ?token= the page sets no cookie; spice_auto.html's path=
    // parameter puts the token in the websocket URL, as websockify clients
    // do, and the page leaves it there.
    const url = `${combo.scheme}://127.0.0.1:${server.port}/spice_auto.html?title=demo` +
                `&path=${encodeURIComponent(`websockify?token=${fx.token}`)}`;
    const { context, page } = await openConsole(combo, fx.token, url);
    t.after(() => context.close().catch(() => {}));

    await waitFor('the guest screen on the canvas', async () => {
        const s = await page.evaluate(readScreen);
        return s && s.colours >= 2 && s.lines >= 2 && s;
    }, SCREEN_MS);
    assert.deepEqual((await context.cookies()).filter((c) => c.name === 'token'), []);
    const sockets = await pageSockets(page);
    assert.ok(sockets.length >= 1);
    for (const ws of sockets)
        assert.equal(ws, `${wsScheme(combo)}://127.0.0.1:${server.port}/websockify?token=${fx.token}`);
}

// --- our console page: what a person sees and can do ---------------------------------

// The guest's screen drawn on @frame's canvas (a page or an iframe's frame).
function waitForScreen(frame, what = 'the guest screen on the canvas') {
    return waitFor(what, async () => {
        const s = await frame.evaluate(readScreen);
        return s && s.colours >= 2 && s.lines >= 1 && s;
    }, SCREEN_MS);
}

const waitForInputs = (frame) => waitFor('the inputs channel to be ready', () => frame.evaluate(() =>
    document.getElementById('spice_surface_0')?.sc?.inputs?.state === 'ready'), SCREEN_MS);

// Another spicegate for a test of its own (one it stops, or with another
// backend): on @listen (port 0: any), with @config. Stopped by t.after.
async function startOwnSpicegate(t, name, config, listen = '127.0.0.1:0', tokenFile = fx.tokenFile) {
    const srcdir = process.env.top_srcdir ?? path.resolve(HERE, '..', '..');
    const portFile = path.join(fx.dir, `port-${name}`);
    const configFile = path.join(fx.dir, `spicegate-${name}.conf`);
    fs.rmSync(portFile, { force: true });
    fs.writeFileSync(configFile, config);
    const proxy = startChild(`spicegate (${name})`, [
        process.env.SPICEGATE, '--config', configFile, '--listen', listen,
        '--port-file', portFile, '--web', SPICE_HTML5, '--pages', path.join(srcdir, 'web'),
        ...(config.includes('backend = nova') ? [] : ['--token-file', tokenFile]),
    ]);
    fx.extraProxies.push(proxy);
    t.after(() => stopChild(proxy));
    const port = Number(await waitFor(`spicegate (${name}) port file`, () => {
        if (proxy.exit)
            throw new Hopeless(`spicegate exited ${JSON.stringify(proxy.exit)}: ${proxy.output}`);
        const text = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8') : '';
        return /^\d+\n$/.test(text) && text;
    }, START_MS));
    return { proxy, port };
}

const pageUrl = (port, query) => `http://127.0.0.1:${port}/spice_auto.html?${query}`;

async function noTokenIsExplained(t, combo) {
    const { port } = fx.servers.http;
    const { context, page } = await openConsole(combo, null, pageUrl(port, 'title=demo'));
    t.after(() => context.close().catch(() => {}));
    const notice = await waitForNotice(page, 'This console link is incomplete');
    assert.match(notice, /Open the console again from the dashboard/);
    assert.match(notice, /close code 4401/);
    await keepScreenshot(page, `console-no-token-${combo.browser}.png`);
}

async function deadTargetIsExplained(t, combo) {
    const { port } = fx.servers.http;
    const { context, page } = await openConsole(combo, fx.deadToken, pageUrl(port, `token=${fx.deadToken}`));
    t.after(() => context.close().catch(() => {}));
    const notice = await waitForNotice(page, 'The console cannot be reached');
    assert.match(notice, /close code 4502/);
    // A passing problem: the page offers to try again, and the button works.
    assert.equal(await page.$eval('#notice-action', (b) => !b.hidden && b.textContent), 'Try again');
    await keepScreenshot(page, `console-unreachable-${combo.browser}.png`);
    const before = (await pageSockets(page)).length;
    await page.click('#notice-action');
    await waitFor('a second attempt after "Try again"', async () =>
        (await pageSockets(page)).length > before && (await page.evaluate(() =>
            window.__e2eCloses.filter((c) => c.code === 4502).length)) >= 2, KEY_MS);
    await waitForNotice(page, 'The console cannot be reached');
}

async function titleIsTextOnly(t, combo) {
    const { port } = fx.servers.http;
    // What Horizon's title parameter could smuggle in: neither may run.
    const titles = [
        '<img src=x onerror="window.__xss=\'img\'">',
        '<script>window.__xss=\'script\'</script>',
    ];
    for (const title of titles) {
        const query = `token=${fx.token}&title=${encodeURIComponent(`${title}(${randomUUID()})`)}`;
        const { context, page, response } = await openConsole(combo, fx.token, pageUrl(port, query));
        try {
            checkCsp(response);
            await waitForScreen(page);
            const seen = await page.evaluate(() => ({
                text: document.getElementById('vm-name').textContent,
                elements: document.getElementById('vm-name').children.length,
                xss: window.__xss ?? null,
            }));
            assert.deepEqual(seen, { text: title, elements: 0, xss: null });
            assert.equal(await page.title(), `${title} – Console`);
            // Nothing was parsed as HTML, so the policy had nothing to block.
            await checkNoViolation(page);
        } finally {
            await context.close().catch(() => {});
        }
    }

    // spice-html5's own page, still served as spice_auto_stock.html, writes
    // the title with innerHTML. Its inline scripts run (allowed by their
    // hashes: it draws the console), the injected handler does not, and the
    // browser reports the policy blocking it.
    const stock = `http://127.0.0.1:${port}/spice_auto_stock.html?token=${fx.token}` +
                  `&title=${encodeURIComponent(`${titles[0]}(x)`)}`;
    const { context, page, response } = await openConsole(combo, fx.token, stock);
    t.after(() => context.close().catch(() => {}));
    const csp = response.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self' 'unsafe-hashes'( 'sha256-[A-Za-z0-9+/=]+')+;/, csp);
    assert.match(csp, /object-src 'none'/, csp);
    await waitForScreen(page, 'the stock page drawing the guest screen under the CSP');
    const violations = await waitFor('the CSP to report the injected handler', () =>
        page.evaluate(() => window.__e2eViolations).then((v) =>
            v.some((x) => /^script-src/.test(x.directive)) && v), KEY_MS);
    t.diagnostic(`stock page: ${JSON.stringify(violations)}`);
    assert.equal(await page.evaluate(() => window.__xss ?? null), null, 'the injected handler ran');
    await keepScreenshot(page, `console-stock-page-${combo.browser}.png`);
    // Its own inline handlers do run (onclick="open_nav()", by its hash).
    await page.click('#login button');
    await waitFor('the stock page\'s side panel to open', () =>
        page.$eval('#Sidenav', (n) => n.className === 'SidenavOpen'), KEY_MS);
}

// A parent page on another site (127.0.0.2 is another site than
// 127.0.0.1, as Horizon's host is to the proxy's) framing the console as
// Horizon does, @width x @height. Stopped by t.after.
async function startParentSite(t, consoleUrl, width, height) {
    const html = `<!DOCTYPE html><html><head><title>dashboard</title></head><body>
<h1>Instance console</h1>
<iframe id="console" src="${consoleUrl.replace(/&/g, '&amp;')}" width="${width}" height="${height}"
        frameborder="0" allow="fullscreen"></iframe></body></html>`;
    const server = http.createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(html);
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.2', resolve);
    });
    t.after(() => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }));
    return `http://127.0.0.2:${server.address().port}/`;
}

async function consoleFrame(page) {
    return waitFor('the console iframe', () =>
        page.frames().find((f) => f.url().includes('/spice_auto.html')), START_MS);
}

// A click on @selector inside the console iframe (#console), at its
// centre, by coordinates: puppeteer's frame.click() locates the iframe
// element with a WebDriver BiDi "context" locator, which Firefox ESR 140
// (a Debian 12 without bookworm-security) does not have.
async function clickInFrame(page, frame, selector) {
    const origin = await page.$eval('#console', (f) => {
        const r = f.getBoundingClientRect();
        return { x: r.x + f.clientLeft, y: r.y + f.clientTop };
    });
    const at = await frame.$eval(selector, (e) => {
        const r = e.getBoundingClientRect();
        return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
    });
    await page.mouse.click(origin.x + at.x, origin.y + at.y);
}

async function framedConsoleWorksAndFits(t, combo) {
    const { port } = fx.servers.http;
    await browserFor(combo.browser);
    await restartGuest();
    const consoleUrl = pageUrl(port, `token=${fx.token}&title=${encodeURIComponent('framed(1234)')}`);
    const parent = await startParentSite(t, consoleUrl, 640, 480);
    const { context, page } = await openConsole(combo, fx.token, parent);
    t.after(() => context.close().catch(() => {}));
    const frame = await consoleFrame(page);

    // It draws and takes a keystroke, framed by another site.
    await waitFor('SeaBIOS\'s "Press ESC" prompt in the frame', async () => {
        const s = await frame.evaluate(readScreen);
        return s && s.colours >= 2 && s.lines >= 2 && s;
    }, SCREEN_MS);
    await waitForInputs(frame);
    const still = await frame.evaluate(readScreen);
    assert.ok(Date.now() - fx.qemuStartedAt < SPLASH_MS - SPLASH_MARGIN_MS, 'too slow for the boot menu prompt');
    await clickInFrame(page, frame, '#spice_surface_0');
    await page.keyboard.press('Escape');
    await waitFor('the boot menu after Escape, in the frame', async () => {
        const s = await frame.evaluate(readScreen);
        return s && s.hash !== still.hash && s.lines >= still.lines + 2 && s;
    }, KEY_MS);

    // The websocket URL carried the token (a framed page's cookie may not
    // be sent).
    const sockets = await frame.evaluate(() => window.__e2eSockets ?? null);
    if (sockets)
        assert.ok(sockets.length >= 4 && sockets.every((u) => u.endsWith(`?token=${fx.token}`)), `${sockets}`);

    // 640x480: scaled down to fit, aspect kept, nothing clipped.
    const small = await checkFits(frame, 'a 640x480 frame');
    assert.deepEqual(small.viewport, { w: 640, h: 480 });
    assert.ok(small.canvas.w < small.native.w, `not scaled down: ${JSON.stringify(small)}`);
    await keepScreenshot(page, `console-iframe-640x480-${combo.browser}.png`);

    // The pointer lands on the guest pixel under it, scaled or not: a
    // point three quarters across the drawn canvas is three quarters
    // across the guest's screen (spice-html5 sends offsetX/offsetY).
    const box = await (await page.$('#console')).boundingBox();
    await frame.evaluate(() => {
        window.__e2eMouse = null;
        document.getElementById('spice_surface_0').addEventListener('mousemove', (e) => {
            window.__e2eMouse = { x: e.offsetX, y: e.offsetY };
        });
    });
    await page.mouse.move(box.x + small.canvas.x + small.canvas.w * 0.75,
                          box.y + small.canvas.y + small.canvas.h * 0.75);
    const at = await waitFor('a mousemove on the canvas', () => frame.evaluate(() => window.__e2eMouse), KEY_MS);
    assert.ok(Math.abs(at.x - small.native.w * 0.75) <= 3 && Math.abs(at.y - small.native.h * 0.75) <= 3,
              `pointer at ${JSON.stringify(at)}, want 3/4 of ${JSON.stringify(small.native)}`);

    // 1:1 on request (the frame is all in view): pixel for pixel, and back.
    await clickInFrame(page, frame, '#scale');
    await waitFor('the canvas at its own size', () => frame.evaluate(() => {
        const c = document.getElementById('spice_surface_0');
        return Math.abs(c.getBoundingClientRect().width - c.width) < 0.5 &&
               document.getElementById('scale').getAttribute('aria-pressed') === 'false';
    }), KEY_MS);
    await clickInFrame(page, frame, '#scale');
    await waitFor('fit again', () => checkFits(frame, 'fit again'), KEY_MS);

    // 1600x1000: scaled up to fit.
    await page.evaluate(() => {
        const f = document.getElementById('console');
        f.width = '1600';
        f.height = '1000';
    });
    const large = await waitFor('the console to fit a 1600x1000 frame', () =>
        checkFits(frame, 'a 1600x1000 frame').then((m) => m.viewport.w === 1600 && m.viewport.h === 1000 && m), KEY_MS);
    assert.ok(large.canvas.w > large.native.w, `not scaled up: ${JSON.stringify(large)}`);

    await checkNoViolation(page);
}

async function fullscreenFits(t, combo) {
    const { port } = fx.servers.http;
    const { context, page } = await openConsole(combo, fx.token, pageUrl(port, `token=${fx.token}`));
    t.after(() => context.close().catch(() => {}));
    await waitForScreen(page);
    const windowed = await checkFits(page, 'the window');
    // A click anywhere on the stage, here beside the screen, gives it the
    // keyboard.
    await page.evaluate(() => document.activeElement?.blur());
    const { stage, canvas } = windowed;
    assert.ok(canvas.x - stage.x >= 10, `no room beside the screen: ${JSON.stringify(windowed)}`);
    await page.mouse.click(stage.x + 4, stage.y + stage.h / 2);
    await waitFor('the screen to take the keyboard after a click beside it', () => page.evaluate(() =>
        document.activeElement?.id === 'spice_surface_0'), KEY_MS);
    await page.click('#fullscreen');
    const full = await waitFor('fullscreen', () => page.evaluate(() =>
        document.fullscreenElement === document.documentElement &&
        { w: window.innerWidth, h: window.innerHeight, screen: { w: screen.width, h: screen.height } }), KEY_MS);
    t.diagnostic(`fullscreen ${JSON.stringify(full)}, window was ${JSON.stringify(windowed.viewport)}`);
    // The page relabels the button on fullscreenchange, which may come a
    // moment after document.fullscreenElement is set.
    await waitFor('the button to say "Exit fullscreen"', () =>
        page.$eval('#fullscreen', (b) => b.textContent === 'Exit fullscreen'), KEY_MS);
    await waitFor('the console to fit the full screen', () =>
        checkFits(page, 'fullscreen').then((m) => m.viewport.w === full.w && m.viewport.h === full.h && m), KEY_MS);
    await keepScreenshot(page, `console-fullscreen-${combo.browser}.png`);
    await page.click('#fullscreen');
    await waitFor('fullscreen to end', () => page.evaluate(() => document.fullscreenElement === null), KEY_MS);
}

// Keyboard only: the screen has the keyboard once the console is up;
// Ctrl+Alt+Shift gives it back; Shift+Tab reaches the Keys menu, which
// opens, moves and closes with the keyboard and sends its combinations
// (QEMU's input trace shows them arrive); then Ctrl-Alt-Del, whose Enter
// makes SeaBIOS reset the machine (QMP's RESET event).
async function ctrlAltDelByKeyboard(t, combo) {
    const { port } = fx.servers.http;
    const { context, page } = await openConsole(combo, fx.token, pageUrl(port, `token=${fx.token}`));
    t.after(() => context.close().catch(() => {}));
    await waitForScreen(page);
    await waitForInputs(page);
    const active = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent);
    await waitFor('the screen to take the keyboard', async () => (await active()) === 'spice_surface_0', KEY_MS);

    const release = async () => {
        await page.keyboard.down('Control');
        await page.keyboard.down('Alt');
        await page.keyboard.down('Shift');
        await page.keyboard.up('Shift');
        await page.keyboard.up('Alt');
        await page.keyboard.up('Control');
        assert.equal(await active(), 'scale', 'Ctrl+Alt+Shift did not release the keyboard');
    };
    const shiftTab = async () => {
        await page.keyboard.down('Shift');
        await page.keyboard.press('Tab');
        await page.keyboard.up('Shift');
    };
    // QEMU's key events since @mark, as "qcode down|up".
    const qemuKeys = (mark) => [...fx.qemu.output.slice(mark).matchAll(
        /input_event_key_qcode .*key qcode (\w+), down (\d)/g)].map((m) => `${m[1]} ${m[2] === '1' ? 'down' : 'up'}`);
    const sendFromMenu = async (moves, label, want) => {
        await release();
        await shiftTab();
        assert.equal(await active(), 'keys');
        await page.keyboard.press('Enter');
        for (const key of moves)
            await page.keyboard.press(key);
        assert.equal(await active(), label);
        const mark = fx.qemu.output.length;
        await page.keyboard.press('Enter');
        assert.equal(await page.$eval('#keys-menu', (m) => m.hidden), true);
        assert.equal(await active(), 'spice_surface_0', 'the screen did not get the keyboard back');
        // In one run, in order (key-ups of the Ctrl+Alt+Shift before may
        // still be arriving, and Enter's key-up goes to the guest after).
        await waitFor(`QEMU to get ${label}`, () => {
            const got = qemuKeys(mark);
            const found = got.some((_, at) => want.every((w, i) => got[at + i] === w));
            return found || Promise.reject(new Error(got.join(', ')));
        }, KEY_MS);
    };

    await release();
    await shiftTab();
    assert.equal(await active(), 'keys');
    await page.keyboard.press('Enter');
    assert.equal(await active(), 'Ctrl-Alt-F1');
    assert.equal(await page.$eval('#keys', (b) => b.getAttribute('aria-expanded')), 'true');
    await page.keyboard.press('End');
    assert.equal(await active(), 'PrintScreen');
    await page.keyboard.press('Escape');
    assert.equal(await active(), 'keys');
    assert.equal(await page.$eval('#keys-menu', (m) => m.hidden), true);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    assert.equal(await active(), 'spice_surface_0', 'Tab does not reach the screen');

    await sendFromMenu(['ArrowDown'], 'Ctrl-Alt-F2',
                       ['ctrl down', 'alt down', 'f2 down', 'f2 up', 'alt up', 'ctrl up']);
    await sendFromMenu(['ArrowUp', 'ArrowUp'], 'Ctrl-Alt-Backspace',
                       ['ctrl down', 'alt down', 'backspace down', 'backspace up', 'alt up', 'ctrl up']);
    await sendFromMenu(['End'], 'PrintScreen', ['print down', 'print up']);

    await release();
    await shiftTab();
    await shiftTab();
    assert.equal(await active(), 'cad');
    const mark = fx.qmp.events.length;
    const keysMark = fx.qemu.output.length;
    try {
        await page.keyboard.press('Enter');
        const reset = await waitFor('QEMU\'s RESET event after Ctrl-Alt-Del', () =>
            fx.qmp.events.slice(mark).find((e) => e.event === 'RESET'), KEY_MS);
        t.diagnostic(`QMP: ${JSON.stringify(reset)}`);
        assert.equal(reset.data?.guest, true, 'the guest did not reset itself');
        // Every key pressed is released again: a Ctrl or Alt left down in
        // the guest would turn the password typed next into shortcuts.
        const want = ['ctrl down', 'alt down', 'delete down', 'delete up', 'alt up', 'ctrl up'];
        await waitFor('QEMU to get Ctrl-Alt-Del, every key released', () => {
            const got = qemuKeys(keysMark);
            const found = got.some((_, at) => want.every((w, i) => got[at + i] === w));
            return found || Promise.reject(new Error(got.join(', ')));
        }, KEY_MS);
        assert.equal(await statusText(page), 'Connected');
    } finally {
        // After a reset a page that connects may not be sent the text that
        // reads as before (see restartGuest): the next tests get a new guest.
        await restartGuest();
    }
}

async function qemuKilledIsExplained(t, combo) {
    const { port } = fx.servers.http;
    const { context, page } = await openConsole(combo, fx.token, pageUrl(port, `token=${fx.token}`));
    t.after(() => context.close().catch(() => {}));
    await waitForScreen(page);
    try {
        fx.qemu.kill('SIGKILL');
        const notice = await waitForNotice(page, 'The console was closed');
        assert.match(notice, /close code 1000/);
        assert.equal(await statusText(page), 'Disconnected');
        await keepScreenshot(page, `console-qemu-killed-${combo.browser}.png`);
    } finally {
        await restartGuest();
    }
    // The machine is back: Reconnect opens the console again.
    await page.click('#notice-action');
    await waitForScreen(page, 'the guest screen after Reconnect');
    assert.equal(await statusText(page), 'Connected');
}

async function proxyStopIsExplainedAndRecovered(t, combo) {
    const own = await startOwnSpicegate(t, `restart-${combo.browser}`, '');
    const { context, page } = await openConsole(combo, fx.token, pageUrl(own.port, `token=${fx.token}`));
    t.after(() => context.close().catch(() => {}));
    await waitForScreen(page);

    assert.deepEqual(await stopChild(own.proxy), { code: 0, signal: null });
    const notice = await waitForNotice(page, 'The console service restarted');
    assert.match(notice, /close code 1001/);
    assert.match(notice, /Reconnecting/);
    await keepScreenshot(page, `console-proxy-stopped-${combo.browser}.png`);

    // Back on the same port: the page reconnects by itself.
    const again = await startOwnSpicegate(t, `restart-${combo.browser}-again`, '', `127.0.0.1:${own.port}`);
    const reconnected = () => waitFor('the page to reconnect by itself', async () =>
        (await statusText(page)) === 'Connected' && page.$eval('#notice', (n) => n.hidden), 40_000);
    await reconnected();
    await waitForScreen(page, 'the guest screen after reconnecting');

    // A connection lost without a close frame (1006: the network, or here
    // spicegate killed): said in words, and retried by itself as well.
    again.proxy.kill('SIGKILL');
    const lost = await waitForNotice(page, 'Connection lost');
    assert.match(lost, /close code 1006/);
    assert.match(lost, /Reconnecting/);
    await keepScreenshot(page, `console-connection-lost-${combo.browser}.png`);
    await startOwnSpicegate(t, `restart-${combo.browser}-third`, '', `127.0.0.1:${own.port}`);
    await reconnected();
    await waitForScreen(page, 'the guest screen after the lost connection');

    // A reload, with the token gone from the address bar: the tab kept it.
    assert.equal(new URL(page.url()).searchParams.has('token'), false);
    await page.reload();
    await reconnected();
    await waitForScreen(page, 'the guest screen after a reload');
}

// Nova's enforce_session_timeout, for real: a token minted by a real Nova
// (tests/nova/openstack_env.py, Keystone and Nova's API on loopback), and
// a spicegate with the Nova backend that closes the console token_ttl
// seconds after the token's first use.
async function expiredSessionIsExplained(t, combo) {
    const { env, token } = startOpenStack(t, `openstack-expiry-${combo.browser}`);
    const ttl = 6;
    const user = env.service_user;
    const own = await startOwnSpicegate(t, `expiry-${combo.browser}`, [
        '[tokens]', 'backend = nova',
        '[nova]', `auth_url = ${env.auth_url}`, `username = ${user.username}`,
        `password = ${user.password}`, `project_name = ${user.project_name}`,
        `user_domain_name = ${user.user_domain_name}`,
        `project_domain_name = ${user.project_domain_name}`,
        `token_ttl = ${ttl}`, 'enforce_session_timeout = true', '',
    ].join('\n'));
    const { context, page } = await openConsole(combo, token, pageUrl(own.port, `token=${token}`));
    t.after(() => context.close().catch(() => {}));
    await waitForScreen(page);
    const notice = await waitForNotice(page, 'Your console time is over', (ttl + 10) * 1000);
    assert.match(notice, /close code 4410/);
    assert.match(notice, /Open the console again from the dashboard/);
    assert.doesNotMatch(notice, /Reconnecting/);
    assert.equal(await page.$eval('#notice-action', (b) => b.hidden), true);
    await keepScreenshot(page, `console-session-expired-${combo.browser}.png`);
}

// A console with a SPICE password (QEMU's password-secret; Nova never sets
// one, but spice_auto.html takes password=): the page asks for it, says
// when it is refused, and connects with the right one.
async function passwordIsAskedFor(t, combo) {
    const spicePort = await pickPort();
    const qemu = startChild('qemu (password)', [
        'qemu-system-x86_64', '-machine', 'pc,accel=tcg', '-m', '64', '-vga', 'qxl',
        '-display', 'none', '-nodefaults',
        '-object', 'secret,id=spicepw,data=open-sesame',
        '-spice', `port=${spicePort},addr=127.0.0.1,password-secret=spicepw`,
    ]);
    t.after(() => stopChild(qemu));
    await waitFor('the password QEMU to listen', () => {
        if (qemu.exit)
            throw new Hopeless(`QEMU exited ${JSON.stringify(qemu.exit)}: ${qemu.output}`);
        return canConnect({ host: '127.0.0.1', port: spicePort });
    }, START_MS);
    const token = randomUUID();
    const tokenFile = path.join(fx.dir, `tokens-password-${combo.browser}`);
    fs.writeFileSync(tokenFile, `${token}: 127.0.0.1:${spicePort}\n`);
    const own = await startOwnSpicegate(t, `password-${combo.browser}`, '', '127.0.0.1:0', tokenFile);
    const { context, page } = await openConsole(combo, token,
                                                 pageUrl(own.port, `token=${token}&password=wrong`));
    t.after(() => context.close().catch(() => {}));
    await waitForNotice(page, 'This console needs a password');
    await waitFor('the password field to have the keyboard', () =>
        page.evaluate(() => document.activeElement?.id === 'password'), KEY_MS);
    await keepScreenshot(page, `console-password-${combo.browser}.png`);
    await page.keyboard.type('still-wrong');
    await page.keyboard.press('Enter');
    await waitFor('a second refusal', () => page.evaluate(() =>
        window.__e2eSockets.length >= 2 && !document.getElementById('notice').hidden &&
        document.activeElement?.id === 'password'), KEY_MS);
    await page.$eval('#password', (i) => { i.value = ''; });
    await page.keyboard.type('open-sesame');
    await page.keyboard.press('Enter');
    await waitForScreen(page, 'the guest screen with the right password');
    assert.equal(await statusText(page), 'Connected');
}

// A CA and a SPICE server certificate for 127.0.0.1 (subjectAltName), made
// for this run in the temp dir: what QEMU's x509-dir holds. Once per run.
function makeSpiceX509() {
    if (fx.spiceX509)
        return fx.spiceX509;
    const dir = path.join(fx.dir, 'spice-x509');
    fs.mkdirSync(dir);
    const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', 'ca-key.pem',
        '-out', 'ca-cert.pem', '-subj', '/CN=spicegate e2e CA');
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server-key.pem', '-out', 'server.csr',
        '-subj', '/CN=spice server');
    fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName = IP:127.0.0.1\n');
    run('x509', '-req', '-in', 'server.csr', '-days', '2', '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem',
        '-CAcreateserial', '-extfile', 'ext.cnf', '-out', 'server-cert.pem');
    fx.spiceX509 = dir;
    return dir;
}

// [spice] tls = @mode: a QEMU with a TLS port that refuses every channel on
// its plain port (tls-channel=default: SPICE_LINK_ERR_NEED_SECURED). The
// console opens as over plain TCP, and QEMU lists the page's
// four channels as TLS ones (its inputs channel ready). auto's token line names both ports; always's
// names the TLS port alone.
async function tlsConsoleOpens(t, combo, mode) {
    const x509 = makeSpiceX509();
    const spicePort = await pickPort();
    const tlsPort = await pickPort();
    const qmpPath = path.join(fx.dir, `qmp-tls-${mode}-${combo.browser}.sock`);
    const qemu = startChild(`qemu (tls ${mode})`, [
        'qemu-system-x86_64', '-machine', 'pc,accel=tcg', '-m', '64', '-vga', 'qxl',
        '-display', 'none', '-nodefaults',
        '-spice', `port=${spicePort},tls-port=${tlsPort},addr=127.0.0.1,disable-ticketing=on,` +
                  `x509-dir=${x509},tls-channel=default`,
        '-qmp', `unix:${qmpPath},server=on,wait=off`,
    ]);
    t.after(() => stopChild(qemu));
    await waitFor('the TLS QEMU to listen', () => {
        if (qemu.exit)
            throw new Hopeless(`QEMU exited ${JSON.stringify(qemu.exit)}: ${qemu.output}`);
        return fs.existsSync(qmpPath) && canConnect({ host: '127.0.0.1', port: tlsPort });
    }, START_MS);
    const qmp = new Qmp(qmpPath);
    await qmp.connect();
    t.after(() => qmp.close());
    const token = randomUUID();
    const tokenFile = path.join(fx.dir, `tokens-tls-${mode}-${combo.browser}`);
    fs.writeFileSync(tokenFile, mode === 'always' ? `${token}: 127.0.0.1:${tlsPort}\n`
                                                  : `${token}: 127.0.0.1:${spicePort} tls-port=${tlsPort}\n`);
    const own = await startOwnSpicegate(t, `tls-${mode}-${combo.browser}`,
                                        `[spice]\ntls = ${mode}\nca_file = ${path.join(x509, 'ca-cert.pem')}\n`,
                                        '127.0.0.1:0', tokenFile);
    const { context, page } = await openConsole(combo, token, pageUrl(own.port, `token=${token}`));
    t.after(() => context.close().catch(() => {}));
    await waitForScreen(page);
    assert.equal(await statusText(page), 'Connected');
    const chans = await waitFor('main, display, inputs and cursor over TLS in query-spice', async () => {
        const now = (await qmp.execute('query-spice')).channels ?? [];
        const types = new Set(now.map((c) => c['channel-type']));
        if (!Object.values(CHANNEL).every((ty) => types.has(ty)))
            throw new Error(`channel types so far: ${[...types]}`);
        return now;
    }, SCREEN_MS);
    for (const c of chans)
        assert.equal(c.tls, true, `a channel not over TLS: ${JSON.stringify(c)}`);
    // The inputs channel linked and authenticated over TLS too.
    await waitForInputs(page);
    assert.ok(!own.proxy.output.includes(token), 'spicegate logged a token in full');
    await keepScreenshot(page, `console-tls-${mode}-${combo.browser}.png`);
}

for (const combo of combos) {
    const scheme = combo.scheme === 'https' ? 'https (page over HTTP/2, channels over wss)'
                                            : 'http (page over HTTP/1.1, channels over ws)';
    describe(`${combo.browser}, ${scheme}`, { skip: notInstalled(combo.browser) }, () => {
        test(`${combo.label}: the console shows the guest screen and takes keystrokes`,
             { timeout: 120_000 }, tracked((t) => consoleShowsGuestAndTakesKeys(t, combo)));
        test(`${combo.label}: a wrong token shows no screen and reaches no SPICE server`,
             { timeout: 60_000 }, tracked((t) => wrongTokenIsRefused(t, combo)));
        test(`${combo.label}: the token may travel in the websocket URL instead of the cookie`,
             { timeout: 60_000 }, tracked((t) => tokenInWebSocketUrl(t, combo)));
    });
}

// --- with Nova ----------------------------------------------------------------

// Issue 3's end-to-end case: the token comes from a real Nova (minted by
// ConsoleAuthToken.authorize(), as nova-compute does for
// `openstack console url show --spice`), and spicegate checks it through
// Nova's API with a Keystone service token. Keystone and Nova run on
// loopback from Debian's library packages (tests/nova/openstack_env.py).
// One browser is enough here: the first one installed, over http.
const PY = '/usr/bin/python3';
const SRCDIR = process.env.top_srcdir ?? path.resolve(HERE, '..', '..');
const OPENSTACK_ENV = path.join(SRCDIR, 'tests', 'nova', 'openstack_env.py');
const NOVA_COMBO = combos.find((c) => c.scheme === 'http' && installed(c.browser));

// Keystone and Nova on loopback for test @t (which stops them), in
// fx.dir/@name, and a console token they minted for the test's QEMU.
function startOpenStack(t, name) {
    const envDir = path.join(fx.dir, name);
    const openstack = (...args) => execFileSync(PY, [OPENSTACK_ENV, ...args, '--dir', envDir],
                                                { encoding: 'utf8', timeout: 180_000 });
    t.after(() => { try { openstack('stop'); } catch { /* already gone */ } });
    openstack('start');
    const env = JSON.parse(fs.readFileSync(path.join(envDir, 'env.json'), 'utf8'));
    const token = openstack('mint', '--host', '127.0.0.1', '--port', String(fx.spicePort)).trim();
    return { openstack, env, token };
}

function haveOpenStack() {
    try {
        execFileSync(PY, ['-c', 'import keystone, nova, keystonemiddleware'], { stdio: 'ignore' });
        return true;
    } catch {
        return false;
    }
}

test(`${NOVA_COMBO?.label ?? 'no browser'}: a Nova-minted token opens the console through spice_auto.html?token=T`,
     { timeout: 240_000, skip: (STANDIN && 'spicegate only') ||
                               (!NOVA_COMBO && 'no browser installed') ||
                               (!haveOpenStack() && 'python3-keystone/python3-nova not installed') },
     tracked(async (t) => {
    const { openstack, env, token } = startOpenStack(t, 'openstack');
    assert.match(token, /^[0-9a-f-]{36}$/, `mint printed ${token}`);

    const user = env.service_user;
    const config = path.join(fx.dir, 'spicegate-nova.conf');
    fs.writeFileSync(config, [
        '[tokens]', 'backend = nova',
        '[nova]',
        `auth_url = ${env.auth_url}`,
        `username = ${user.username}`,
        `password = ${user.password}`,
        `project_name = ${user.project_name}`,
        `user_domain_name = ${user.user_domain_name}`,
        `project_domain_name = ${user.project_domain_name}`,
        '',
    ].join('\n'));
    const portFile = path.join(fx.dir, 'nova-port');
    const proxy = startChild('spicegate (nova)', [
        process.env.SPICEGATE, '--config', config, '--listen', '127.0.0.1:0',
        '--port-file', portFile, '--web', SPICE_HTML5, '--pages', path.join(SRCDIR, 'web'),
    ]);
    t.after(() => stopChild(proxy));
    const port = Number(await waitFor('the Nova-backed spicegate port file', () => {
        if (proxy.exit)
            throw new Hopeless(`spicegate exited ${JSON.stringify(proxy.exit)}: ${proxy.output}`);
        const s = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8') : '';
        return /^\d+\n$/.test(s) && s;
    }, START_MS));

    // Nova's URL shape, exactly: html5proxy_base_url + ?token=, plus
    // Horizon's title. The token travels in spice_auto.html's cookie.
    const url = `http://127.0.0.1:${port}/spice_auto.html?token=${token}&title=nova-vm(${env.instance_uuid ?? randomUUID()})`;
    const { context, page } = await openConsole(NOVA_COMBO, token, url);
    t.after(() => context.close().catch(() => {}));
    await waitFor('the guest screen through the Nova-checked token', async () => {
        const s = await page.evaluate(readScreen);
        return s && s.colours >= 2 && s.lines >= 1 && s;
    }, SCREEN_MS);

    // spicegate asked Nova (once per token, however many channels), and
    // logged the session without the token.
    const lookups = Number(openstack('count-lookups', '--token', token).trim());
    assert.ok(lookups >= 1, `Nova saw ${lookups} lookups of the token`);
    await waitFor('an open line in the Nova-backed spicegate log',
                  () => /\] open client=.* target=127\.0\.0\.1:\d+ channel=main/.test(proxy.output), START_MS);
    assert.ok(!proxy.output.includes(token), 'the console token appeared in the log');
    assert.ok(!proxy.output.includes(user.password), 'the service password appeared in the log');
}));

// --- our console page, in each browser (over http; the tests above cover https) ---

for (const browser of WANTED) {
    const combo = { browser, scheme: 'http', label: `${browser}-http` };
    describe(`${browser}: the console page`, { skip: (STANDIN && 'spicegate only') || notInstalled(browser) }, () => {
        const each = (name, fn, timeout = 60_000) =>
            test(`${browser}: ${name}`, { timeout }, tracked((t) => fn(t, combo)));
        each('no token: the page says the link is incomplete', noTokenIsExplained);
        each('a dead target: the page says the console cannot be reached, and tries again', deadTargetIsExplained);
        each('the title is text: no markup from it runs, here or on the stock page', titleIsTextOnly, 90_000);
        each('framed by another site: draws, takes a key, fits 640x480 and 1600x1000', framedConsoleWorksAndFits, 120_000);
        each('focus on click; fullscreen fills the screen, keeping the aspect ratio', fullscreenFits);
        each('keyboard only: release, Tab, the Keys menu reaches QEMU, Ctrl-Alt-Del resets the guest', ctrlAltDelByKeyboard);
        each('QEMU killed: the page says the console was closed, Reconnect brings it back', qemuKilledIsExplained, 90_000);
        each('spicegate stopped, then killed: the page says so and reconnects when it is back', proxyStopIsExplainedAndRecovered, 120_000);
        test(`${browser}: an expired session (real Nova, enforce_session_timeout): the page says the console time is over`,
             { timeout: 240_000, skip: !haveOpenStack() && 'python3-keystone/python3-nova not installed' },
             tracked((t) => expiredSessionIsExplained(t, combo)));
        each('a SPICE password: the page asks for it, and connects with the right one', passwordIsAskedFor);
        each('TLS to the SPICE server, tls = auto: the console opens over QEMU\'s TLS port',
             (t, c) => tlsConsoleOpens(t, c, 'auto'), 90_000);
        each('TLS to the SPICE server, tls = always: the console opens over QEMU\'s TLS port',
             (t, c) => tlsConsoleOpens(t, c, 'always'), 90_000);
    });
}
