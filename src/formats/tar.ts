/**
 * A small POSIX ustar writer and reader: regular files and directories only, names up to 255 bytes (prefix +
 * name), what a backup of the embedded database's directory needs. The reader checks each header's checksum and
 * refuses anything it does not understand rather than guessing.
 */

export interface TarEntry {
  /** Relative path with "/" separators; a directory's without a trailing slash. */
  path: string;
  type: 'file' | 'dir';
  /** A file's bytes (empty for a directory). */
  data: Uint8Array;
  /** Permission bits (e.g. 0o600). */
  mode: number;
  mtime: Date;
}

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

const BLOCK = 512;

function writeString(h: Buffer, text: string, at: number, len: number): void {
  const b = Buffer.from(text, 'utf8');
  if (b.length > len) throw new TarError(`tar field too long: ${text}`);
  b.copy(h, at);
}

function writeOctal(h: Buffer, n: number, at: number, len: number): void {
  writeString(h, `${n.toString(8).padStart(len - 1, '0')}\0`, at, len);
}

/** Splits a long name into ustar's prefix (at most 155 bytes) and name (at most 100 bytes) at a "/". */
function splitName(p: string): { prefix: string; name: string } {
  if (Buffer.byteLength(p) <= 100) return { prefix: '', name: p };
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { prefix, name };
  }
  throw new TarError(`path too long for a tar entry: ${p}`);
}

function header(e: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const { prefix, name } = splitName(e.type === 'dir' ? `${e.path}/` : e.path);
  writeString(h, name, 0, 100);
  writeOctal(h, e.mode & 0o7777, 100, 8);
  writeOctal(h, 0, 108, 8);
  writeOctal(h, 0, 116, 8);
  writeOctal(h, e.type === 'file' ? e.data.length : 0, 124, 12);
  writeOctal(h, Math.floor(e.mtime.getTime() / 1000), 136, 12);
  h.fill(0x20, 148, 156); // the checksum field counts as spaces while summing
  h[156] = e.type === 'file' ? 0x30 : 0x35;
  writeString(h, 'ustar\0', 257, 6);
  writeString(h, '00', 263, 2);
  writeString(h, prefix, 345, 155);
  let sum = 0;
  for (const byte of h) sum += byte;
  writeString(h, `${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** The entries as one tar archive (ending with the two zero blocks). */
export function writeTar(entries: Iterable<TarEntry>): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.type === 'file' && e.data.length) {
      parts.push(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length));
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

function readString(b: Buffer, at: number, len: number): string {
  const s = b.subarray(at, at + len);
  const end = s.indexOf(0);
  return s.subarray(0, end === -1 ? len : end).toString('utf8');
}

function readOctal(b: Buffer, at: number, len: number, what: string): number {
  const t = readString(b, at, len).trim();
  if (!/^[0-7]*$/.test(t)) throw new TarError(`tar header: bad ${what}`);
  return t ? parseInt(t, 8) : 0;
}

/** Reads a tar archive written by writeTar (or any ustar of files and directories); throws TarError if damaged. */
export function readTar(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  let at = 0;
  while (at + BLOCK <= buf.length) {
    const h = buf.subarray(at, at + BLOCK);
    if (h.every((x) => x === 0)) return out;
    const stored = readOctal(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
    if (sum !== stored) throw new TarError(`tar header checksum mismatch at byte ${at}`);
    const prefix = readString(h, 345, 155);
    const name = readString(h, 0, 100);
    const full = (prefix ? `${prefix}/${name}` : name).replace(/\/+$/, '');
    const size = readOctal(h, 124, 12, 'size');
    const mode = readOctal(h, 100, 8, 'mode');
    const mtime = new Date(readOctal(h, 136, 12, 'mtime') * 1000);
    const flag = String.fromCharCode(h[156] ?? 0);
    at += BLOCK;
    if (at + size > buf.length) throw new TarError('tar archive truncated');
    if (flag === '0' || flag === '\0') {
      out.push({ path: full, type: 'file', data: buf.subarray(at, at + size), mode, mtime });
    } else if (flag === '5') {
      out.push({ path: full, type: 'dir', data: new Uint8Array(0), mode, mtime });
    } else throw new TarError(`tar entry type "${flag}" not supported (${full})`);
    at += Math.ceil(size / BLOCK) * BLOCK;
  }
  throw new TarError('tar archive truncated (no end blocks)');
}
