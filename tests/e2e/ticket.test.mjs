// SPDX-License-Identifier: Apache-2.0
//
// ticket.test.mjs - web/ticket.js, our fix for spice-html5's SPICE ticket
// encryption, checked against OpenSSL: every ciphertext is exactly as long
// as the modulus (spice-html5's own drops leading zero bytes about once in
// 256) and OpenSSL's RSA-OAEP-SHA1 decrypts it to the ticket.
//
// The module is loaded as the browser loads it, from a scratch directory
// that mirrors the web root: our ticket.js beside spice-html5's thirdparty/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = process.env.top_srcdir || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const THIRDPARTY = '/usr/share/spice-html5/thirdparty';

// ticket.js draws its OAEP seed from crypto.getRandomValues(), a global in
// browsers and in node >= 19; node 18 (Debian 12's) has it as webcrypto only.
globalThis.crypto ??= webcrypto;

test('our ticket.js encrypts every ticket to a full-length ciphertext OpenSSL decrypts',
     { skip: !fs.existsSync(THIRDPARTY) && 'spice-html5 is not installed' }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spicegate-ticket-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));

    // Node loads .mjs as modules; jsbn.js peeks at `navigator` as browsers have it.
    fs.mkdirSync(path.join(dir, 'thirdparty'));
    fs.writeFileSync(path.join(dir, 'thirdparty', 'jsbn.js'),
                     'globalThis.navigator ??= { appName: "node" };\n' +
                     fs.readFileSync(path.join(THIRDPARTY, 'jsbn.js'), 'utf8'));
    fs.copyFileSync(path.join(THIRDPARTY, 'sha1.js'), path.join(dir, 'thirdparty', 'sha1.js'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}\n');
    fs.copyFileSync(path.join(SRC, 'web', 'ticket.js'), path.join(dir, 'ticket.js'));
    const { create_rsa_from_mb, rsa_encrypt } = await import(path.join(dir, 'ticket.js'));

    // A 1024-bit key, as SPICE servers use, made here and never kept.
    const keyPem = path.join(dir, 'key.pem');
    execFileSync('openssl', ['genrsa', '-out', keyPem, '1024'], { stdio: 'ignore' });
    const der = execFileSync('openssl', ['rsa', '-in', keyPem, '-pubout', '-outform', 'DER'],
                             { stdio: ['ignore', 'pipe', 'ignore'] });
    const key = create_rsa_from_mb(der.buffer.slice(der.byteOffset, der.byteOffset + der.length), 0);
    assert.ok(key, 'the public key was not read');
    assert.equal(key.k, 128);

    // 1,500 tickets: P(no ciphertext with a leading zero byte) = (255/256)^1500 < 0.3%,
    // and the test asserts it saw some, so the case the fix is about is covered.
    let leadingZero = 0;
    for (let i = 0; i < 1500; i++) {
        const ticket = `pw-${i}\0`;          // what spiceconn.js passes: password + NUL
        const ct = rsa_encrypt(key, ticket);
        assert.equal(ct.length, 128, `ticket ${i}: ${ct.length}-byte ciphertext`);
        if (ct[0] === 0)
            leadingZero++;
        if (ct[0] === 0 || i % 100 === 0) {
            const ctFile = path.join(dir, 'ct.bin');
            fs.writeFileSync(ctFile, Buffer.from(ct));
            const plain = execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', keyPem, '-in', ctFile,
                                                   '-pkeyopt', 'rsa_padding_mode:oaep'],
                                       { stdio: ['ignore', 'pipe', 'ignore'] });
            assert.equal(plain.toString('latin1'), ticket, `ticket ${i} did not decrypt`);
        }
    }
    assert.ok(leadingZero > 0, 'no ciphertext with a leading zero byte was produced');
    t.diagnostic(`${leadingZero} of 1500 ciphertexts started with a zero byte`);
});
