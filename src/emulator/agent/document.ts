/**
 * The AWS-owned documents the emulated agent runs, with their parameters substituted
 * (specs/ssm-protocol.md §2 "Session documents", §8, §9): the two port-forwarding documents, and
 * the two shell documents (a pty running `sh`, or `sh -c <command>`). Parameters arrive as
 * StartSession gives them: name → array of strings; the first element is the value.
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
      `the emulated agent runs only port-forwarding and shell documents, not ${documentName}`,
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

export interface ShellDocument {
  sessionType: "Standard_Stream" | "InteractiveCommands";
  /** What runs on the pty (the agent outside container mode: `sh`, or `sh -c <commands>`). */
  argv: string[];
}

const SHELL_DOCUMENTS: Record<string, ShellDocument["sessionType"]> = {
  // Also what StartSession runs when it has no DocumentName (§2).
  "SSM-SessionManagerRunShell": "Standard_Stream",
  "AWS-StartInteractiveCommand": "InteractiveCommands",
};

export function isShellDocument(documentName: string): boolean {
  return Object.hasOwn(SHELL_DOCUMENTS, documentName);
}

export function resolveShellDocument(
  documentName: string,
  parameters: Record<string, string[]>,
): ShellDocument {
  const sessionType = SHELL_DOCUMENTS[documentName];
  if (!sessionType) throw new DocumentError(`${documentName} is not a shell document`);
  if (sessionType === "Standard_Stream") return { sessionType, argv: ["sh"] };
  const v = parameters.command;
  if (v === undefined) throw new DocumentError("parameter command is required");
  if (!Array.isArray(v) || typeof v[0] !== "string") {
    throw new DocumentError("parameter command must be an array of strings");
  }
  if (v[0] === "") throw new DocumentError("parameter command is empty");
  return { sessionType, argv: ["sh", "-c", v[0]] };
}
