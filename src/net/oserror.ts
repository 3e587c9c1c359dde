/** What both platforms say when a tunnel step fails for lack of privileges. */
import { OsError } from "../../ffi/libc.ts";
import { UserError } from "../errors.ts";
import { parseIP, StructError } from "../../ffi/struct.ts";

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

/** The errno names each OS uses for the same two address/route failures. */
export interface ConfigCodes {
  addressRejected: string[];
  interfaceGone: string[];
}

/**
 * Address, MTU and route failures read the same on every OS; only the errno names differ.
 * Returns the OsError itself when it is nothing the user can act on.
 */
export function configUserError(step: Step, os: OsError, codes: ConfigCodes): Error {
  const code = os.code;
  switch (step.op) {
    case "address":
      if (code === "EEXIST") {
        return new UserError(
          `address ${step.address} peer ${step.peer}/${step.prefixLength} already exists on ${step.ifname}`,
        );
      }
      if (codes.addressRejected.includes(code)) {
        return new UserError(
          `the kernel rejected address ${step.address} peer ${step.peer}/${step.prefixLength}`,
        );
      }
      break;
    case "link":
      if (code === "EINVAL") return new UserError(`the kernel rejected MTU ${step.mtu}`);
      break;
    case "route":
      if (codes.interfaceGone.includes(code)) {
        return new UserError(`cannot route ${step.cidr}: interface ${step.ifname} is gone`);
      }
      if (code === "EINVAL") return new UserError(`the kernel rejected route ${step.cidr}`);
      break;
  }
  return os;
}

/** A dotted IPv4 address from configuration or the agent, as bytes; bad text is a UserError. */
export function ip(s: string, what: string): Uint8Array {
  try {
    return parseIP(s);
  } catch (e) {
    if (e instanceof StructError) throw new UserError(`${what}: ${e.message}`);
    throw e;
  }
}
