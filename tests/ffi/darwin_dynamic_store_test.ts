/**
 * DynamicStore (ffi/darwin/dynamic_store.ts) against the fake configd: the session-keys option,
 * what a session's end removes, the errors configd reports and the refusals SetMultiple hides.
 */
import assert from "node:assert/strict";
import { DynamicStore, SC_STATUS, ScError } from "../../ffi/darwin/dynamic_store.ts";
import { FakeDarwinSC, GLOBAL_IPV4, PHYSICAL_SERVICE } from "../../ffi/darwin/fake_sc.ts";

const KEY = "State:/Network/Service/TEST/DNS";

Deno.test("open: UseSessionKeys is a CFBoolean true; the session's keys go when it closes", () => {
  const sc = new FakeDarwinSC();
  const store = DynamicStore.open(sc, "ssm-proxy");
  assert.deepEqual(sc.calls.find((c) => c.name === "SCDynamicStoreCreateWithOptions"), {
    name: "SCDynamicStoreCreateWithOptions",
    storeName: "ssm-proxy",
    options: { UseSessionKeys: true },
  });
  store.setMultiple({ [KEY]: { ServerAddresses: ["10.0.0.2"] } });
  assert.deepEqual(store.get(KEY), { ServerAddresses: ["10.0.0.2"] });
  store.close();
  store.close(); // idempotent
  assert.equal(sc.value(KEY), undefined);
  assert.equal(sc.openSessions, 0);
  assert.equal(sc.live, 0);
  assert.equal(sc.calls.at(-1)?.name, "CFRelease");
  assert.throws(() => store.get(KEY), /closed/);
});

Deno.test("a crash (no CFRelease) removes the session's keys too", () => {
  const sc = new FakeDarwinSC();
  const store = DynamicStore.open(sc, "ssm-proxy");
  store.setMultiple({ [KEY]: { ServerAddresses: ["10.0.0.2"] } });
  sc.crash();
  assert.equal(sc.value(KEY), undefined);
  assert.equal(sc.openSessions, 0);
});

Deno.test("get: an absent key is undefined; remove: false; other failures throw ScError", () => {
  const sc = new FakeDarwinSC();
  const store = DynamicStore.open(sc, "t");
  assert.equal(store.get(KEY), undefined);
  assert.equal(store.remove(KEY), false);
  assert.deepEqual(store.get(GLOBAL_IPV4), {
    PrimaryInterface: "en0",
    PrimaryService: PHYSICAL_SERVICE,
    Router: "192.168.1.1",
  });
  sc.fail("SCDynamicStoreCopyValue", SC_STATUS.NoStoreServer);
  assert.throws(
    () => store.get(GLOBAL_IPV4),
    (e) => e instanceof ScError && e.code === 2002 && /fake SCError 2002/.test(e.message),
  );
  store.close();
  assert.equal(sc.live, 0);
});

Deno.test("not root: SetMultiple and RemoveValue fail with AccessError (1003)", () => {
  const sc = new FakeDarwinSC();
  sc.root = false;
  const store = DynamicStore.open(sc, "t");
  assert.throws(() => store.setMultiple({ [KEY]: {} }), (e) => (e as ScError).code === 1003);
  sc.put(KEY, {});
  assert.throws(() => store.remove(KEY), (e) => (e as ScError).code === 1003);
  store.close();
  assert.equal(sc.live, 0);
});

Deno.test("SetMultiple hides KeyExists: a key another client wrote keeps its value", () => {
  const sc = new FakeDarwinSC();
  sc.put(KEY, { ServerAddresses: ["192.0.2.1"] });
  const store = DynamicStore.open(sc, "t");
  store.setMultiple({ [KEY]: { ServerAddresses: ["10.0.0.2"] } }); // "succeeds"
  assert.deepEqual(store.get(KEY), { ServerAddresses: ["192.0.2.1"] });
  assert.equal(store.remove(KEY), true); // RemoveValue checks no owner
  store.setMultiple({ [KEY]: { ServerAddresses: ["10.0.0.2"] } });
  assert.deepEqual(store.get(KEY), { ServerAddresses: ["10.0.0.2"] });
  store.close();
  assert.equal(sc.value(KEY), undefined);
});

Deno.test("setMultiple with only removals passes NULL for the set; keys lists by regex", () => {
  const sc = new FakeDarwinSC();
  const store = DynamicStore.open(sc, "t");
  store.setMultiple({ [KEY]: { A: 1 }, "State:/Network/Service/TEST/IPv4": { B: 2 } });
  assert.deepEqual(store.keys("^State:/Network/Service/TEST/").sort(), [
    "State:/Network/Service/TEST/DNS",
    "State:/Network/Service/TEST/IPv4",
  ]);
  store.setMultiple({}, [KEY]);
  const last = sc.calls.findLast((c) => c.name === "SCDynamicStoreSetMultiple");
  assert.equal(last?.set, null);
  assert.deepEqual(last?.remove, [KEY]);
  assert.deepEqual(store.keys("^State:/Network/Service/TEST/"), [
    "State:/Network/Service/TEST/IPv4",
  ]);
  store.close();
  assert.equal(sc.live, 0);
});

Deno.test("open fails: SCError is read and reported", () => {
  const sc = new FakeDarwinSC();
  sc.fail("SCDynamicStoreCreateWithOptions", SC_STATUS.NoStoreServer);
  assert.throws(
    () => DynamicStore.open(sc, "t"),
    (e) => e instanceof ScError && e.call === "SCDynamicStoreCreateWithOptions" && e.code === 2002,
  );
  assert.equal(sc.live, 0);
});
