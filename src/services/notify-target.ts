import { BlockList, isIP } from 'node:net';

/**
 * Where hospay may POST a notification (lc.trade.notify): the HIS's notify_url must not reach hospay's own
 * machine or network (blind SSRF). Every address is classified:
 *
 * - public: delivered;
 * - private (RFC 1918, CGNAT 100.64/10, IPv6 unique-local fc00::/7, and the documentation and benchmarking
 *   ranges, which are not routed on the Internet and so only exist inside some network): delivered only when
 *   the app's allow-list (apps.notify_private_cidrs) contains it — a hospital's HIS on its intranet;
 * - loopback (127/8, ::1): never, except with HOSPAY_NOTIFY_ALLOW_LOOPBACK=1 (development and tests only);
 * - forbidden (unspecified, link-local, cloud metadata, multicast, broadcast, reserved): never.
 *
 * An IPv4 address embedded in IPv6 (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) is classified as that
 * IPv4 address. The door checks the URL's text (services/h5-pay.ts checkNotifyUrl); the notifier checks every
 * address the host name resolves to at delivery, and connects only to a checked address (notify-http.ts).
 */

export type AddressKind = 'public' | 'private' | 'loopback' | 'forbidden';

export interface AddressClass {
  kind: AddressKind;
  /** What the address is, in English ("a loopback address") and Chinese, for refusals. */
  en: string;
  zh: string;
  /** The address the allow-list is checked with: the embedded IPv4 address, or the address itself. */
  address: string;
  family: 'ipv4' | 'ipv6';
  /** The prefix length of the range that classified it (an allow-list entry may not be wider). */
  prefix: number;
}

type Rule = readonly [cidr: string, kind: AddressKind, en: string, zh: string];

const LOOPBACK: [string, string] = ['a loopback address', '本机回环地址'];
const PRIVATE: [string, string] = ['a private address', '内网地址'];
const METADATA: [string, string] = ['a cloud metadata address', '云主机元数据地址'];
const RESERVED: [string, string] = ['a reserved address', '保留地址'];
const INNER: [string, string] = [
  'a documentation/benchmarking address (not routed on the Internet)',
  '文档或测试保留地址（不在公网路由）',
];

/** First match wins: the single cloud-metadata addresses come before the private ranges that hold them. */
const V4_RULES: readonly Rule[] = [
  ['255.255.255.255/32', 'forbidden', 'the broadcast address', '广播地址'],
  ['0.0.0.0/8', 'forbidden', 'an unspecified ("this network") address', '未指定地址'],
  ['127.0.0.0/8', 'loopback', ...LOOPBACK],
  [
    '169.254.0.0/16',
    'forbidden',
    'a link-local address (cloud metadata services live here)',
    '链路本地地址（云主机元数据服务所在）',
  ],
  ['100.100.100.200/32', 'forbidden', ...METADATA], // Alibaba Cloud
  ['168.63.129.16/32', 'forbidden', ...METADATA], // Azure's host endpoint
  ['192.0.0.0/24', 'forbidden', ...RESERVED], // IETF protocol assignments (Oracle Cloud metadata 192.0.0.192)
  ['192.88.99.0/24', 'forbidden', ...RESERVED], // 6to4 relay anycast (deprecated)
  ['224.0.0.0/4', 'forbidden', 'a multicast address', '组播地址'],
  ['240.0.0.0/4', 'forbidden', ...RESERVED],
  ['10.0.0.0/8', 'private', ...PRIVATE],
  ['172.16.0.0/12', 'private', ...PRIVATE],
  ['192.168.0.0/16', 'private', ...PRIVATE],
  ['100.64.0.0/10', 'private', 'a shared (carrier-grade NAT) address', '运营商级 NAT 共享地址'],
  ['198.18.0.0/15', 'private', ...INNER],
  ['192.0.2.0/24', 'private', ...INNER],
  ['198.51.100.0/24', 'private', ...INNER],
  ['203.0.113.0/24', 'private', ...INNER],
];

