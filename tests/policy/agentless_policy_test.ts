/**
 * The team's rules applied on the laptop in agentless mode (src/policy/agentless_policy.ts): by
 * this laptop's principal, with the VPC resolver's DNS allowed first, against the emulator's
 * Parameter Store and STS for real; nothing judged when nothing is published or readable.
 */
import assert from "node:assert/strict";
import { agentlessPolicy, awsInputs } from "../../src/policy/agentless_policy.ts";
import { putParameter } from "../../src/aws/parameters.ts";
import { UserError } from "../../src/errors.ts";
import { withEmulator } from "../aws/harness_test.ts";
import { udpPacket } from "../agent/helpers.ts";

const PATH = "/ssm-proxy/policy";
const o = (lines: string[]) => ({
  addresses: "198.18.0.0/30",
  resolver: "10.0.0.2",
  progress: (l: string) => lines.push(l),
});
const to = (dst: string, port: number) => udpPacket("198.18.0.1", dst, 40000, port);

Deno.test("agentless policy: the rules for this laptop's principal, DNS to the resolver first", async () => {
  await withEmulator(undefined, async (emu) => {
    const arn = emu.fixtures.callerArn;
    const user = arn.split("/").at(-1)!;
    await putParameter({}, {
      name: `${PATH}/team`,
      value: `rules:\n  - principals: { users: [${user}] }\n` +
        "    allow: [10.0.5.0/24:5432]\n  - principals: { users: [somebody-else] }\n" +
        "    allow: [10.0.6.0/24]\n",
    });
    const lines: string[] = [];
    const p = await agentlessPolicy(PATH, awsInputs({}, PATH), o(lines));
    assert.ok(p, "rules are published");
    assert.equal(p.allowPacket(to("10.0.5.9", 5432)), true, "this principal's rule");
    assert.equal(p.allowPacket(to("10.0.5.9", 5433)), false, "not another port");
    assert.equal(p.allowPacket(to("10.0.6.1", 80)), false, "another principal's rule");
    assert.equal(p.allowPacket(to("10.0.0.2", 53)), true, "the resolver's DNS");
    assert.equal(p.summary, `team policy ${PATH}: 2 rules as ${arn}`);
    assert.deepEqual(lines, []);
  });
});

Deno.test("agentless policy: nothing published, or not readable: nothing judged, one line", async () => {
  await withEmulator(undefined, async (emu) => {
    const lines: string[] = [];
    assert.equal(await agentlessPolicy(PATH, awsInputs({}, PATH), o(lines)), undefined);
    assert.deepEqual(lines, [], "nothing to say when nothing is published");
    emu.fixtures.deny.push({ action: "GetParametersByPath" });
    assert.equal(await agentlessPolicy(PATH, awsInputs({}, PATH), o(lines)), undefined);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      /^team policy \/ssm-proxy\/policy not read \(.*GetParametersByPath.*\): no rules applied on this laptop$/,
    );
  });
});

Deno.test("agentless policy: a broken parameter stops the start in one line", async () => {
  await withEmulator(undefined, async () => {
    await putParameter({}, { name: `${PATH}/team`, value: "rules:\n  - allow: [10.0.0.0/33]\n" });
    await assert.rejects(
      agentlessPolicy(PATH, awsInputs({}, PATH), o([])),
      (e) =>
        e instanceof UserError && !e.message.includes("\n") &&
        /^the team's policy in Parameter Store is broken: \/ssm-proxy\/policy\/team:2: .*fix the parameter/
          .test(e.message),
    );
  });
});
