/** `ssm-proxy emulator`: run the local AWS until Ctrl-C. */
import { ExitCode, UserError } from "../errors.ts";

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
  const { startEmulator } = await import("../emulator/server.ts");
  let emu;
  try {
    emu = await startEmulator({
      hostname,
      port: Number(m[2]),
      fixturesPath: o.fixtures,
      pacing: o.pacing,
      log: (l) => console.error(l),
    });
  } catch (e) {
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
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => stop.resolve());
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  await stop.promise;
  await emu.close();
}