const V6_RULES: readonly Rule[] = [
  ['::/128', 'forbidden', 'the unspecified address', '未指定地址'],
  ['::1/128', 'loopback', ...LOOPBACK],
  ['fd00:ec2::254/128', 'forbidden', ...METADATA], // AWS IMDS over IPv6
  ['::/96', 'forbidden', ...RESERVED], // IPv4-compatible (deprecated)
  ['::ffff:0:0:0/96', 'forbidden', ...RESERVED], // SIIT
  ['64:ff9b:1::/48', 'forbidden', ...RESERVED], // local-use NAT64
  ['100::/64', 'forbidden', ...RESERVED], // discard
  ['2001:db8::/32', 'private', ...INNER],
  ['2001::/23', 'forbidden', ...RESERVED], // IETF protocol assignments, Teredo 2001::/32
  ['3fff::/20', 'private', ...INNER],
  ['5f00::/16', 'forbidden', ...RESERVED], // SRv6 SIDs
  ['fc00::/7', 'private', 'a unique local (private) address', '内网地址（IPv6 唯一本地地址）'],
  ['fe80::/10', 'forbidden', 'a link-local address', '链路本地地址'],
  ['fec0::/10', 'forbidden', 'a site-local address (deprecated)', '站点本地地址（已废弃）'],
  ['ff00::/8', 'forbidden', 'a multicast address', '组播地址'],
  ['2000::/3', 'public', 'a public address', '公网地址'],
  // Anything else in IPv6 is not (yet) global unicast.
  ['::/0', 'forbidden', ...RESERVED],
];

interface CompiledRule {
  list: BlockList;
  kind: AddressKind;
  en: string;
  zh: string;
  prefix: number;
}

function compile(rules: readonly Rule[], family: 'ipv4' | 'ipv6'): CompiledRule[] {
  return rules.map(([cidr, kind, en, zh]) => {
    const [net, bits] = cidr.split('/');
    const list = new BlockList();
    const prefix = Number(bits);
    list.addSubnet(net ?? '', prefix, family);
    return { list, kind, en, zh, prefix };
  });
}

const V4 = compile(V4_RULES, 'ipv4');
const V6 = compile(V6_RULES, 'ipv6');

/** The 16 bytes of an IPv6 address (already known to be one: net.isIP === 6, no zone), or null. */
export function ipv6Bytes(text: string): Uint8Array | null {
  let s = text;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = ipv4Bytes(s.slice(lastColon + 1));
    if (!v4) return null;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const head = words(halves[0] ?? '');
  const rest = halves.length === 2 ? words(halves[1] ?? '') : [];
  const fill = 8 - head.length - rest.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const all = [...head, ...new Array<number>(fill).fill(0), ...rest];
  if (tail.length) all.splice(6, 2, ...tail);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const w = all[i] ?? NaN;
    if (!Number.isInteger(w) || w < 0 || w > 0xffff) return null;
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  }
  return bytes;
}

function ipv4Bytes(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255))
    return null;
  return parts.map(Number);
}

