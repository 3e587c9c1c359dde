/**
 * Picks the NetPlatform for this OS, loading only that OS's module (and its FFI) on demand.
 */
import { UserError } from "../errors.ts";
import type { NetPlatform } from "./types.ts";

/**
 * The darwin module is not written yet. A specifier held in a variable keeps `deno check` from
 * resolving it; once darwin.ts exists, replace this with a literal `import("./darwin.ts")` so that
 * `deno compile` bundles it.
 */
const DARWIN_MODULE = "./darwin.ts";

export async function netPlatform(): Promise<NetPlatform> {
  switch (Deno.build.os) {
    case "linux": {
      const { linuxPlatform } = await import("./linux.ts");
      return linuxPlatform();
    }
    case "darwin": {
      let mod: { darwinPlatform?: () => NetPlatform };
      try {
        mod = await import(DARWIN_MODULE);
      } catch (e) {
        if (e instanceof TypeError && /not found|Cannot (find|load)/i.test(e.message)) {
          throw new UserError("macOS support is not built yet");
        }
        throw e;
      }
      if (!mod.darwinPlatform) throw new UserError("macOS support is not built yet");
      return mod.darwinPlatform();
    }
    default:
      throw new UserError(`the tunnel is not supported on ${Deno.build.os} (Linux and macOS only)`);
  }
}
