/**
 * `ssm-proxy eks connect`: credentials, cluster, route (direct, transparent over a running
 * tunnel, or a port-forward through the bastion), then kubeconfig. `connectCluster` does the
 * work and returns a handle; `runConnect` adds selection, background mode and Ctrl-C.
 */
import type { ClusterEntry } from "../config/clusters.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { PortSessionOptions } from "../ssm/session.ts";
import { DEFAULT_BASTION_TAG } from "../eks/bastion.ts";
import { type KubeEntry, localPortsInUse, mergeEntry, type Mode } from "../eks/kubeconfig.ts";
import { type SelfCommand, selfCommand, tokenArgs } from "../eks/self.ts";

export interface ConnectOptions {
  /** `--port-forward`: no root, no agent; otherwise transparent mode over a running tunnel. */
  portForward?: boolean;
  /** `--bastion-tag Key=Value`; else the entry's bastion_tag, else Purpose=bastion. */
  bastionTag?: string;
  /** `--target`: skip the bastion search. */
  target?: string;
  /** kubeconfig file; default the first of KUBECONFIG, else ~/.kube/config. */
  kubeconfig?: string;
  /** How kubeconfig calls `eks token`; default this binary (tests point it at a wrapper). */
  self?: SelfCommand;
  log?: (line: string) => void;
  /** Runs `ssm-proxy start … -d` (tests record the arguments instead of touching the host). */
  startTunnel?: (args: string[]) => Promise<void>;
  /** Whether we may start a tunnel (default: running as root). */
  root?: boolean;
  session?: Pick<PortSessionOptions, "heartbeatMs" | "deadAfterMs" | "healForMs">;
}

export interface Connection {
  mode: Mode;
  entry: ClusterEntry;
  kubeconfig: string;
  server: string;
  /** Port-forward only. */
  port?: number;
  instanceId?: string;
  sessionId?: string;
  /** Port-forward only: resolves with a message when the session ends by itself. */
  ended?: Promise<string>;
  /** Ends the forward (if any) and marks the kubeconfig entry inactive. */
  close(): Promise<void>;
}

export async function connectCluster(entry: ClusterEntry, o: ConnectOptions): Promise<Connection> {
  const aws = { profile: entry.profile, region: entry.region };
  const log = o.log ?? ((l: string) => console.error(`ssm-proxy: ${l}`));
  const { kubeconfigPath } = await import("../eks/kubeconfig.ts");
  const kubeconfig = o.kubeconfig ?? kubeconfigPath(Deno.env.toObject());
  const { getCallerIdentity } = await import("../aws/sts.ts");
  const who = await getCallerIdentity(aws);
  log(`authenticated as ${who.arn} (profile ${entry.profile})`);
  const { describeCluster } = await import("../aws/eks.ts");
  const cluster = await describeCluster(aws, entry.cluster_name);
  const endpoint = new URL(cluster.endpoint);
  const exec = tokenArgs(o.self ?? selfCommand(), {
    cluster: entry.cluster_name,
    region: entry.region,
    profile: entry.profile,
  });
  const meta = { region: entry.region, cluster_name: entry.cluster_name, active: true };
  const { editKubeconfig } = await import("../eks/kubefile.ts");
  const write = (e: Omit<KubeEntry, "name" | "caData" | "exec">) =>
    editKubeconfig(
      kubeconfig,
      (t) => mergeEntry(t, { name: entry.name, caData: cluster.caData, exec, ...e }, kubeconfig),
    );
  const inactive = async () => {
    const { markInactive } = await import("../eks/kubeconfig.ts");
    await editKubeconfig(kubeconfig, (t) => markInactive(t, entry.name, kubeconfig));
  };
  const base = { entry, kubeconfig, server: cluster.endpoint, close: inactive };

  if (entry.direct_connect) {
    if (!cluster.publicAccess) {
      throw new UserError(
        `cluster ${entry.name} has direct_connect: true but its endpoint has no public access: ` +
          "set direct_connect: false to go through the bastion",
      );
    }
    await write({ server: cluster.endpoint, meta: { ...meta, mode: "direct" } });
    return { ...base, mode: "direct" };
  }

  const { vpcCidrs, findCoveringTunnel } = await import("../eks/transparent.ts");
  const cidrs = await vpcCidrs(aws, cluster.vpcId);
  const tunnel = await findCoveringTunnel(cidrs);
  if (tunnel && !o.portForward) {
    log(`tunnel "${tunnel.name}" routes ${cidrs.join(", ")}: using the endpoint directly`);
    // A tunnel this command started earlier stays ours to stop on disconnect.
    const ours = tunnel.name === tunnelName(entry.name) ? { tunnel: tunnel.name } : {};
    await write({ server: cluster.endpoint, meta: { ...meta, mode: "transparent", ...ours } });
    return { ...base, mode: "transparent" };
  }

  const tag = o.bastionTag ?? entry.bastion_tag ?? DEFAULT_BASTION_TAG;
  const { findBastion } = await import("../eks/bastion.ts");
  const instanceId = o.target ??
    (await findBastion(aws, cluster.vpcId, tag, entry.cluster_name)).instanceId;
  if (!o.portForward) {
    if (!cidrs.length) {
      throw new UserError(
        `could not read the CIDRs of ${cluster.vpcId}: pass --port-forward`,
        ExitCode.Remote,
      );
    }
    const startArgs = ["start", "--target", instanceId, ...cidrs.flatMap((c) => ["--cidr", c])];
    const own = tunnelName(entry.name);
    if (!(o.root ?? Deno.uid() === 0)) {
      const flags = `--profile ${entry.profile} --region ${entry.region}`;
      throw new UserError(
        `transparent mode needs a tunnel routing ${
          cidrs.join(", ")
        }: run "sudo ssm-proxy eks connect ${entry.name}" ` +
          `(it starts one), or "sudo ssm-proxy ${flags} ${
            startArgs.join(" ")
          } -d" first, or pass --port-forward (no root needed)`,
        ExitCode.Usage,
      );
    }
    log(`starting tunnel "${own}" for ${cidrs.join(", ")} through ${instanceId}`);
    const start = o.startTunnel ??
      ((args: string[]) => runSelf(o.self ?? selfCommand(), "start", args));
    await start([
      "--profile",
      entry.profile,
      "--region",
      entry.region,
      ...startArgs,
      "--name",
      own,
      "-d",
    ]);
    await write({ server: cluster.endpoint, meta: { ...meta, mode: "transparent", tunnel: own } });
    return { ...base, mode: "transparent", instanceId };
  }
  return await portForward(entry, o, { aws, kubeconfig, endpoint, instanceId, log, base, write });
}

