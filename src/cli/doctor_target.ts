/**
 * `ssm-proxy doctor --target`: the instance (EC2 state, SSM status), ssm:StartSession tried for
 * real (and terminated at once), and ssm-proxy-agent answering the tunnel hello on its port.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { Check } from "./doctor.ts";
import { identityText } from "../tunnel/identity.ts";

const SSM_FIX = "start amazon-ssm-agent on the instance and give its instance role " +
  "AmazonSSMManagedInstanceCore";

function message(e: unknown): string {
  return e instanceof UserError ? e.message : String((e as Error)?.message ?? e).split("\n")[0];
}

export async function targetChecks(
  aws: AwsOptions,
  spec: string,
  agentPort: number,
  add: (c: Check) => Check,
): Promise<void> {
  const { parseTarget, pickRunning, describeSpec, findCandidates } = await import(
    "../aws/targets.ts"
  );
  const { describeInstances } = await import("../aws/ec2.ts");
  const { describeInstanceInformation } = await import("../aws/ssm.ts");
  const t = parseTarget(spec);

  // 1. The instance: which one, its EC2 state and its SSM ping status.
  let instanceId: string;
  let label: string;
  let online = false;
  try {
    let state: string | undefined;
    let name: string | undefined;
    if (t.kind === "id") {
      instanceId = t.id;
      if (t.id.startsWith("i-")) {
        const [i] = await describeInstances(aws, [{ name: "instance-id", values: [t.id] }]);
        state = i?.state ?? "not found in EC2";
        name = i?.name;
      }
    } else {
      // EC2 and managed (mi-) instances alike, as start and forward find them.
      const found = await findCandidates(aws, t);
      // One match in any state is diagnosed as is; otherwise resolveTarget's rules and words.
      const id = found.length === 1 ? found[0].instanceId : pickRunning(t, found).instanceId;
      const picked = found.find((c) => c.instanceId === id)!;
      instanceId = picked.instanceId;
      state = picked.state === "managed" ? undefined : picked.state;
      name = picked.name;
    }
    label = name ? `${instanceId} (${name})` : instanceId;
    const [info] = await describeInstanceInformation(aws, [instanceId]);
    const ping = info?.pingStatus ?? "not registered";
    online = ping === "Online" && (state === undefined || state === "running");
    const parts = [
      ...(state !== undefined ? [state] : []),
      `SSM ${ping}`,
      ...(info?.agentVersion ? [`amazon-ssm-agent ${info.agentVersion}`] : []),
      ...(info?.platformName ? [info.platformName] : []),
    ];
    const detail = `${label}: ${parts.join(", ")}`;
    if (online) {
      add({ ok: true, name: "instance", detail });
    } else {
      const fix = state !== undefined && state !== "running"
        ? state === "not found in EC2"
          ? "check the instance id and the region"
          : `start it (aws ec2 start-instances --instance-ids ${instanceId}, or --wake)`
        : SSM_FIX;
      add({ ok: false, name: "instance", detail, fix });
    }
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    add({
      ok: false,
      name: "instance",
      detail: `${describeSpec(t)}: ${e.message}`,
      fix: "pass a target that list-instances shows as running and Online",
    });
    return;
  }

  // 2. What `start` would route and resolve, and any source it could not read.
  if (instanceId.startsWith("i-")) add(await discoveryCheck(aws, instanceId));

  // 3. ssm:StartSession, as start and forward call it, and ssm:TerminateSession right after.
  const ssm = await import("../aws/ssm.ts");
  const startName = `ssm:StartSession`;
  let sessionOk = false;
  try {
    const grant = await ssm.startSession(aws, {
      target: instanceId,
      documentName: "AWS-StartPortForwardingSession",
      parameters: { portNumber: [String(agentPort)] },
      reason: "ssm-proxy doctor",
    });
    try {
      await ssm.terminateSession(aws, grant.sessionId);
      add({ ok: true, name: startName, detail: `allowed on ${label} (session terminated)` });
      sessionOk = true;
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      add({
        ok: false,
        name: startName,
        detail: `allowed on ${label}, but terminating the session failed: ${e.message}`,
        fix: 'allow "ssm:TerminateSession" on your own sessions',
      });
    }
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    add({
      ok: false,
      name: startName,
      detail: e.message,
      fix: e.exitCode === ExitCode.Auth
        ? `allow "ssm:StartSession" on ${instanceId} and on the document ` +
          "AWS-StartPortForwardingSession"
        : online
        ? "retry; see the message"
        : SSM_FIX,
    });
  }

  // 4. The agent: a Port session to its port, the tunnel hello, its WELCOME.
  const agentName = `ssm-proxy-agent on port ${agentPort}`;
  if (!sessionOk) {
    add({
      ok: false,
      name: agentName,
      detail: "not tried: no session could be started",
      fix: "fix the ssm:StartSession check first",
    });
    return;
  }
  try {
    const { helloAgent } = await import("../start/agent_hello.ts");
    const w = await helloAgent(aws, instanceId, agentPort);
    add({
      ok: true,
      name: agentName,
      detail: `${w.agent || "unknown version"}, protocol ${w.version}, mtu ${w.mtu}${
        w.resolver ? `, VPC resolver ${w.resolver}` : ""
      }; identity: ${identityText(w)}`,
    });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    add({
      ok: false,
      name: agentName,
      detail: message(e),
      fix: `ssm-proxy agent install --target ${instanceId}, or see systemctl status ` +
        "ssm-proxy-agent on the instance",
    });
  }
}

/**
 * `start`'s discovery, without starting: the ranges and domains it would use, failing when a
 * source was refused (the note names the IAM action) or when there would be nothing to route.
 */
async function discoveryCheck(aws: AwsOptions, instanceId: string): Promise<Check> {
  const name = "discovery";
  try {
    const { resolvedRegion } = await import("../aws/region.ts");
    const region = (await resolvedRegion(aws))?.region;
    if (!region) return { ok: false, name, detail: "no region", fix: "pass --region" };
    const { discover } = await import("../discover/discover.ts");
    const d = await discover(aws, { instanceId, region }, { routes: true, dns: true });
    const detail = `routes ${d.ranges.map((r) => r.cidr).join(", ") || "none"}; DNS ${
      d.domains.map((x) => x.domain).join(", ") || "none"
    }${d.notes.length ? `; ${d.notes.join("; ")}` : ""}`;
    if (d.notes.length || d.ranges.length === 0) {
      return {
        ok: false,
        name,
        detail,
        fix: "grant the actions named (README: IAM permissions), or pass --cidr / --dns-domain",
      };
    }
    return { ok: true, name, detail };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    return { ok: false, name, detail: e.message, fix: "pass --cidr and --dns-domain to start" };
  }
}
