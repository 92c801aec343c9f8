// SPDX-License-Identifier: Apache-2.0
//
// spicegate-console.js - the console page (spice_auto.html) around
// spice-html5.
//
// spice-html5's modules are imported from the spice-html5 web root as the
// package installs them (spicegate serves both roots at "/"): main.js runs
// the SPICE channels and draws into #spice-screen. This module adds what a
// person needs around it: a status line, a message and an action for every
// way a console ends (from the WebSocket close code spicegate sends, see
// the README's table), Ctrl-Alt-Del and other key combinations, scaling to
// the window, fullscreen and keyboard focus. Every text comes from
// spicegate-messages.js and reaches the DOM as text only.

import * as SpiceHtml5 from './main.js';
import { SpiceMiniData, SpiceMsgcKeyDown, SpiceMsgcKeyUp } from './spicemsg.js';
import { Constants } from './enums.js';
import { DETAIL, ENDINGS, KEY_COMBOS, STATUS, UI, format } from './spicegate-messages.js';

const $ = (id) => document.getElementById(id);

// Automatic reconnection after a lost connection or a proxy restart: this
// many tries, these seconds apart (about half a minute in all), then a
// button. A console link lives minutes (Nova's token_ttl: 10 by default):
// past this it may well have expired, and the person should decide.
const RETRY_DELAYS_S = [1, 2, 4, 8, 15];
// How long an error from spice-html5 waits for the WebSocket's close code,
// which says more, before it is shown on its own.
const SETTLE_MS = 400;
// The agent's resolution requests are sent once the window stops changing.
const AGENT_RESIZE_MS = 300;
// A first attempt lost without a close code is repeated once, this soon.
const FIRST_RETRY_MS = 1000;

// --- the URL: spice_auto.html's query parameters ------------------------------

// The last non-empty value of @name, as spicegate itself reads the token;
// URLSearchParams decodes %-escapes and '+' as spice_auto.html does.
function queryValue(query, name) {
    const values = query.getAll(name).filter((v) => v !== '');
    return values.length > 0 ? values[values.length - 1] : null;
}

// The console token and the SPICE password do not stay in the address bar,
// where the history (synced or not), bookmarks and screen shares keep
// them: this tab's sessionStorage keeps them instead, so that a reload
// still opens the console.
const SECRETS = ['token', 'password'];

function storage() {
    try {
        return window.sessionStorage;
    } catch (e) {
        return null;            // storage blocked (a sandboxed or third-party frame)
    }
}

function readParams() {
    const query = new URLSearchParams(window.location.search);
    const kept = storage();
    const secret = (name) => {
        const value = queryValue(query, name);
        try {
            if (value !== null)
                kept?.setItem(`spicegate-${name}`, value);
            return value ?? kept?.getItem(`spicegate-${name}`) ?? null;
        } catch (e) {
            return value;
        }
    };
    // Unknown parameters (Skyline's language, ...) are ignored.
    return {
        host: queryValue(query, 'host'),
        port: queryValue(query, 'port'),
        path: queryValue(query, 'path'),
        token: secret('token'),
        password: secret('password') ?? '',
        encrypt: queryValue(query, 'encrypt'),
        title: queryValue(query, 'title'),
    };
}

function dropSecretsFromUrl() {
    const query = new URLSearchParams(window.location.search);
    if (!SECRETS.some((name) => query.has(name)))
        return;
    for (const name of SECRETS)
        query.delete(name);
    const rest = query.toString();
    try {
        window.history.replaceState(window.history.state, '',
                                    `${window.location.pathname}${rest ? `?${rest}` : ''}` +
                                    window.location.hash);
    } catch (e) {
        // A frame that may not change its URL keeps it as it was.
    }
}

// The websocket URL: by default the host and port that served this page,
// path "websockify", ws or wss as the page (or wss with encrypt=1). The
// token goes in the URL's query as well as in the cookie: a browser that
// blocks the cookie of a page framed by another site (Horizon's iframe)
// still sends the URL. The Content-Security-Policy allows websockets to
// this page's own host and port only.
function socketUrl(params) {
    const secure = window.location.protocol === 'https:' ||
                   /^(1|true|yes|on)$/i.test(params.encrypt ?? '');
    let host = params.host ?? window.location.hostname;
    if (host.includes(':') && !host.startsWith('['))
        host = `[${host}]`;
    const port = params.port ?? (window.location.port ||
                                 (window.location.protocol === 'https:' ? '443' : '80'));
    let path = params.path ?? 'websockify';
    if (!path.startsWith('/'))
        path = `/${path}`;
    const url = new URL(`${secure ? 'wss' : 'ws'}://${host}:${port}${path}`);
    if (params.token && !url.searchParams.has('token'))
        url.searchParams.set('token', params.token);
    return url.href;
}

