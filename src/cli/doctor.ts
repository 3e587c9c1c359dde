/**
 * `ssm-proxy doctor`: one ✓/✗ line per thing the product needs, each ✗ with its fix. AWS
 * permissions are tried, never guessed: every action is called for real (StartSession is
 * terminated at once), so AccessDenied is reported as AWS words it.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface DoctorOptions extends AwsOptions {
  /** With a target: instance, StartSession and agent checks. */
  target?: string;
  agentPort?: number;
  /** CIDRs to check against local routes. */
  cidr?: string[];
  /** false (`--no-local`): skip this machine's checks (root, tun, DNS). */
  local?: boolean;
}

export interface Check {
  ok: boolean;
  name: string;
  detail: string;
  /** What to do; set on failures. */
  fix?: string;
}

export function formatCheck(c: Check): string {
  return `${c.ok ? "✓" : "✗"} ${c.name}: ${c.detail}${c.ok || !c.fix ? "" : ` (fix: ${c.fix})`}`;
}

const DEFAULT_AGENT_PORT = 7797;

function message(e: unknown): string {
  if (e instanceof UserError) return e.message;
  const err = e as Error;
  return `${err?.name ?? "Error"}: ${err?.message ?? String(e)}`.split("\n")[0];
}

/** Runs `fn`; a throw becomes a failed check whose detail is the (one-line) error. */
async function attempt(
  name: string,
  fn: () => Promise<Check | string>,
  fix?: string,
): Promise<Check> {
  try {
    const r = await fn();
    return typeof r === "string" ? { ok: true, name, detail: r } : r;
  } catch (e) {
    if (!(e instanceof UserError)) {
      // An SDK failure that toUserError does not know still reads as one line here.
      const err = e as Error;
      if (!err || typeof err !== "object" || !("$metadata" in err || "code" in err)) throw e;
    }
    return { ok: false, name, detail: message(e), ...(fix ? { fix } : {}) };
  }
}

/** Runs every check, calling `emit` as each completes; returns them all. */
export async function doctor(o: DoctorOptions, emit: (c: Check) => void): Promise<Check[]> {
  const all: Check[] = [];
  const add = (c: Check) => {
    all.push(c);
    emit(c);
    return c;
  };
  const aws: AwsOptions = { profile: o.profile, region: o.region };
  const agentPort = o.agentPort ?? DEFAULT_AGENT_PORT;

  const region = add(await regionCheck(aws));
  if (region.ok) {
    const { getCallerIdentity } = await import("../aws/sts.ts");
    const who = add(
      await attempt("credentials", async () => {
        const id = await getCallerIdentity(aws);
        return `${id.arn} (account ${id.account})`;
      }),
    );
    if (who.ok) await awsChecks(aws, o, agentPort, add);
  }
  if (o.cidr && o.cidr.length > 0) {
    for (const c of await routeChecks(aws, o.cidr)) add(c);
  }
  if (o.local !== false) {
    const { localChecks } = await import("./doctor_local.ts");
    for (const c of localChecks()) add(c);
  }
  return all;
}

async function regionCheck(aws: AwsOptions): Promise<Check> {
  const { resolvedRegion } = await import("../aws/region.ts");
  const r = await resolvedRegion(aws);
  if (r) {
    return {
      ok: true,
      name: "region",
      detail: r.from === "flag" ? r.region : `${r.region} (from the profile)`,
    };
  }
  return {
    ok: false,
    name: "region",
    detail: `no AWS region given${aws.profile ? ` (profile ${aws.profile} has none)` : ""}`,
    fix: "pass --region or set AWS_REGION",
  };
}

async function awsChecks(
  aws: AwsOptions,
  o: DoctorOptions,
  agentPort: number,
  add: (c: Check) => Check,
): Promise<void> {
  const { callAws } = await import("../aws/call.ts");
  const { clientConfig } = await import("../aws/config.ts");
  const ssmSdk = await import("@aws-sdk/client-ssm");
  const ec2Sdk = await import("@aws-sdk/client-ec2");

  add(
    await attempt("ssm:DescribeInstanceInformation", async () => {
      await callAws(
        aws,
        { service: "ssm", action: "ssm:DescribeInstanceInformation" },
        () => Promise.resolve(new ssmSdk.SSMClient(clientConfig(aws))),
        (c) => c.send(new ssmSdk.DescribeInstanceInformationCommand({ MaxResults: 5 })),
      );
      return "allowed";
    }),
  );
  add(
    await attempt("ec2:DescribeInstances", async () => {
      await callAws(
        aws,
        { service: "ec2", action: "ec2:DescribeInstances" },
        () => Promise.resolve(new ec2Sdk.EC2Client(clientConfig(aws))),
        (c) => c.send(new ec2Sdk.DescribeInstancesCommand({ MaxResults: 5 })),
      );
      return "allowed";
    }),
  );
  if (!o.target) return;

  const { targetChecks } = await import("./doctor_target.ts");
  await targetChecks(aws, o.target, agentPort, add);
}

async function routeChecks(aws: AwsOptions, texts: string[]): Promise<Check[]> {
  const { parseCidr } = await import("../net/cidr.ts");
  const { checkRouteConflicts, endpointAddresses } = await import("../tunnel/checks.ts");
  const { endpointFor, explicitRegion } = await import("../aws/config.ts");
  const out: Check[] = [];
  let routes;
  try {
    const { netPlatform } = await import("../net/platform.ts");
    routes = (await netPlatform()).routes;
  } catch (e) {
    return [{
      ok: false,
      name: "routes",
      detail: `cannot read the routing table: ${message(e)}`,
      fix: "run doctor on Linux or macOS",
    }];
  }
  const region = explicitRegion(aws) ?? "us-east-1";
  const reach = await endpointAddresses(
    (["ssm", "ec2", "sts"] as const).map((s) => endpointFor(s, region)),
  );
  for (const t of texts) {
    const name = `--cidr ${t}`;
    let cidr;
    try {
      cidr = parseCidr(t);
    } catch (e) {
      out.push({ ok: false, name, detail: message(e), fix: "give an IPv4 CIDR like 10.0.0.0/16" });
      continue;
    }
    try {
      await checkRouteConflicts([cidr], routes, reach);
      out.push({ ok: true, name, detail: "no conflict with local routes or the AWS endpoints" });
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      out.push({
        ok: false,
        name,
        detail: e.message.replace(/ \(use --force to do it anyway\)$/, ""),
        fix: "route a narrower range, or pass --force to start if you mean it",
      });
    }
  }
  return out;
}

export async function runDoctor(o: DoctorOptions): Promise<void> {
  if (o.agentPort !== undefined && (o.agentPort < 1 || o.agentPort > 65535)) {
    throw new UserError("--agent-port must be from 1 to 65535", ExitCode.Usage);
  }
  if (o.target) {
    const { parseTarget } = await import("../aws/targets.ts");
    parseTarget(o.target); // syntax errors before any check runs
  }
  const checks = await doctor(o, (c) => console.log(formatCheck(c)));
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) {
    throw new UserError(
      `${failed.length} of ${checks.length} checks failed: ${failed.map((c) => c.name).join(", ")}`,
      ExitCode.Failure,
    );
  }
  console.log(`all ${checks.length} checks passed`);
}
