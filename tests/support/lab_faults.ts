/**
 * Faults and long transfers for lab tests: a slow reader whose transfer spans the faults, and
 * emulator faults POSTed from inside the laptop (the way a user would reach the emulator).
 */
import assert from "node:assert/strict";
import { blobSha256 } from "../../scripts/lab/blob.ts";
import type { ExecResult, Lab } from "../../scripts/lab.ts";
import { EMULATOR_PORT } from "../../scripts/lab/stack.ts";

/** Reads the blob slowly (about 3 MB/s) so the transfer spans the faults; prints JSON. */
const SLOW_READER = `
import { createHash } from "node:crypto";
const res = await fetch(Deno.args[0], { signal: AbortSignal.timeout(120_000) });
const h = createHash("sha256");
let bytes = 0;
for await (const c of res.body) {
  h.update(c);
  bytes += c.length;
  await new Promise((r) => setTimeout(r, Math.ceil(c.length / 3000)));
}
console.log(JSON.stringify({ status: res.status, bytes, sha256: h.digest("hex") }));
`;

const FAULT = `
const r = await fetch(Deno.args[0], { method: "POST", body: Deno.args[1] });
console.log(await r.text());
`;

/** Write the helper scripts into the lab's directory (once per lab). */
export async function installFaultScripts(lab: Lab): Promise<void> {
  await Deno.writeTextFile(`${lab.dir}/slow_reader.ts`, SLOW_READER);
  await Deno.writeTextFile(`${lab.dir}/fault.ts`, FAULT);
}

/** POST one fault to the emulator; `hitsSessions`: it must have hit at least one session. */
export async function fault(lab: Lab, body: object, hitsSessions = true): Promise<void> {
  const r = await lab.exec("laptop", [
    Deno.execPath(),
    "run",
    "-A",
    `${lab.dir}/fault.ts`,
    `http://${lab.instanceAddress}:${EMULATOR_PORT}/_emulator/faults`,
    JSON.stringify(body),
  ]);
  assert.ok(r.success, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.ok(
    doc.ok && (!hitsSessions || doc.sessions.length > 0),
    `fault ${JSON.stringify(body)}: ${r.stdout}`,
  );
}

/** GET /blob?size=N from the laptop at about 3 MB/s. */
export function slowTransfer(lab: Lab, size: number): Promise<ExecResult> {
  return lab.exec("laptop", [
    Deno.execPath(),
    "run",
    "-A",
    `${lab.dir}/slow_reader.ts`,
    `http://${lab.serviceAddress}/blob?size=${size}`,
  ]);
}

export function checkTransfer(r: ExecResult, size: number): void {
  assert.ok(r.success, r.stderr);
  const got = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.equal(got.status, 200);
  assert.equal(got.bytes, size);
  assert.equal(got.sha256, blobSha256(size), "the transfer was corrupted");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