// The cookie nova-spicehtml5proxy reads (spice_auto.html sets it too): for
// this session only, never sent to another site.
function setTokenCookie(token) {
    const secure = window.location.protocol === 'https:' ? '; Secure' : '';
    document.cookie = `token=${encodeURIComponent(token)}; path=/; SameSite=Strict${secure}`;
}

// --- the page's state ------------------------------------------------------------

const params = readParams();
let uri = null;
let sc = null;                  // the SpiceMainConn of the current attempt
let everConnected = false;      // this page had a console (the link was good)
let settleTimer = null;
let lastError = null;           // spice-html5's last error of this attempt
let retry = null;               // { cause, attempt, timer } while reconnecting
let fit = true;                 // scale to the window; false: 1:1
let agent = false;              // the guest's SPICE agent answers
let agentTimer = null;
let retriedFirst = false;       // the one quiet retry of a first attempt was used
let password = params.password;  // the SPICE password: the URL's, or the one typed

function setStatus(state) {
    $('status').dataset.state = state;
    $('status-text').textContent = STATUS[state];
}

function setControls(enabled) {
    $('cad').disabled = !enabled;
    $('keys').disabled = !enabled;
    if (!enabled)
        closeMenu(false);
}

// --- connecting and ending ------------------------------------------------------------

function stopSpice() {
    clearTimeout(settleTimer);
    settleTimer = null;
    const old = sc;
    sc = null;
    if (old) {
        try {
            old.stop();
        } catch (e) {
            // a half-open connection may throw on cleanup; it is gone anyway
        }
    }
    setControls(false);
    agent = false;
    layout();
}

function connect() {
    stopSpice();
    lastError = null;
    hideNotice();
    setStatus(retry ? 'reconnecting' : 'connecting');
    let conn;
    try {
        conn = new SpiceHtml5.SpiceMainConn({
            uri,
            screen_id: 'spice-screen',
            message_id: 'message-div',
            password,
            onerror: (e) => onSpiceError(conn, e),
            onsuccess: () => onConnected(conn),
            onagent: () => onAgent(conn),
        });
    } catch (e) {
        lastError = e;
        end(typeof WebSocket === 'undefined' ? 'nosupport' : 'unknown', null);
        return;
    }
    sc = conn;
    // spice-html5 reports every ending as "Unexpected protocol mismatch"
    // or the like; the close code and reason spicegate sent say what
    // happened. The main channel's socket carries them.
    conn.ws.addEventListener('close', (e) => {
        if (sc === conn)
            end(null, { code: e.code, reason: e.reason });
    });
}

function onSpiceError(conn, e) {
    if (sc !== conn)
        return;
    lastError = e;
    // Wait a moment for the close code, which usually follows.
    if (settleTimer === null)
        settleTimer = setTimeout(() => { if (sc === conn) end(null, null); }, SETTLE_MS);
}

function onConnected(conn) {
    if (sc !== conn)
        return;
    everConnected = true;
    if (retry) {
        clearTimeout(retry.timer);
        retry = null;
    }
    hideNotice();
    setStatus('connected');
    setControls(true);
}

function onAgent(conn) {
    if (sc !== conn)
        return;
    agent = true;
    requestGuestSize();
}

// Which ENDINGS entry describes this end.
function endingKey(close, error) {
    const message = error instanceof Error ? error.message : '';
    if (/permission denied|bad password/i.test(message))
        return 'password';
    if (close) {
        if (close.code === 4403 && /origin/i.test(close.reason))
            return '4403:origin';
        if (close.code === 4403 && /channel/i.test(close.reason))
            return '4403:channel';
        if (close.code === 4408 && /idle/i.test(close.reason))
            return '4408:idle';
        if (close.code === 4429 && /address/i.test(close.reason))
            return '4429:address';
        if (close.code === 4429 && /this console/i.test(close.reason))
            return '4429:console';
        if (close.code === 4404 && /revoked/i.test(close.reason))
            return '4404:revoked';
        if (close.code === 4408 && /ping/i.test(close.reason))
            return '4408:ping';
        if (close.code === 1006 && !everConnected)
            return '1006.1';
        if (close.code in ENDINGS)
            return String(close.code);
        return 'unknown';
    }
    if (/timed out/i.test(message))
        return 'timeout';
    return 'unknown';
}

