/**
 * The client's copy of the Parameter Store rules (src/policy/client_rules.ts), read with the
 * user's credentials through the real SDK against the emulator.
 */
import assert from "node:assert/strict";
import { loadClientRules } from "../../src/policy/client_rules.ts";
import { formatDest } from "../../agent/rules.ts";
import { putParameter } from "../../src/aws/parameters.ts";
import { AccessDeniedError } from "../../src/aws/errors.ts";
import { RulesParameterError } from "../../agent/rules_parameter.ts";
import { withEmulator } from "../aws/harness_test.ts";

const PATH = "/ssm-proxy/policy";
const put = (name: string, value: string) =>
  putParameter({}, { name: `${PATH}/${name}`, value, overwrite: true });

Deno.test("client rules: every parameter under the path, in name order", async () => {
  await withEmulator(undefined, async (emu) => {
    assert.deepEqual(await loadClientRules({}, PATH), [], "nothing published");
    await put("b", "rules:\n  - principals: {roles: [Dev]}\n    allow: [10.0.2.0/24:443/tcp]\n");
    await put("a/deep", "rules: [{deny: [10.0.9.0/24]}]");
    await putParameter({}, { name: "/ssm-proxy/policyx", value: "not: [rules]" });
    const rules = await loadClientRules({}, PATH);
    assert.deepEqual(
      rules.map((r) => [r.principals, r.allow.map(formatDest), r.deny.map(formatDest)]),
      [
        [undefined, [], ["10.0.9.0/24"]],
        [{ roles: ["Dev"] }, ["10.0.2.0/24:443/tcp"], []],
      ],
    );
    assert.equal(emu.seen.at(-1)?.scope, "eu-central-1/ssm");
  });
});

Deno.test("client rules: a broken parameter or a refusal is one line", async () => {
  await withEmulator(undefined, async (emu) => {
    await put("a", "rules: [{allow: [any]}]");
    await put("b", "rules:\n  - allow: [10.0.0.0/8]\n    requireIdentity: true\n");
    await assert.rejects(
      loadClientRules({}, PATH),
      (e) =>
        e instanceof RulesParameterError &&
        e.message ===
          `${PATH}/b:3: rules[0].requireIdentity: unknown key (allowed: principals, allow, deny)`,
    );
    emu.fixtures.deny.push({ action: "GetParametersByPath" });
    await assert.rejects(
      loadClientRules({}, PATH),
      (e) =>
        e instanceof AccessDeniedError &&
        /may not call ssm:GetParametersByPath on arn:aws:ssm:eu-central-1:\d{12}:parameter\/ssm-proxy\/policy;/
          .test(e.message),
    );
  });
});