interface ForwardCtx {
  aws: { profile: string; region: string };
  kubeconfig: string;
  endpoint: URL;
  instanceId: string;
  log: (l: string) => void;
  base: Omit<Connection, "mode">;
  write: (e: Omit<KubeEntry, "name" | "caData" | "exec">) => Promise<void>;
}

async function portForward(entry: ClusterEntry, o: ConnectOptions, c: ForwardCtx) {
  const { readKubeconfig } = await import("../eks/kubefile.ts");
  const { choosePort, canBindLocal } = await import("../eks/ports.ts");
  const { listForwardStates, writeForwardState, removeForwardState } = await import(
    "../eks/state.ts"
  );
  const reserved = localPortsInUse(await readKubeconfig(c.kubeconfig));
  for (const s of await listForwardStates()) reserved.add(s.port);
  // Our own entry's port was ours: take it again so kubectl sessions keep their URL.
  const { readMeta } = await import("../eks/kubeconfig.ts");
  const previous = readMeta(await readKubeconfig(c.kubeconfig)).get(entry.name)?.port;
  const port = previous && canBindLocal(previous) ? previous : choosePort(reserved, canBindLocal);
  if (!port) throw new UserError("no free local port in 49152-65535 for the forward");

  // EKS endpoints listen on 443; a port in the URL is honoured for emulated clusters.
  const host = c.endpoint.hostname.replace(/^\[|\]$/g, "");
  const remotePort = Number(c.endpoint.port || 443);
  const { openForward } = await import("./forward.ts");
  const f = await openForward({
    ...c.aws,
    target: c.instanceId,
    remoteHost: host,
    remotePort,
    localPort: port,
    bind: "127.0.0.1",
    log: c.log,
    session: o.session,
  });
  const server = `https://localhost:${port}`;
  try {
    await writeForwardState({
      name: entry.name,
      pid: Deno.pid,
      port,
      instanceId: f.instanceId,
      sessionId: f.session.sessionId,
      cluster_name: entry.cluster_name,
      region: entry.region,
      startedAt: new Date().toISOString(),
    });
    await c.write({
      server,
      tlsServerName: host,
      meta: {
        mode: "port-forward",
        port,
        active: true,
        region: entry.region,
        cluster_name: entry.cluster_name,
      },
    });
  } catch (e) {
    await f.stop();
    await removeForwardState(entry.name, Deno.pid);
    throw e;
  }
  let closed = false;
  return {
    ...c.base,
    mode: "port-forward" as const,
    server,
    port,
    instanceId: f.instanceId,
    sessionId: f.session.sessionId,
    ended: f.session.ended.then((e) => e.message),
    async close() {
      if (closed) return;
      closed = true;
      // The local side first: a TerminateSession that hangs (the network is gone) must not
      // leave the kubeconfig entry active or the state file behind when the caller stops waiting.
      f.forwarder.close();
      await removeForwardState(entry.name, Deno.pid);
      await c.base.close();
      await f.stop();
      await f.serving.catch(() => {});
    },
  };
}

/** The tunnel `eks connect` starts for a cluster entry (a valid `--name`). */
export function tunnelName(entry: string): string {
  return `eks-${entry.toLowerCase().replace(/[^a-z0-9_-]+/g, "-")}`.slice(0, 32);
}

/** Run another ssm-proxy command (start, stop); its last line becomes our error. */
export async function runSelf(self: SelfCommand, what: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(self.command, {
    args: [...self.args, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    const text = new TextDecoder().decode(r.stderr).trim() ||
      new TextDecoder().decode(r.stdout).trim();
    const last = (text.split("\n").at(-1) ?? "").replace(/^ssm-proxy: /, "");
    throw new UserError(`ssm-proxy ${what} failed: ${last}`, r.code || 1);
  }
}