const v4Text = (b: ArrayLike<number>, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** The IPv4 address carried by an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 (2002::/16) IPv6 address. */
function embeddedIpv4(b: Uint8Array): string | null {
  const zero = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4Text(b, 12);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4Text(b, 12);
  if (b[0] === 0x20 && b[1] === 0x02) return v4Text(b, 2);
  return null;
}

function first(rules: CompiledRule[], address: string, family: 'ipv4' | 'ipv6'): AddressClass {
  for (const r of rules) {
    if (r.list.check(address, family))
      return { kind: r.kind, en: r.en, zh: r.zh, address, family, prefix: r.prefix };
  }
  return { kind: 'public', en: 'a public address', zh: '公网地址', address, family, prefix: 0 };
}

/**
 * What an IP address is (see the module comment); null when `text` is not an IP address. Accepts an IPv6
 * address in brackets and with a zone (fe80::1%eth0: scoped, so never public).
 */
export function classifyAddress(text: string): AddressClass | null {
  // A pure function of the text, asked for the same few addresses (each HIS's) on every delivery: kept.
  const known = classified.get(text);
  if (known !== undefined) return known;
  const c = classifyUncached(text);
  if (classified.size >= 1000) classified.clear();
  classified.set(text, c === null ? null : Object.freeze(c));
  return c;
}

const classified = new Map<string, AddressClass | null>();

function classifyUncached(text: string): AddressClass | null {
  let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const v = isIP(s);
  if (v === 4) return first(V4, s, 'ipv4');
  if (v !== 6) return null;
  const bytes = ipv6Bytes(s);
  if (!bytes) return { kind: 'forbidden', ...pair(RESERVED), address: s, family: 'ipv6', prefix: 128 };
  const v4 = embeddedIpv4(bytes);
  if (v4 !== null) {
    const c = first(V4, v4, 'ipv4');
    return zone >= 0 && c.kind === 'public' ? { ...c, kind: 'forbidden', ...pair(RESERVED) } : c;
  }
  const c = first(V6, s.toLowerCase(), 'ipv6');
  return zone >= 0 && c.kind === 'public' ? { ...c, kind: 'forbidden', ...pair(RESERVED) } : c;
}

const pair = ([en, zh]: [string, string]) => ({ en, zh });

// ---- the app's allow-list --------------------------------------------------------------------------------

/** At most this many allow-list entries per app. */
export const MAX_ALLOWLIST_ENTRIES = 64;

/**
 * An allow-list entry in its stored form ("10.20.0.0/16", "fd12:3456::/48"; a bare address is /32 or /128),
 * or why it is refused. An entry must lie inside one private range: the allow-list widens what is private,
 * it never admits loopback, link-local, metadata or public space.
 */
export function parseAllowListEntry(text: string): { cidr: string } | { why: string; zh: string } {
  const m = /^\s*([0-9a-fA-F:.]+)(?:\/([0-9]{1,3}))?\s*$/.exec(text);
  const notCidr = {
    why: `"${text}" is not an IP address or CIDR range (host names are not accepted: give the addresses they resolve to)`,
    zh: `"${text}" 不是 IP 地址或 CIDR 网段（不接受域名，请填写其解析到的地址段）`,
  };
  if (!m) return notCidr;
  const address = m[1] ?? '';
  const family = isIP(address);
  if (family === 0) return notCidr;
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return notCidr;
  const bytes = family === 4 ? Uint8Array.from(ipv4Bytes(address) ?? []) : ipv6Bytes(address);
  if (!bytes || bytes.length !== max / 8) return notCidr;
  if (family === 6 && embeddedIpv4(bytes) !== null)
    return {
      why: `"${text}": write the IPv4 range itself, not its IPv6 form`,
      zh: `"${text}"：请直接填写 IPv4 网段`,
    };
  // The network address: host bits cleared.
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const network = family === 4 ? v4Text(bytes, 0) : ipv6Text(bytes);
  const c = classifyAddress(network);
  if (!c || c.kind !== 'private' || prefix < c.prefix)
    return {
      why: `"${text}" is not inside a private range (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, …); loopback, link-local, metadata and public addresses cannot be allowed`,
      zh: `"${text}" 不在内网地址段内（10/8、172.16/12、192.168/16、100.64/10、fc00::/7 等）；本机、链路本地、元数据和公网地址不能加入白名单`,
    };
  return { cidr: `${network}/${prefix}` };
}

function ipv6Text(b: Uint8Array): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // The canonical (RFC 5952) form, as the URL parser writes it.
  return new URL(`http://[${words.join(':')}]/`).hostname.slice(1, -1);
}

/** Validates an allow-list (admin API, CLI): the entries in stored form, or the first refusal. */
export function parseAllowList(entries: unknown): { cidrs: string[] } | { why: string; zh: string } {
  if (!Array.isArray(entries) || !entries.every((e) => typeof e === 'string'))
    return { why: 'must be an array of CIDR ranges', zh: '须为 CIDR 网段数组' };
  if (entries.length > MAX_ALLOWLIST_ENTRIES)
    return {
      why: `at most ${MAX_ALLOWLIST_ENTRIES} entries`,
      zh: `至多 ${MAX_ALLOWLIST_ENTRIES} 项`,
    };
  const cidrs: string[] = [];
  for (const e of entries as string[]) {
    const r = parseAllowListEntry(e);
    if ('why' in r) return r;
    if (!cidrs.includes(r.cidr)) cidrs.push(r.cidr);
  }
  return { cidrs };
}

/** The stored allow-list (apps.notify_private_cidrs, JSON text) as a list; anything unreadable is empty. */
export function allowListEntries(json: string | null | undefined): string[] {
  if (!json) return [];
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.filter((e): e is string => typeof e === 'string') : [];
  } catch {
    return [];
  }
}

