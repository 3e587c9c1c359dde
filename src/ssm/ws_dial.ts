/**
 * Dialing for ws_client.ts: URL and proxy selection, the CONNECT tunnel and the HTTP/1.1
 * upgrade handshake (RFC 6455 §4.1), each on an already-connected stream.
 */
import { concat } from "../bytequeue.ts";

/** Could not connect, or the server refused the upgrade. */
export class WsConnectError extends Error {
  override name = "WsConnectError";
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_HEAD = 16 * 1024;
const enc = new TextEncoder();

export interface Target {
  secure: boolean;
  /** As in the URL: IPv6 literals keep their brackets. */
  hostname: string;
  port: number;
  /** Host header value: the port only when not the default. */
  host: string;
  /** Path and query exactly as given. */
  path: string;
  /** For messages: no query string (it is opaque and may be long). */
  show: string;
}

export function parseWsUrl(url: string): Target {
  const u = new URL(url);
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new WsConnectError(`not a WebSocket URL: ${u.protocol}`);
  }
  const secure = u.protocol === "wss:";
  // The URL parser may re-encode the path; the server gets exactly what we were given.
  const raw = /^wss?:\/\/[^/?#]*([^#]*)/i.exec(url)?.[1] ?? "";
  const path = raw === "" ? "/" : raw.startsWith("?") ? `/${raw}` : raw;
  return {
    secure,
    hostname: u.hostname,
    port: u.port ? Number(u.port) : secure ? 443 : 80,
    host: u.host,
    path,
    show: `${u.protocol}//${u.host}${u.pathname}`,
  };
}

/** The proxy to use for `url` per HTTPS_PROXY / HTTP_PROXY / NO_PROXY, or null. */
export function proxyFor(url: string, env: (name: string) => string | undefined): string | null {
  const u = new URL(url);
  const proxy = u.protocol === "wss:"
    ? env("HTTPS_PROXY") ?? env("https_proxy")
    : env("HTTP_PROXY") ?? env("http_proxy");
  if (!proxy) return null;
  const host = unbracket(u.hostname).toLowerCase();
  const noProxy = (env("NO_PROXY") ?? env("no_proxy") ?? "").split(",");
  for (let entry of noProxy) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === "*") return null;
    entry = entry.replace(/^\[?([^\]]*?)\]?(:\d+)?$/, "$1").replace(/^\*?\./, "");
    if (host === entry || host.endsWith(`.${entry}`)) return null;
  }
  return proxy;
}

export function parseProxy(proxy: string): URL {
  const u = new URL(proxy.includes("://") ? proxy : `http://${proxy}`);
  if (u.protocol !== "http:") {
    throw new WsConnectError(`unsupported proxy ${u.protocol}//${u.host} (only http:// proxies)`);
  }
  return u;
}

export async function tunnel(conn: Deno.Conn, proxy: URL, authority: string): Promise<void> {
  let req = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  if (proxy.username || proxy.password) {
    const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    req += `Proxy-Authorization: Basic ${base64(enc.encode(cred))}\r\n`;
  }
  await writeAll(conn, enc.encode(req + "\r\n"));
  const { status, rest } = await readHead(conn);
  if (!/^HTTP\/1\.[01] 2\d\d/.test(status)) {
    throw new WsConnectError(`proxy ${proxy.host} refused CONNECT ${authority}: ${status}`);
  }
  if (rest.length > 0) throw new WsConnectError(`proxy ${proxy.host} sent data after CONNECT`);
}

/** Send the upgrade request, check the 101; returns bytes read past the response head. */
export async function upgrade(conn: Deno.Conn, t: Target): Promise<Uint8Array> {
  const key = base64(crypto.getRandomValues(new Uint8Array(16)));
  const req = `GET ${t.path} HTTP/1.1\r\nHost: ${t.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  await writeAll(conn, enc.encode(req));
  const { status, headers, rest } = await readHead(conn);
  if (!/^HTTP\/1\.1 101\b/.test(status)) {
    throw new WsConnectError(`${t.show} refused the WebSocket upgrade: ${status}`);
  }
  const digest = await crypto.subtle.digest("SHA-1", enc.encode(key + GUID));
  const bad = (why: string) => new WsConnectError(`${t.show}: bad upgrade response (${why})`);
  if (headers.get("sec-websocket-accept") !== base64(new Uint8Array(digest))) {
    throw bad("wrong Sec-WebSocket-Accept");
  }
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") throw bad("Upgrade is not websocket");
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get("connection") ?? "")) {
    throw bad("Connection is not Upgrade");
  }
  if (headers.has("sec-websocket-extensions")) throw bad("an extension we did not ask for");
  return rest;
}

/** Read an HTTP/1.x response head; `rest` is whatever followed it. */
async function readHead(
  conn: Deno.Conn,
): Promise<{ status: string; headers: Map<string, string>; rest: Uint8Array }> {
  let data: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  for (;;) {
    const end = indexOfCrlfCrlf(data);
    if (end >= 0) {
      const lines = new TextDecoder().decode(data.subarray(0, end)).split("\r\n");
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const c = line.indexOf(":");
        if (c > 0) headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
      }
      return { status: lines[0], headers, rest: data.slice(end + 4) };
    }
    if (data.length > MAX_HEAD) throw new WsConnectError("response head too long");
    const n = await conn.read(buf);
    if (n === null) throw new WsConnectError("connection closed during the HTTP handshake");
    data = concat([data, buf.subarray(0, n)]);
  }
}

function indexOfCrlfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

function base64(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b));
}

export function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
