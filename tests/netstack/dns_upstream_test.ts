import assert from "node:assert/strict";
import { DnsUpstreams, INSTANCE_STUB_RESOLVER } from "../../src/netstack/dns_upstream.ts";
import type { Destination, RemoteStreamEvents } from "../../src/netstack/types.ts";
import { FakeTransport } from "./support/fake_transport.ts";

const RESOLVER: Destination = { family: 4, host: "10.0.0.2", port: 53 };
const events = (got: string[]): RemoteStreamEvents => ({
  opened: (r) => got.push(r),
  data: () => {},
  end: () => {},
  aborted: () => {},
  writable: () => {},
});

Deno.test("dns upstreams: the resolver itself first, then the instance's stub, remembered", () => {
  const t = new FakeTransport();
  const logs: string[] = [];
  const up = new DnsUpstreams(t, { log: (l) => logs.push(l) });
  const got: string[] = [];
  up.open(RESOLVER, events(got));
  assert.equal(t.last.dst.host, "10.0.0.2");
  t.last.resolve("refused"); // the SSM agent forbids the VPC's reserved addresses
  assert.deepEqual(got, ["refused"], "the relay sees the failure and resends");
  assert.match(logs[0], /10\.0\.0\.2:53 refused .*trying 127\.0\.0\.53:53/);
  up.open(RESOLVER, events(got));
  assert.deepEqual(t.last.dst, { family: 4, host: INSTANCE_STUB_RESOLVER, port: 53 });
  t.last.resolve("ok");
  assert.equal(up.current, "127.0.0.53:53");
  up.open(RESOLVER, events(got));
  assert.equal(t.last.dst.host, INSTANCE_STUB_RESOLVER, "later streams skip the failed one");
});

Deno.test("dns upstreams: --dns-upstream goes first; the last candidate is kept even if it fails", () => {
  const t = new FakeTransport();
  const up = new DnsUpstreams(t, { preferred: ["10.0.8.10"], fallbacks: [] });
  const got: string[] = [];
  up.open(RESOLVER, events(got));
  assert.equal(t.last.dst.host, "10.0.8.10");
  t.last.resolve("timeout");
  up.open(RESOLVER, events(got));
  assert.equal(t.last.dst.host, "10.0.0.2");
  t.last.resolve("refused");
  up.open(RESOLVER, events(got));
  assert.equal(t.last.dst.host, "10.0.0.2", "nothing after it: it stays");
  assert.deepEqual(got, ["timeout", "refused"]);
});

Deno.test("dns upstreams: an IPv6 candidate is opened as IPv6", () => {
  const t = new FakeTransport();
  const up = new DnsUpstreams(t, { preferred: ["fd00:ec2::53"] });
  up.open(RESOLVER, events([]));
  assert.deepEqual(t.last.dst, { family: 6, host: "fd00:ec2::53", port: 53 });
});