export interface NotifyPolicy {
  /** HOSPAY_NOTIFY_ALLOW_LOOPBACK: loopback addresses allowed (development and tests only). */
  allowLoopback: boolean;
  /** The app's private ranges; null = none. */
  allow: BlockList | null;
  /** Identifies the policy: connections made under one policy are reused only under the same policy. */
  key: string;
}

const compiled = new Map<string, BlockList | null>();

/** The policy for one app: its allow-list (JSON text as stored) compiled once and kept. */
export function notifyPolicy(allowLoopback: boolean, allowListJson: string | null | undefined): NotifyPolicy {
  const text = allowListJson ?? '[]';
  let allow = compiled.get(text);
  if (allow === undefined) {
    const entries = allowListEntries(text).flatMap((e) => {
      const r = parseAllowListEntry(e);
      return 'cidr' in r ? [r.cidr] : [];
    });
    allow = null;
    for (const cidr of entries) {
      const [net, bits] = cidr.split('/');
      allow ??= new BlockList();
      allow.addSubnet(net ?? '', Number(bits), isIP(net ?? '') === 4 ? 'ipv4' : 'ipv6');
    }
    if (compiled.size > 1000) compiled.clear();
    compiled.set(text, allow);
  }
  return { allowLoopback, allow, key: `${allowLoopback ? 'L' : '-'}${text}` };
}

export interface Refusal {
  en: string;
  zh: string;
}

/** null when the policy lets hospay connect to `c`; otherwise why not. `shown`: how to name it. */
export function refusal(c: AddressClass, policy: NotifyPolicy, shown: string): Refusal | null {
  if (c.kind === 'public') return null;
  if (c.kind === 'loopback' && policy.allowLoopback) return null;
  if (c.kind === 'private') {
    if (policy.allow?.check(c.address, c.family)) return null;
    return {
      en: `internal addresses are not allowed: ${shown} is ${c.en} and not in the app's notify allow-list`,
      zh: `不允许内网地址：${shown} 是${c.zh}，且不在该应用的通知地址白名单内`,
    };
  }
  return {
    en: `internal addresses are not allowed: ${shown} is ${c.en}`,
    zh: `不允许内网或本机地址：${shown} 是${c.zh}`,
  };
}

/** Host names that are loopback by definition (RFC 6761) or name a cloud metadata service. */
function specialName(host: string): AddressClass | null {
  if (host === 'localhost' || host.endsWith('.localhost'))
    return { kind: 'loopback', ...pair(LOOPBACK), address: '127.0.0.1', family: 'ipv4', prefix: 8 };
  if (
    host === 'metadata' ||
    host === 'metadata.google.internal' ||
    host === 'metadata.tencentyun.com' ||
    host === 'instance-data' ||
    host.endsWith('.metadata.google.internal')
  )
    return {
      kind: 'forbidden',
      en: 'a cloud metadata host name',
      zh: '云主机元数据服务域名',
      address: host,
      family: 'ipv4',
      prefix: 32,
    };
  return null;
}

/** The URL's host without brackets and trailing dots, lower-case. */
export function bareHost(url: URL): string {
  const h = url.hostname.toLowerCase();
  const unbracketed = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
  return unbracketed.replace(/\.+$/, '');
}

/**
 * What can be told from a notify_url's text alone (the door, and again before each delivery): the scheme, no
 * userinfo, and, when the host is an IP address or a special name, whether it may be reached. A host name is
 * otherwise accepted here and its addresses checked at delivery.
 */
export function checkNotifyUrlText(text: string, policy: NotifyPolicy): Refusal | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { en: 'must be an absolute http(s) URL', zh: '须为完整的 http(s) 地址' };
  }
  return checkNotifyUrl(u, policy);
}

export function checkNotifyUrl(u: URL, policy: NotifyPolicy): Refusal | null {
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return { en: 'must be an http(s) URL', zh: '须为 http(s) 地址' };
  if (u.username !== '' || u.password !== '')
    return { en: 'must not contain userinfo (user@)', zh: '不得包含用户信息（user@）' };
  const host = bareHost(u);
  if (host === '') return { en: 'must name a host', zh: '须包含主机名' };
  const c = classifyAddress(host) ?? specialName(host);
  return c ? refusal(c, policy, host) : null;
}
