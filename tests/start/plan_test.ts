import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";
import { checkStart, type StartOptions } from "../../src/start/options.ts";
import { dropEndpointConflicts, type NetworkPlan, unclaimedDomains } from "../../src/start/plan.ts";
import { linkRoutes } from "../../src/start/apply.ts";
import { withSaved } from "../../src/cli/start_saved.ts";
import { formatPlan } from "../../src/cli/start.ts";

const base: StartOptions = {
  target: "name:bastion",
  cidr: [],
  stripes: 1,
  name: "t",
  agentPort: 7797,
};

Deno.test("start options: nothing given means discover; given values are parsed once", () => {
  const d = checkStart(base);
  assert.equal(d.cidrs, undefined);
  assert.equal(d.domains, undefined);
  assert.equal(d.dns, true);
  assert.equal(d.mode, "auto");
  const g = checkStart({
    ...base,
    cidr: ["10.0.0.0/16"],
    exclude: ["10.0.5.0/24"],
    dnsDomain: ["Corp.Internal.", "corp.internal"],
  });
  assert.deepEqual(g.cidrs?.map((c) => c.text), ["10.0.0.0/16"]);
  assert.deepEqual(g.exclude.map((c) => c.text), ["10.0.5.0/24"]);
  assert.deepEqual(g.domains, ["corp.internal"]);
});

Deno.test("start options: contradictions and bad values are one usage line each", () => {
  const bad: [Partial<StartOptions>, RegExp][] = [
    [{ dns: false, dnsDomain: ["corp.internal"] }, /--no-dns and --dns-domain/],
    [{ exclude: ["10.0.0.1/16"] }, /^--exclude 10.0.0.1\/16 has host bits set/],
    [{ dnsDomain: ["bad domain"] }, /--dns-domain "bad domain" is not a domain name/],
    [{ stripes: 0 }, /--stripes/],
    [{ name: "Prod" }, /tunnel name "Prod"/],
  ];
  for (const [o, re] of bad) {
    assert.throws(
      () => checkStart({ ...base, ...o }),
      (e) => e instanceof UserError && re.test(e.message),
    );
  }
});

const plan = (routes: string[]): NetworkPlan => ({
  routes: routes.map((cidr) => ({ cidr, reason: "via tgw-0abc (transit gateway)" })),
  skipped: [],
  domains: [{ domain: "corp.internal", reason: "private hosted zone Z1" }],
  dnsRequired: false,
  notes: [],
  resolver: "10.0.0.2",
  vpcId: "vpc-0abc",
});

Deno.test("plan: a discovered range holding the session endpoint is skipped; a given one fails", () => {
  const ep = [{ what: "the Session Manager endpoint", address: "52.94.1.1" }];
  const p = dropEndpointConflicts(plan(["10.0.0.0/16", "52.94.0.0/16"]), ep, undefined);
  assert.deepEqual(p.routes.map((r) => r.cidr), ["10.0.0.0/16"]);
  assert.equal(p.skipped[0].cidr, "52.94.0.0/16");
  assert.match(p.skipped[0].reason, /holds the Session Manager endpoint \(52\.94\.1\.1\); --force/);
  assert.throws(
    () => dropEndpointConflicts(plan(["52.94.0.0/16"]), ep, [{ text: "52.94.0.0/16" }]),
    /route its own traffic into itself/,
  );
  assert.throws(() => dropEndpointConflicts(plan(["52.94.0.0/16"]), ep, undefined), /nothing left/);
});

Deno.test("apply: the resolver gets its own route only when DNS is on and no range holds it", () => {
  assert.deepEqual(linkRoutes(plan(["10.0.0.0/16"]), "10.0.0.2"), ["10.0.0.0/16"]);
  assert.deepEqual(linkRoutes(plan(["10.8.0.0/16"]), "10.0.0.2"), ["10.8.0.0/16", "10.0.0.2/32"]);
  assert.deepEqual(linkRoutes({ ...plan(["10.8.0.0/16"]), domains: [] }, "10.0.0.2"), [
    "10.8.0.0/16",
  ]);
});

Deno.test("start NAME: the saved tunnel fills in what the command line leaves out", () => {
  const flags = { ...base, mode: "auto", cidr: [], exclude: [], dnsDomain: [], dns: true };
  const saved = {
    name: "prod",
    target: "tag:Env=prod",
    cidrs: ["10.0.0.0/16"],
    stripes: 4,
    mode: "agent" as const,
    region: "eu-west-1",
  };
  const typed = new Set(["stripes"]);
  const m = withSaved({ ...flags, stripes: 2 }, saved, (f) => typed.has(f));
  assert.equal(m.target, "tag:Env=prod");
  assert.deepEqual(m.cidr, ["10.0.0.0/16"]);
  assert.equal(m.stripes, 2); // typed: the command line wins
  assert.equal(m.mode, "agent");
  assert.equal(m.region, "eu-west-1");
  assert.equal(m.dns, true); // not saved: the flag's default stays
  assert.deepEqual(withSaved(flags, undefined, () => false), flags);
  // --no-dns beats saved domains, --dns-domain beats a saved `dns: false`.
  const dnsSaved = { name: "p", dnsDomains: ["corp.internal"] };
  const off = withSaved({ ...flags, dns: false }, dnsSaved, (f) => f === "dns");
  assert.deepEqual([off.dns, off.dnsDomain], [false, []]);
  const on = withSaved(
    { ...flags, dnsDomain: ["x.internal"] },
    { name: "p", dns: false },
    (f) => f === "dnsDomain",
  );
  assert.deepEqual([on.dns, on.dnsDomain], [true, ["x.internal"]]);
});

Deno.test("the plan reads as one reason per line", () => {
  const text = formatPlan(
    { instanceId: "i-0abc", name: "bastion" },
    { ...plan(["10.0.0.0/16"]), skipped: [{ cidr: "0.0.0.0/0", reason: "the default route" }] },
    { name: "t", mode: "agent", resolver: "10.0.0.2", dry: true },
  );
  assert.match(text, /^ssm-proxy: dry run: nothing is changed: i-0abc \(bastion\) in vpc-0abc/);
  assert.match(text, /route +10\.0\.0\.0\/16 +via tgw-0abc/);
  assert.match(text, /skip +0\.0\.0\.0\/0 +the default route/);
  assert.match(text, /dns +corp\.internal +private hosted zone Z1/);
  assert.match(text, /-> VPC resolver 10\.0\.0\.2/);
  for (const line of text.split("\n")) assert.match(line, /^ssm-proxy: /);
});

Deno.test("plan: a discovered domain another tunnel resolves stays with that tunnel", () => {
  const found = [
    { domain: "corp.internal", reason: "private hosted zone Z1" },
    { domain: "ec2.internal", reason: "DHCP options dopt-1" },
  ];
  const r = unclaimedDomains(found, [
    { name: "prod", domains: ["ec2.internal", "prod.internal"] },
    { name: "old" }, // a state from before domains were recorded
  ]);
  assert.deepEqual(r.domains, [found[0]]);
  assert.deepEqual(r.notes, ['ec2.internal: already resolved through tunnel "prod"']);
  assert.deepEqual(unclaimedDomains(found, []), { domains: found, notes: [] });
});
