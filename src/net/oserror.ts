/** What both platforms say when a tunnel step fails for lack of privileges. */
import { OsError } from "../../ffi/libc.ts";
import { UserError } from "../errors.ts";

/** Which operation failed, for the error line. */
export type Step =
  | { op: "tun"; name: string }
  | { op: "address"; ifname: string; address: string; peer: string; prefixLength: number }
  | { op: "link"; ifname: string; mtu: number }
  | { op: "route"; cidr: string; ifname: string };

const ROOT = "run with sudo";

/**
 * The part of error mapping every OS shares: anything but an OsError keeps its stack trace (a
 * bug), and EPERM/EACCES mean "not root". Returns undefined when the platform must decide.
 */
export function commonUserError(step: Step, e: unknown): Error | undefined {
  if (!(e instanceof OsError)) return e instanceof Error ? e : new Error(String(e));
  if (e.code === "EPERM" || e.code === "EACCES") {
    return new UserError(
      step.op === "tun"
        ? `creating a tunnel needs root: ${ROOT}`
        : `configuring ${"ifname" in step ? step.ifname : "the tunnel"} needs root: ${ROOT}`,
    );
  }
  return undefined;
}
