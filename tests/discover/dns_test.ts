import assert from "node:assert/strict";
import { dnsCandidates, ec2InternalDomain } from "../../src/discover/dns.ts";

Deno.test("dns: hosted zones, DHCP domains, then the region's EC2 domain, each once", () => {
  const { domains, notes } = dnsCandidates({
    region: "eu-west-1",
    zones: [
      { id: "Z0CORP", name: "corp.internal." },
      { id: "Z0SVC", name: "Svc.Corp.Example.com." },
      { id: "Z0WILD", name: "\\052.odd.internal." },
    ],
    dhcp: {
      id: "dopt-0abc",
      names: ["svc.corp.example.com", "eu-west-1.compute.internal", "lab."],
    },
  });
  assert.deepEqual(domains, [
    { domain: "corp.internal", reason: "private hosted zone Z0CORP" },
    { domain: "svc.corp.example.com", reason: "private hosted zone Z0SVC" },
    { domain: "eu-west-1.compute.internal", reason: "DHCP options dopt-0abc" },
    { domain: "lab", reason: "DHCP options dopt-0abc" },
  ]);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /052\.odd\.internal.*private hosted zone Z0WILD.*not a domain name/);
});

Deno.test("dns: us-east-1 names its instances under ec2.internal, other regions under REGION.compute.internal", () => {
  assert.equal(ec2InternalDomain("us-east-1"), "ec2.internal");
  assert.equal(ec2InternalDomain("ap-southeast-2"), "ap-southeast-2.compute.internal");
  assert.deepEqual(dnsCandidates({ region: "us-east-1" }).domains, [
    { domain: "ec2.internal", reason: "EC2 private DNS names in us-east-1" },
  ]);
});
