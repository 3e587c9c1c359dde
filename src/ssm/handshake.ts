/**
 * Handshake payloads (specs/ssm-protocol.md §6): parse the agent's HandshakeRequest and build the
 * client's HandshakeResponse. Pure.
 */
import { FrameError, jsonBytes, parseJson } from "./message.ts";

/**
 * Reported to the agent. At or above AWS's documented minimum plugin version, so the real agent
 * chooses smux mux mode (≥ 1.1.70) and leaves smux keepalive off (> 1.2.331.0) (§8, §15).
 */
export const CLIENT_VERSION = "1.2.764.0";

export const ActionStatus = { Success: 1, Failed: 2, Unsupported: 3 } as const;

export interface RequestedAction {
  ActionType: string;
  ActionParameters?: Record<string, unknown> | null;
}

export interface HandshakeRequest {
  AgentVersion: string;
  RequestedClientActions: RequestedAction[] | null;
}

export interface HandshakeInfo {
  agentVersion: string;
  sessionType: string | undefined;
  properties: Record<string, unknown> | null;
  /** Actions we do not perform (e.g. KMSEncryption, never used on Port sessions). */
  unsupported: string[];
}

export function parseHandshakeRequest(payload: Uint8Array): HandshakeInfo {
  const r = parseJson<HandshakeRequest>(payload, "HandshakeRequest");
  if (typeof r.AgentVersion !== "string") {
    throw new FrameError("HandshakeRequest without AgentVersion");
  }
  const actions = Array.isArray(r.RequestedClientActions) ? r.RequestedClientActions : [];
  let sessionType: string | undefined;
  let properties: Record<string, unknown> | null = null;
  const unsupported: string[] = [];
  for (const a of actions) {
    if (a?.ActionType === "SessionType") {
      const p = a.ActionParameters ?? {};
      sessionType = typeof p.SessionType === "string" ? p.SessionType : undefined;
      const props = p.Properties;
      properties = props && typeof props === "object" ? props as Record<string, unknown> : null;
    } else {
      unsupported.push(String(a?.ActionType));
    }
  }
  return { agentVersion: r.AgentVersion, sessionType, properties, unsupported };
}

/**
 * One ProcessedClientActions entry per requested action, in order, as the plugin does. We accept
 * only SessionType; anything else is reported Unsupported (the agent then fails the session
 * rather than continuing with a feature we skipped).
 */
export function handshakeResponse(
  payload: Uint8Array,
  clientVersion = CLIENT_VERSION,
): Uint8Array {
  const r = parseJson<HandshakeRequest>(payload, "HandshakeRequest");
  const actions = Array.isArray(r.RequestedClientActions) ? r.RequestedClientActions : [];
  const processed = actions.map((a) => ({
    ActionType: a?.ActionType ?? "",
    ActionStatus: a?.ActionType === "SessionType" ? ActionStatus.Success : ActionStatus.Unsupported,
    ActionResult: null,
    Error: a?.ActionType === "SessionType" ? "" : `ssm-proxy does not support ${a?.ActionType}`,
  }));
  return jsonBytes({
    ClientVersion: clientVersion,
    ProcessedClientActions: processed,
    Errors: null,
  });
}

export interface HandshakeComplete {
  HandshakeTimeToComplete?: number;
  CustomerMessage?: string;
}

export function parseHandshakeComplete(payload: Uint8Array): HandshakeComplete {
  return parseJson<HandshakeComplete>(payload, "HandshakeComplete");
}
