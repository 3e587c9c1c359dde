/** `ssm-proxy emulator`: run the local AWS until Ctrl-C or SIGTERM (then exit 0 within 1 s). */
import { ExitCode, UserError } from "../errors.ts";
import { exitStopped, Stopped, StopSignals, within } from "../signals.ts";

export interface EmulatorCliOptions {
  listen: string;
  fixtures?: string;
  pacing: boolean;
}

export async function runEmulator(o: EmulatorCliOptions): Promise<void> {
  const m = /^(.*):(\d+)$/.exec(o.listen);
  if (!m) {
    throw new UserError(
      `--listen wants host:port, got ${JSON.stringify(o.listen)}`,
      ExitCode.Usage,
    );
  }
  const hostname = m[1].replace(/^\[|\]$/g, "");
  const stop = new StopSignals();
  const { startEmulator } = await import("../emulator/server.ts");
  let emu;
  try {
    emu = await stop.race(startEmulator({
      hostname,
      port: Number(m[2]),
      fixturesPath: o.fixtures,
      pacing: o.pacing,
      log: (l) => console.error(l),
    }));
  } catch (e) {
    if (e instanceof Stopped) exitStopped(`emulator stopped (${e.signal}) while starting`);
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UserError(
        `${o.listen} is already in use: choose another with --listen`,
        ExitCode.Usage,
      );
    }
    throw e;
  }
  console.log(`emulator listening on ${emu.url} (pacing ${o.pacing ? "on" : "off"})`);
  console.log(`  export AWS_ENDPOINT_URL=${emu.url} AWS_REGION=us-east-1`);
  console.log(
    "  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true",
  );
  for (const i of emu.fixtures.instances) {
    console.log(`  instance ${i.id} ${i.name ?? ""} ${i.state} ${i.pingStatus}`);
  }
  for (const [from, to] of Object.entries(emu.fixtures.destinations)) {
    console.log(`  destination ${from} dialled at ${to}`);
  }
  const sig = await stop.stopped;
  // Shell sessions' processes are killed as the sessions close; a client that never finishes
  // its close handshake (or a keep-alive connection) must not hold the process past the bound.
  const closed = await within(emu.close(), CLOSE_MS);
  exitStopped(`emulator stopped (${sig})${closed ? "" : "; some connections were cut"}`);
}

/** The whole close, sessions and HTTP server, leaving a margin under the 1 s contract. */
const CLOSE_MS = 700;
