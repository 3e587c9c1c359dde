/**
 * `ssm-proxy eks connect | token | disconnect`: selection, presentation and lifecycle. The work
 * is in eks_connect.ts (connecting) and src/eks/* (config, token, kubeconfig, state).
 */
import type { ClusterEntry } from "../config/clusters.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { Connection, ConnectOptions } from "./eks_connect.ts";
import { exitStopped, NETWORK_UNDO_MS, Stopped, StopSignals, within } from "../signals.ts";
import { logTo, spawnDetached } from "./background.ts";

export interface EksConnectFlags extends ConnectOptions {
  /** `--clusters FILE` */
  clusters?: string;
  /** `--config FILE` */
  config?: string;
  /** `-d`: keep the forward running in the background and return. */
  background?: boolean;
}

export async function runConnect(name: string | undefined, o: EksConnectFlags): Promise<void> {
  const env = Deno.env.toObject();
  if (env.SSM_PROXY_EKS_LOG) logTo(env.SSM_PROXY_EKS_LOG);
  const { loadClusters } = await import("../config/load.ts");
  const { file, clusters } = await loadClusters({ clustersFile: o.clusters, configFile: o.config });
  const names = clusters.map((c) => c.name);
  const picker = await import("../eks/picker.ts");
  const choice = name ?? picker.headlessSelection(env, names) ??
    await picker.pickInteractive(picker.pickItems(clusters, await connectedNames(o.kubeconfig)));
  if (choice === picker.KILL_ALL) return await runDisconnect(undefined, { ...o, all: true });
  const entry = clusters.find((c) => c.name === choice);
  if (!entry) {
    throw new UserError(
      `no cluster named "${choice}" in ${file} (known: ${names.join(", ")})`,
      ExitCode.Usage,
    );
  }

  const { readForwardState } = await import("../eks/state.ts");
  const live = await readForwardState(entry.name);
  if (live) {
    const { useContext } = await import("../eks/kubeconfig.ts");
    const { editKubeconfig } = await import("../eks/kubefile.ts");
    const path = await kubeconfigFile(o.kubeconfig);
    await editKubeconfig(path, (t) => useContext(t, entry.name, path));
    console.log(
      `${entry.name} is already connected on localhost:${live.port} (pid ${live.pid}); ` +
        `switched kubectl to context ${entry.name}`,
    );
    return;
  }
  // kube-ssm-proxy's HEADLESS_EXIT meant "connect and give the terminal back".
  const background = o.background || env.KUBECTL_SSM_HEADLESS_EXIT === "1";
  if (o.portForward && background && !entry.direct_connect) {
    return await connectInBackground(entry, file, o);
  }

  // Before anything slow: a signal while authenticating, finding the bastion or waiting for the
  // session must stop us too, undoing what the connect got to (signals.ts).
  const stop = new StopSignals();
  const { connectCluster } = await import("./eks_connect.ts");
  const connecting = connectCluster(entry, o);
  let conn: Connection;
  try {
    conn = await stop.race(connecting);
  } catch (e) {
    if (!(e instanceof Stopped)) throw e;
    await within(connecting.then((c) => c.close()), NETWORK_UNDO_MS);
    exitStopped(`${entry.name}: stopped (${e.signal}) while connecting; kubeconfig left as it was`);
  }
  const via = conn.mode === "port-forward"
    ? ` via ${conn.instanceId} (session ${conn.sessionId})`
    : "";
  console.log(
    `${entry.name}: ${conn.mode} to ${entry.cluster_name} (${entry.region}) at ${conn.server}${via}`,
  );
  console.log(`kubectl context "${entry.name}" is now current in ${conn.kubeconfig}`);
  if (conn.mode !== "port-forward") {
    stop.dispose();
    return;
  }
  console.log("Press Ctrl-C to stop (or run: ssm-proxy eks disconnect " + entry.name + ")");

  const outcome = await Promise.race([
    stop.stopped.then((sig) => ({ sig })),
    conn.ended!.then((end) => ({ end })),
  ]);
  if ("sig" in outcome) {
    // close() undoes the local side first (state file, kubeconfig), then ends the session.
    await within(conn.close(), NETWORK_UNDO_MS);
    exitStopped(`${entry.name} disconnected (${outcome.sig})`);
  }
  stop.dispose();
  await conn.close();
  throw new UserError(
    `${entry.name}: ${outcome.end}; run "ssm-proxy eks connect ${entry.name} --port-forward" to reconnect`,
    ExitCode.Remote,
  );
}

export interface TokenFlags {
  cluster: string;
  region?: string;
  profile?: string;
}

/** Prints the ExecCredential kubectl asks for; nothing else on stdout. */
export async function runToken(o: TokenFlags): Promise<void> {
  const { explicitRegion } = await import("../aws/config.ts");
  const region = explicitRegion(o);
  if (!region) throw new UserError("eks token needs --region (or AWS_REGION)", ExitCode.Usage);
  const { resolveCredentials } = await import("../aws/sts.ts");
  const { buildToken, execCredential } = await import("../eks/token.ts");
  const creds = await resolveCredentials({ profile: o.profile, region });
  const now = new Date();
  const token = await buildToken(o.cluster, region, creds, now);
  console.log(JSON.stringify(execCredential(token, now)));
}

