/**
 * smux protocol v1 frames (specs/ssm-protocol.md §8; xtaci/smux). Pure: encode one frame, and a
 * streaming parser, because smux frames are split across and merged within data-channel
 * messages arbitrarily.
 *
 * Header (8 bytes): ver(1)=1 | cmd(1) | length(2, little-endian) | streamId(4, little-endian)
 */

export const SMUX_VERSION = 1;
export const SMUX_HEADER = 8;
/** xtaci/smux default MaxFrameSize. */
export const SMUX_MAX_FRAME = 32768;

export const Cmd = { SYN: 0, FIN: 1, PSH: 2, NOP: 3 } as const;
export type CmdValue = typeof Cmd[keyof typeof Cmd];

export interface SmuxFrame {
  cmd: CmdValue;
  streamId: number;
  data: Uint8Array;
}

export class SmuxError extends Error {
  override name = "SmuxError";
}

const EMPTY = new Uint8Array(0);

export function encodeFrame(cmd: CmdValue, streamId: number, data: Uint8Array = EMPTY): Uint8Array {
  if (data.length > 0xffff) throw new SmuxError(`smux frame of ${data.length} bytes`);
  const out = new Uint8Array(SMUX_HEADER + data.length);
  const v = new DataView(out.buffer);
  out[0] = SMUX_VERSION;
  out[1] = cmd;
  v.setUint16(2, data.length, true);
  v.setUint32(4, streamId >>> 0, true);
  out.set(data, SMUX_HEADER);
  return out;
}

/** Split a payload into PSH frames of at most `max` bytes each, concatenated. */
export function encodePsh(streamId: number, data: Uint8Array, max = SMUX_MAX_FRAME): Uint8Array {
  if (data.length <= max) return encodeFrame(Cmd.PSH, streamId, data);
  const n = Math.ceil(data.length / max);
  const out = new Uint8Array(data.length + n * SMUX_HEADER);
  let o = 0;
  for (let i = 0; i < data.length; i += max) {
    const f = encodeFrame(Cmd.PSH, streamId, data.subarray(i, Math.min(i + max, data.length)));
    out.set(f, o);
    o += f.length;
  }
  return out;
}

/**
 * Incremental parser: push bytes in any chunking, take whole frames out. A bad version or
 * command is a protocol error (xtaci/smux closes the session on it), reported by throwing.
 */
export class SmuxParser {
  #buf = new Uint8Array(0);

  push(chunk: Uint8Array): SmuxFrame[] {
    let buf: Uint8Array;
    if (this.#buf.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.#buf.length + chunk.length);
      buf.set(this.#buf, 0);
      buf.set(chunk, this.#buf.length);
    }
    const frames: SmuxFrame[] = [];
    let o = 0;
    while (buf.length - o >= SMUX_HEADER) {
      const ver = buf[o];
      const cmd = buf[o + 1];
      if (ver !== SMUX_VERSION) throw new SmuxError(`smux version ${ver}`);
      if (cmd > Cmd.NOP) throw new SmuxError(`smux command ${cmd}`);
      const len = buf[o + 2] | (buf[o + 3] << 8);
      if (buf.length - o < SMUX_HEADER + len) break;
      const sid = (buf[o + 4] | (buf[o + 5] << 8) | (buf[o + 6] << 16) | (buf[o + 7] << 24)) >>> 0;
      frames.push({
        cmd: cmd as CmdValue,
        streamId: sid,
        data: buf.slice(o + SMUX_HEADER, o + SMUX_HEADER + len),
      });
      o += SMUX_HEADER + len;
    }
    this.#buf = o === buf.length ? new Uint8Array(0) : buf.slice(o);
    return frames;
  }

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.#buf.length;
  }
}
