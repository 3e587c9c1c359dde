/**
 * Picks the NetPlatform for this OS, loading only that OS's module (and its FFI) on demand.
 */
import { UserError } from "../errors.ts";
import type { NetPlatform } from "./types.ts";

export async function netPlatform(): Promise<NetPlatform> {
  switch (Deno.build.os) {
    case "linux": {
      const { linuxPlatform } = await import("./linux.ts");
      return linuxPlatform();
    }
    case "darwin": {
      // A literal specifier, so `deno compile` bundles it (a computed one would be left out).
      const { darwinPlatform } = await import("./darwin.ts");
      return darwinPlatform();
    }
    default:
      throw new UserError(`the tunnel is not supported on ${Deno.build.os} (Linux and macOS only)`);
  }
}
