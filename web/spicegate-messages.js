// SPDX-License-Identifier: Apache-2.0
//
// spicegate-messages.js - every text the console page shows, in one place.
//
// To translate the page, translate this file (keep the keys and the {name}
// placeholders). Texts are plain text: the page puts them in the DOM with
// textContent only, never as HTML.

// The status line in the toolbar.
export const STATUS = {
    connecting: 'Connecting…',
    connected: 'Connected',
    reconnecting: 'Reconnecting…',
    closed: 'Disconnected',
};

// Labels of the controls (visible text and accessible names).
export const UI = {
    pageTitle: 'Console',
    pageTitleNamed: '{name} – Console',
    toolbar: 'Console controls',
    ctrlAltDel: 'Ctrl-Alt-Del',
    ctrlAltDelHint: 'Send Ctrl-Alt-Delete to the virtual machine',
    keys: 'Keys',
    keysHint: 'Send another key combination',
    scaleFit: 'Fit window',
    scaleFitHint: 'Scale the console to the window (on), or show it pixel for pixel (off)',
    fullscreen: 'Fullscreen',
    fullscreenExit: 'Exit fullscreen',
    fullscreenHint: 'Show the console on the whole screen',
    fullscreenBlocked: 'The page around this console does not allow fullscreen: open the console in its own tab',
    screen: 'Virtual machine screen. Click it, or press Tab to reach it, to type into the virtual machine. Ctrl+Alt+Shift gives the keyboard back to the page.',
    released: 'Keyboard released: Tab moves through the page again.',
    keyboardCaptured: 'Typing goes to the virtual machine. Ctrl+Alt+Shift releases the keyboard.',
    reconnect: 'Reconnect',
    tryAgain: 'Try again',
    retryIn: 'Reconnecting in {seconds} s (attempt {attempt} of {max})…',
    retrying: 'Reconnecting (attempt {attempt} of {max})…',
    retryGaveUp: 'Could not reconnect.',
    passwordLabel: 'Console password',
    passwordSubmit: 'Connect',
};

// The key combinations of the Keys menu: label and the PC (set 1) scan
// codes to press, in order, then release in reverse. 0xE0-prefixed keys are
// written 0xE0 | (code << 8), as SPICE sends them.
const F = [0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44, 0x57, 0x58];
export const KEY_COMBOS = [
    ...F.map((code, i) => ({ label: `Ctrl-Alt-F${i + 1}`, codes: [0x1d, 0x38, code] })),
    { label: 'Ctrl-Alt-Backspace', codes: [0x1d, 0x38, 0x0e] },
    { label: 'PrintScreen', codes: [0xe0 | (0x37 << 8)] },
];

