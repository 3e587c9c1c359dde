/**
 * The seams of agentless mode (DESIGN §9, specs/netstack.md): the pure packet codec, the sans-IO
 * TCP endpoint and DNS relay, and the stream transport (a pool of Port sessions) that carries
 * each connection to its real destination. The core sees bare IP packets; the Tun layer adds and
 * strips the macOS utun AF prefix.
 */

export type Family = 4 | 6;

/** A destination the instance dials: the IP as text (dotted quad or RFC 5952 IPv6) and a port. */
export interface Destination {
  family: Family;
  host: string;
  port: number;
}

/** What opening a remote stream came to (specs/netstack.md §1, §8). */
export type OpenResult = "ok" | "refused" | "unreachable" | "timeout";

/**
 * One remote byte stream (an smux stream of a Port session). `write` copies or keeps the view
 * synchronously; the caller may reuse its memory afterwards.
 */
export interface RemoteStream {
  /** Hand bytes to the stream. Only call while `writable()` is true (it may still queue). */
  write(data: Uint8Array): void;
  /** May more bytes be written now without piling up (the session's backpressure)? */
  writable(): boolean;
  /** We are done sending (smux has no half-close: this closes the stream). */
  close(): void;
  /** Tear the stream down at once (the app reset the connection). */
  abort(): void;
  /**
   * The stream's consumer is (not) keeping up: while paused, the transport stops taking more
   * remote data for it (and, for smux v1, for its whole session).
   */
  pause(paused: boolean): void;
}

/** What the transport reports about one stream, in order. */
export interface RemoteStreamEvents {
  /** The open came to a result; on "ok" the stream may be written. Called exactly once. */
  opened(result: OpenResult): void;
  /** Bytes from the destination, in order. The view is ours to keep. */
  data(chunk: Uint8Array): void;
  /** The destination ended the stream (remote EOF). */
  end(): void;
  /** The stream failed (session lost, refused after open): the connection must be reset. */
  aborted(reason: string): void;
  /** `writable()` became true again after being false. */
  writable(): void;
}

/** Opens remote streams: the session pool in production, an in-memory fake in tests. */
export interface StreamTransport {
  open(dst: Destination, events: RemoteStreamEvents): RemoteStream;
}