export interface DisconnectFlags {
  all?: boolean;
  kubeconfig?: string;
}

/** Stops forwards this tool started and marks their kubeconfig entries inactive. */
export async function runDisconnect(name: string | undefined, o: DisconnectFlags): Promise<void> {
  if (!name && !o.all) {
    throw new UserError("name a cluster to disconnect, or pass --all", ExitCode.Usage);
  }
  const { listForwardStates, removeForwardState } = await import("../eks/state.ts");
  const { alive } = await import("../tunnel/state.ts");
  const states = (await listForwardStates()).filter((s) => o.all || s.name === name);
  for (const s of states) {
    try {
      Deno.kill(s.pid, "SIGTERM");
    } catch { /* already gone */ }
    // The forward cleans up after itself; give it the time to end the session properly.
    for (let i = 0; i < 100 && alive(s.pid) && s.pid !== Deno.pid; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await removeForwardState(s.name, s.pid);
    console.log(`${s.name}: forward on localhost:${s.port} stopped (pid ${s.pid})`);
  }
  const { readMeta, markInactive } = await import("../eks/kubeconfig.ts");
  const { editKubeconfig, readKubeconfig } = await import("../eks/kubefile.ts");
  const path = await kubeconfigFile(o.kubeconfig);
  const metas = [...readMeta(await readKubeconfig(path))]
    .filter(([n, m]) => m.active && (o.all || n === name));
  // Tunnels `eks connect` started for transparent entries are stopped with them.
  for (const [n, m] of metas) {
    if (!m.tunnel) continue;
    if (Deno.uid() !== 0) {
      console.error(
        `ssm-proxy: ${n}: tunnel "${m.tunnel}" keeps running; stop it with sudo ssm-proxy stop ${m.tunnel}`,
      );
      continue;
    }
    const { runSelf } = await import("./eks_connect.ts");
    const { selfCommand } = await import("../eks/self.ts");
    await runSelf(selfCommand(), "stop", ["stop", m.tunnel]).catch((e) =>
      console.error(`ssm-proxy: ${e.message}`)
    );
    console.log(`${n}: tunnel "${m.tunnel}" stopped`);
  }
  const active = metas.map(([n]) => n);
  await editKubeconfig(path, (t) => active.reduce((acc, n) => markInactive(acc, n, path), t));
  if (states.length === 0) {
    const marked = active.length ? `; marked ${active.join(", ")} inactive in ${path}` : "";
    console.log(`${name ? `${name}: no forward running` : "no forwards running"}${marked}`);
  }
}

async function kubeconfigFile(explicit?: string): Promise<string> {
  if (explicit) return explicit;
  const { kubeconfigPath } = await import("../eks/kubeconfig.ts");
  return kubeconfigPath(Deno.env.toObject());
}

/** Entries shown as ● in the picker: a live forward, or an active tunnel/direct entry. */
async function connectedNames(kubeconfig?: string): Promise<Set<string>> {
  const { listForwardStates } = await import("../eks/state.ts");
  const { readMeta } = await import("../eks/kubeconfig.ts");
  const { readKubeconfig } = await import("../eks/kubefile.ts");
  const out = new Set((await listForwardStates()).map((s) => s.name));
  for (const [n, m] of readMeta(await readKubeconfig(await kubeconfigFile(kubeconfig)))) {
    if (m.active && m.mode !== "port-forward") out.add(n);
  }
  return out;
}

/** Re-run `eks connect NAME --port-forward` detached; return once its state file appears. */
async function connectInBackground(
  entry: ClusterEntry,
  file: string,
  o: EksConnectFlags,
): Promise<void> {
  const { eksStateDir, readForwardState } = await import("../eks/state.ts");
  const { selfCommand } = await import("../eks/self.ts");
  await Deno.mkdir(eksStateDir(), { recursive: true, mode: 0o700 });
  const log = `${eksStateDir()}/${encodeURIComponent(entry.name)}.log`;
  const self = o.self ?? selfCommand();
  const opt = (flag: string, v?: string) => (v ? [flag, v] : []);
  const { state: s } = await spawnDetached({
    command: self.command,
    args: [
      ...self.args,
      "eks",
      "connect",
      entry.name,
      "--port-forward",
      "--clusters",
      file,
      ...opt("--bastion-tag", o.bastionTag),
      ...opt("--target", o.target),
      ...opt("--kubeconfig", o.kubeconfig),
    ],
    env: { SSM_PROXY_EKS_LOG: log, KUBECTL_SSM_HEADLESS_EXIT: "" },
    log,
    what: `the forward for ${entry.name}`,
    ready: async (pid) => {
      const s = await readForwardState(entry.name);
      return s && s.pid === pid ? s : undefined;
    },
  });
  console.log(
    `${entry.name}: port-forward on localhost:${s.port} via ${s.instanceId} in the ` +
      `background (pid ${s.pid}); kubectl context "${entry.name}" is current; log ${log}`,
  );
}
