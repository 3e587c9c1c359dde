/**
 * `ssm-proxy forward`: a local port forwarded over multiplexed Port sessions, one to start with
 * and more under load (src/ssm/session_pool.ts). Presentation and lifecycle only; the data path
 * is src/ssm/forwarder.ts.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import { fmtAddr, Forwarder } from "../ssm/forwarder.ts";
import { type PoolOptions, poolOptions } from "../ssm/forward_pool.ts";
import { messageSize } from "../ssm/message_size.ts";
import { PortSession, type PortSessionOptions } from "../ssm/session.ts";
import { SessionPool } from "../ssm/session_pool.ts";
import { exitStopped, NETWORK_UNDO_MS, Stopped, StopSignals, within } from "../signals.ts";

export interface ForwardOptions extends AwsOptions {
  target: string;
  remoteHost: string;
  remotePort: number;
  localPort: number;
  bind: string;
  log?: (line: string) => void;
  /** Start a stopped instance and wait until it is online. */
  wake?: boolean;
  /** Session tuning (heartbeat, dead-peer detection); tests shorten these. */
  session?: Pick<PortSessionOptions, "heartbeatMs" | "deadAfterMs" | "healForMs">;
  /** `--sessions`: auto (default) or a fixed count; `--max-sessions`: the most auto opens. */
  sessions?: string | number;
  maxSessions?: string | number;
  /** Pool timing (sampling, growing, retiring); tests shorten these. */
  pool?: Pick<PoolOptions, "growAfterMs" | "retireIdleMs"> & { tickMs?: number };
}

export interface OpenForward {
  forwarder: Forwarder;
  /** The first session: the forward lasts as long as it does. */
  session: PortSession;
  pool: SessionPool;
  instanceId: string;
  name?: string;
  /** Resolves when accepting stops. */
  serving: Promise<void>;
  /** Stop accepting, end every session on the agent (Flag TerminateSession) and by API. */
  stop(): Promise<void>;
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1"]);

/** Resolve the target, open the session, and start accepting. */
export async function openForward(o: ForwardOptions): Promise<OpenForward> {
  const aws: AwsOptions = { profile: o.profile, region: o.region };
  const log = o.log ?? ((line: string) => console.error(`ssm-proxy: ${line}`));
  const policy = { ...poolOptions(o.sessions, o.maxSessions), ...o.pool };
  // Bind first: a taken port should fail before anything is opened on AWS.
  const listener = listen(o.bind, o.localPort);
  try {
    const { resolveTarget } = await import("../aws/targets.ts");
    const ssm = await import("../aws/ssm.ts");
    const target = o.wake
      ? await (await import("../aws/wake.ts")).resolveTargetWaking(aws, o.target, log)
      : await resolveTarget(aws, o.target);
    const toLocal = LOCAL_HOSTS.has(o.remoteHost);
    const maxPayload = messageSize();
    const pool = await SessionPool.open({
      policy,
      tickMs: o.pool?.tickMs,
      log,
      open: async (sessionLog) =>
        await PortSession.open({
          grant: await ssm.startSession(aws, {
            target: target.instanceId,
            documentName: toLocal
              ? "AWS-StartPortForwardingSession"
              : "AWS-StartPortForwardingSessionToRemoteHost",
            parameters: toLocal
              ? { portNumber: [String(o.remotePort)] }
              : { host: [o.remoteHost], portNumber: [String(o.remotePort)] },
          }),
          api: ssm.sessionApi(aws),
          log: sessionLog,
          maxPayload,
          ...o.session,
        }),
    });
    const dest = `${o.remoteHost}:${o.remotePort}`;
    const forwarder = new Forwarder(pool.pick, listener, {
      refused: (remote) =>
        log(
          `${dest} refused the connection from ${remote} on the instance side: check that it listens and that the instance can reach it`,
        ),
    });
    return {
      forwarder,
      session: pool.first,
      pool,
      instanceId: target.instanceId,
      name: target.name,
      serving: forwarder.serve(),
      async stop() {
        forwarder.close();
        await pool.close();
      },
    };
  } catch (e) {
    listener.close();
    throw e;
  }
}

export async function runForward(
  o: Omit<ForwardOptions, "target"> & { target?: string },
): Promise<void> {
  const target = o.target ??
    await (await import("./picker.ts")).pickTarget({ profile: o.profile, region: o.region }, o);
  // Before anything slow: a signal while resolving or connecting must stop us too (signals.ts).
  const stop = new StopSignals();
  const opening = openForward({ ...o, target });
  let f: OpenForward;
  try {
    f = await stop.race(opening);
  } catch (e) {
    if (!(e instanceof Stopped)) throw e;
    // A session the open is about to hand over is ended too, if that comes in time.
    await within(opening.then((f) => f.stop()), NETWORK_UNDO_MS);
    exitStopped(`stopped (${e.signal}) while connecting`);
  }
  const name = f.name ? ` (${f.name})` : "";
  console.log(
    `Forwarding ${
      fmtAddr(f.forwarder.addr)
    } -> ${o.remoteHost}:${o.remotePort} via ${f.instanceId}${name}, session ${f.session.sessionId}`,
  );
  const p = f.pool.o.policy;
  if (p.auto && p.max > 1) console.log(`Sessions: 1, more under load (up to ${p.max})`);
  else if (!p.auto && p.max > 1) console.log(`Sessions: ${f.pool.sessions.length} of ${p.max}`);
  console.log(`Local port: ${f.forwarder.addr.port}`);
  console.log("Press Ctrl-C to stop.");

  const outcome = await Promise.race([
    stop.stopped.then((sig) => ({ sig })),
    f.session.ended.then((end) => ({ end })),
  ]);
  if ("sig" in outcome) {
    const ids = f.pool.sessions.map((s) => s.sessionId);
    const ended = await within(f.stop(), NETWORK_UNDO_MS);
    exitStopped(
      `stopped (${outcome.sig}); ${ids.length === 1 ? "session" : "sessions"} ${ids.join(", ")} ${
        ended ? "terminated" : "left to time out (TerminateSession did not answer)"
      }`,
    );
  }
  stop.dispose();
  await f.stop();
  await f.serving.catch(() => {});
  throw new UserError(
    `${outcome.end.message}; run the command again to reconnect`,
    ExitCode.Remote,
  );
}

function listen(hostname: string, port: number): Deno.Listener {
  try {
    return Deno.listen({ hostname, port, transport: "tcp" });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UserError(
        `local port ${port} on ${hostname} is already in use: pick another with --local-port, or omit it for a free one`,
        ExitCode.Usage,
      );
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new UserError(
        `cannot listen on ${hostname}: no such local address (check --bind)`,
        ExitCode.Usage,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new UserError(
        `not allowed to listen on ${hostname}:${port}: ports below 1024 need root`,
        ExitCode.Usage,
      );
    }
    throw e;
  }
}