// How a console ends. For each WebSocket close code (spicegate's, see the
// README's "WebSocket close codes") or page-side cause: a headline, what it
// means for the person, and the action offered:
//   reconnect  a button that connects again (the link is probably still good)
//   retry      the same, worded "Try again" (a passing problem)
//   none       nothing to retry here: the way out is in the text
// auto: a lost connection is retried a few times without asking, but only
// after the console had been connected (the link was good then) and never
// after an answer that says the link is not good any more.
export const ENDINGS = {
    1000: {
        title: 'The console was closed',
        text: 'The virtual machine\'s console ended this session: the console may have been opened in another window or by someone else (a console shows in one place at a time), or the machine was shut down, restarted or moved. Reconnect to take it back.',
        action: 'reconnect',
    },
    1001: {
        title: 'The console service restarted',
        text: 'The console service was stopped or restarted, which ended this session. The virtual machine was not affected.',
        action: 'reconnect',
        auto: true,
    },
    1003: {
        title: 'Something went wrong',
        text: 'The console service did not understand this page. Reload the page; if this keeps happening, tell your cloud\'s operators.',
        action: 'reconnect',
    },
    1006: {
        title: 'Connection lost',
        text: 'The connection to the console service was lost: check your network connection. The virtual machine keeps running.',
        action: 'reconnect',
        auto: true,
    },
    1006.1: {  // 1006 before the console was ever connected
        title: 'The console service cannot be reached',
        text: 'Your browser could not reach the console service at {host}. Check your network connection, or whether a firewall or proxy blocks it, then try again.',
        action: 'retry',
    },
    1011: {
        title: 'Something went wrong',
        text: 'The console service met an unexpected error. Try again; if this keeps happening, tell your cloud\'s operators.',
        action: 'retry',
    },
    4400: {
        title: 'The console could not start',
        text: 'The console service did not receive what it expected from this page. Reload the page and try again.',
        action: 'retry',
    },
    4401: {
        title: 'This console link is incomplete',
        text: 'The link has no console token. Open the console again from the dashboard (the instance\'s Console tab) or with "openstack console url show".',
        action: 'none',
    },
    4403: {
        title: 'This console cannot be opened here',
        text: 'The console service refused this console link. Open the console again from the dashboard; if this keeps happening, tell your cloud\'s operators.',
        action: 'none',
    },
    '4403:channel': {  // [spice] channels refused the main channel
        title: 'This console cannot be opened here',
        text: 'The console service does not allow this kind of console connection. Tell your cloud\'s operators: its channel settings refuse the connection every console starts with.',
        action: 'none',
    },
    '4403:origin': {
        title: 'This page may not open consoles',
        text: 'The console service does not accept consoles opened from this web address ({origin}). Open the console from the dashboard, or ask your cloud\'s operators to allow this address.',
        action: 'none',
    },
    4404: {
        title: 'This console link is invalid or has expired',
        text: 'Console links work for a short time only. Open the console again from the dashboard (the instance\'s Console tab) to get a new link.',
        action: 'none',
    },
    '4404:revoked': {
        title: 'This console is no longer available',
        text: 'The cloud no longer knows this console: the virtual machine may have been deleted, or its console reset. Open the console again from the dashboard if the machine still exists.',
        action: 'none',
    },
    4408: {
        title: 'The console did not start in time',
        text: 'This page took too long to start the console. Try again.',
        action: 'retry',
    },
    '4408:idle': {
        title: 'The console was closed after a time without activity',
        text: 'Nothing happened on this console for a while, so the console service closed it. The virtual machine keeps running. Reconnect to continue.',
        action: 'reconnect',
    },
    '4408:ping': {  // this browser did not answer the service's keepalive pings
        title: 'Connection lost',
        text: 'The console service stopped hearing from this browser (it may have been asleep, or its network interrupted), so it closed the console. The virtual machine keeps running.',
        action: 'reconnect',
        auto: true,
    },
    4409: {
        title: 'An administrator closed this console',
        text: 'The cloud\'s operators closed this console session. The virtual machine keeps running. Reconnect if you still need it.',
        action: 'reconnect',
    },
    4410: {
        title: 'Your console time is over',
        text: 'This console session reached the end of the time it was allowed. Open the console again from the dashboard to continue.',
        action: 'none',
    },
    4429: {
        title: 'The console service is busy',
        text: 'Too many consoles are open on the console service right now. Try again in a moment.',
        action: 'retry',
    },
    '4429:address': {
        title: 'Too many consoles are open from your address',
        text: 'The console service allows only so many consoles at once from one network address, which everyone behind the same network gateway shares. Close the consoles you no longer need, in other tabs or windows, then try again.',
        action: 'retry',
    },
    '4429:console': {
        title: 'This console is already open elsewhere',
        text: 'This console link is in use in other tabs or windows. Close them, then try again.',
        action: 'retry',
    },
    4502: {
        title: 'The console cannot be reached',
        text: 'The console service could not connect to the virtual machine\'s console. The machine may be stopped, or its host unreachable. Start the machine, or wait a moment, then try again.',
        action: 'retry',
    },
    4503: {
        title: 'The console link cannot be checked right now',
        text: 'The console service could not check this link with the cloud just now. Try again in a moment.',
        action: 'retry',
    },
    4504: {
        title: 'The console did not answer in time',
        text: 'The virtual machine\'s console did not answer in time: its host may be busy or unreachable. Try again in a moment.',
        action: 'retry',
    },
    4525: {
        title: 'The console\'s identity could not be checked',
        text: 'The console service could not set up a verified, encrypted connection to the virtual machine\'s console. The cloud\'s operators can find the reason in the console service\'s log.',
        action: 'none',
    },
    4526: {
        title: 'The console needs an encrypted connection',
        text: 'The virtual machine\'s console accepts only encrypted connections, and the console service does not know where to make one. The cloud\'s operators need to configure it.',
        action: 'none',
    },
    password: {
        title: 'This console needs a password',
        text: 'The virtual machine\'s console asks for a password, or refused the one given.',
        action: 'password',
    },
    timeout: {
        title: 'The console did not answer in time',
        text: 'The console took too long to start. Try again in a moment.',
        action: 'retry',
    },
    unknown: {
        title: 'The console was disconnected',
        text: 'The console ended unexpectedly. Try again; if this keeps happening, open it again from the dashboard.',
        action: 'retry',
    },
    nosupport: {
        title: 'This browser cannot show the console',
        text: 'The console needs WebSocket and canvas support: use a current version of Firefox, Chromium, Chrome, Edge or Safari.',
        action: 'none',
    },
};

// "Details:" line under the text, for someone asking for help: the code and
// the reason the server gave.
export const DETAIL = 'Details: close code {code}{reason}.';

// Fills {placeholders} of @text from @values (plain text in, plain text out).
export function format(text, values = {}) {
    return text.replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));
}
