// IPv4/IPv6 addresses and CIDR networks, as 16 bytes (IPv4 as ::ffff:a.b.c.d).

function hexDigit(c: i32): i32 {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

// Writes the IPv4 address in `s` into out[at..at+4]; false if it is not one.
function parseV4(s: string, out: Uint8Array, at: i32): bool {
  const parts = s.split(".");
  if (parts.length != 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (p.length == 0 || p.length > 3) return false;
    let n = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j);
      if (c < 48 || c > 57) return false;
      n = n * 10 + (c - 48);
    }
    if (n > 255 || (p.length > 1 && p.charCodeAt(0) == 48)) return false;
    out[at + i] = <u8>n;
  }
  return true;
}

// Parses groups of "a:b:c" into 16-bit words; null if malformed. An IPv4 tail counts two.
function groups(s: string, allowV4Tail: bool): u32[] | null {
  const words: u32[] = [];
  if (s.length == 0) return words;
  const parts = s.split(":");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (allowV4Tail && i == parts.length - 1 && p.includes(".")) {
      const b = new Uint8Array(4);
      if (!parseV4(p, b, 0)) return null;
      words.push((<u32>b[0] << 8) | b[1]);
      words.push((<u32>b[2] << 8) | b[3]);
      continue;
    }
    if (p.length == 0 || p.length > 4) return null;
    let n: u32 = 0;
    for (let j = 0; j < p.length; j++) {
      const d = hexDigit(p.charCodeAt(j));
      if (d < 0) return null;
      n = (n << 4) | <u32>d;
    }
    words.push(n);
  }
  return words;
}

/** The 16-byte form of an IPv4 or IPv6 address; null if `s` is neither. */
export function parseAddr(s: string): Uint8Array | null {
  const out = new Uint8Array(16);
  if (!s.includes(":")) {
    out[10] = 0xff;
    out[11] = 0xff;
    return parseV4(s, out, 12) ? out : null;
  }
  const dbl = s.indexOf("::");
  let words: u32[];
  if (dbl >= 0) {
    if (s.indexOf("::", dbl + 1) >= 0) return null;
    const head = groups(s.substring(0, dbl), false);
    const tail = groups(s.substring(dbl + 2), true);
    if (head == null || tail == null || head.length + tail.length > 7) return null;
    words = head.concat(new Array<u32>(8 - head.length - tail.length).fill(0)).concat(tail);
  } else {
    const all = groups(s, true);
    if (all == null || all.length != 8) return null;
    words = all;
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = <u8>(words[i] >> 8);
    out[2 * i + 1] = <u8>(words[i] & 0xff);
  }
  return out;
}

export class Network {
  constructor(public addr: Uint8Array, public bits: i32) {}

  contains(a: Uint8Array): bool {
    let bits = this.bits;
    for (let i = 0; i < 16 && bits > 0; i++) {
      const mask: u32 = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
      if ((<u32>a[i] & mask) != (<u32>this.addr[i] & mask)) return false;
      bits -= 8;
    }
    return true;
  }
}

/** `a.b.c.d/n` or `x:y::z/n` (a bare address is a /32 or /128); null if malformed. */
export function parseNetwork(s: string): Network | null {
  const slash = s.indexOf("/");
  const addrText = slash >= 0 ? s.substring(0, slash) : s;
  const addr = parseAddr(addrText);
  if (addr == null) return null;
  const v4 = !addrText.includes(":");
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const t = s.substring(slash + 1);
    if (t.length == 0 || t.length > 3) return null;
    bits = 0;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c < 48 || c > 57) return null;
      bits = bits * 10 + (c - 48);
    }
    if (bits > max) return null;
  }
  return new Network(addr, v4 ? bits + 96 : bits);
}
