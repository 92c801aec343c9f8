// SPDX-License-Identifier: Apache-2.0
//
// ticket.js - spicegate's replacement for spice-html5's ticket.js.
//
// spice-html5 encrypts the SPICE ticket (the password, empty for Nova
// consoles) with RSA-OAEP-SHA1 under the key from the server's link reply.
// Its own rsa_encrypt() turns the result into bytes through a hex string and
// so drops leading zero bytes: about one ciphertext in 256 is a byte short,
// the SPICE server fails to decrypt it ("failed to decrypt RSA encrypted
// password") and that channel dies with "Permission denied". A console
// opens four or more channels, so roughly one console in sixty fails to
// open. This module exports the same two functions with the ciphertext
// always exactly as long as the modulus (RFC 8017, I2OSP). spicegate serves
// it in place of spice-html5's file (our pages win over the spice-html5
// root); everything else of spice-html5 is used as Debian ships it.

import { BigInteger } from './thirdparty/jsbn.js';
import { rstr_sha1 } from './thirdparty/sha1.js';

const SHA1_BYTES = 20;

function sha1(bytes) {
    const digest = rstr_sha1(String.fromCharCode(...bytes));
    return Array.from(digest, (c) => c.charCodeAt(0));
}

function randomBytes(n) {
    const out = new Uint8Array(n);
    crypto.getRandomValues(out);
    return Array.from(out);
}

// MGF1 with SHA-1 (RFC 8017, B.2.1).
function mgf1(seed, length) {
    const mask = [];
    for (let counter = 0; mask.length < length; counter++) {
        const c = [(counter >>> 24) & 255, (counter >>> 16) & 255, (counter >>> 8) & 255, counter & 255];
        mask.push(...sha1(seed.concat(c)));
    }
    return mask.slice(0, length);
}

// EME-OAEP encoding with an empty label (RFC 8017, 7.1.1 step 2).
function oaepEncode(message, k) {
    const padLength = k - message.length - 2 * SHA1_BYTES - 2;
    if (padLength < 0)
        return null;
    const db = sha1([]).concat(new Array(padLength).fill(0), [1], message);
    const seed = randomBytes(SHA1_BYTES);
    const dbMask = mgf1(seed, db.length);
    const maskedDb = db.map((b, i) => b ^ dbMask[i]);
    const seedMask = mgf1(maskedDb, SHA1_BYTES);
    const maskedSeed = seed.map((b, i) => b ^ seedMask[i]);
    return [0].concat(maskedSeed, maskedDb);
}

// A DER reader just large enough for an RSA SubjectPublicKeyInfo:
// SEQUENCE { SEQUENCE { algorithm }, BIT STRING { SEQUENCE { n, e } } }.
function readTlv(bytes, at, expectedTag) {
    if (bytes[at] !== expectedTag)
        throw new Error(`DER: tag ${bytes[at]} where ${expectedTag} was expected`);
    let length = bytes[at + 1];
    let start = at + 2;
    if (length & 0x80) {
        const count = length & 0x7f;
        if (count < 1 || count > 2)
            throw new Error('DER: unsupported length');
        length = 0;
        for (let i = 0; i < count; i++)
            length = (length << 8) | bytes[start + i];
        start += count;
    }
    if (start + length > bytes.length)
        throw new Error('DER: truncated');
    return { start, end: start + length };
}

function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Same contract as spice-html5's: the key from the link reply buffer @mb
// starting at @at, or null.
function create_rsa_from_mb(mb, at) {
    try {
        const u8 = new Uint8Array(mb);
        const spki = readTlv(u8, at || 0, 0x30);
        const algorithm = readTlv(u8, spki.start, 0x30);
        const bits = readTlv(u8, algorithm.end, 0x03);
        // A BIT STRING starts with its count of unused bits: 0 here.
        const key = readTlv(u8, bits.start + 1, 0x30);
        const n = readTlv(u8, key.start, 0x02);
        const e = readTlv(u8, n.end, 0x02);
        let nBytes = u8.subarray(n.start, n.end);
        while (nBytes.length > 1 && nBytes[0] === 0)
            nBytes = nBytes.subarray(1);
        // The bundled jsbn only has modPowInt(): the exponent must fit in
        // 32 bits (SPICE servers use 65537).
        if (e.end - e.start > 4)
            throw new Error('public exponent too large');
        let exponent = 0;
        for (let i = e.start; i < e.end; i++)
            exponent = exponent * 256 + u8[i];
        return { n: new BigInteger(bytesToHex(nBytes), 16), e: exponent, k: nBytes.length };
    } catch (err) {
        console.log(`Error: cannot read the server's public key: ${err.message}`);
        return null;
    }
}

// Same contract as spice-html5's: RSA-OAEP-SHA1 of the string @str (one
// byte per character), as an array of exactly key.k bytes, or null.
function rsa_encrypt(key, str) {
    const message = Array.from(str, (c) => c.charCodeAt(0) & 255);
    const encoded = oaepEncode(message, key.k);
    if (!encoded) {
        console.log('Error - data too large for key size.');
        return null;
    }
    const m = new BigInteger(bytesToHex(encoded), 16);
    const hex = m.modPowInt(key.e, key.n).toString(16).padStart(2 * key.k, '0');
    const out = [];
    for (let i = 0; i < hex.length; i += 2)
        out.push(parseInt(hex.substring(i, i + 2), 16));
    return out;
}

export {
    create_rsa_from_mb,
    rsa_encrypt,
};
