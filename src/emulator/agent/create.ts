/**
 * Which emulated agent session a document gets: a shell (pty) session for the shell documents,
 * otherwise a Port session (which also reports unsupported documents when the client attaches).
 */
import { isShellDocument } from "./document.ts";
import { AgentSession, type AgentSessionInit, type EmulatedAgentSession } from "./session.ts";
import { ShellSession } from "./shell.ts";

export function createAgentSession(init: AgentSessionInit): EmulatedAgentSession {
  return isShellDocument(init.documentName) ? new ShellSession(init) : new AgentSession(init);
}