function end(key, close) {
    key ??= endingKey(close, lastError);
    stopSpice();
    // A first attempt that ends without a word (1006) is tried once more
    // before the page says the service cannot be reached: a blip, or a
    // refusal whose close frame was lost, then shows what it really is.
    if (key === '1006.1' && !retriedFirst) {
        retriedFirst = true;
        settleTimer = setTimeout(connect, FIRST_RETRY_MS);
        return;
    }
    const ending = ENDINGS[key];
    // Retry by itself only after a lost connection or a restart of the
    // proxy, only once this page has had a console (the link was good),
    // and never past an answer that says the link is not good any more
    // (then that answer is shown).
    if (ending.auto && everConnected) {
        retry ??= { cause: key, attempt: 0, timer: null };
        if (retry.attempt < RETRY_DELAYS_S.length) {
            scheduleRetry(close);
            return;
        }
        showNotice(retry.cause, close, UI.retryGaveUp);
        retry = null;
        setStatus('closed');
        return;
    }
    retry = null;
    showNotice(key, close, '');
    setStatus('closed');
}

function scheduleRetry(close) {
    const delay = RETRY_DELAYS_S[retry.attempt];
    retry.attempt += 1;
    const values = { attempt: retry.attempt, max: RETRY_DELAYS_S.length };
    showNotice(retry.cause, close, format(UI.retryIn, { ...values, seconds: delay }));
    setStatus('reconnecting');
    retry.timer = setTimeout(() => {
        $('notice-retry').textContent = format(UI.retrying, values);
        connect();
    }, delay * 1000);
}

// --- the notice: what happened and what to do ----------------------------------------

function showNotice(key, close, retryLine) {
    const ending = ENDINGS[key];
    const values = { host: window.location.host, origin: window.location.origin };
    $('notice-title').textContent = ending.title;
    $('notice-text').textContent = format(ending.text, values);
    $('notice-retry').textContent = retryLine;
    // The SPICE server's own refusal says more than the close after it.
    const spiceError = lastError instanceof Error ? lastError.message : '';
    $('notice-detail').textContent = close && key !== 'password'
        ? format(DETAIL, { code: close.code, reason: close.reason ? ` (${close.reason})` : '' })
        : spiceError;
    const action = $('notice-action');
    const reconnecting = retry !== null && retryLine !== '' && retryLine !== UI.retryGaveUp;
    action.hidden = ending.action === 'none' || ending.action === 'password' || reconnecting;
    action.textContent = ending.action === 'retry' ? UI.tryAgain : UI.reconnect;
    $('password-form').hidden = ending.action !== 'password';
    $('notice').hidden = false;
    $('hint').classList.remove('shown');
    document.title = pageTitle();
    if (!action.hidden)
        action.focus();
    else if (ending.action === 'password')
        $('password').focus();
}

function hideNotice() {
    $('notice').hidden = true;
    $('password-form').hidden = true;
}

// --- scaling ---------------------------------------------------------------------------

function screenCanvas() {
    return document.getElementById('spice_surface_0');
}

// Fit: the canvas is scaled, keeping its aspect ratio, to the largest size
// the stage holds, up or down. 1:1: pixel for pixel, the stage scrolls. A
// CSS transform, not a CSS size: spice-html5 takes mouse positions from
// offsetX/offsetY, which browsers give in the element's own (untransformed)
// pixels, so the pointer still lands on the right guest pixel.
function layout() {
    const canvas = screenCanvas();
    const screen = $('spice-screen');
    const stage = $('stage');
    stage.classList.toggle('one-to-one', !fit);
    if (!canvas) {
        screen.style.width = '';
        screen.style.height = '';
        return;
    }
    const w = canvas.width;
    const h = canvas.height;
    let scale = fit ? Math.min(stage.clientWidth / w, stage.clientHeight / h) : 1;
    // The agent sizes the guest to the stage in multiples of 8: what is
    // left over is a margin, not a reason to resample every pixel.
    const spareW = stage.clientWidth - w;
    const spareH = stage.clientHeight - h;
    if (fit && spareW >= 0 && spareW < 8 && spareH >= 0 && spareH < 8)
        scale = 1;
    canvas.style.transformOrigin = '0 0';
    canvas.style.transform = scale === 1 ? '' : `scale(${scale})`;
    screen.style.width = `${Math.floor(w * scale)}px`;
    screen.style.height = `${Math.floor(h * scale)}px`;
    screen.dataset.scale = String(scale);
}

