/** What the user reads about identities and denials: identity.ts and denials.ts, pure. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ExitCode } from "../../src/errors.ts";
import { newHello } from "../../src/tunnel/connect.ts";
import { Denials, deniedText, destinationText } from "../../src/tunnel/denials.ts";
import { identityRefusal, identityText } from "../../src/tunnel/identity.ts";
import { FEATURE_IDENTITY } from "../../src/tunnel/wire.ts";

Deno.test("identity text: verified, not verified, not checked", () => {
  const arn = "arn:aws:sts::111122223333:assumed-role/ops-admin/deploy";
  assert.equal(identityText({ identity: { arn, account: "111122223333" } }), arn);
  assert.equal(
    identityText({ identityUnverified: "STS at sts.eu-west-1.amazonaws.com\ndid not answer" }),
    "not verified: STS at sts.eu-west-1.amazonaws.com did not answer",
  );
  assert.equal(identityText({}), "agent does not check identities");
});

Deno.test("identity refusal: one line of ExitCode.Auth whatever the agent says", () => {
  fc.assert(fc.property(
    fc.constantFrom("identity-required" as const, "identity-refused" as const),
    fc.string(),
    fc.boolean(),
    (code, said, offered) => {
      const e = identityRefusal(code, said, "i-0abc", offered);
      assert.equal(e.exitCode, ExitCode.Auth);
      assert.equal(e.code, code);
      assert.ok(!/[\n\r]/.test(e.message), e.message);
      assert.ok(e.message.startsWith("ssm-proxy-agent on i-0abc "), e.message);
    },
  ));
  assert.equal(
    identityRefusal("identity-refused", "  STS says\n  InvalidClientTokenId ", "i-0abc", true)
      .message,
    "ssm-proxy-agent on i-0abc refused this client's IAM identity: STS says InvalidClientTokenId; use credentials its policy allows (--profile), or ask its administrator to allow yours",
  );
  assert.match(
    identityRefusal("identity-required", "", "i-0abc", false).message,
    /requires a verified IAM identity: identity-required; this command offers none/,
  );
});

Deno.test("hello: offers the identity feature only with a prover", () => {
  assert.ok(newHello(2, 1400, true).features.includes(FEATURE_IDENTITY));
  assert.ok(!newHello(2, 1400).features.includes(FEATURE_IDENTITY));
});

Deno.test("denials: destinations as the status line shows them", () => {
  assert.equal(
    destinationText({ dst: "10.0.9.5", port: 5432, protocol: "tcp" }),
    "10.0.9.5:5432/tcp",
  );
  assert.equal(destinationText({ dst: "fd00::5", port: 53, protocol: "udp" }), "[fd00::5]:53/udp");
  assert.equal(destinationText({ dst: "10.0.9.5", protocol: "icmp" }), "10.0.9.5/icmp");
  assert.equal(destinationText({ dst: "10.0.9.5", protocol: 47 }), "10.0.9.5/proto 47");
  assert.equal(deniedText(undefined), "");
  assert.equal(deniedText({ denied: 0 }), "");
  assert.equal(
    deniedText({ denied: 3, deniedLast: "10.0.9.5:5432/tcp" }),
    "denied by the agent's policy: 3 (last: 10.0.9.5:5432/tcp)",
  );
  assert.equal(deniedText({ denied: 1 }), "denied by the agent's policy: 1");
});

Deno.test("denials: counted on ICMPv6 too, and the last one kept apart from its buffer", () => {
  const d = new Denials();
  // IPv6 from the agent: ICMPv6 type 1 code 1, quoting a UDP packet to fd00::5 port 53.
  const p = new Uint8Array(40 + 8 + 40 + 8);
  p[0] = 0x60;
  p[5] = 8 + 48; // payload length
  p[6] = 58;
  p[40] = 1;
  p[41] = 1;
  p[48] = 0x60;
  p[54] = 17;
  p.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5], 48 + 24);
  p.set([0x30, 0x39, 0, 53], 88);
  d.note(p);
  p.fill(0); // the receive buffer is reused
  d.note(p);
  assert.equal(d.count, 1);
  assert.equal(d.last(), "[fd00::5]:53/udp");
});

Deno.test("denials: only the agents' own answers count, not a VPC firewall's", () => {
  const d = new Denials();
  d.onlyFrom(["100.64.0.1", "fd7a:5353:5d8b::1"]);
  const quoted = [0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 100, 64, 0, 2, 10, 0, 9, 5];
  const from = (src: number[]) =>
    new Uint8Array([
      ...[0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, ...src, 100, 64, 0, 2],
      ...[3, 13, 0, 0, 0, 0, 0, 0],
      ...quoted,
      ...[0xc3, 0x50, 0x15, 0x38, 0, 0, 0, 1],
    ]);
  d.note(from([10, 0, 9, 1])); // a host's own REJECT with admin-prohibited
  assert.equal(d.count, 0);
  d.note(from([100, 64, 0, 1]));
  assert.equal(d.count, 1);
});
