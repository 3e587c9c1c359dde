/**
 * The two AWS-owned port-forwarding documents the emulated agent runs, with their parameters
 * substituted (specs/ssm-protocol.md §2 "Session documents", §8). Parameters arrive as StartSession
 * gives them: name → array of strings; the first element is the value.
 */

export interface PortDocument {
  sessionType: "Port";
  /** Resolved document `properties`, sent in the HandshakeRequest (Go sorts map keys). */
  properties: Record<string, string>;
  destination: { hostname: string; port: number };
}

export class DocumentError extends Error {
  override name = "DocumentError";
}

const DEFAULTS: Record<string, Record<string, string>> = {
  "AWS-StartPortForwardingSession": { portNumber: "80", localPortNumber: "0" },
  "AWS-StartPortForwardingSessionToRemoteHost": { portNumber: "80", localPortNumber: "0" },
};

export function resolvePortDocument(
  documentName: string,
  parameters: Record<string, string[]>,
): PortDocument {
  const defaults = DEFAULTS[documentName];
  if (!defaults) {
    throw new DocumentError(
      `the emulated agent runs only port-forwarding documents, not ${documentName}`,
    );
  }
  const value = (name: string): string | undefined => {
    const v = parameters[name];
    if (v === undefined) return defaults[name];
    if (!Array.isArray(v) || typeof v[0] !== "string") {
      throw new DocumentError(`parameter ${name} must be an array of strings`);
    }
    return v[0];
  };
  const portNumber = value("portNumber")!;
  const port = Number(portNumber);
  if (!/^\d+$/.test(portNumber) || port < 1 || port > 65535) {
    throw new DocumentError(`invalid portNumber ${JSON.stringify(portNumber)}`);
  }
  const properties: Record<string, string> = {};
  let hostname = "localhost";
  if (documentName === "AWS-StartPortForwardingSessionToRemoteHost") {
    const host = value("host");
    if (!host) throw new DocumentError("parameter host is required");
    properties.host = host;
    hostname = host;
  }
  properties.localPortNumber = value("localPortNumber") ?? "0";
  properties.portNumber = portNumber;
  properties.type = "LocalPortForwarding";
  return { sessionType: "Port", properties, destination: { hostname, port } };
}