// Where the guest runs the SPICE agent, ask it for a resolution that fills
// the stage (multiples of 8, as X servers want), so that fit is 1:1 again.
function requestGuestSize() {
    clearTimeout(agentTimer);
    if (!agent || !fit || !sc)
        return;
    agentTimer = setTimeout(() => {
        const stage = $('stage');
        const w = stage.clientWidth - (stage.clientWidth % 8);
        const h = stage.clientHeight - (stage.clientHeight % 8);
        if (sc && agent && w > 0 && h > 0)
            sc.resize_window(0, w, h, 32, 0, 0);
    }, AGENT_RESIZE_MS);
}

function watchScreen() {
    // spice-html5 creates the canvas when the guest's screen appears or
    // changes size, and sets the screen element's height itself.
    new MutationObserver(() => {
        const canvas = screenCanvas();
        if (canvas && !canvas.hasAttribute('aria-label')) {
            canvas.setAttribute('aria-label', UI.screen);
            canvas.setAttribute('role', 'img');
        }
        layout();
    }).observe($('spice-screen'), { childList: true, attributes: true, subtree: true,
                                    attributeFilter: ['width', 'height'] });
    new ResizeObserver(() => {
        layout();
        requestGuestSize();
    }).observe($('stage'));
}

// --- keys ------------------------------------------------------------------------------

function inputsReady() {
    return sc?.inputs?.state === 'ready';
}

// Press @codes in order, release them in reverse (PC scan codes, set 1).
function sendScancodes(codes) {
    if (!inputsReady())
        return;
    const send = (down, code) => {
        const key = down ? new SpiceMsgcKeyDown() : new SpiceMsgcKeyUp();
        key.code = down ? code : (code < 0x100 ? code | 0x80 : code | 0x8000);
        const msg = new SpiceMiniData();
        msg.build_msg(down ? Constants.SPICE_MSGC_INPUTS_KEY_DOWN
                           : Constants.SPICE_MSGC_INPUTS_KEY_UP, key);
        sc.inputs.send_msg(msg);
    };
    for (const code of codes)
        send(true, code);
    for (const code of [...codes].reverse())
        send(false, code);
}

function focusScreen() {
    screenCanvas()?.focus();
}

// Not spice-html5's sendCtrlAltDel(): it sends Delete's key-up as a second
// key-down (no break bit) and leaves Ctrl and Alt down in the guest until
// the page has seen a Ctrl key itself, so the password typed next would
// arrive as Ctrl+Alt+letters.
const CTRL_ALT_DEL = [0x1d, 0x38, 0xe0 | (0x53 << 8)];

function sendCtrlAltDel() {
    sendScancodes(CTRL_ALT_DEL);
    focusScreen();
}

// Ctrl+Alt+Shift gives the keyboard back to the page: while the screen has
// focus every key (Tab too) goes to the guest, so a keyboard-only user needs
// a way out. The guest saw Ctrl and Alt go down: it gets them released.
function onKeyCapture(e) {
    const canvas = screenCanvas();
    if (!canvas || document.activeElement !== canvas)
        return;
    if (!(e.ctrlKey && e.altKey && e.shiftKey))
        return;
    e.preventDefault();
    e.stopImmediatePropagation();
    if (inputsReady()) {
        for (const code of [0x1d, 0x38, 0x2a]) {
            const key = new SpiceMsgcKeyUp();
            key.code = code | 0x80;
            const msg = new SpiceMiniData();
            msg.build_msg(Constants.SPICE_MSGC_INPUTS_KEY_UP, key);
            sc.inputs.send_msg(msg);
        }
    }
    canvas.blur();
    $('scale').focus();
    hint(UI.released);
}

let hintTimer = null;
function hint(text) {
    $('hint').textContent = text;
    $('hint').classList.add('shown');
    clearTimeout(hintTimer);
    hintTimer = setTimeout(() => $('hint').classList.remove('shown'), 4000);
}

// --- the Keys menu ---------------------------------------------------------------------

