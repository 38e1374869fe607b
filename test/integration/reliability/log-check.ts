/**
 * Item 12 of the reliability battery: the logs of a run hold no private keys, payment codes, ID or phone
 * numbers. Each reliability test file scans the logs of its own platform with this checker (the files run in
 * separate processes), and logs.test.ts scans one platform that ran a mix of everything.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';

export interface UsedSecrets {
  /** Payment codes (AuthCode, auth_code) sent in requests. */
  authCodes?: Iterable<string>;
  /** ID numbers (patient_card_no, …) sent in requests. */
  idNumbers?: Iterable<string>;
  /** Phone numbers (Tel, …) sent in requests. */
  phones?: Iterable<string>;
  /** Anything else that must never be logged: AccessTokens, signatures, patient names. */
  values?: Iterable<string>;
  /** Private keys in use (e.g. the platform key): their Base64 material is searched for. */
  privateKeys?: Iterable<KeyObject | string>;
}

export interface LogScan {
  bytes: number;
  lines: number;
  /** How many distinct strings and patterns were searched for. */
  searched: number;
  /** What was found, masked (never the secret itself). */
  findings: string[];
}

const KEY_DIR = 'test/fixtures/keys';

/** The Base64 lines of a PEM private key (each a 64-character run of the key's DER). */
function keyMaterial(pem: string): string[] {
  return pem
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length >= 32 && !l.startsWith('-----'));
}

/** The private test keys of the repository (test/fixtures/keys/*.pem holding a PRIVATE KEY). */
export const TEST_PRIVATE_KEYS: Array<{ name: string; lines: string[] }> = fs
  .readdirSync(KEY_DIR)
  .filter((f) => f.endsWith('.pem'))
  .map((f) => ({ name: f, text: fs.readFileSync(path.join(KEY_DIR, f), 'utf8') }))
  .filter((k) => k.text.includes('PRIVATE KEY'))
  .map((k) => ({ name: k.name, lines: keyMaterial(k.text) }));

const mask = (s: string) => `${s.slice(0, 3)}…(${s.length} chars)`;

/** Patterns that must not occur whatever was sent: key headers, unmasked personal numbers. */
const PATTERNS: Array<[string, RegExp]> = [
  ['a PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['an unmasked mobile number', /(?<![0-9])1[3-9][0-9]{9}(?![0-9])/],
  ['an unmasked 18-character ID number', /(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])/],
  ['an unmasked 16–24 digit number (payment code, card)', /(?<![0-9A-Za-z])[0-9]{16,24}(?![0-9A-Za-z])/],
];

export function scanLogs(logs: string, used: UsedSecrets = {}): LogScan {
  const findings: string[] = [];
  let searched = 0;
  for (const [what, re] of PATTERNS) {
    searched++;
    const m = re.exec(logs);
    if (m) findings.push(`${what}: ${mask(m[0])}`);
  }
  for (const key of TEST_PRIVATE_KEYS) {
    for (const line of key.lines) {
      searched++;
      if (logs.includes(line)) {
        findings.push(`key material of ${key.name}`);
        break;
      }
    }
  }
  for (const k of used.privateKeys ?? []) {
    const pem = typeof k === 'string' ? k : k.export({ type: 'pkcs8', format: 'pem' }).toString();
    for (const line of keyMaterial(pem)) {
      searched++;
      if (logs.includes(line)) {
        findings.push('key material of a private key in use');
        break;
      }
    }
  }
  const exact: Array<[string, Iterable<string> | undefined]> = [
    ['payment code', used.authCodes],
    ['ID number', used.idNumbers],
    ['phone number', used.phones],
    ['secret value', used.values],
  ];
  for (const [what, list] of exact) {
    for (const v of new Set(list ?? [])) {
      if (v.length < 6) continue; // too short to mean anything
      searched++;
      if (logs.includes(v)) findings.push(`${what} ${mask(v)}`);
    }
  }
  return { bytes: Buffer.byteLength(logs), lines: logs.split('\n').length - 1, searched, findings };
}

/** Asserts that the logs hold none of the secrets; returns the scan's figures for the report. */
export function assertNoSecrets(logs: string, used: UsedSecrets = {}): LogScan {
  assert.ok(logs.length > 0, 'the platform logged something (the scan is not vacuous)');
  const scan = scanLogs(logs, used);
  assert.deepEqual(scan.findings, [], `secrets in the logs:\n${scan.findings.join('\n')}`);
  return scan;
}
