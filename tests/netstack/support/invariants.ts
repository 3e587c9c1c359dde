/**
 * The per-step invariants of the TCP property tests (specs/netstack.md §12.3), checked on the
 * connection records a Harness learned about and on its FakeTransport's streams.
 */
import assert from "node:assert/strict";
import type { TcpConn } from "../../../src/netstack/tcp_conn.ts";
import type { Harness } from "./harness.ts";
import { describe } from "./segments.ts";

const le = (a: number, b: number) => ((a - b) | 0) <= 0;

export interface Caps {
  rcvCap: number;
  sndCap: number;
  /** How far past sndCap the send queue may go: the largest chunk the remote pushes. */
  sndSlack: number;
}

export class Invariants {
  #adv = new WeakMap<TcpConn, number>();
  constructor(private h: Harness, private caps: Caps) {}

  /** Throws (AssertionError) naming `step` when an invariant does not hold. */
  check(step: string): void {
    const h = this.h;
    for (const c of h.live()) {
      const where = `${step}: ${c.state} una ${c.sndUna} nxt ${c.sndNxt} max ${c.sndMax}`;
      assert.ok(le(c.sndUna, c.sndNxt), `SND.UNA > SND.NXT after ${where}`);
      assert.ok(le(c.sndNxt, c.sndMax), `SND.NXT > SND.MAX after ${where}`);
      if (c.state === "pending" || c.state === "syn-received") continue;
      const prev = this.#adv.get(c);
      if (prev !== undefined) {
        assert.ok(le(prev, c.rcvAdv), `RCV.ADV moved left ${prev} → ${c.rcvAdv} after ${where}`);
      }
      this.#adv.set(c, c.rcvAdv);
      assert.ok(le(c.rcvNxt, c.rcvAdv), `RCV.NXT ${c.rcvNxt} > RCV.ADV ${c.rcvAdv} after ${where}`);
      // The scaled window field is rounded up, so the ring may take up to 2^R − 1 bytes more.
      const slack = 2 ** c.rShift - 1;
      assert.ok(c.recvQueued <= this.caps.rcvCap + slack, `receive queue over rcvCap: ${where}`);
      assert.ok(
        c.sendQueued <= this.caps.sndCap + this.caps.sndSlack,
        `send queue over sndCap: ${where}`,
      );
    }
    for (const s of h.transport.opens) {
      assert.equal(s.writesWhileBlocked, 0, `wrote to a blocked stream after ${step}`);
      assert.equal(s.writesAfterClose, 0, `wrote to a closed stream after ${step}`);
    }
    assert.deepEqual(h.orphans.map(describe), [], `packets for tuples not in the table (${step})`);
  }
}