function buildMenu() {
    const menu = $('keys-menu');
    for (const combo of KEY_COMBOS) {
        const item = document.createElement('button');
        item.type = 'button';
        item.setAttribute('role', 'menuitem');
        item.tabIndex = -1;
        item.textContent = combo.label;
        item.addEventListener('click', () => {
            sendScancodes(combo.codes);
            closeMenu(false);
            focusScreen();
        });
        menu.append(item);
    }
    menu.addEventListener('keydown', (e) => {
        const items = [...menu.querySelectorAll('[role=menuitem]')];
        const at = items.indexOf(document.activeElement);
        let next = null;
        if (e.key === 'ArrowDown')
            next = items[(at + 1) % items.length];
        else if (e.key === 'ArrowUp')
            next = items[(at - 1 + items.length) % items.length];
        else if (e.key === 'Home')
            next = items[0];
        else if (e.key === 'End')
            next = items[items.length - 1];
        else if (e.key === 'Escape' || e.key === 'Tab') {
            closeMenu(e.key === 'Escape');
            if (e.key === 'Escape')
                e.preventDefault();
            return;
        } else
            return;
        e.preventDefault();
        next.focus();
    });
    $('keys').addEventListener('click', () => {
        if (menu.hidden)
            openMenu();
        else
            closeMenu(true);
    });
    $('keys').addEventListener('keydown', (e) => {
        if (e.key === 'ArrowDown' && menu.hidden) {
            e.preventDefault();
            openMenu();
        }
    });
    document.addEventListener('pointerdown', (e) => {
        if (!menu.hidden && !e.target.closest('.menu'))
            closeMenu(false);
    });
}

function openMenu() {
    const menu = $('keys-menu');
    menu.hidden = false;
    $('keys').setAttribute('aria-expanded', 'true');
    menu.querySelector('[role=menuitem]').focus();
}

function closeMenu(refocus) {
    const menu = $('keys-menu');
    if (menu.hidden)
        return;
    menu.hidden = true;
    $('keys').setAttribute('aria-expanded', 'false');
    if (refocus)
        $('keys').focus();
}

// --- fullscreen ------------------------------------------------------------------------

function setupFullscreen() {
    const button = $('fullscreen');
    if (!document.fullscreenEnabled) {
        // In a frame without allow="fullscreen": say why, do not pretend.
        button.disabled = true;
        button.title = UI.fullscreenBlocked;
        return;
    }
    button.title = UI.fullscreenHint;
    button.addEventListener('click', () => {
        if (document.fullscreenElement)
            document.exitFullscreen().catch(() => {});
        else
            document.documentElement.requestFullscreen().then(focusScreen, () => {});
    });
    document.addEventListener('fullscreenchange', () => {
        button.textContent = document.fullscreenElement ? UI.fullscreenExit : UI.fullscreen;
        button.setAttribute('aria-pressed', document.fullscreenElement ? 'true' : 'false');
        layout();
    });
}

// --- start -------------------------------------------------------------------------------

function pageTitle() {
    const name = vmName();
    return name ? format(UI.pageTitleNamed, { name }) : UI.pageTitle;
}

// Horizon's title is "NAME(UUID)": show the name, as spice_auto.html does.
function vmName() {
    const title = params.title?.trim();
    if (!title)
        return '';
    const cut = title.indexOf('(');
    return (cut > 0 ? title.slice(0, cut) : title).trim();
}

function applyTexts() {
    $('bar').setAttribute('aria-label', UI.toolbar);
    $('cad').textContent = UI.ctrlAltDel;
    $('cad').title = UI.ctrlAltDelHint;
    $('keys').firstChild.textContent = `${UI.keys} `;
    $('keys').title = UI.keysHint;
    $('scale').textContent = UI.scaleFit;
    $('scale').title = UI.scaleFitHint;
    $('fullscreen').textContent = UI.fullscreen;
    $('password-label').textContent = UI.passwordLabel;
    $('password-submit').textContent = UI.passwordSubmit;
    // The instance name is text, never HTML.
    $('vm-name').textContent = vmName();
    $('vm-name').title = params.title ?? '';
    document.title = pageTitle();
}

function start() {
    applyTexts();
    buildMenu();
    setupFullscreen();
    watchScreen();
    window.addEventListener('keydown', onKeyCapture, true);

    $('cad').addEventListener('click', sendCtrlAltDel);
    $('scale').addEventListener('click', () => {
        fit = !fit;
        $('scale').setAttribute('aria-pressed', String(fit));
        layout();
        requestGuestSize();
    });
    $('notice-action').addEventListener('click', () => {
        retry = null;
        connect();
    });
    $('password-form').addEventListener('submit', (e) => {
        e.preventDefault();
        password = $('password').value;
        connect();
    });
    // A click anywhere on the stage gives the keyboard to the guest.
    $('stage').addEventListener('click', (e) => {
        if ($('notice').hidden && !e.target.closest('.notice'))
            focusScreen();
    });
    // Said once: where the keyboard goes, and the way back.
    $('spice-screen').addEventListener('focusin', () => hint(UI.keyboardCaptured), { once: true });

    dropSecretsFromUrl();
    if (params.token)
        setTokenCookie(params.token);
    try {
        uri = socketUrl(params);
    } catch (e) {
        lastError = e;
        end('unknown', null);
        return;
    }
    connect();
}

start();
