/**
 * ZIP as Alipay serves its bills: entry names in GBK without the UTF-8 flag (bit 11), as Windows tools
 * write them. fflate does the (de)compression; this file only handles the names and checks the CRCs
 * (fflate's unzipSync does not).
 */
import { crc32 } from 'node:zlib';
import { unzipSync, zipSync, type Zippable } from 'fflate';
import iconv from 'iconv-lite';

export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

const EOCD_SIG = 0x06054b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const UTF8_FLAG = 0x0800;

interface CentralEntry {
  nameBytes: Buffer;
  utf8: boolean;
  crc: number;
  centralOffset: number;
  localOffset: number;
}

export class ZipError extends Error {
  override readonly name = 'ZipError';
}

function readCentral(buf: Buffer): CentralEntry[] {
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535.
  let eocd = -1;
  for (let i = buf.length - 22; i >= 0 && i >= buf.length - 22 - 0xffff; i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('not a zip file (no end of central directory)');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries: CentralEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== CENTRAL_SIG)
      throw new ZipError('broken central directory');
    const flags = buf.readUInt16LE(p + 8);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const localOffset = buf.readUInt32LE(p + 42);
    if (p + 46 + nameLen > buf.length) throw new ZipError('broken central directory');
    entries.push({
      nameBytes: buf.subarray(p + 46, p + 46 + nameLen),
      utf8: (flags & UTF8_FLAG) !== 0,
      crc: buf.readUInt32LE(p + 16),
      centralOffset: p,
      localOffset,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Reads every file of a zip, names decoded (UTF-8 if flagged, else GBK), CRCs checked. Throws ZipError. */
export function readZip(zip: Uint8Array): ZipEntry[] {
  const buf = Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
  const central = readCentral(buf);
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip);
  } catch (e) {
    throw new ZipError(`not a readable zip file: ${(e as Error).message}`);
  }
  const seen = new Set<string>();
  return central.map((c) => {
    // fflate names an entry by its bytes as UTF-8 when flagged, else as latin1.
    const fflateName = c.nameBytes.toString(c.utf8 ? 'utf8' : 'latin1');
    const name = c.utf8 ? c.nameBytes.toString('utf8') : iconv.decode(c.nameBytes, 'gbk');
    if (seen.has(fflateName)) throw new ZipError(`the zip holds ${name} twice`);
    seen.add(fflateName);
    const data = files[fflateName];
    if (data === undefined) throw new ZipError(`cannot read ${name} from the zip`);
    if (crc32(data) >>> 0 !== c.crc >>> 0) throw new ZipError(`${name} is corrupt (CRC mismatch)`);
    return { name, data };
  });
}

/**
 * Builds a zip whose entry names are GBK bytes without the UTF-8 flag. fflate writes names as UTF-8, so the
 * entries are written under ASCII stand-ins of the same byte length, then renamed in place.
 */
export function buildGbkZip(entries: readonly ZipEntry[], mtime: Date): Buffer {
  const gbkNames = entries.map((e) => iconv.encode(e.name, 'gbk'));
  const standIns = gbkNames.map((b, i) => `${i}`.padStart(b.length, '_'));
  standIns.forEach((s, i) => {
    if (s.length !== gbkNames[i]?.length)
      throw new RangeError(`zip entry name too short: ${entries[i]?.name}`);
  });
  const zippable: Zippable = {};
  entries.forEach((e, i) => {
    zippable[standIns[i] as string] = [e.data, { mtime, level: 6 }];
  });
  const out = Buffer.from(zipSync(zippable));
  for (const c of readCentral(out)) {
    const i = standIns.indexOf(c.nameBytes.toString('latin1'));
    const gbk = gbkNames[i];
    if (gbk === undefined) throw new Error('zip rename: entry not found');
    gbk.copy(out, c.centralOffset + 46);
    if (out.readUInt32LE(c.localOffset) !== LOCAL_SIG) throw new Error('zip rename: local header not found');
    gbk.copy(out, c.localOffset + 30);
  }
  return out;
}
